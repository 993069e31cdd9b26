"""Sources → clean entries: find files, read them safely, detect each format, parse, merge duplicates."""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import re
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.entry import Entry, Format
from knowledge.normalize import ESCAPE_SEQUENCES
from knowledge.parse.dedupe import dedupe
from knowledge.parse.draft import Draft, finish
from knowledge.parse.markdown import parse_markdown
from knowledge.parse.pdf_text import looks_like_toc, parse_pdf_text
from knowledge.parse.qa import looks_like_qa, parse_qa

_log = logging.getLogger(__name__)

SUFFIXES = (".md", ".markdown", ".txt")
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_LINE_CHARS = 100_000
_HEADING = re.compile(r"^#+ ", re.MULTILINE)

__all__ = [
    "FileReport",
    "ParseResult",
    "Skipped",
    "clean_text",
    "detect_format",
    "find_files",
    "parse_file",
    "parse_sources",
]


@dataclass(frozen=True)
class Skipped:
    file: str
    reason: str


@dataclass(frozen=True)
class FileReport:
    file: str
    format: Format
    entries: int
    with_links: int
    langs: dict[str, int]


@dataclass
class ParseResult:
    entries: list[Entry]
    files: list[FileReport] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    merged: int = 0
    unlisted: list[str] = field(default_factory=list)  # sources (or folders in them) that could not be listed

    @property
    def read(self) -> set[str]:
        """The files that were read and parsed: an entry of theirs that is gone was really removed."""
        return {report.file for report in self.files}

    @property
    def complete(self) -> bool:
        """Whether every source was listed whole: only then does a missing file mean a deleted one."""
        return not self.unlisted

    def may_remove(self, file: str) -> bool:
        """Whether this run is evidence that entries of `file` that it did not produce are gone: the file
        was read and no longer has them, or it was deleted while every source was listed."""
        if file in {skip.file for skip in self.skipped}:
            return False  # two sources can hold a file of that name: one read is no evidence for the other
        return file in self.read or self.complete

    def summary(self) -> dict[str, object]:
        """Counts per file and in total, as the CLI prints them."""
        langs = Counter(entry.lang for entry in self.entries)
        with_links = sum(1 for entry in self.entries if entry.links)
        return {
            "files": [vars(report) for report in self.files],
            "entries": len(self.entries),
            "with_links": with_links,
            "without_links": len(self.entries) - with_links,
            "langs": dict(sorted(langs.items())),
            "duplicates_merged": self.merged,
            "skipped": [vars(skip) for skip in self.skipped],
        }


def find_files(
    sources: Iterable[Path], unlisted: list[str] | None = None, refused: list[Skipped] | None = None
) -> Iterator[tuple[Path, str]]:
    """(path, name relative to its source root) for every collection file, in a stable order.

    Sources and sub-folders that cannot be listed are added to `unlisted` (when given) and logged:
    their files are unknown, which is not the same as deleted. Files that are never read are added to
    `refused` (when given): a symbolic link to outside its source folder (a followed repository could
    otherwise have the bot index, and show, any file of the server: `config.md -> /srv/bot/.env`), and a
    name that is not valid UTF-8.
    """
    for source in sources:
        source = Path(source)
        if source.is_dir():
            found: list[tuple[Path, str]] = []
            inside = os.path.realpath(source) + os.sep

            def failed(error: OSError, root: Path = source) -> None:
                where = Path(error.filename).relative_to(root).as_posix() if error.filename else "."
                _log.warning("cannot list %s in %s: %s", where, root, error.strerror or error)
                if unlisted is not None:
                    unlisted.append(f"{root}/{where}" if where != "." else str(root))

            for folder, folders, names in os.walk(source, onerror=failed):
                folders[:] = sorted(name for name in folders if not name.startswith("."))  # .git, .obsidian, …
                for name in names:
                    path = Path(folder) / name
                    # Hidden files are an editor's or the OS's, not notes: an Emacs lock (.#a.md), a macOS
                    # AppleDouble (._a.md) would otherwise fail every ingest.
                    if path.suffix.lower() not in SUFFIXES or name.startswith("."):
                        continue
                    relative = path.relative_to(source).as_posix()
                    problem = _unsafe(path, relative, inside)
                    if problem is None:
                        found.append((path, relative))
                    elif refused is not None:
                        refused.append(Skipped(relative.encode("utf-8", "replace").decode("utf-8"), problem))
            yield from sorted(found, key=lambda item: item[1])
        else:
            if not source.exists() and unlisted is not None:
                unlisted.append(str(source))
            yield source, source.name


