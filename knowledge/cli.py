"""`python -m knowledge …`: parse arguments, build Settings, call the typed functions tests call directly."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from knowledge.base import KnowledgeBase
from knowledge.entry import Entry
from knowledge.errors import KnowledgeError, SettingsError
from knowledge.evaluate import KS, evaluate, load_questions
from knowledge.filters import SECTION_KEY_SEPARATOR, section_key
from knowledge.locations import Locator
from knowledge.logs import configure_logging
from knowledge.normalize import printable
from knowledge.parse import ParseResult, parse_sources
from knowledge.ranking import Hit, Mode
from knowledge.search import SearchResult, clean_query
from knowledge.settings import Settings, load_settings
from knowledge.source_spec import as_specs
from knowledge.sync import SourceSet
from knowledge.upsert import Progress

_log = logging.getLogger(__name__)


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m knowledge", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)

    parse = commands.add_parser("parse", help="parse the collection and print counts (or the entries)")
    parse.add_argument("--source", action="append", type=Path, help="file or folder (repeatable); default KB_SOURCES")
    parse.add_argument("--json", action="store_true", help="write the entries as JSON lines instead")

    ingest = commands.add_parser("ingest", help="bring the index up to date with the sources")
    ingest.add_argument("--source", action="append", type=Path, help="file or folder (repeatable); default KB_SOURCES")
    ingest.add_argument("--rebuild", action="store_true", help="build a new collection, then switch to it")
    ingest.add_argument("--json", action="store_true", help="print the summary as a JSON object")
    ingest.add_argument(
        "--allow-mass-removal",
        action="store_true",
        help="remove entries even when more than KB_MAX_REMOVAL_SHARE of the index would go",
    )

    search = commands.add_parser("search", help="answer a question from the index")
    search.add_argument("query", nargs="?", help="the question")
    search.add_argument("-k", type=_positive, default=None, help="number of results (default KB_ANSWER_SIZE)")
    search.add_argument("--json", action="store_true", help="write the hits as a JSON list")
    search.add_argument("--batch", type=Path, help="a file of questions, one a line; one JSON list a line out")
    search.add_argument(
        "--section", help=f"only entries under this section path (parts joined with {SECTION_KEY_SEPARATOR!r})"
    )
    search.add_argument("--lang", choices=["zh-Hans", "zh-Hant", "en"], help="only entries in this language")

    evaluate = commands.add_parser("eval", help="measure retrieval on a question set")
    evaluate.add_argument("file", type=Path, help="questions as JSON lines (see shared/eval/README.md)")
    evaluate.add_argument("-k", type=_positive, default=10, help="results per question (default 10)")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument("--compare", action="store_true", help="also run dense-only and BM25-only")
    evaluate.add_argument("--split", help="only the questions of this split (tune or heldout), when the set has one")

    commands.add_parser("prompt", help="ingest, then ask questions interactively")

    sync = commands.add_parser("sync", help="fetch the git sources and index what changed")
    sync.add_argument("--force", action="store_true", help="index even when no source moved")
    sync.add_argument("--json", action="store_true", help="print the report as a JSON object")

    new = commands.add_parser("new", help="the entries first seen in the last days, newest first")
    new.add_argument("--days", type=_positive, default=7, help="the window, in days (default 7)")
    new.add_argument("--json", action="store_true", help="write the entries as JSON lines")

    return parser


def print_parse_summary(result: ParseResult, out: object = None) -> None:
    """Counts per file and in total, with skipped files and their reasons."""
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
    """Parse the sources (git sources from their mirrors, cloned when missing) and locate their entries.
    Exit 0 when every source was listed and every file read; 1 when not (the entries printed are those read)."""
    source_set = SourceSet(settings.sources, settings.data_dir)
    specs = as_specs(list(sources)) if sources else source_set.specs
    with source_set.locked(any(spec.is_git for spec in specs)):
        roots = source_set.roots(specs)
        result = parse_sources([root.path for root in roots])
        result.entries = Locator(roots).locate(result.entries)
    if as_json:
        for entry in result.entries:
            sys.stdout.write(entry.model_dump_json() + "\n")
        for skip in result.skipped:  # the summary, which lists them, is not printed
            print(f"skipped {skip.file}: {skip.reason}", file=sys.stderr)
    else:
        print_parse_summary(result)
    for folder in result.unlisted:
        print(f"could not list {folder}", file=sys.stderr)
    if result.skipped or result.unlisted:  # as ingest says it: what was printed is not the whole collection
        print("error: not every source could be read", file=sys.stderr)
        return 1
    return 0


def _progress(enabled: bool) -> Iterator[Progress | None]:
    """A rich progress bar on a terminal; nothing when output is not a TTY."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    with Bar("embedding", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("embedding", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def run_ingest(
    kb: KnowledgeBase, sources: list[Path] | None, rebuild: bool, as_json: bool, allow_mass_removal: bool = False
) -> int:
    """Exit 0 when every source was read, 1 when some could not be (their entries were kept as they were)."""
    with contextlib.contextmanager(_progress)(sys.stderr.isatty() and not as_json) as progress:
        report = kb.ingest(sources, rebuild=rebuild, progress=progress, allow_mass_removal=allow_mass_removal)
    data = report.as_dict()
    if as_json:
        print(json.dumps(data, ensure_ascii=False))
    else:
        print(
            f"entries {data['entries']}, embedded {data['embedded']}, unchanged {data['unchanged']}, "
            f"removed {data['removed']}, {data['seconds']} s ({data['collection']})"
        )
    for skip in report.parsed.skipped:
        print(f"skipped {skip.file}: {skip.reason}", file=sys.stderr)
    for folder in report.parsed.unlisted:
        print(f"could not list {folder}", file=sys.stderr)
    if report.complete:
        return 0
    print(
        f"error: not every source could be read; {report.summary.kept} entries of theirs were kept as they were. "
        "Fix the sources and ingest again.",
        file=sys.stderr,
    )
    return 1


