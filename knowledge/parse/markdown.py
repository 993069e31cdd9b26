"""Parse markdown notes with markdown-it-py: headings give the section path, titled links open entries."""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from itertools import zip_longest
from typing import Any, Final

from markdown_it import MarkdownIt
from markdown_it.rules_block.html_block import HTML_SEQUENCES
from markdown_it.token import Token

from knowledge.normalize import has_han
from knowledge.parse.draft import Draft, Sections, is_web_url
from knowledge.parse.pdf_text import looks_like_paper_title

_log = logging.getLogger(__name__)

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n---[ \t]*(\n|\Z)", re.DOTALL)
_EMPTY_CELLS = frozenset({"-", "--", "—", "/", "n/a", "N/A"})  # a table cell that says there is nothing
_NAVIGATION = {"目录", "目錄", "contents", "tableofcontents", "toc"}
_NOISE = re.compile(r"^=+\s*[A-Za-z]*\s*$")
_TAG = re.compile(r"<[^>]+>")
_SEPARATOR = re.compile(r"^\s*([-–—:：|]|\s)+")
_FRONT_TITLE = re.compile(r"^title:\s*[\"']?(.*?)[\"']?\s*$", re.MULTILINE)
_TOC_OPEN = re.compile(r"<!--\s*TOC\s*-->", re.IGNORECASE)
_TOC_CLOSE = re.compile(r"<!--\s*/TOC\s*-->", re.IGNORECASE)
_MARKERS = re.compile(r"^[\s>]*(([-*+]|\d{1,9}[.)])(\s+|$)[\s>]*)*")
_LABEL = re.compile(r"^ {0,3}\[[^\]]+\]:")  # a link reference definition starts so
_ATX = re.compile(r"#{1,6}(?=[ \t]|$)")
_INLINE_MARKUP = re.compile(r"[\\`*_~\[\]<>&]")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_BULLET = re.compile(r"[-*+][ \t]")
_HTML_INDENT = re.compile(r"^ {0,3}<")
# Words that say where a link goes or what part of something it is, not what it is: a list item such as
# "* 训练文本：… 在 [Hub](…) 上可用", "* 数据：https://…" or "* 参考：[xhs](…)" is a note of the entry above, not
# an entry titled "Hub", "数据：" or "xhs".
_POINTERS = frozenset(
    """
    这里 此处 这儿 这个 链接 原文 地址 传送门 点此 点这里 参考 详见 见 官网 主页 项目 代码 论文 博客
    文章 视频 数据 数据集 脚本 启动脚本 教程 文档 知乎 小红书 xhs 公众号 中文版 英文版 译文 解读 一份 全文
    here link links this that blog post paper arxiv pdf code github
    repo hub video slides ppt website site homepage demo data dataset script docs doc
    """.split()
)


@cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


@dataclass
class _Inline:
    """The readable text of an inline token, and its links as (text, href)."""

    text: str = ""
    links: list[tuple[str, str]] = field(default_factory=list)
    link_spans: list[tuple[int, int]] = field(default_factory=list)


def _inline(token: Token | None) -> _Inline:
    out = _Inline()
    if token is None:
        return out
    parts: list[str] = []
    length = 0  # of the text so far
    href: str | None = None
    link_text: list[str] = []
    start = 0
    for child in token.children or []:
        if child.type == "link_open":
            href = str(child.attrGet("href") or "")
            link_text = []
            start = length
        elif child.type == "link_close":
            text = "".join(link_text)
            out.links.append((text.strip(), href or ""))
            out.link_spans.append((start, length))
            href = None
        elif child.type in ("text", "code_inline", "html_inline"):
            value = _TAG.sub("", child.content) if child.type == "html_inline" else child.content
            parts.append(value)
            length += len(value)
            if href is not None:
                link_text.append(value)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
            length += 1
        elif child.type == "image":
            continue  # images are decoration; their alt text is not an entry's text
    out.text = "".join(parts).replace("\xa0", " ")
    return out


def _is_titled(text: str, href: str) -> bool:
    return _is_titled_text(text) and is_web_url(href)


def _is_titled_text(text: str) -> bool:
    """Link text that names something, not a URL written out (for a link already known to be web)."""
    return bool(text) and not text.startswith(("http://", "https://"))


def _pairs(draft: Draft, title: str) -> bool:
    """A link titled `title` right after the linked Chinese headline `draft` (nothing read under it yet) is
    the headline's paper when its title is English of two words or more ("二阶梯度优化新崛起…" then "Second
    Order Optimization Made Practical"): the collection's rule, as the PDF text's reader applies it."""
    return (
        not draft.is_section
        and len(draft.links) == 1
        and not (draft.parts or draft.intro or draft.alt_titles)
        and has_han(draft.title)
        and not has_han(title)
        and len(title.split()) >= 2
    )


