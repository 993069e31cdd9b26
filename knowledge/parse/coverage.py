"""The "no content line lost" check: does every content line of a source reach some entry?

Each line of a source is given a kind. Content kinds are prose, list items, table rows, headings,
images, code and math; the rest (blank lines, front matter, navigation such as a table of contents,
noise markers, HTML comments, rules, a Q&A footer) is not content. A content line is kept when each
of its pieces of text (link text, URL, table cell, the words between them) appears, compared as
letters and digits only, in an entry of its file: the entry's title, alternative titles, summary,
body, links (URL or text) or section path. Merged entries count for every file they were read in.

Prose, list items and table rows must all be kept (`REQUIRED`). Headings are reported, and reach an
entry through its section path unless their section is empty. Images are decoration the parser drops
on purpose. Code and math are reported but not required.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from knowledge.entry import Entry, Format
from knowledge.parse import ParseResult, clean_text, find_files, read_text
from knowledge.parse.lines import split_blocks
from knowledge.parse.pdf_text import TOC_ROW, parse_toc

LineKind = Literal[
    # content
    "prose",
    "list",
    "table",
    "heading",
    "image",
    "code",
    "math",
    # not content
    "blank",
    "front_matter",
    "navigation",
    "noise",
    "comment",
    "rule",
    "footer",
]
CONTENT: tuple[LineKind, ...] = ("prose", "list", "table", "heading", "image", "code", "math")
REQUIRED: tuple[LineKind, ...] = ("prose", "list", "table")

_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_AUTOLINK = re.compile(r"<(https?://[^\s<>]+)>")
_BARE_URL = re.compile(r"https?://[^\s<>()\[\]|]+")
_MARKERS = re.compile(r"^[\s>]*((#{1,6}|[-*+•]|\d{1,9}[.)、])(\s+|$)[\s>]*)*")  # heading, quote and list markers
_LABEL = re.compile(r"^\s*([^:：\x00]{1,40}?)\s*[:：]")
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_LIST = re.compile(r"^\s*([-*+•]|\d{1,9}[.)、])(\s+|$)")
_QUOTE = re.compile(r"^\s{0,3}(>\s?)+")
_HEADING = re.compile(r"^ {0,3}#{1,6}(\s|$)")
_RULE = re.compile(r"^ {0,3}([-*_=])(\s*\1)*\s*$")
_TABLE_DELIMITER = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_NOISE = re.compile(r"^=+\s*[A-Za-z]*\s*$")
_NAVIGATION = {"目录", "目錄", "contents", "tableofcontents", "toc"}
_TOC_OPEN = re.compile(r"<!--\s*TOC\s*-->", re.IGNORECASE)
_TOC_CLOSE = re.compile(r"<!--\s*/TOC\s*-->", re.IGNORECASE)
_DOWNLOAD = re.compile(r"^下载本文\s*pdf", re.IGNORECASE)
_QA_FOOTER = re.compile(r"^(推薦閱讀|推荐阅读|相關閱讀|相关阅读|相關文章|相关文章)\s*[:：]?\s*$")
_QA_FOOTER_ITEM = re.compile(r"^\s*※")


@dataclass(frozen=True)
class Line:
    number: int  # 1-based
    kind: LineKind
    text: str


@dataclass(frozen=True)
class LostLine:
    file: str
    number: int
    kind: LineKind
    text: str
    missing: str  # the first piece of the line found in no entry

    def __str__(self) -> str:
        return f"{self.file}:{self.number} [{self.kind}] {self.text[:100]!r} (missing {self.missing[:40]!r})"


@dataclass
class Coverage:
    """Content lines per kind, how many of them reach an entry, and the ones that do not."""

    file: str
    total: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    lost: list[LostLine] = field(default_factory=list)

    def add(self, other: Coverage) -> None:
        self.total.update(other.total)
        self.kept.update(other.kept)
        self.lost.extend(other.lost)

    def figures(self, kinds: Iterable[str] = REQUIRED) -> tuple[int, int]:
        """(kept, total) over `kinds`."""
        kinds = tuple(kinds)
        return sum(self.kept[k] for k in kinds), sum(self.total[k] for k in kinds)

    def lost_required(self) -> list[LostLine]:
        return [line for line in self.lost if line.kind in REQUIRED]

    def report(self) -> str:
        """One line: required kinds kept of total, then every content kind."""
        kept, total = self.figures()
        kinds = ", ".join(f"{k} {self.kept[k]}/{self.total[k]}" for k in CONTENT if self.total[k])
        every_kept, every_total = self.figures(CONTENT)
        return f"{self.file}: prose+list+table {kept}/{total} kept; all content {every_kept}/{every_total} ({kinds})"


# -- classification --------------------------------------------------------------------------------


def classify(text: str, fmt: Format) -> list[Line]:
    """Every line of `text` with its kind, as the format's reader sees it."""
    lines = text.split("\n")
    kinds = {"markdown": _markdown_kinds, "pdf_text": _pdf_kinds, "qa": _qa_kinds}[fmt](lines)
    return [Line(number, kind, line) for number, (kind, line) in enumerate(zip(kinds, lines, strict=True), 1)]