def _unsafe(path: Path, relative: str, inside: str) -> str | None:
    """Why the file `path` of a source folder (whose real path, with a trailing separator, is `inside`) is
    not read, or None."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8"
    if path.is_symlink() and not os.path.realpath(path).startswith(inside):
        return "a link to outside the source folder"
    return None


def read_text(path: Path) -> str:
    """The file's text, or ValueError/OSError with a reason a person can act on.

    Only regular files are read (a link to a device or a FIFO is refused without blocking), and
    the size limit holds while reading, whatever the file system says its size is.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ValueError("does not exist") from None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    if b"\x00" in data[:8192]:
        raise ValueError("binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"not valid UTF-8 (byte {error.start})") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ValueError("empty file")
    for number, line in enumerate(text.split("\n"), 1):
        if len(line) > MAX_LINE_CHARS:
            raise ValueError(f"line {number} is {len(line):,} characters long (limit {MAX_LINE_CHARS:,})")
    return text


def detect_format(text: str) -> Format:
    """From content alone: a numbered TOC means PDF text; headings or links mean markdown; else Q&A."""
    if looks_like_toc(text):
        return "pdf_text"
    if text.startswith("---\n") or _HEADING.search(text):
        return "markdown"
    return "qa" if looks_like_qa(text.split("\n")) else "markdown"


PARSERS = {"markdown": parse_markdown, "pdf_text": parse_pdf_text, "qa": parse_qa}


# Terminal escape sequences (colours, window titles, hyperlinks), then any other C0 or C1 control
# character but tab and newline: entries are shown in terminals and chats, where these would act. And
# the bidi embeddings, overrides and isolates: in a chat reply U+202E shows the rest of the line reversed
# (a title or link that reads as something else); they format, and carry no word.
_CONTROLS = re.compile(
    ESCAPE_SEQUENCES + r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
    r"|[\ud800-\udfff]"  # a lone surrogate: it cannot be stored or embedded
)


def clean_text(text: str) -> str:
    """`text` as it can be stored, embedded and shown: lone surrogates become `?`, control characters,
    bidi overrides and terminal escape sequences go (tab and newline stay). One scan, no copy when nothing is found."""
    return _CONTROLS.sub(lambda found: "?" if "\ud800" <= found.group(0) <= "\udfff" else "", text)


def parse_file(text: str, name: str) -> tuple[Format, list[Entry]]:
    """The format detected from `text` and its entries, named after the file `name`."""
    text = clean_text(text)
    fmt = detect_format(text)
    with _without_cycle_collection():
        drafts: list[Draft] = PARSERS[fmt](text)
        return fmt, finish(drafts, name, fmt)


@contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Pause Python's cycle collector: parsing builds many objects and no reference cycles (all is
    freed by reference counting), and each full collection would walk every object built so far,
    which makes a large file's parse grow faster than its size."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_sources(sources: Iterable[Path]) -> ParseResult:
    """Parse every file under `sources`. A file that cannot be read or parsed is reported and skipped."""
    result = ParseResult(entries=[])
    collected: list[Entry] = []
    for path, name in find_files(sources, result.unlisted, result.skipped):
        try:
            text = read_text(path)
        except PermissionError:
            result.skipped.append(Skipped(name, "permission denied"))
            continue
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            result.skipped.append(Skipped(name, reason))
            continue
        try:
            fmt, entries = parse_file(text, name)
        except Exception:  # noqa: BLE001 - a parser bug must cost one file, never the collection
            _log.exception("could not parse %s", path)
            result.skipped.append(Skipped(name, "could not be parsed (see the log)"))
            continue
        langs = Counter(entry.lang for entry in entries)
        result.files.append(
            FileReport(name, fmt, len(entries), sum(1 for e in entries if e.links), dict(sorted(langs.items())))
        )
        collected.extend(entries)
    for skip in result.skipped:
        _log.warning("skipped %s: %s", skip.file, skip.reason)
    result.entries, result.merged = dedupe(collected)
    result.entries = _distinct_ids(result.entries)
    return result


def _distinct_ids(entries: list[Entry]) -> list[Entry]:
    """Entries whose ids are unique: an entry whose id an earlier one has (the same file name, heading and
    short title in two sources, or one folder listed twice) gets an id derived from it and its rank among
    them, stable while the sources keep their order."""
    seen: dict[str, int] = {}
    distinct: list[Entry] = []
    for entry in entries:
        count = seen.get(entry.id, 0)
        seen[entry.id] = count + 1
        if count:
            derived = hashlib.sha1(f"{entry.id}\x1f{count}".encode()).hexdigest()[:16]
            _log.warning(
                "%s: an entry like %r in another source; told apart as %s", entry.source.file, entry.title, derived
            )
            entry = entry.model_copy(update={"id": derived})
        distinct.append(entry)
    return distinct