class _Reader(Sections):
    def __init__(self, lines: list[str], document_title: str = "") -> None:
        super().__init__(document_title)
        self.lines = lines
        self.env: dict[str, Any] = {}  # markdown-it's: the link reference definitions
        self.in_toc = False
        self.table_header: list[str] = []  # the header cells of the table being read

    def heading_line(self, line: str, number: int) -> None:
        """An ATX heading line read without the block parser: its level, then its inline text."""
        marks = _ATX.match(line)
        if marks is None or self.in_toc:
            return
        content = _CLOSING_HASHES.sub("", line[marks.end() :]).strip()
        if _INLINE_MARKUP.search(content):
            inline = _inline(_parser().parseInline(content, self.env)[0])
        else:
            inline = _Inline(content.replace("\xa0", " "))  # plain text: nothing for the inline parser to do
        self.heading(len(marks.group(0)), inline, number, number)

    def heading(self, level: int, inline: _Inline, start: int, end: int) -> None:
        title = " ".join(inline.text.split())
        if not title:
            return
        self.enter(level, title)
        titled = [(text, href) for text, href in inline.links if _is_titled(text, href)]
        if titled:
            draft = self.open(title, start)
            draft.add_link(titled[0][1], titled[0][0], opener=True, line_end=end)

    # -- blocks --------------------------------------------------------------------------------
    def paragraph(self, inline: _Inline, start: int, end: int) -> None:
        text = inline.text.strip()
        if not text or _NOISE.match(text):
            return
        if len(text) <= 20 and "".join(ch for ch in text.lower() if ch.isalnum()) in _NAVIGATION:
            return
        web = [(t, h) for t, h in inline.links if is_web_url(h)]
        titled = [(t, h) for t, h in web if _is_titled_text(t)]
        if titled and inline.link_spans and not _points(titled[0][0]):
            first_text, first_href = titled[0]
            index = inline.links.index(titled[0])
            span_start, span_end = inline.link_spans[index]
            before = inline.text[:span_start].strip()
            after = _SEPARATOR.sub("", inline.text[span_end:]).strip()
            if not before or (before.endswith((":", "：")) and len(before) <= 40):
                current = self.current
                if not before and current is not None and _pairs(current, first_text):
                    # a Chinese headline's link, then its paper's: one entry, the paper its other title
                    draft = current
                    draft.alt_titles.append(first_text)
                else:
                    draft = self.open(first_text, start)
                draft.add_link(first_href, first_text, opener=True, line_end=end)
                if before:
                    draft.add_intro(before, start)  # a label such as "原始论文:"
                if after:
                    draft.add_text(after, end)
                for link_text, href in web:
                    if href != first_href:
                        draft.add_link(href, link_text, line_end=end)
                return
        if text.endswith((":", "：")) and not web:
            self.intro.append((start, text))
            return
        if web and not _without_urls(text, web):
            self.attach("", start, end, web)  # bare link lines: the links belong to the entry above
            return
        paper = not inline.links and "\n" not in text and looks_like_paper_title(text)
        if paper and self.promote(text, start, end) is not None:
            return  # a paper's title right under a heading (after its links, if any) names the heading's entry
        if text.startswith("$$"):
            text = "\n".join(self.lines[start - 1 : end]).strip()  # math verbatim, escapes included
        self.attach(text, start, end, web)

    def list_item(self, inline: _Inline, start: int, end: int) -> Draft | None:
        """A list item with a web link opens an entry (returned: what the item holds below its first
        line belongs to it); without one, it is text of the entry above."""
        text = inline.text.strip()
        web = [(t, h) for t, h in inline.links if is_web_url(h)]
        if not web:
            if text:
                self.attach(f"- {text}", start, end)
            return None
        titled = [(t, h) for t, h in web if _is_titled_text(t)]
        if not titled and self.current is not None and not _without_urls(text, web):
            # only URLs ("对应代码：" then "* https://github.com/…"): the links of the entry above, as for a
            # paragraph of bare links; with no entry open, the item is one (titled by its URL)
            self.attach("", start, end, web)
            return None
        if titled:
            title, href = titled[0]
            index = inline.links.index(titled[0])
            span_start, span_end = inline.link_spans[index]
            before = inline.text[:span_start].strip()
            after = _SEPARATOR.sub("", inline.text[span_end:]).strip()
            label = before.endswith((":", "：")) and len(before) <= 40
            if before and (after or not label):
                # a sentence around the link ("例如SASRec（[…](…)）", "Alpaca-LoRA：[…](…)，通过LoRA…"): its text
                # whole, the link's text kept (cut out, it left "例如SASRec（ ）")
                rest = text
            else:  # the link alone, after a label ("原始论文：") or before its description
                rest = before or after
        else:
            href = web[0][1]
            title = " ".join(text.replace(href, "").split()).rstrip(":：").strip() or href  # "工具站：https://…"
            rest = ""
        if _points(title):
            self.attach(f"- {text}", start, end, web)
            return None
        draft = self.open(title, start)
        draft.add_link(href, title, opener=True, line_end=end)
        if rest:
            draft.add_text(rest, end)
        for link_text, other in web:
            if other != href:
                draft.add_link(other, link_text, line_end=end)
        return draft

    def table_row(self, cells: list[_Inline], start: int, end: int, *, header: bool = False) -> None:
        texts = [" ".join(cell.text.split()) for cell in cells]
        # cells past the header's count are dropped by the table rule: keep their text as written
        texts += [cell for cell in _raw_cells(self.lines[start - 1])[len(cells) :] if cell]
        links = [(t, h) for cell in cells for t, h in cell.links if is_web_url(h)]
        if header:  # kept as a table row, so that no summary is taken from it ("变量 | 大小")
            self.table_header = texts
            self.attach(f"| {' | '.join(texts)} |", start, end)
            return
        if not links:  # text of the entry above, as written (the content check wants each row's text whole)
            self.attach(" | ".join(texts), start, end)
            return
        titled = [(t, h) for t, h in links if _is_titled_text(t)]
        title, href = titled[0] if titled else (next((t for t in texts if t), links[0][1]), links[0][1])
        draft = self.open(title, start)
        draft.add_link(href, title, opener=True, line_end=end)
        rest = self.named_cells(texts, but=title)
        if rest:
            draft.add_text(" | ".join(rest), end)
        for link_text, other in links:
            if other != href:
                draft.add_link(other, link_text, line_end=end)
        self.close()

    def named_cells(self, texts: list[str], but: str) -> list[str]:
        """A row's cells other than `but`, each named by its column's header ("发布时间: 2020.06 | 大小: 600B"),
        without the cells that say nothing ("-")."""
        named = zip_longest(self.table_header[: len(texts)], texts, fillvalue="")
        return [f"{name}: {t}" if name else t for name, t in named if t and t != but and t not in _EMPTY_CELLS]

    # -- the token stream ----------------------------------------------------------------------
    def walk(self, tokens: list[Token], offset: int, count: int, *, recover: bool = True) -> None:
        """Read the block tokens of the `count` lines after `offset`. Lines that no block covers are
        what markdown-it dropped past its nesting limit (`maxNesting`): they are read again as a
        flat text when `recover`, else kept as plain text of the entry above."""
        dropped = deque(_uncovered(tokens, self.lines[offset : offset + count], offset))
        in_head = False
        items: list[tuple[int, Draft, int]] = []  # (level, draft, last line) of list items that opened an entry
        i = 0
        while i < len(tokens):
            token = tokens[i]
            start, end = (offset + token.map[0] + 1, offset + token.map[1]) if token.map else (offset + 1, offset + 1)
            while dropped and token.map and dropped[0][0] < start:
                self.dropped(*dropped.popleft(), recover=recover)
            kind = token.type
            if kind == "html_block":
                content = token.content.strip()
                if _TOC_OPEN.match(content):
                    self.in_toc = True
                elif _TOC_CLOSE.match(content):
                    self.in_toc = False
                elif not content.startswith("<!--"):
                    plain = _TAG.sub(" ", content).strip()
                    if plain and not self.in_toc:
                        self.attach(" ".join(plain.split()), start, end)
                i += 1
                continue
            if self.in_toc:
                i += 1
                continue
            if kind == "heading_open":
                self.heading(int(token.tag[1]), _inline(tokens[i + 1]), start, max(start, end))
                i += 3
                continue
            if kind == "list_item_open":
                # the item's first paragraph carries its title and links; nested lists are their own items
                j = i + 1
                while j < len(tokens) and tokens[j].type != "inline" and tokens[j].type != "list_item_close":
                    j += 1
                if j < len(tokens) and tokens[j].type == "inline":
                    item = _inline(tokens[j])
                    if not _is_navigation(item):
                        draft = self.list_item(item, start, max(start, end))
                        if draft is not None:
                            items.append((token.level, draft, end))
                    i = j + 1
                    continue
            elif kind == "list_item_close":
                if items and items[-1][0] == token.level:
                    _, draft, last = items.pop()
                    while dropped and dropped[0][0] <= last:  # lines nested in the item belong to it
                        self.dropped(*dropped.popleft(), recover=recover)
                    if self.current is draft:
                        self.close()
            elif kind == "paragraph_open":
                self.paragraph(_inline(tokens[i + 1]), start, max(start, end))
                i += 3
                continue
            elif kind in ("fence", "code_block"):
                fence = f"```{token.info}\n{token.content}```" if kind == "fence" else token.content
                self.attach(fence, start, max(start, end))
            elif kind in ("thead_open", "tbody_open"):
                in_head = kind == "thead_open"
            elif kind == "tr_open":
                cells: list[_Inline] = []
                j = i + 1
                while tokens[j].type != "tr_close":
                    if tokens[j].type == "inline":
                        cells.append(_inline(tokens[j]))
                    j += 1
                self.table_row(cells, start, max(start, end), header=in_head)
                i = j + 1
                continue
            i += 1
        for run in dropped:
            self.dropped(*run, recover=recover)

    def dropped(self, first: int, last: int, *, recover: bool) -> None:
        """Lines markdown-it did not read (1-based, inclusive): nested past its limit."""
        _log.info("lines %d-%d are nested past markdown's limit: read again as a flat text", first, last)
        flat = [self.lines[number - 1].lstrip(" \t>") for number in range(first, last + 1)]
        if recover:
            self.walk(_parser().parse("\n".join(flat), self.env), first - 1, len(flat), recover=False)
            return
        for number, line in enumerate(flat, first):
            text = _MARKERS.sub("", line).strip()
            if text:
                self.attach(text, number, number)


