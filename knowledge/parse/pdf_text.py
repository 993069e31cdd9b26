"""Parse a PDF rendered back to plain text: a TOC of `num<TAB>title<TAB>page`, then numbered headings."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from knowledge.entry import strip_heading_number
from knowledge.normalize import has_han, title_key
from knowledge.parse.draft import (
    RECOMMEND_LABEL,
    SUMMARY_LABEL,
    Draft,
    Sections,
)
from knowledge.parse.lines import Block, split_blocks

TOC_ROW = re.compile(r"^(\d+(?:\.\d+)*)\s*([^\t]*?)\s*\t\s*(\d+)\s*$")
_BARE_URL = re.compile(r"^<?(https?://[^\s<>]+)>?$")
_LABELLED_URL = re.compile(r"^(.{1,60}?)\s*[:：]\s*<?(https?://[^\s<>]+)>?$")
_TITLED_LINK = re.compile(
    r"^(?:(?P<label>[^\[\]]{0,40}?)\s*[:：]\s*)?"  # an optional short label such as "原始论文:"
    r"\[(?P<text>[^\]]+(?:\\\][^\]]*)*)\]"
    r"\((?P<url>[^)\s]*(?:\([^)\s]*\)[^)\s]*)*)\)$"
)
_INLINE_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]*)\)")
_AUTOLINK = re.compile(r"<(https?://[^\s<>]+)>")
_BARE_IN_TEXT = re.compile(r"(?<![<(])https?://[A-Za-z0-9\-._~:/?#@!$&'*+,;=%]+")
_NOISE = re.compile(r"^=+\s*[A-Za-z]*\s*$")
_CODE_LIKE = re.compile(
    r"^\s*(def |class |import |from \S+ import|return\b|@\w)|^[\w.\[\]'\"]+\s*[+\-*/]?=\s*\S|[{};]\s*$|^\s*#\s"
    r"|\b[a-z]+_[a-z_]+\b|\?=|\w\(\)"  # snake_case names, `?=`, calls: a code walkthrough, not a headline
)
_LEADING_NUMBER = re.compile(r"^\d+(?:\.\d+)*")
_NOTE = re.compile(r"^(注|备注|備註|链接|鏈接|密码|ps|p\.s\.|note|nb)\s*[:：]", re.IGNORECASE)
_NUMBERED = re.compile(r"^\d+\.\d+(\.\d+)*\s")
_LIST_ITEM = re.compile(r"^\s*([-*+•]|\d+[.)、])\s+")
_SENTENCE_END = ("。", ".", "；", ";", "，", ",", "、")
_EXCLAIMED = ("！", "!")  # the end of a headline ("…那就消了它！") as often as of a sentence
_DOWNLOAD_LINE = re.compile(r"^下载本文\s*pdf", re.IGNORECASE)


@dataclass(frozen=True)
class TocRow:
    number: str
    title: str

    @property
    def level(self) -> int:
        return self.number.count(".") + 1


def parse_toc(lines: list[str]) -> tuple[list[TocRow], int]:
    """The TOC rows at the top of the file, and the index of the first line after them."""
    rows: list[TocRow] = []
    last = -1
    for i, line in enumerate(lines):
        match = TOC_ROW.match(line.strip("\ufeff "))
        if match:
            rows.append(TocRow(match.group(1), match.group(2).strip()))
            last = i
        elif line.strip() and rows:
            break
    return rows, last + 1


def looks_like_toc(text: str) -> bool:
    head = text.split("\n", 600)[:600]
    return sum(1 for line in head if TOC_ROW.match(line.strip())) >= 5


def _key(title: str) -> str:
    return title_key(title) or "".join(title.lower().split())


def _similar(a: str, b: str) -> bool:
    ka, kb = _key(a), _key(b)
    if not ka or not kb:
        return ka == kb
    if ka in kb or kb in ka:
        return True
    return difflib.SequenceMatcher(None, ka, kb).ratio() >= 0.6


class _Headings:
    """Walks the TOC in order: a body line is a heading only if it carries the next expected number."""

    LOOKAHEAD = 3

    def __init__(self, rows: list[TocRow]) -> None:
        self.rows = rows
        self.next = 0
        self.index = {row.number: i for i, row in reversed(list(enumerate(rows)))}

    def match(self, line: str) -> TocRow | None:
        number = _LEADING_NUMBER.match(line)
        at = self.index.get(number.group(0)) if number else None
        if at is not None and at >= self.next and _key(line[len(self.rows[at].number) :]) == _key(self.rows[at].title):
            self.next = at + 1  # an exact match may skip any number of rows missing from the body
            return self.rows[at]
        for offset in range(self.LOOKAHEAD):
            at = self.next + offset
            if at >= len(self.rows):
                return None
            row = self.rows[at]
            if not line.startswith(row.number):
                continue
            rest = line[len(row.number) :]
            if rest[:1].isdigit() or (rest[:1] == "." and rest[1:2].isdigit()):
                continue
            rest = rest.strip()
            # the expected row may differ a little from the TOC; a skipped row must match exactly
            if (offset == 0 and (_similar(rest, row.title) or len(rest) <= 40)) or rest == row.title:
                self.next = at + 1
                return row
        return None


def looks_like_headline(line: str) -> bool:
    """A short standalone line that names an article or paper, not prose, code or a list item."""
    text = line.strip()
    han = sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")
    if len(text) < 4 or len(text) > 160 or han > 70:
        return False
    if text.endswith(_SENTENCE_END) and not text.endswith("..."):
        return False
    if text.endswith(_EXCLAIMED) and ("。" in text or sum(text.count(mark) for mark in _EXCLAIMED) > 1):
        return False  # prose that ends in an exclamation: "… 长度是不一样的! 也就是说, …!"
    if SUMMARY_LABEL.match(text) or RECOMMEND_LABEL.match(text) or _LIST_ITEM.match(text):
        return False
    if "$" in text or "\t" in text or _CODE_LIKE.search(text) or _NOTE.match(text):
        return False
    if "://" in text or _NUMBERED.match(text):
        return False  # running text that cites a URL; a numbered line that is not a TOC heading
    return bool(han) or len(text.split()) >= 2


_NOT_TITLE_START = {
    "code", "official", "project", "slides", "demo", "homepage", "website", "download", "repo", "repository",
}  # fmt: skip
_MINOR_WORDS = {
    "a", "an", "the", "of", "for", "in", "on", "and", "or", "to", "with", "via", "by", "at", "from", "as",
    "is", "are", "vs", "vs.", "into", "over", "under", "through", "using", "towards", "toward", "beyond",
    "across", "without", "not", "be", "its", "your", "you", "it", "do", "does",
}  # fmt: skip
_NAMED_TITLE = re.compile(r"^[A-Z][\w\-+.]*(?:\s[A-Z0-9][\w\-+.]*){0,2}\s?:\s+\S+\s+\S")  # "TADAM: Task …"


def looks_like_paper_title(line: str) -> bool:
    """An English paper title: a headline without Chinese, in Title Case ("Weight Agnostic Neural
    Networks") or a name and a subtitle ("TADAM: Task dependent adaptive metric …"); never a sentence."""
    text = line.strip()
    if has_han(text) or not looks_like_headline(text) or not text[:1].isupper():
        return False
    words = text.split()
    if not 2 <= len(words) <= 30 or words[0].lower().strip(":,") in _NOT_TITLE_START:
        return False
    if _NAMED_TITLE.match(text):
        return True
    content = [w for w in words if w.lower().strip(":,.") not in _MINOR_WORDS and any(c.isalpha() for c in w)]
    capitals = sum(1 for w in content if w.lstrip("(\"'“")[:1].isupper())
    return len(content) >= 2 and capitals >= 0.75 * len(content)


def _pairs(headline: str, title: str) -> bool:
    """A Chinese headline directly followed by an English paper title: the paper is its subject."""
    return has_han(headline) and not has_han(title)


def _plain(text: str) -> str:
    """Link markup removed, link text kept."""
    text = _INLINE_LINK.sub(lambda m: m.group(1), text)
    return _AUTOLINK.sub(lambda m: m.group(1), text).replace("\\(", "(").replace("\\)", ")")


def _units(blocks: list[Block]) -> Iterator[tuple[int, int, str, str]]:
    """(first line, last line, kind, text): fences and math whole, other blocks line by line."""
    for block in blocks:
        if block.kind in ("fence", "math"):
            yield block.start, block.end, block.kind, block.text
            continue
        for offset, line in enumerate(block.text.split("\n")):
            yield block.start + offset, block.start + offset, "line", line


class _Reader(Sections):
    def __init__(self, rows: list[TocRow]) -> None:
        super().__init__()
        self.headings = _Headings(rows)
        self.promoted: Draft | None = None  # an entry a title line under its heading's links just named
        self.pending: tuple[int, int, str] | None = None  # a line that may be that entry's description

    def target(self, line: int, section_title: str | None = None) -> Draft:
        # a section entry is titled by its heading without the number
        title = strip_heading_number(self.stack[-1][1]) if self.stack else None
        return super().target(line, section_title or title)

    def attach_line(self, start: int, end: int, text: str) -> None:
        links = [(m.group(1), m.group(2)) for m in _INLINE_LINK.finditer(text)]
        links += [("", url) for url in _AUTOLINK.findall(text) + _BARE_IN_TEXT.findall(text)]
        self.attach(text, start, end, links)

    def headline_only(self) -> bool:
        draft = self.current
        return draft is not None and not draft.is_section and not draft.has_content

    def settle(self, *, described: bool) -> None:
        """The line after a promoted title is its description when the section ends with it (the
        next heading or the end of the file follows), else it is read as any other line: a Chinese
        line after an English paper title is more often the headline of another article."""
        if self.pending is None:
            return
        (start, end, line), self.pending = self.pending, None
        draft, self.promoted = self.promoted, None
        if described and draft is not None:
            draft.add_text(line, end)
        else:
            self.read_line(start, end, line)

    def finish(self) -> list[Draft]:
        self.settle(described=True)
        return super().finish()

    # -- one unit of text ---------------------------------------------------------------------
    def feed(self, start: int, end: int, kind: str, text: str) -> None:
        line = text.strip()
        if kind == "line" and (not line or _NOISE.match(line)):
            return
        row = self.headings.match(line) if kind == "line" else None
        self.settle(described=row is not None)
        promoted, self.promoted = self.promoted, None
        if kind != "line":
            self.attach_line(start, end, text)
            return
        if row is not None:
            self.enter(row.level, line)
            return
        if not self.stack:
            return  # before the first heading: TOC residue and the download line
        if promoted is not None and promoted is self.current and has_han(line) and looks_like_headline(line):
            self.pending, self.promoted = (start, end, line), promoted
            return
        self.read_line(start, end, line)

    def read_line(self, start: int, end: int, line: str) -> None:
        """A line under a heading that is not itself one."""
        bare = _BARE_URL.match(line)
        labelled = _LABELLED_URL.match(line)
        if bare or labelled:
            self.flush_intro()
            url = bare.group(1) if bare else labelled.group(2)  # type: ignore[union-attr]
            label = "" if bare else labelled.group(1)  # type: ignore[union-attr]
            self.target(start).add_link(url, label, line_end=end)
            return
        titled = _TITLED_LINK.match(line)
        if titled:
            title = _plain(titled.group("text"))
            label = line[: titled.start("text") - 1].strip()  # "原始论文:" before the link, if any
            if self.headline_only() and self.current is not None and _pairs(self.current.title, title):
                draft = self.current
                draft.alt_titles.append(title)
            else:
                draft = self.open(title, start)
            draft.add_link(titled.group("url"), title, opener=True, line_end=end)
            if label:
                draft.add_intro(label, start)
            return
        if line.endswith((":", "：")) and not SUMMARY_LABEL.match(line) and not _LIST_ITEM.match(line):
            self.intro.append((start, line))
            return
        if looks_like_headline(line) and not _LIST_ITEM.match(line):
            plain = _plain(line)
            section = self.current
            if (
                section is not None
                and section.is_section
                and section.links
                and plain == line
                and looks_like_paper_title(line)
            ):
                # a heading, its URL, then the paper's title: the title names the entry the URL began
                self.promoted = self.promote(line, start, end)
                if self.promoted is not None:
                    return
            if self.headline_only() and self.current is not None and _pairs(self.current.title, plain):
                self.current.alt_titles.append(plain)
                self.current.line_end = end
                return
            draft = self.open(plain, start)
            for match in _INLINE_LINK.finditer(line):
                draft.add_link(match.group(2), match.group(1), line_end=end)
            return
        self.attach_line(start, end, line)


def parse_pdf_text(text: str) -> list[Draft]:
    lines = text.split("\n")
    rows, body_start = parse_toc(lines)
    reader = _Reader(rows)
    body = lines[body_start:]
    for start, end, kind, unit in _units(split_blocks(body, first_line=body_start + 1)):
        if kind == "line" and _DOWNLOAD_LINE.match(unit.strip()):
            continue
        reader.feed(start, end, kind, unit)
    return reader.finish()