def _markdown_kinds(lines: list[str]) -> list[LineKind]:
    kinds: list[LineKind] = ["blank"] * len(lines)
    i = 0
    if lines and lines[0].strip() == "---":
        for j in range(1, len(lines)):
            if lines[j].strip() == "---":
                kinds[: j + 1] = ["front_matter"] * (j + 1)
                i = j + 1
                break
    in_toc = False
    in_table = False
    while i < len(lines):
        line = _QUOTE.sub("", lines[i])
        stripped = line.strip()
        fence = _FENCE.match(line)
        if fence:
            marker = fence.group(1)
            j = i + 1
            while j < len(lines) and not _QUOTE.sub("", lines[j]).strip().startswith(marker):
                j += 1
            end = min(j, len(lines) - 1)
            kinds[i : end + 1] = ["code"] * (end + 1 - i)
            i = end + 1
            continue
        if stripped.startswith("$$"):
            j = i
            if not (len(stripped) > 2 and stripped.endswith("$$")):
                j = i + 1
                while j < len(lines) and "$$" not in lines[j]:
                    j += 1
            end = min(j, len(lines) - 1)
            kinds[i : end + 1] = ["math"] * (end + 1 - i)
            i = end + 1
            continue
        if stripped.startswith("<!--"):
            j = i
            while j < len(lines) and "-->" not in lines[j]:
                j += 1
            end = min(j, len(lines) - 1)
            if _TOC_OPEN.match(stripped):
                in_toc = True
            elif _TOC_CLOSE.match(stripped):
                in_toc = False
            kinds[i : end + 1] = ["comment"] * (end + 1 - i)
            i = end + 1
            continue
        kinds[i] = _markdown_line_kind(stripped, in_toc, in_table, lines[i + 1] if i + 1 < len(lines) else "")
        in_table = kinds[i] == "table" or (in_table and kinds[i] == "rule")
        i += 1
    return kinds


def _markdown_line_kind(stripped: str, in_toc: bool, in_table: bool, following: str) -> LineKind:
    if not stripped:
        return "blank"
    if in_toc:
        return "navigation"
    if _HEADING.match(stripped):
        return "heading"
    if "|" in stripped and _TABLE_DELIMITER.match(stripped) and "-" in stripped:
        return "rule"  # a table's delimiter row
    if "|" in stripped and (in_table or stripped.startswith("|") or _TABLE_DELIMITER.match(following.strip())):
        return "table"
    if _RULE.match(stripped):
        return "rule"  # a thematic break or a setext underline
    if _NOISE.match(stripped):
        return "noise"  # a stray `====here` marker
    if "".join(ch for ch in stripped.lower() if ch.isalnum()) in _NAVIGATION:
        return "navigation"
    without_images = _IMAGE.sub("", stripped)
    if without_images != stripped and not _plain(without_images):
        return "image"
    if _TAG.sub("", stripped).strip() == "" and _TAG.search(stripped):
        return "comment"  # markup only, such as `<br>` or `<div>`
    return "list" if _LIST.match(stripped) else "prose"


def _pdf_kinds(lines: list[str]) -> list[LineKind]:
    kinds: list[LineKind] = ["blank"] * len(lines)
    rows, body_start = parse_toc(lines)
    numbers = {row.number for row in rows}
    for i in range(body_start):
        kinds[i] = "navigation" if lines[i].strip() else "blank"  # the table of contents and its title
    for block in split_blocks(lines[body_start:], first_line=body_start + 1):
        if block.kind != "text":
            kinds[block.start - 1 : block.end] = ["code" if block.kind == "fence" else "math"] * (
                block.end - block.start + 1
            )
            continue
        for number in range(block.start, block.end + 1):
            kinds[number - 1] = _pdf_line_kind(lines[number - 1].strip(), numbers)
    return kinds