def parse_markdown(text: str, *, split: bool = True, chunk_lines: int = 2000) -> list[Draft]:
    """Drafts of a markdown file; front matter, TOC blocks, HTML comments and `====` markers are skipped.

    The text is read in pieces (`pieces`; `split=False` reads it whole, to the same drafts), so
    time and memory grow with the file and no faster: the block parser never holds the tokens of
    more than about `chunk_lines` lines, and headings at column 0 skip it.
    """
    front = _FRONT_MATTER.match(text)
    title = ""
    if front:
        found = _FRONT_TITLE.search(front.group(0))
        title = found.group(1).strip() if found else ""
        text = "\n" * front.group(0).count("\n") + text[front.end() :]
    lines = text.split("\n")
    reader = _Reader(lines, title)
    ranges = list(pieces(lines, chunk_lines)) if split else [(0, len(lines), False)]
    if len(ranges) > 1 and any(_LABEL.match(line) for line in lines):
        # a link may use a reference that a later piece defines: every piece's definitions come first
        for start, end, heading in ranges:
            if not heading:
                _parser().block.parse(_piece(lines, start, end), _parser(), reader.env, [])
    for start, end, heading in ranges:
        if heading:
            reader.heading_line(lines[start], start + 1)
        else:
            reader.walk(_parser().parse(_piece(lines, start, end), reader.env), start, end - start)
    return reader.finish()


