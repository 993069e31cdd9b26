"""The measurements of `python -m benchmarks`: how fast the bot is, as ratios to the embedder's own cost.

Everything runs in a fresh data dir that the bench creates and removes. Child processes measure peak RSS,
so the numbers are not inflated by what the parent process has loaded.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from knowledge import Entry, IngestReport, KnowledgeBase, Settings, load_settings
from knowledge.embed import Embedder, load_embedder
from knowledge.evaluate import evaluate, load_questions
from knowledge.parse import parse_file, parse_sources
from knowledge.ranking import Mode
from knowledge.records import PASSAGE_CAP, PassageText, default_passage_text

# The package's parent folder, so the child processes import `benchmarks` from any working directory.
_ROOT = Path(__file__).resolve().parents[1]

# The bench's own questions: Chinese, English and cross-lingual, about the bundled collection.
QUESTIONS = (
    "哪篇论文修正了 Adam 的 weight decay?",
    "Which paper fixes weight decay regularization in Adam?",
    "对比学习",
    "contrastive learning papers",
    "图神经网络的综述",
    "graph neural network survey",
    "推荐系统里的多目标排序",
    "multi-task ranking for recommendation",
    "BERT 模型压缩 蒸馏",
    "how to compress BERT with distillation",
    "强化学习 AlphaGo",
    "non-autoregressive machine translation",
    "目标检测 EfficientDet",
    "GAN image generation",
    "CTR 预估中的位置偏置",
    "hyperparameter optimization framework",
    "中文 NLP 评测基准",
    "video frame interpolation",
    "英伟达的数据预处理加速库",
    "今天北京的天气怎么样",
)
LONG_PASSAGE = 600
_NUMBER = re.compile(r"^[0-9.]+\s*")
VARIANT_WORDS = (
    "revisited",
    "a survey",
    "in practice",
    "at scale",
    "for beginners",
    "explained",
    "benchmarks",
    "实践",
    "综述",
    "详解",
    "入门",
    "进阶",
    "复现",
    "笔记",
)


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM, which, unlike `ru_maxrss`, does not carry over the peak of
    the parent that spawned it (Linux keeps the larger across fork and exec, so a child of a bench that
    holds a torch model would report the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def long_passage_text(entry: Entry, index: int, chunk: str) -> str:
    """The alternative the default is measured against: titles plus 600 characters of body."""
    text = chunk if chunk.strip() else entry.summary
    return "\n".join(part for part in [entry.title, *entry.alt_titles, text.strip()[:LONG_PASSAGE]] if part)


def synthetic_collection(entries: Sequence[Entry], copies: int, folder: Path, *, limit: int | None = None) -> int:
    """Write `copies` varied copies of `entries` as markdown notes; returns the number of entries written."""
    rng = random.Random(20261122)
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for copy in range(copies):
        lines = [f"# Synthetic notes {copy}", ""]
        section = None
        for number, entry in enumerate(entries):
            if limit is not None and written >= limit:
                break
            top = entry.section_path[0] if entry.section_path else "Misc"
            if top != section:
                section = top
                heading = _NUMBER.sub("", top) or "Misc"
                lines += [f"## {heading}", ""]
            words = (entry.summary or entry.body or entry.title).split()
            rng.shuffle(words)
            summary = " ".join(words)[:PASSAGE_CAP]
            title = f"{entry.title} — {rng.choice(VARIANT_WORDS)} {copy}.{number}"
            url = f"https://synthetic.example/{copy}/{number}"
            lines.append(f"- [{title.replace('[', '(').replace(']', ')')}]({url}) {summary}".rstrip())
            written += 1
        (folder / f"notes-{copy:02d}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return written


def searcher(kb: KnowledgeBase, mode: Mode = "hybrid") -> Callable[[str, int], list[Entry]]:
    """The `evaluate` callback over `kb`: a question and k in, the entries of its hits out."""
    return lambda question, k: [hit.entry for hit in kb.search(question, k, mode=mode).hits]


def timed_ingest(kb: KnowledgeBase) -> tuple[IngestReport, float]:
    """A whole ingest as a user waits for it (parse, embed, store, BM25 index), in seconds of wall
    time, after the one-time costs a bot pays at start-up (`warm_up`), as the model's load is
    outside the pure embedding time too."""
    kb.warm_up()
    started = time.perf_counter()
    report = kb.ingest()
    return report, round(time.perf_counter() - started, 3)


def _time(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def measure_queries(kb: KnowledgeBase, questions: Sequence[str], rounds: int = 3) -> dict[str, float]:
    """Bare encode against the full search, for the same questions, interleaved, `rounds` times each.

    The search's own timings split its overhead: `dense` (the vector search) and `rank` (BM25 left
    over after the embedding, fusion and the relevance floor).
    """
    for question in questions[:3]:  # warm caches, the BM25 index and the vectors
        kb.search(question)
    encode, search, dense, rank = [], [], [], []
    for _ in range(rounds):
        for question in questions:
            encode.append(_time(lambda q=question: kb.embedder.embed_queries([q])))  # type: ignore[misc]
            started = time.perf_counter()
            result = kb.search(question)
            search.append(time.perf_counter() - started)
            dense.append(result.timings.get("dense", 0.0))
            rank.append(result.timings.get("rank", 0.0))
    return {
        "samples": len(search),
        "encode_p50_ms": round(percentile(encode, 50) * 1000, 2),
        "encode_p95_ms": round(percentile(encode, 95) * 1000, 2),
        "search_p50_ms": round(percentile(search, 50) * 1000, 2),
        "search_p95_ms": round(percentile(search, 95) * 1000, 2),
        "dense_p50_ms": round(percentile(dense, 50) * 1000, 3),
        "rank_p50_ms": round(percentile(rank, 50) * 1000, 3),
        "ratio_p50": round(percentile(search, 50) / percentile(encode, 50), 3),
    }


def measure_concurrency(kb: KnowledgeBase, questions: Sequence[str], n: int = 20) -> dict[str, float]:
    """`n` questions at once through the async path the chat adapters use, and the event loop's worst stall."""

    async def run() -> dict[str, float]:
        worst = 0.0
        stop = False

        async def tick() -> None:
            nonlocal worst
            period = 0.005
            while not stop:
                before = time.perf_counter()
                await asyncio.sleep(period)
                worst = max(worst, time.perf_counter() - before - period)

        ticker = asyncio.get_running_loop().create_task(tick())
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        results = await asyncio.gather(*(kb.asearch(questions[i % len(questions)]) for i in range(n)))
        elapsed = time.perf_counter() - started
        stop = True
        await ticker
        return {
            "questions": n,
            "answered": len(results),
            "seconds": round(elapsed, 3),
            "questions_per_second": round(n / elapsed, 2),
            "max_loop_stall_ms": round(worst * 1000, 2),
        }

    return asyncio.run(run())


