"""Replicas and one indexer around a shared `chroma run` server, as the README's Deployment sets them up, with
real processes: the indexer is `python -m knowledge ingest`, the replicas are `python -m bot run` (console
mode, asked through their stdin, and their /healthz).

The indexer's ingest is paused with SIGSTOP while it holds the ingest lock, so that both replicas start,
deterministically, while it holds it: a read-only replica (KB_INGEST_ON_START=false) with its own data dir,
and a default replica on the indexer's data dir, whose start-up ingest finds the lock held. Both serve the
current index; the indexer then resumes and finishes while they answer, and both pick up its new index.

The read-only replica must work on a read-only data dir and write nothing there. Tests run as root, which
chmod does not stop, so when the machine allows it (`unshare --mount`, a private mount namespace) the
replica runs with its data dir bind-mounted read-only, where every write fails with EROFS as on a read-only
volume, and the data dir's files, sizes and times are compared before and after. Where the mount is not
allowed, the comparison still runs on a writable data dir, where the BM25 cache is the one file the core
saves (see the end of the test).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conftest import SMALL_NOTES, free_port, http_get

if TYPE_CHECKING:
    from conftest import ChromaServer, MakeKb

SYNTHETIC = 150  # entries the indexer adds: enough for an ingest of several seconds
NEW_TITLE = "Lookahead Optimizer: k steps forward, 1 step back"
NEW_ENTRY = f"# 新增\n\n- [{NEW_TITLE}](https://arxiv.org/abs/1907.08610) 快慢权重。\n"
NEW_QUESTION = "Lookahead optimizer k steps forward 1 step back"
OLD_TITLE = "Fixing Weight Decay Regularization in Adam"
OLD_QUESTION = "Which paper fixes weight decay in Adam?"
START_TIMEOUT = 120.0
PICK_UP_TIMEOUT = 60.0
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
# Bind-mount $0 read-only over itself in a private mount namespace, then run the command.
READ_ONLY = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'


def synthetic_notes(count: int) -> str:
    lines = ["# 合成", ""]
    lines += [
        f"- [Synthetic study {n} of sparse retrieval topic {n * 7919 % 1000}](https://example.com/synthetic/{n}) "
        f"第 {n} 篇合成笔记：检索与排序的实验 {n}。"
        for n in range(count)
    ]
    return "\n".join(lines) + "\n"


def env_for(tmp_path: Path, **settings: str) -> dict[str, str]:
    """This environment without KB_* settings or proxies, plus `settings`; no settings.toml, no .env."""
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_") and k.lower() not in PROXY_VARIABLES}
    return {
        **env,
        "ANONYMIZED_TELEMETRY": "False",
        "PYTHONUNBUFFERED": "1",
        "KB_CONFIG_DIR": str(config),
        "KB_EMBED_THREADS": "1",
        **settings,
    }


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under `folder` (itself included), with its size and modification time."""
    paths = [folder, *sorted(folder.rglob("*"))]
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns) for path in paths}