def _piece(lines: list[str], start: int, end: int) -> str:
    return "\n".join(lines[start:end]) + "\n"


def pieces(lines: list[str], chunk_lines: int) -> Iterator[tuple[int, int, bool]]:
    """(start, end, is_heading) ranges of line indexes that can be parsed apart without changing
    what they mean: a heading line at column 0 alone (it closes every open block), or a run of
    other lines, cut once it is `chunk_lines` long where a top-level block starts (a line at column 0
    after a blank one, or a bullet item after another). Never where a fenced code block or an HTML
    block may be open: every reading of the lines so far (`_Block`) must agree that none is."""
    start = 0
    readings = {_CLEAR}
    for index, line in enumerate(lines):
        if readings == {_CLEAR}:
            if _ATX.match(line):
                if start < index:
                    yield start, index, False
                yield index, index + 1, True
                start = index + 1
                continue
            if index - start >= chunk_lines and line.strip() and line[:1] not in (" ", "\t"):
                previous = lines[index - 1]
                if not previous.strip() or (_BULLET.match(line) and _BULLET.match(previous)):
                    yield start, index, False
                    start = index
        readings = {after for reading in readings for after in reading.after(line)}
        if len(readings) > _MAX_READINGS:
            break  # too many ways to read these lines: the rest is parsed whole
    if start < len(lines):
        yield start, len(lines), False