def pure_embedding_seconds(
    embedder: Embedder, entries: Sequence[Entry], passage_text: PassageText, batch: int = 32
) -> float:
    texts = [passage_text(entry, i, chunk) for entry in entries for i, chunk in enumerate(entry.chunks())]
    texts.sort(key=len, reverse=True)  # in the ingest's order (knowledge/upsert.py)
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        embedder.embed_passages(texts[start : start + batch])
    return time.perf_counter() - started


def run_child(module: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python -m module args` in a fresh process (this checkout on its path, `env` added to the
    environment) and return the JSON object its last line of output prints."""
    path = os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "PYTHONPATH": path},
        timeout=3600,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def child_peak_rss(role: str, sources: Path, data: Path, spec: str) -> float:
    """Peak RSS in MB of a fresh process that ingests (`ingest`) or loads the index and answers (`serve`)."""
    return float(child(role, sources, data, spec)["peak_rss_mb"])


def child(role: str, sources: Path, data: Path, spec: str) -> dict[str, Any]:
    """What a fresh process that ingests (`ingest`) or starts as the bot does and answers (`serve`) reports:
    its peak RSS in MB, and for `serve` its first question's time against the p50 of those after it."""
    env = {"KB_SOURCES": str(sources), "KB_DATA_DIR": str(data), "KB_EMBEDDER": spec}
    return run_child("benchmarks.bench", role, env=env)


# -- parsing -------------------------------------------------------------------------------------

PARSE_SIZES = (10_000, 20_000, 40_000, 100_000)
REPEATED_HEADING_MB = 19


def heading_notes(headings: int) -> str:
    """Markdown notes of `headings` sections at three levels, each a titled link and a summary, all
    of one length (numbers are written with 6 digits), so that the text grows as the headings do."""
    lines = []
    for number in (f"{n:06d}" for n in range(headings)):
        lines += [
            f"{'#' * (2 + int(number) % 3)} 第 {number} 节 section {number}",
            "",
            f"[Paper {number}: a study of things](https://papers.example/{number})",
            "",
            f"摘要：第 {number} 篇论文的摘要，讲了一种方法。",
            "",
        ]
    return "\n".join(lines) + "\n"


def repeated_heading(megabytes: int) -> str:
    """A file of one heading repeated: many headings and not one entry."""
    line = "## 同一个标题 the same heading\n"
    return line * (megabytes * 1024 * 1024 // len(line.encode()))


def _parse_child(kind: str, size: int, rounds: int) -> dict[str, Any]:
    """In a fresh process: the best of `rounds` parses of the generated file (CPU and wall seconds),
    and the peak RSS."""
    text = heading_notes(size) if kind == "headings" else repeated_heading(size)
    before = peak_rss_mb()
    cpu, wall, entries = float("inf"), float("inf"), 0
    for _ in range(rounds):
        started, started_cpu = time.perf_counter(), time.process_time()
        _, parsed = parse_file(text, "notes.md")
        cpu = min(cpu, time.process_time() - started_cpu)
        wall = min(wall, time.perf_counter() - started)
        entries = len(parsed)
        del parsed
    return {
        "mb": round(len(text.encode()) / 1e6, 1),
        "entries": entries,
        "seconds": round(cpu, 3),
        "wall_seconds": round(wall, 3),
        "rss_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
    }


def _run_parse_child(kind: str, size: int, rounds: int) -> dict[str, Any]:
    return run_child("benchmarks.bench", "parse", kind, str(size), str(rounds))


def measure_parse(
    sizes: Sequence[int] = PARSE_SIZES,
    repeated_mb: int = REPEATED_HEADING_MB,
    rounds: int = 2,
    passes: int = 3,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """CPU seconds to parse markdown notes of each number of headings: the best of `rounds` parses
    in a fresh process per size, over `passes` passes through the sizes (so a slow spell of a shared
    machine does not land on one size); the ratio of the last size's to the second's, which is the
    ratio of their headings when parsing is linear; and a file of one heading repeated
    (`repeated_mb` MB): its time and peak RSS."""
    best: dict[int, dict[str, Any]] = {}
    for number in range(passes):
        for size in sizes:
            log(f"parse {size:,} headings (pass {number + 1} of {passes})")
            point = _run_parse_child("headings", size, rounds)
            if size not in best or point["seconds"] < best[size]["seconds"]:
                best[size] = point
    points = [{"headings": size, **best[size]} for size in sizes]
    result: dict[str, Any] = {"points": points}
    if len(points) >= 2:  # by default 100k against 20k: 5 times the headings
        base, last = points[1 if len(points) > 2 else 0], points[-1]
        result["ratio"] = round(last["seconds"] / base["seconds"], 3)
        result["ratio_of"] = f"{last['headings']:,} / {base['headings']:,} headings"
        result["headings_ratio"] = round(last["headings"] / base["headings"], 3)
    if repeated_mb:
        log(f"parse {repeated_mb} MB of one repeated heading")
        result["repeated_heading"] = _run_parse_child("repeated", repeated_mb, 1)
    return result


def _child(role: str, *args: str) -> None:
    if role == "parse":
        print(json.dumps(_parse_child(args[0], int(args[1]), int(args[2]))))
        return
    kb = KnowledgeBase(load_settings(Settings))
    report: dict[str, Any] = {"role": role}
    if role == "ingest":
        kb.ingest()
    else:  # as the bot starts (bot/service.py): the one-time costs, the index, then questions
        kb.warm_up()
        kb.index.refresh(force=True)
        times = []
        for question in QUESTIONS:
            started = time.perf_counter()
            kb.search(question)
            times.append((time.perf_counter() - started) * 1000)
        later = statistics.median(times[1:])
        report |= {
            "first_question_ms": round(times[0], 1),
            "later_p50_ms": round(later, 1),
            "first_over_later_p50": round(times[0] / later, 2),
        }
    kb.close()
    print(json.dumps(report | {"peak_rss_mb": peak_rss_mb()}))


FIRST_QUESTION = ("first_question_ms", "later_p50_ms", "first_over_later_p50")


def _scale_point(
    label: str, sources: Path, data: Path, spec: str, embedder: Embedder, questions: Sequence[str]
) -> dict[str, Any]:
    settings = Settings(_env_file=None, sources=[sources], data_dir=data, embedder=spec)
    kb = KnowledgeBase(settings, embedder)
    try:
        report, seconds = timed_ingest(kb)
        queries = measure_queries(kb, questions)
    finally:
        kb.close()
    return {
        "label": label,
        "entries": report.summary.entries,
        "ingest_seconds": seconds,
        "query_p50_ms": queries["search_p50_ms"],
        "serving_peak_rss_mb": child_peak_rss("serve", sources, data, spec),
    }


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.machine(),
    }


def run_bench(
    settings: Settings,
    *,
    scale: int = 10,
    big: int = 2700,
    compare_long: bool = True,
    eval_file: Path | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Every measurement of the bench, in one run, in a fresh data dir that is removed afterwards."""
    spec = settings.embedder
    embedder = load_embedder(spec, threads=settings.embed_threads)
    root = Path(tempfile.mkdtemp(prefix="kb-bench-"))
    result: dict[str, Any] = {"machine": machine(), "embedder": embedder.name}
    try:
        sources = [Path(s) for s in settings.sources]
        entries = parse_sources(sources).entries
        one = root / "one"
        one.mkdir()
        for path in sources:  # a copy, so children read the same collection
            target = one / path.name
            if path.is_dir():
                shutil.copytree(path, target)
            else:
                shutil.copy(path, target)

        log("cold ingest")
        kb = KnowledgeBase(Settings(_env_file=None, sources=[one], data_dir=root / "data-1x", embedder=spec), embedder)
        try:
            cold, seconds = timed_ingest(kb)
            pure = pure_embedding_seconds(embedder, cold.parsed.entries, default_passage_text)
            result["cold_ingest"] = {
                "entries": cold.summary.entries,
                "seconds": seconds,
                "pure_embedding_seconds": round(pure, 3),
                "entries_per_second": round(cold.summary.entries / seconds, 2),
                "ratio": round(seconds / pure, 3),
            }
            log("no-change reindex")
            again, seconds = timed_ingest(kb)
            result["no_change_reindex"] = {"seconds": seconds, "embedded": again.summary.embedded}
            log("queries")
            result["query"] = measure_queries(kb, QUESTIONS)
            log("concurrency")
            result["concurrency"] = measure_concurrency(kb, QUESTIONS)
            if eval_file is not None:
                scores = evaluate(load_questions(eval_file), searcher(kb))
                result["eval_default_text"] = {"recall@5": scores.recall["all"][5], "mrr@10": round(scores.mrr10, 4)}
        finally:
            kb.close()

        log("memory")
        serving = child("serve", one, root / "data-1x", spec)
        result["memory"] = {
            "ingest_peak_rss_mb": child_peak_rss("ingest", one, root / "data-rss", spec),
            "serving_peak_rss_mb": serving["peak_rss_mb"],
        }
        result["first_question"] = {key: serving[key] for key in FIRST_QUESTION}

        if compare_long:
            log("longer embedded texts")
            long_settings = Settings(_env_file=None, sources=[one], data_dir=root / "data-long", embedder=spec)
            long_kb = KnowledgeBase(long_settings, embedder, passage_text=long_passage_text)
            try:
                _, seconds = timed_ingest(long_kb)
                row: dict[str, Any] = {"chars": LONG_PASSAGE, "cold_ingest_seconds": seconds}
                if eval_file is not None:
                    scores = evaluate(load_questions(eval_file), searcher(long_kb))
                    row |= {"recall@5": scores.recall["all"][5], "mrr@10": round(scores.mrr10, 4)}
                result["long_text"] = row
            finally:
                long_kb.close()

        if big:
            log(f"{big}-entry markdown collection")
            folder = root / "big"
            count = synthetic_collection(entries, -(-big // max(len(entries), 1)), folder, limit=big)
            kb = KnowledgeBase(
                Settings(_env_file=None, sources=[folder], data_dir=root / "data-big", embedder=spec), embedder
            )
            try:
                report, seconds = timed_ingest(kb)
            finally:
                kb.close()
            result["big_collection"] = {
                "entries_written": count,
                "entries": report.summary.entries,
                "cold_ingest_seconds": seconds,
                "minutes": round(seconds / 60, 2),
            }

        if scale > 1:
            log(f"scale 1x and {scale}x")
            folder = root / f"scale-{scale}"
            synthetic_collection(entries, scale, folder)
            small = root / "scale-1"
            synthetic_collection(entries, 1, small)
            points = [
                _scale_point("1x", small, root / "data-s1", spec, embedder, QUESTIONS),
                _scale_point(f"{scale}x", folder, root / f"data-s{scale}", spec, embedder, QUESTIONS),
            ]
            result["scale"] = {
                "points": points,
                "query_p50_growth": round(points[1]["query_p50_ms"] / points[0]["query_p50_ms"], 3),
                "ingest_growth": round(points[1]["ingest_seconds"] / points[0]["ingest_seconds"], 3),
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result


# (label, (group, key) in each run's result): the figures `compare` gives as ratios to the first run's.
COMPARED = (
    ("cold_ingest_seconds", ("cold_ingest", "seconds")),
    ("pure_embedding_seconds", ("cold_ingest", "pure_embedding_seconds")),
    ("encode_p50_ms", ("query", "encode_p50_ms")),
    ("search_p50_ms", ("query", "search_p50_ms")),
    ("concurrency_seconds", ("concurrency", "seconds")),
    ("ingest_peak_rss_mb", ("memory", "ingest_peak_rss_mb")),
    ("serving_peak_rss_mb", ("memory", "serving_peak_rss_mb")),
    ("big_collection_seconds", ("big_collection", "cold_ingest_seconds")),
)


def compare(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each later run's figures as ratios to the first run's (below 1: less time or memory), and every
    run's own search p50 / encode p50 and cold ingest / pure embedding."""
    first = runs[0]
    ratios: dict[str, dict[str, float]] = {}
    for run in runs[1:]:
        row = {}
        for label, (group, key) in COMPARED:
            mine, base = run.get(group, {}).get(key), first.get(group, {}).get(key)
            if mine is not None and base:
                row[label] = round(mine / base, 3)
        ratios[f"{run['embedder']} / {first['embedder']}"] = row
    own = {
        run["embedder"]: {
            "search_p50_over_encode_p50": run.get("query", {}).get("ratio_p50"),
            "cold_ingest_over_pure_embedding": run.get("cold_ingest", {}).get("ratio"),
        }
        for run in runs
    }
    return {"embedders": [run["embedder"] for run in runs], "ratios": ratios, "own": own}


if __name__ == "__main__":  # the child processes of the memory and parse measurements
    _child(*sys.argv[1:])