def _pdf_line_kind(line: str, numbers: set[str]) -> LineKind:
    if not line:
        return "blank"
    if _DOWNLOAD.match(line) or TOC_ROW.match(line):
        return "navigation"
    if _NOISE.match(line):
        return "noise"
    number = re.match(r"^\d+(?:\.\d+)*", line)
    if number and number.group(0) in numbers and not line[number.end() : number.end() + 1].isdigit():
        return "heading"  # a candidate heading: the reader checks it against the TOC in order
    if "\t" in line:
        return "table"
    without_images = _IMAGE.sub("", line)
    if without_images != line and not _plain(without_images):
        return "image"
    return "list" if _LIST.match(line) else "prose"


def _qa_kinds(lines: list[str]) -> list[LineKind]:
    kinds: list[LineKind] = ["blank"] * len(lines)
    seen_question = False
    in_footer = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if not seen_question:
            kinds[i] = "heading"  # the question: every entry's section path
            seen_question = True
        elif in_footer or _QA_FOOTER.match(stripped) or _QA_FOOTER_ITEM.match(stripped):
            in_footer = in_footer or bool(_QA_FOOTER.match(stripped))
            kinds[i] = "footer"
        else:
            kinds[i] = "list" if _LIST.match(stripped) else "prose"
    return kinds


# -- matching ---------------------------------------------------------------------------------------


def _plain(text: str) -> str:
    """Letters and digits only, lower case, after NFKC and HTML entities: what two renderings share."""
    text = unicodedata.normalize("NFKC", html.unescape(text)).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def _url(url: str) -> str:
    return _plain(unquote(url))


def pieces(text: str, fmt: Format = "markdown") -> list[str]:
    """The pieces of a line that must each reach an entry: link texts, URLs, table cells, bracketed
    text and the text between them, with images (and in markdown, HTML tags) dropped; each as letters
    and digits."""
    found: list[str] = []
    text = _MARKERS.sub("", text)

    def link(match: re.Match[str]) -> str:
        found.append(_plain(match.group(1)))
        found.append(_url(match.group(2)) if match.group(2).startswith(("http://", "https://")) else "")
        return "\x00"

    def url(match: re.Match[str]) -> str:
        found.append(_url(match.group(match.lastindex or 0)))
        return "\x00"

    text = _LINK.sub(link, _IMAGE.sub("\x00", text))
    text = _BARE_URL.sub(url, _AUTOLINK.sub(url, text))
    if fmt == "markdown":
        text = _TAG.sub("\x00", text)  # the markdown reader drops inline HTML; other formats keep it as text
    label = _LABEL.match(text)
    if label:  # "原始论文: [title](url)", "傳送門:Title": readers keep the label apart from the title
        found.append(_plain(label.group(1)))
        text = text[label.end() :]
    found += [_plain(part) for part in re.split(r"[\x00|\t\[\]]", text)]
    return [piece for piece in found if piece]


def _image_pieces(text: str) -> list[str]:
    """An image line's alt texts and URLs: readers drop images, so these are reported, not required."""
    found = []
    for image in _IMAGE.finditer(text):
        link = _LINK.search(image.group(0))
        if link:
            found += [_plain(link.group(1)), _url(link.group(2))]
    return [piece for piece in found if piece] or [text.strip()]


def entry_texts(entry: Entry) -> list[str]:
    """Everything of an entry that a line can reach, each as letters and digits."""
    texts = [entry.title, *entry.alt_titles, entry.summary, entry.body, *entry.section_path]
    texts += [link.text for link in entry.links]
    return [_plain(text) for text in texts] + [_url(link.url) for link in entry.links]


def check(text: str, name: str, fmt: Format, entries: Iterable[Entry]) -> Coverage:
    """How many content lines of the file `name` (with `text`, read as `fmt`) reach `entries`:
    those whose source or `also_in` is that file."""
    mine = [e for e in entries if e.source.file == name or any(ref.file == name for ref in e.also_in)]
    haystack = "\x00".join(piece for entry in mine for piece in entry_texts(entry))
    coverage = Coverage(name)
    for line in classify(clean_text(text), fmt):
        if line.kind not in CONTENT:
            continue
        coverage.total[line.kind] += 1
        wanted = _image_pieces(line.text) if line.kind == "image" else pieces(line.text, fmt)
        missing = next((piece for piece in wanted if piece not in haystack), None)
        if missing is None:
            coverage.kept[line.kind] += 1
        else:
            coverage.lost.append(LostLine(name, line.number, line.kind, line.text.strip(), missing))
    return coverage


def check_sources(sources: Iterable[Path], result: ParseResult) -> list[Coverage]:
    """`check` for every file that `result` (the parse of `sources`) read."""
    formats = {report.file: report.format for report in result.files}
    coverages = []
    for path, name in find_files(sources):
        if name in formats:
            coverages.append(check(read_text(path), name, formats[name], result.entries))
    return coverages