@dataclass(frozen=True)
class _Block:
    """What may be open after a line, as the block parser would see it at the top level."""

    fence: re.Pattern[str] | None = None  # what closes the open fenced code block
    until: re.Pattern[str] | None = None  # what closes the open HTML block (types 1-5)
    html: bool = False  # an HTML block of type 6 or 7, closed by a blank line
    indent: int = 0  # the open block's indentation: past 0, it may sit in a list item
    paragraph: bool = False  # the line may continue a paragraph (an HTML tag line cannot start a block then)

    def after(self, line: str) -> tuple[_Block, ...]:
        """The readings after `line`: one, or more where the line may be read in several ways."""
        if self.fence is None and self.until is None and not self.html:
            return self._start(line)
        if self.indent and line.strip() and _indent(line) < self.indent:
            return (*self._inside(line), *_CLEAR._start(line))  # the line may close the list item
        return self._inside(line)

    def _inside(self, line: str) -> tuple[_Block, ...]:
        if self.fence is not None:
            if not self.fence.match(line):
                return (self,)
            # a closing fence is indented up to 3 columns, more in a list item
            return (_CLEAR,) if _indent(line) <= 3 else (_CLEAR, self) if _indent(line) <= self.indent + 3 else (self,)
        if self.until is not None:
            return (_CLEAR if self.until.search(line) else self,)
        return (self,) if line.strip() else (_CLEAR,)

    def _start(self, line: str) -> tuple[_Block, ...]:
        if not line.strip():
            return (_CLEAR,)
        opened = _FENCE.match(line)
        if opened:
            marker = opened.group(1)
            closing = re.compile(rf"^[ \t]*{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
            return (_Block(fence=closing, indent=_indent(line)),)
        if _HTML_INDENT.match(line):
            text = line.lstrip(" ")
            for opening, closing, interrupts in HTML_SEQUENCES:
                if opening.search(text):
                    if closing.pattern == "^$":
                        block = _Block(html=True, indent=_indent(line))
                    elif closing.search(text):
                        block = _CLEAR
                    else:
                        block = _Block(until=closing, indent=_indent(line))
                    return (block, _PARAGRAPH) if self.paragraph and not interrupts else (block,)
        return (_CLEAR if _ATX.match(line) else _PARAGRAPH,)


def _indent(line: str) -> int:
    """The columns of the line's leading white space (a tab to the next multiple of 4)."""
    white = line[: len(line) - len(line.lstrip(" \t"))]
    return len(white.expandtabs(4))


_CLEAR: Final = _Block()
_PARAGRAPH: Final = _Block(paragraph=True)
_MAX_READINGS = 16


# block tokens that hold lines of their own; list items and quotes only hold blocks
_LEAVES = frozenset({"paragraph_open", "heading_open", "fence", "code_block", "html_block", "hr", "table_open"})


def _uncovered(tokens: list[Token], lines: list[str], offset: int) -> list[tuple[int, int]]:
    """(first, last) runs, numbered from `offset` + 1, of `lines` that no block token covers and that
    hold text: not blank, not a bare list or quote marker, not a link reference definition."""
    count = len(lines)
    covered = bytearray(count)
    for token in tokens:
        if token.type in _LEAVES and token.map:
            covered[token.map[0] : token.map[1]] = b"\x01" * (token.map[1] - token.map[0])
    runs: list[tuple[int, int]] = []
    first = -1
    textual = False
    for index in range(count + 1):
        if index < count and not covered[index]:
            line = lines[index]
            if first < 0:
                if not line.strip():
                    continue  # a run starts at a line with something on it: a blank line belongs to no block
                first, textual = index, False
            textual = textual or not (_MARKERS.fullmatch(line) or _LABEL.match(line))
            continue
        if first >= 0 and textual:
            runs.append((offset + first + 1, offset + index))
        first = -1
    return runs


def _points(title: str) -> bool:
    """Whether a would-be title (a paragraph's or list item's link text or label) only says where a link goes
    ("这里", "blog", "数据")."""
    return title.strip(" :：").lower() in _POINTERS


def _without_urls(text: str, links: list[tuple[str, str]]) -> str:
    for link_text, href in links:
        text = text.replace(link_text, "").replace(href, "")
    return text.strip()


def _is_navigation(item: _Inline) -> bool:
    """A list item made only of in-page anchor links, like a generated table of contents."""
    if not item.links or not all(href.startswith("#") for _, href in item.links):
        return False
    outside = item.text
    for start, end in reversed(item.link_spans):
        outside = outside[:start] + outside[end:]
    return not any(ch.isalnum() for ch in outside)


def _raw_cells(line: str) -> list[str]:
    """A table row's cells as written, split at pipes that are not escaped."""
    row = _MARKERS.sub("", line).strip().removeprefix("|")
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row)]