def hit_json(hit: Hit) -> dict[str, object]:
    """A hit as `search --json` writes it: the entry's fields, its score, and whether it is a confident or
    a weak match (the closest the collection has, which may not be what was asked)."""
    data = hit.entry.model_dump(mode="json", exclude={"also_in"})
    data["score"] = round(hit.score, 6)
    data["match"] = "confident" if hit.confident else "weak"
    return data


def print_result(result: SearchResult, console: Console) -> None:
    if result.refused:
        console.print("Nothing in the collection matches that question. Try other words or the other language.")
        return

    def shown(text: str) -> str:  # an entry's text as rich markup: no control character reaches the terminal
        return escape(printable(text))

    for rank, hit in enumerate(result.hits, 1):
        entry = hit.entry
        weak = "" if hit.confident else " [yellow](weak match)[/yellow]"
        console.print(f"[bold]{rank}. {shown(entry.title)}[/bold]{weak}", highlight=False)
        for title in entry.alt_titles[:1]:  # a Chinese headline's English paper title, or the other way round
            console.print(f"   [italic]{shown(title)}[/italic]", highlight=False)
        if entry.summary:
            console.print(f"   {shown(entry.summary[:160])}", highlight=False)
        for link in entry.links[:2]:
            console.print(f"   {link.role}: {shown(link.url)}", highlight=False, soft_wrap=True)
        if not entry.links:  # where it is in the collection
            where = entry.location
            place = f"{where.text}: {where.url}" if where is not None else entry.place
            console.print(f"   in the collection: {shown(place)}", highlight=False, soft_wrap=True)
        if entry.section_path:
            console.print(f"   [dim]{shown(section_key(entry.section_path))}[/dim]", highlight=False)


def no_index(kb: KnowledgeBase) -> bool:
    """Say so on stderr when the data folder holds no index for this embedder (nothing was ingested)."""
    if kb.stats().collection is not None:
        return False
    print(
        f"error: no index of {kb.embedder_name} in {kb.settings.data_dir}: run `kb ingest` (python -m knowledge "
        "ingest) first",
        file=sys.stderr,
    )
    return True