def read_only_mounts_work(tmp_path: Path) -> bool:
    """Whether `unshare --mount` can bind-mount a folder read-only here (it needs CAP_SYS_ADMIN)."""
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        done = subprocess.run(
            ["unshare", "--mount", "sh", "-c", READ_ONLY, str(probe), "touch", str(probe / "written")],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    written = (probe / "written").exists()
    return not written and b"Read-only file system" in done.stderr


@dataclass
class Replica:
    """A `python -m bot run` process in console mode: questions go to its stdin, answers come on stdout."""

    name: str
    process: asyncio.subprocess.Process
    port: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, name: str, command: list[str], env: dict[str, str], port: int, cwd: Path) -> Replica:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**env, "KB_HTTP_PORT": str(port)},
            cwd=cwd,
        )
        replica = cls(name, process, port)
        assert process.stdout is not None and process.stderr is not None
        replica.readers = [
            asyncio.create_task(replica._read(process.stdout, replica.stdout)),
            asyncio.create_task(replica._read(process.stderr, replica.stderr)),
        ]
        return replica

    @staticmethod
    async def _read(stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            into.append(line.decode(errors="replace"))

    @property
    def log(self) -> str:
        return "".join(self.stderr)

    async def wait_until(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.process.returncode is not None:
                raise AssertionError(
                    f"{self.name} exited ({self.process.returncode}) before {what}:\n{self.log[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {what} within {timeout} s:\n{self.log[-3000:]}")
            await asyncio.sleep(0.1)

    async def health(self) -> tuple[int, dict[str, object]]:
        import json

        status, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{self.port}/healthz")
        return status, json.loads(body)

    async def ready(self) -> dict[str, object]:
        """/healthz once it answers 200."""
        found: dict[str, object] = {}

        def up() -> bool:
            try:
                status, body = http_get(f"http://127.0.0.1:{self.port}/healthz")
            except OSError:
                return False
            if status == 200:
                import json

                found.update(json.loads(body))
            return status == 200

        await self.wait_until(up, "/healthz 200", START_TIMEOUT)
        return found

    async def ask(self, question: str) -> str:
        """What the console prints for `question` (up to the next banner-free reply)."""
        assert self.process.stdin is not None
        before = len(self.stdout)
        self.process.stdin.write(question.encode() + b"\n")
        await self.process.stdin.drain()

        def replied() -> bool:
            text = "".join(self.stdout[before:])
            return "Results for" in text or "I found nothing" in text

        await self.wait_until(replied, f"a reply to {question!r}", 30)
        await asyncio.sleep(0.3)  # the rest of the answer's lines
        return "".join(self.stdout[before:])

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 60)
        await asyncio.gather(*self.readers)
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


async def test_a_read_only_replica_serves_from_a_shared_server_while_the_indexer_ingests(
    make_kb: MakeKb, tmp_path: Path, start_chroma_server: Callable[[], ChromaServer]
) -> None:
    server = start_chroma_server()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.md").write_text(SMALL_NOTES, encoding="utf-8")
    indexer_data = tmp_path / "indexer-data"

    # The indexer's first ingest (in this process, with the session's model): the ten small entries.
    assert make_kb([notes], indexer_data, chroma_url=server.url).ingest().summary.entries == 10

    # The collection grows; the indexer's next ingest runs as its own process and is paused holding the lock.
    (notes / "synthetic.md").write_text(synthetic_notes(SYNTHETIC), encoding="utf-8")
    (notes / "new.md").write_text(NEW_ENTRY, encoding="utf-8")
    shared = {"KB_SOURCES": str(notes), "KB_CHROMA_URL": server.url}
    indexer = subprocess.Popen(
        [sys.executable, "-m", "knowledge", "ingest"],
        env=env_for(tmp_path, KB_DATA_DIR=str(indexer_data), **shared),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = indexer_data / "ingest.lock"
    replicas: list[Replica] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (lock.exists() and lock.read_text().strip() == str(indexer.pid)):
            assert indexer.poll() is None, indexer.communicate()
            assert time.monotonic() < deadline, "the indexer never took the lock"
            time.sleep(0.02)
        indexer.send_signal(signal.SIGSTOP)
        assert indexer.poll() is None and lock.read_text().strip() == str(indexer.pid)  # paused, holding it

        # Replica A: read-only, its own data dir (read-only indeed when the machine allows the mount).
        replica_data = tmp_path / "replica-data"
        replica_data.mkdir()
        (replica_data / "README").write_text("a replica's data dir, never written\n", encoding="utf-8")
        before = listing(replica_data)
        command = [sys.executable, "-m", "bot", "run"]
        read_only = read_only_mounts_work(tmp_path)
        if read_only:
            command = ["unshare", "--mount", "sh", "-c", READ_ONLY, str(replica_data), *command]
        replica_env = env_for(tmp_path, KB_DATA_DIR=str(replica_data), KB_INGEST_ON_START="false", **shared)
        replicas.append(await Replica.start("read-only replica", command, replica_env, free_port(), tmp_path))
        # Replica B: the default set-up on the indexer's machine and data dir; its start-up ingest finds the lock.
        default_env = env_for(tmp_path, KB_DATA_DIR=str(indexer_data), **shared)
        cmd = [sys.executable, "-m", "bot", "run"]
        replicas.append(await Replica.start("default replica", cmd, default_env, free_port(), tmp_path))
        read_only_replica, default_replica = replicas

        for replica in replicas:
            health = await replica.ready()
            assert health["status"] == "ok" and health["entries"] == 10, health
            assert OLD_TITLE in await replica.ask(OLD_QUESTION)
            assert NEW_TITLE not in await replica.ask(NEW_QUESTION)
        assert "read-only replica (KB_INGEST_ON_START=false): serving the current index, 10 entries" in (
            read_only_replica.log
        )
        assert f"start-up ingest skipped: another ingest is running (pid {indexer.pid})" in default_replica.log
        assert indexer.poll() is None  # still paused: both started while it held the lock
        assert "Read-only file system" not in read_only_replica.log  # it tried to write nothing

        # The indexer resumes; the replicas keep answering while it ingests, then pick up its new index.
        indexer.send_signal(signal.SIGCONT)
        answered_during = 0
        while indexer.poll() is None:
            assert OLD_TITLE in await read_only_replica.ask(OLD_QUESTION)
            answered_during += 1
            assert time.monotonic() < deadline + START_TIMEOUT, "the indexer did not finish"
        assert answered_during >= 1
        out, err = indexer.communicate()
        assert indexer.returncode == 0, err[-3000:]
        assert "entries 161" in out

        for replica in replicas:
            deadline = time.monotonic() + PICK_UP_TIMEOUT
            while NEW_TITLE not in await replica.ask(NEW_QUESTION):  # each question may start a check
                assert time.monotonic() < deadline, f"{replica.name} never loaded the new index:\n{replica.log}"
                await asyncio.sleep(1)
            status, health = await replica.health()
            assert status == 200 and health["entries"] == 161

        for replica in replicas:
            assert await replica.stop() == 0, replica.log[-3000:]
            assert "Traceback" not in replica.log
            if os.environ.get("SHOW_REPLICA_LOGS"):
                print(f"--- {replica.name}\n{replica.log}")
    finally:
        if indexer.poll() is None:
            indexer.send_signal(signal.SIGCONT)
            indexer.kill()
            indexer.wait(timeout=30)
        for replica in replicas:
            await replica.kill()

    # Nothing written, mount or not: no lock, no index, no votes, no BM25 cache (kept in memory only).
    assert listing(replica_data) == before
    mount = "on a read-only mount" if read_only else "without a read-only mount (not allowed here)"
    print(f"read-only replica ran {mount}; {answered_during} answers while the indexer ingested")
