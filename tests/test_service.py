"""The service process: /healthz, /metrics, start-up without tokens, and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest

from bot.service import Service, start, stop
from bot.settings import BotSettings

if TYPE_CHECKING:
    from conftest import MakeKb


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


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
                status, _ = get(f"http://127.0.0.1:{port}/healthz")
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
        status, body = await asyncio.to_thread(get, f"http://127.0.0.1:{service.port}/healthz")
        assert status == 503 and json.loads(body)["status"] == "failed"
    finally:
        await stop(service)


def test_start_without_a_reachable_chroma_server_says_why_and_exits_1(small_notes: Path, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KB_")},
        "KB_SOURCES": str(small_notes),
        "KB_DATA_DIR": str(tmp_path),
        "KB_CHROMA_URL": f"http://127.0.0.1:{free_port()}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1
    assert "cannot start: cannot reach Chroma" in done.stderr
    assert "Traceback" not in done.stderr


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
]


@pytest.mark.parametrize(("name", "value"), BAD_SETTINGS, ids=[name for name, _ in BAD_SETTINGS])
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(tmp_path: Path, name: str, value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=settings_env(tmp_path, **{name: value}),
        cwd=tmp_path,  # no .env from the repository
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: invalid setting ") and name in line