def run_search(kb: KnowledgeBase, args: argparse.Namespace) -> int:
    section: tuple[str, ...] = ()
    if args.section:
        # named as chat's in: names it: part of its name in either language, its number, or its path
        found = kb.sections().resolve(args.section)
        if found is None:
            print(f"error: --section: no section of the collection matches {args.section!r}", file=sys.stderr)
            return 2
        section = found.path
    if args.batch:
        try:
            lines = args.batch.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            print(f"error: --batch: cannot read {args.batch}: {_reason(error)}", file=sys.stderr)
            return 2
        for line in lines:
            result = kb.search(line, args.k, section=section, lang=args.lang)
            print(json.dumps([hit_json(hit) for hit in result.hits], ensure_ascii=False), flush=True)
        return 0
    if args.query is None:
        print("give a question, or --batch FILE", file=sys.stderr)
        return 2
    result = kb.search(args.query, args.k, section=section, lang=args.lang)
    if args.json:
        print(json.dumps([hit_json(hit) for hit in result.hits], ensure_ascii=False))
    else:
        print_result(result, Console())
    return 0


def _reason(error: Exception) -> str:
    """An error as a person reads it, one line."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, UnicodeDecodeError):
        return f"not valid UTF-8 (byte {error.start})"
    return str(error).splitlines()[0]


def run_eval(kb: KnowledgeBase, args: argparse.Namespace) -> int:
    try:
        questions = load_questions(args.file)
    except (OSError, ValueError) as error:
        print(f"error: cannot read the questions in {args.file}: {_reason(error)}", file=sys.stderr)
        return 2
    if args.split:
        questions = [question for question in questions if question.split == args.split]
        if not questions:
            print(f"error: {args.file} has no questions in split {args.split!r}", file=sys.stderr)
            return 2
    modes: list[Mode] = ["hybrid", "dense", "bm25"] if args.compare else ["hybrid"]

    def searcher(mode: Mode) -> Callable[[str, int], Sequence[Entry]]:
        return lambda question, k: [hit.entry for hit in kb.search(question, k, mode=mode).hits]

    reports = [evaluate(questions, searcher(mode), method=mode, k=args.k) for mode in modes]
    if args.json:
        print(json.dumps([r.as_dict() for r in reports] if args.compare else reports[0].as_dict(), ensure_ascii=False))
        return 0
    console = Console()
    table = Table(title=f"{args.file.name}: {len(questions)} questions, embedder {kb.embedder.name}")
    table.add_column("metric")
    for report in reports:
        table.add_column(report.method)
    langs = sorted({lang for r in reports for lang in r.recall})
    for lang in langs:
        for cut in KS:
            if cut <= args.k:
                values = [f"{r.recall.get(lang, {}).get(cut, 0):.3f}" for r in reports]
                table.add_row(f"recall@{cut} ({lang})", *values)
    table.add_row("MRR@10", *[f"{r.mrr10:.3f}" for r in reports])
    table.add_row("refusal (out of domain)", *[f"{r.refusal_rate:.2f}" for r in reports])
    table.add_row("false refusal (in domain)", *[f"{r.false_refusal_rate:.3f}" for r in reports])
    for name in reports[0].groups:
        cells = []
        for report in reports:
            group = report.groups[name]
            if group.questions:
                cells.append(
                    f"R@5 {group.found_at_5 / group.questions:.3f} ({group.questions}, {group.refused} refused)"
                )
            else:
                cells.append(f"refused {group.ood_refused}/{group.ood}")
        table.add_row(name, *cells)
    console.print(table)
    console.print(f"not first ({reports[0].method}): {', '.join(reports[0].misses) or 'none'}", highlight=False)
    return 0


def run_prompt(kb: KnowledgeBase) -> int:
    """Ingest incrementally, then answer questions typed at the terminal until EOF or `quit`."""
    console = Console()
    with contextlib.contextmanager(_progress)(sys.stderr.isatty()) as progress:
        report = kb.ingest(progress=progress)
    data = report.as_dict()
    console.print(
        f"index ready: {data['entries']} entries ({data['embedded']} embedded, {data['unchanged']} unchanged), "
        f"embedder {kb.embedder.name}. Ask a question; an empty line or Ctrl-D quits.",
        highlight=False,
    )
    while True:
        try:
            question = input("? ")
        except (EOFError, KeyboardInterrupt):
            break
        if not question.strip() or question.strip().lower() in ("quit", "exit"):
            break
        try:
            print_result(kb.search(question), console)
        except KeyboardInterrupt:
            console.print("(stopped)", highlight=False)
    return 0


def run_sync(kb: KnowledgeBase, force: bool, as_json: bool) -> int:
    """Exit 0 when every source synced, 1 when one could not be fetched or a file of one could not be read
    (the index kept their entries), as `ingest` says."""
    with contextlib.contextmanager(_progress)(sys.stderr.isatty() and not as_json) as progress:
        report = kb.sync(force=force, progress=progress)
    if as_json:
        print(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        for source in report.sources:
            print(source.outcome())
        summary = report.ingest.summary if report.ingest is not None else None
        indexed = (
            f"entries {summary.entries}, embedded {summary.embedded}, added {summary.added}, removed {summary.removed}"
            if summary is not None
            else "nothing to index"
        )
        print(f"{indexed}; {report.seconds} s")
    unread = report.ingest is not None and not report.ingest.complete
    if report.ingest is not None:
        for skip in report.ingest.parsed.skipped:
            print(f"skipped {skip.file}: {skip.reason}", file=sys.stderr)
        for folder in report.ingest.parsed.unlisted:
            print(f"could not list {folder}", file=sys.stderr)
    return 1 if report.failed or unread else 0


def run_new(kb: KnowledgeBase, days: int, as_json: bool) -> int:
    found = kb.new_entries(timedelta(days=days))
    for new in found:
        if as_json:
            data = new.entry.model_dump(mode="json", exclude={"also_in", "body"})
            print(json.dumps({**data, "first_seen": new.first_seen.isoformat()}, ensure_ascii=False))
        else:
            link = new.entry.main_link
            where = link.url if link else new.entry.place
            print(printable(f"{new.first_seen:%Y-%m-%d %H:%M}  {new.entry.title}  {where}"))
    if not as_json:
        print(f"{len(found)} new entries in the last {days} days")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.verbose)  # and "?" for what the terminal cannot show
    try:
        return _main(args)
    except KeyboardInterrupt:
        print(
            "interrupted: run the command again to finish (a --rebuild leaves the current index in service)",
            file=sys.stderr,
        )
        return 130


def _main(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(Settings)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    missing = [str(path) for path in getattr(args, "source", None) or [] if not path.exists()]
    if missing:
        print(f"error: --source: no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.command == "parse":
        return run_parse(settings, args.source, args.json)
    if args.command == "search" and args.query is not None and not args.batch:
        query, _ = clean_query(args.query, settings.max_question_chars)
        if not any(char.isalnum() for char in query):  # as chat says for it: nothing to search for
            print("error: the question is empty: give some words to search for", file=sys.stderr)
            return 2
    try:
        kb = KnowledgeBase(settings)
    except KnowledgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        if args.command == "ingest":
            return run_ingest(kb, args.source, args.rebuild, args.json, args.allow_mass_removal)
        if args.command in ("search", "eval") and no_index(kb):
            return 1
        if args.command == "search":
            return run_search(kb, args)
        if args.command == "eval":
            return run_eval(kb, args)
        if args.command == "prompt":
            return run_prompt(kb)
        if args.command == "sync":
            return run_sync(kb, args.force, args.json)
        if args.command == "new":
            return run_new(kb, args.days, args.json)
    except KnowledgeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        kb.close()
    raise AssertionError(args.command)
