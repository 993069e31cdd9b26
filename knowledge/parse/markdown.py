"""Parse markdown notes with markdown-it-py: headings give the section path, titled links open entries."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token

from knowledge.parse.draft import Draft, Sections, is_web_url

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n---[ \t]*(\n|\Z)", re.DOTALL)
_NAVIGATION = {"目录", "目錄", "contents", "tableofcontents", "toc"}
_NOISE = re.compile(r"^=+\s*[A-Za-z]*\s*$")
_TAG = re.compile(r"<[^>]+>")
_SEPARATOR = re.compile(r"^\s*([-–—:：|]|\s)+")


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
    href: str | None = None
    link_text: list[str] = []
    start = 0
    for child in token.children or []:
        if child.type == "link_open":
            href = str(child.attrGet("href") or "")
            link_text = []
            start = len("".join(parts))
        elif child.type == "link_close":
            text = "".join(link_text)
            out.links.append((text.strip(), href or ""))
            out.link_spans.append((start, len("".join(parts))))
            href = None
        elif child.type in ("text", "code_inline", "html_inline"):
            value = _TAG.sub("", child.content) if child.type == "html_inline" else child.content
            parts.append(value)
            if href is not None:
                link_text.append(value)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            continue  # images are decoration; their alt text is not an entry's text
    out.text = "".join(parts).replace("\xa0", " ")
    return out


def _is_titled(text: str, href: str) -> bool:
    return bool(text) and is_web_url(href) and not text.startswith(("http://", "https://"))


class _Reader(Sections):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

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
        if "".join(ch for ch in text.lower() if ch.isalnum()) in _NAVIGATION:
            return
        web = [(t, h) for t, h in inline.links if is_web_url(h)]
        titled = [(t, h) for t, h in web if _is_titled(t, h)]
        if titled and inline.link_spans:
            first_text, first_href = titled[0]
            index = inline.links.index(titled[0])
            span_start, span_end = inline.link_spans[index]
            before = inline.text[:span_start].strip()
            after = _SEPARATOR.sub("", inline.text[span_end:]).strip()
            if not before or (before.endswith((":", "：")) and len(before) <= 40):
                draft = self.open(first_text, start)
                draft.add_link(first_href, first_text, opener=True, line_end=end)
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
        if text.startswith("$$"):
            text = "\n".join(self.lines[start - 1 : end]).strip()  # math verbatim, escapes included
        self.attach(text, start, end, web)

    def list_item(self, inline: _Inline, start: int, end: int) -> None:
        text = inline.text.strip()
        web = [(t, h) for t, h in inline.links if is_web_url(h)]
        if not web:
            if text:
                self.attach(f"- {text}", start, end)
            return
        titled = [(t, h) for t, h in web if _is_titled(t, h)]
        if titled:
            title, href = titled[0]
            index = inline.links.index(titled[0])
            span_start, span_end = inline.link_spans[index]
            rest = (inline.text[:span_start] + " " + inline.text[span_end:]).strip()
            rest = _SEPARATOR.sub("", rest).strip()
        else:
            href = web[0][1]
            title = " ".join(text.replace(href, "").split()) or href
            rest = ""
        draft = self.open(title, start)
        draft.add_link(href, title, opener=True, line_end=end)
        if rest:
            draft.add_text(rest, end)
        for link_text, other in web:
            if other != href:
                draft.add_link(other, link_text, line_end=end)
        self.close()

    def table_row(self, cells: list[_Inline], start: int, end: int) -> None:
        texts = [" ".join(cell.text.split()) for cell in cells]
        links = [(t, h) for cell in cells for t, h in cell.links if is_web_url(h)]
        if not links:
            self.attach(" | ".join(texts), start, end)
            return
        titled = [(t, h) for t, h in links if _is_titled(t, h)]
        title, href = titled[0] if titled else (next((t for t in texts if t), links[0][1]), links[0][1])
        draft = self.open(title, start)
        draft.add_link(href, title, opener=True, line_end=end)
        rest = [t for t in texts if t and t != title]
        if rest:
            draft.add_text(" | ".join(rest), end)
        for link_text, other in links:
            if other != href:
                draft.add_link(other, link_text, line_end=end)
        self.close()


def parse_markdown(text: str) -> list[Draft]:
    """Drafts of a markdown file; front matter, TOC blocks, HTML comments and `====` markers are skipped."""
    front = _FRONT_MATTER.match(text)
    if front:
        text = "\n" * front.group(0).count("\n") + text[front.end() :]
    tokens = _parser().parse(text)
    reader = _Reader(text.split("\n"))
    in_toc = False
    list_depth = 0
    i = 0
    while i < len(tokens):
        token = tokens[i]
        start, end = (token.map[0] + 1, token.map[1]) if token.map else (1, 1)
        kind = token.type
        if kind == "html_block":
            content = token.content.strip()
            if re.match(r"<!--\s*TOC\s*-->", content, re.IGNORECASE):
                in_toc = True
            elif re.match(r"<!--\s*/TOC\s*-->", content, re.IGNORECASE):
                in_toc = False
            elif not content.startswith("<!--"):
                plain = _TAG.sub(" ", content).strip()
                if plain and not in_toc:
                    reader.attach(" ".join(plain.split()), start, end)
            i += 1
            continue
        if in_toc:
            i += 1
            continue
        if kind == "heading_open":
            reader.heading(int(token.tag[1]), _inline(tokens[i + 1]), start, max(start, end))
            i += 3
            continue
        if kind in ("bullet_list_open", "ordered_list_open"):
            list_depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif kind == "list_item_open":
            # the item's first paragraph carries its title and links; nested lists are their own items
            j = i + 1
            while j < len(tokens) and tokens[j].type != "inline" and tokens[j].type != "list_item_close":
                j += 1
            if j < len(tokens) and tokens[j].type == "inline":
                item = _inline(tokens[j])
                if _is_navigation(item):
                    i = j + 1
                    continue
                reader.list_item(item, start, max(start, end))
                i = j + 1
                continue
        elif kind == "paragraph_open":
            reader.paragraph(_inline(tokens[i + 1]), start, max(start, end))
            i += 3
            continue
        elif kind in ("fence", "code_block"):
            fence = f"```{token.info}\n{token.content}```" if kind == "fence" else token.content
            reader.attach(fence, start, max(start, end))
        elif kind == "tr_open" and i > 0 and _in_body(tokens, i):
            cells: list[_Inline] = []
            j = i + 1
            while tokens[j].type != "tr_close":
                if tokens[j].type == "inline":
                    cells.append(_inline(tokens[j]))
                j += 1
            reader.table_row(cells, start, max(start, end))
            i = j + 1
            continue
        i += 1
    return reader.finish()


def _without_urls(text: str, links: list[tuple[str, str]]) -> str:
    for link_text, href in links:
        text = text.replace(link_text, "").replace(href, "")
    return text.strip()


def _is_navigation(item: _Inline) -> bool:
    """A list item made only of in-page anchor links, like a generated table of contents."""
    return bool(item.links) and all(href.startswith("#") for _, href in item.links)


def _in_body(tokens: list[Token], index: int) -> bool:
    for token in reversed(tokens[:index]):
        if token.type in ("tbody_open", "thead_open"):
            return token.type == "tbody_open"
    return False
