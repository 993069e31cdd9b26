"""Git sources: real repositories made with the git CLI, reached through file:// and a local path, synced into
a real Chroma index with the real default embedder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MakeKb, free_port
from gitrepo import Repo, line_of

from knowledge.base import KnowledgeBase
from knowledge.embed import Embedder
from knowledge.errors import IngestLocked
from knowledge.lock import ingest_lock
from knowledge.parse import parse_sources
from knowledge.settings import Settings
from knowledge.upsert import UPSERT_BATCH

REPO_ROOT = Path(__file__).resolve().parent.parent

OPTIMIZERS = """\
# 优化

- [Fixing Weight Decay Regularization in Adam](https://arxiv.org/abs/1711.05101) 指出 Adam 中 L2 正则与权重衰减不等价，提出 AdamW。
- [Adam: A Method for Stochastic Optimization](https://arxiv.org/abs/1412.6980) 自适应学习率的一阶优化方法。
- [Lookahead Optimizer: k steps forward, 1 step back](https://arxiv.org/abs/1907.08610) 快慢两组权重交替更新。
- [On the Variance of the Adaptive Learning Rate and Beyond](https://arxiv.org/abs/1908.03265) RAdam：修正自适应学习率早期的方差。
"""

CONTRASTIVE = """\
# 自监督

- [Momentum Contrast for Unsupervised Visual Representation Learning](https://arxiv.org/abs/1911.05722) 何恺明等提出 MoCo，用动量编码器和队列做对比学习。
- [A Simple Framework for Contrastive Learning of Visual Representations](https://arxiv.org/abs/2002.05709) SimCLR：数据增强加对比损失。
"""

TRANSFORMER = """\
# NLP

- [Attention Is All You Need](https://arxiv.org/abs/1706.03762) The Transformer: attention only, no recurrence.
"""

TEMPLATE = "https://github.com/curator/notes/blob/{commit}/{path}#L{line}"


@pytest.fixture
def upstream(tmp_path: Path) -> Repo:
    """The curator's repository: `posts/` with two files of notes, and a README outside it."""
    repo = Repo(tmp_path / "upstream")
    repo.write("README.md", "# Reading notes\n")
    repo.write("posts/optimizers.md", OPTIMIZERS)
    repo.write("posts/contrastive.md", CONTRASTIVE)
    repo.commit("the first notes")
    return repo


def titles(kb: KnowledgeBase) -> set[str]:
    """The titles of every entry the loaded index answers from."""
    kb.index.refresh(force=True)
    return {entry.title for entry in kb.index.snapshot.entries}


def first_hit(kb: KnowledgeBase, question: str) -> str:
    hits = kb.search(question).hits
    return hits[0].entry.title if hits else ""


def curate(upstream: Repo) -> str:
    """The week's edit: one entry changed, one deleted (the entries below it move up), one file added."""
    changed = OPTIMIZERS.replace("快慢两组权重交替更新。", "快慢两组权重：快权重探索 k 步，慢权重向其插值一步。")
    changed = "\n".join(line for line in changed.split("\n") if "A Method for Stochastic" not in line)
    upstream.write("posts/optimizers.md", changed)
    upstream.write("posts/transformer.md", TRANSFORMER)
    return upstream.commit("this week's notes")


def test_a_git_source_over_file_url_syncs_only_what_changed(upstream: Repo, make_kb: MakeKb, tmp_path: Path) -> None:
    source = {"git": f"file://{upstream.path}", "branch": "main", "folder": "posts", "url": TEMPLATE}
    kb = make_kb([source], tmp_path / "data", settings_cls=Settings)
    first = kb.sync()
    [fetched] = first.sources
    assert (fetched.before, fetched.after, fetched.error) == (None, upstream.head(), None)
    assert first.ingest is not None and (first.embedded, first.added) == (6, 6)
    assert first_hit(kb, "Which paper fixes weight decay in Adam?") == "Fixing Weight Decay Regularization in Adam"

    # Nothing moved: nothing is indexed.
    again = kb.sync()
    assert again.ingest is None and again.embedded == 0 and not again.failed
    assert again.sources[0].before == again.sources[0].after == upstream.head()

    commit = curate(upstream)
    synced = kb.sync()
    assert synced.sources[0].after == commit and synced.ingest is not None
    summary = synced.ingest.summary
    # Embedded: the changed entry and the new one. AdamW and RAdam only moved, or link to the new commit of
    # their file (metadata only); the other file's entries keep their links to the commit that last changed it.
    assert (summary.embedded, summary.added, summary.removed, summary.updated, summary.unchanged) == (2, 1, 1, 2, 2)
    assert first_hit(kb, "transformer: attention only, no recurrence") == "Attention Is All You Need"
    assert "Adam: A Method for Stochastic Optimization" not in titles(kb)
    lookahead = next(hit.entry for hit in kb.search("lookahead optimizer fast and slow weights").hits)
    assert "快权重探索" in lookahead.summary
    notes = upstream.path / "posts" / "optimizers.md"
    assert lookahead.location is not None
    assert lookahead.location.url == (
        f"https://github.com/curator/notes/blob/{commit}/posts/optimizers.md#L{line_of(notes, 'Lookahead')}"
    )
    moco = next(hit.entry for hit in kb.search("MoCo momentum contrast").hits if hit.entry.title.startswith("Momentum"))
    assert moco.location is not None and f"/blob/{first.sources[0].after}/posts/contrastive.md#L" in moco.location.url

    [status] = kb.source_status()
    assert (status.kind, status.branch, status.commit, status.error) == ("git", "main", commit, None)
    assert status.name == "upstream#main:posts"  # the repository's name, not its path on the server
    assert status.commit_date is not None and status.synced_at is not None
    assert kb.health().sync_failure is None


def test_a_local_repository_path_follows_a_force_push(upstream: Repo, make_kb: MakeKb, tmp_path: Path) -> None:
    kb = make_kb([f"{upstream.path}#main:posts"], tmp_path / "data", settings_cls=Settings)
    original = upstream.head()
    assert kb.sync().added == 6
    upstream.write(
        "posts/contrastive.md",
        CONTRASTIVE + "- [Bootstrap Your Own Latent](https://arxiv.org/abs/2006.07733) BYOL：无需负样本。\n",
    )
    upstream.commit("BYOL")
    assert kb.sync().added == 1 and "Bootstrap Your Own Latent" in titles(kb)

    # The curator rewrites the history: BYOL's commit is dropped, another takes its place.
    upstream.git("reset", "--quiet", "--hard", original)
    upstream.write("posts/transformer.md", TRANSFORMER)
    rewritten = upstream.commit("the Transformer instead")
    report = kb.sync()
    [source] = report.sources
    assert source.rewritten and source.after == rewritten and source.error is None
    assert report.ingest is not None and (report.ingest.summary.added, report.ingest.summary.removed) == (1, 1)
    assert "Bootstrap Your Own Latent" not in titles(kb) and "Attention Is All You Need" in titles(kb)
    assert kb.source_status()[0].commit == rewritten


def test_an_unreachable_source_keeps_the_index_serving_and_says_so(
    upstream: Repo, make_kb: MakeKb, tmp_path: Path
) -> None:
    kb = make_kb([f"file://{upstream.path}#main:posts"], tmp_path / "data", settings_cls=Settings)
    synced = kb.sync()
    assert synced.added == 6
    # The repository goes away (a server down, a moved repository).
    upstream.path.rename(tmp_path / "moved")
    report = kb.sync()
    [failed] = report.failed
    assert report.ingest is None and failed.after == synced.sources[0].after
    assert failed.error is not None and "\n" not in failed.error
    assert "does not appear to be a git repository" in failed.error or "not found" in failed.error.lower()
    assert first_hit(kb, "Which paper fixes weight decay in Adam?") == "Fixing Weight Decay Regularization in Adam"
    health = kb.health()
    assert health.stats is not None and health.stats.entries == 6
    assert health.sync_failure is not None and health.sync_failure.startswith("upstream#main:posts: ")
    [status] = kb.source_status()
    assert status.error == failed.error and status.failed_at is not None and status.commit == synced.sources[0].after
    # It comes back: the next sync clears the failure.
    (tmp_path / "moved").rename(upstream.path)
    assert not kb.sync().failed and kb.health().sync_failure is None


def test_a_source_never_reached_fails_in_one_line_and_ingest_keeps_going(make_kb: MakeKb, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/curator/notes.git"  # nothing listens there
    kb = make_kb([f"{url}#main"], tmp_path / "data", settings_cls=Settings)
    report = kb.ingest()  # as the bot does at start-up
    assert report.summary.entries == 0 and not report.complete
    [status] = kb.source_status()
    assert status.name == url and status.error is not None and "\n" not in status.error
    assert "127.0.0.1" in status.error and status.commit is None
    sync = kb.sync()
    assert sync.failed and sync.ingest is None
    assert not kb.search("anything about Adam").hits


def test_a_second_sync_is_refused_while_one_runs(upstream: Repo, make_kb: MakeKb, tmp_path: Path) -> None:
    kb = make_kb([f"{upstream.path}#main:posts"], tmp_path / "data", settings_cls=Settings)
    with ingest_lock(tmp_path / "data" / "sync.lock"), pytest.raises(IngestLocked):
        kb.sync()
    assert kb.sync().added == 6
    forced = kb.sync(force=True)  # what /reindex asks: fetch, then index even though nothing moved
    assert forced.ingest is not None and (forced.embedded, forced.ingest.summary.unchanged) == (0, 6)


def mirror_of(data: Path) -> Path:
    [mirror] = [path for path in (data / "git").iterdir() if path.is_dir()]
    return mirror


def test_a_broken_mirror_is_repaired_or_cloned_again(upstream: Repo, make_kb: MakeKb, tmp_path: Path) -> None:
    data = tmp_path / "data"
    kb = make_kb([f"file://{upstream.path}#main:posts"], data, settings_cls=Settings)
    kb.sync()
    mirror = mirror_of(data)
    # What a kill in the middle of git leaves: lock files, a clone half made, a reset half done.
    (mirror / ".git" / "index.lock").write_text("")
    (mirror / ".git" / "refs" / "remotes" / "origin" / "main.lock").write_text("")
    (data / "git" / f"{mirror.name}.tmp-99999").mkdir()
    (mirror / "posts" / "optimizers.md").write_text("half written", encoding="utf-8")
    commit = curate(upstream)
    report = kb.sync()
    assert not report.failed and report.sources[0].after == commit and report.added == 1
    assert not (data / "git" / f"{mirror.name}.tmp-99999").exists()
    assert "Attention Is All You Need" in titles(kb) and len(titles(kb)) == 6
    # Objects gone: git cannot use the mirror any more, so it is cloned again.
    for pack in (mirror / ".git" / "objects").rglob("*"):
        if pack.is_file():
            pack.unlink()
    upstream.write(
        "posts/transformer.md",
        TRANSFORMER
        + "- [BERT: Pre-training of Deep Bidirectional Transformers](https://arxiv.org/abs/1810.04805) 掩码语言模型。\n",
    )
    bert = upstream.commit("BERT")
    report = kb.sync()
    assert not report.failed and report.sources[0].after == bert and report.added == 1


CHILD = """
import sys, time
from pathlib import Path
from knowledge.base import KnowledgeBase
from knowledge.settings import Settings

source, data, marker = sys.argv[1:4]
kb = KnowledgeBase(Settings(_env_file=None, sources=source, data_dir=Path(data), embed_threads=1))

def hold(done: int, total: int) -> None:
    Path(marker).write_text(f"{done}/{total}")
    time.sleep(600)

kb.sync(progress=hold)
"""


@pytest.fixture
def child() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_a_sync_killed_while_it_indexes_is_completed_by_the_next_start(
    upstream: Repo, default_embedder: Embedder, tmp_path: Path, child: list[subprocess.Popen[bytes]]
) -> None:
    data = tmp_path / "data"
    source = f"file://{upstream.path}#main:posts"
    settings = Settings(_env_file=None, sources=source, data_dir=data)
    kb = KnowledgeBase(settings, default_embedder)
    assert kb.sync().added == 6
    kb.close()
    papers = [
        f"- [Sparse Attention Study Number {i}](https://example.com/sparse/{i}) 第 {i} 篇稀疏注意力笔记。"
        for i in range(140)
    ]
    upstream.write("posts/sparse.md", "# 稀疏注意力\n\n" + "\n".join(papers) + "\n")
    commit = curate(upstream)
    marker = tmp_path / "embedding"
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, source, str(data), str(marker)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    child.append(process)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert process.poll() is None, "the sync ended before it embedded anything"
        assert time.monotonic() < deadline, "the sync did not start embedding within 120 s"
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)  # mid-ingest: the mirror moved, part of the index was written
    process.wait(timeout=10)

    restarted = KnowledgeBase(settings, default_embedder)
    try:
        report = restarted.sync()
        assert not report.failed and report.ingest is not None
        # The first batch (UPSERT_BATCH records) was stored before the kill; the rest is embedded now.
        assert marker.read_text() == f"{UPSERT_BATCH}/142"
        assert (report.ingest.summary.embedded, report.ingest.summary.removed) == (142 - UPSERT_BATCH, 1)
        assert report.sources[0].before == report.sources[0].after == commit  # the mirror was already there
        expected = {entry.title for entry in parse_sources([mirror_of(data) / "posts"]).entries}
        assert titles(restarted) == expected and "Attention Is All You Need" in expected
        assert first_hit(restarted, "transformer: attention only, no recurrence") == "Attention Is All You Need"
        assert restarted.source_status()[0].commit == commit
        assert restarted.sync().ingest is None  # complete: nothing left to do
    finally:
        restarted.close()


def test_links_in_a_followed_repository_never_read_files_outside_it(make_kb: MakeKb, tmp_path: Path) -> None:
    """Whoever can push to a followed repository must not make the bot index, and show, the server's files:
    a committed link to a file, or a followed folder that is a link, outside the repository is never read."""
    server = tmp_path / "server"
    server.mkdir()
    (server / ".env").write_text("- KB_DISCORD_TOKEN=S3CRET-token\n", encoding="utf-8")
    (server / "private").mkdir()
    (server / "private" / "roadmap.md").write_text("# Internal\n\n- Internal roadmap 2027\n", encoding="utf-8")
    repo = Repo(tmp_path / "upstream")
    repo.write("posts/optimizers.md", OPTIMIZERS)
    (repo.path / "posts" / "config.md").symlink_to(server / ".env")
    (repo.path / "posts" / "same.md").symlink_to("optimizers.md")  # a link inside the repository is read
    (repo.path / "linked").symlink_to(server / "private")
    repo.commit("links")

    kb = make_kb([{"git": f"file://{repo.path}", "branch": "main", "folder": "posts"}], tmp_path / "data")
    report = kb.sync()
    assert report.ingest is not None
    assert ("config.md", "a link to outside the source folder") in [
        (skip.file, skip.reason) for skip in report.ingest.parsed.skipped
    ]
    assert "Fixing Weight Decay Regularization in Adam" in titles(kb)
    assert not any("S3CRET" in hit.entry.search_text() for hit in kb.search("discord token").hits)

    linked = make_kb([{"git": f"file://{repo.path}", "branch": "main", "folder": "linked"}], tmp_path / "data2")
    linked.sync()
    assert not any("roadmap" in title.lower() for title in titles(linked))


def test_git_in_a_folder_that_cannot_be_entered_is_a_git_error(tmp_path: Path) -> None:
    """Not an OSError that stops the bot at start-up (a source folder it may not enter, or one removed)."""
    from knowledge.gitsource import GitError, git

    with pytest.raises(GitError, match=r"^git rev-parse: No such file or directory$"):
        git(["rev-parse", "--show-toplevel"], tmp_path / "gone")
