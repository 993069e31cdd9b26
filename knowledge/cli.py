"""`python -m knowledge …`: parse arguments, build Settings, call the typed functions tests call directly."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from knowledge.parse import ParseResult, parse_sources
from knowledge.settings import Settings

_log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m knowledge", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)

    parse = commands.add_parser("parse", help="parse the collection and print counts (or the entries)")
    parse.add_argument("--source", action="append", type=Path, help="file or folder (repeatable); default KB_SOURCES")
    parse.add_argument("--json", action="store_true", help="write the entries as JSON lines instead")
    return parser


def print_parse_summary(result: ParseResult, out: object = None) -> None:
    """Counts per file and in total, with skipped files and their reasons."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out or sys.stdout)  # type: ignore[arg-type]
    table = Table(title="Collection")
    for column in ("file", "format", "entries", "with links", "languages"):
        table.add_column(column)
    for report in result.files:
        langs = ", ".join(f"{lang} {count}" for lang, count in report.langs.items())
        table.add_row(report.file, report.format, str(report.entries), str(report.with_links), langs)
    console.print(table)
    summary = result.summary()
    langs = ", ".join(f"{lang} {count}" for lang, count in summary["langs"].items())  # type: ignore[attr-defined]
    console.print(
        f"entries after dedupe: {summary['entries']} (with links {summary['with_links']}, "
        f"without {summary['without_links']}); languages: {langs}; duplicates merged: {summary['duplicates_merged']}",
        highlight=False,
    )
    for skip in result.skipped:
        console.print(f"skipped {skip.file}: {skip.reason}", style="yellow", highlight=False)


def run_parse(settings: Settings, sources: list[Path] | None, as_json: bool) -> int:
    result = parse_sources(sources or settings.sources)
    if as_json:
        for entry in result.entries:
            sys.stdout.write(entry.model_dump_json() + "\n")
    else:
        print_parse_summary(result)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = Settings()
    if args.command == "parse":
        return run_parse(settings, args.source, args.json)
    raise AssertionError(args.command)
