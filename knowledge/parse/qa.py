"""Parse a loose Q&A post: the first line is the question, then items in several loose forms."""

from __future__ import annotations

import re

from knowledge.normalize import has_han
from knowledge.parse.draft import Draft, is_web_url
from knowledge.parse.pdf_text import looks_like_headline

_BULLET_URL_TITLE = re.compile(r"^[-*•]\s+<?(https?://\S+?)>?\s+(\S.*)$")
_ARXIV_ITEM = re.compile(r"^\[(\d{4}\.\d{4,5})(?:v\d+)?\]\s*(\S.*)$")
_PORTAL = re.compile(r"^(傳送門|传送门|論文|论文|paper|鏈接|链接|link)\s*[:：]\s*(\S.*)$", re.IGNORECASE)
_BULLET = re.compile(r"^[-*•]\s+(\S.*)$")
_BARE_URL = re.compile(r"^[-*•]?\s*<?(https?://\S+?)>?$")
_ABSTRACT = re.compile(r"^\s*(abstract|摘要)\s*[:：]", re.IGNORECASE)
_FOOTER = re.compile(r"^(推薦閱讀|推荐阅读|相關閱讀|相关阅读|相關文章|相关文章)\s*[:：]?\s*$")
_FOOTER_ITEM = re.compile(r"^\s*※")


def _opener(line: str, next_line: str) -> tuple[str, str] | None:
    """(title, url) when `line` opens an item; url may be empty."""
    if m := _BULLET_URL_TITLE.match(line):
        return m.group(2).strip(), m.group(1)
    if m := _ARXIV_ITEM.match(line):
        return m.group(2).strip(), f"https://arxiv.org/abs/{m.group(1)}"
    if m := _PORTAL.match(line):
        value = m.group(2).strip()
        return (value, value) if is_web_url(value) else (value, "")
    if _BARE_URL.match(line):
        return None
    if m := _BULLET.match(line):
        return m.group(1).strip(), ""
    if _ABSTRACT.match(next_line) and not has_han(line) and looks_like_headline(line):
        return line.strip(), ""
    return None


def looks_like_qa(lines: list[str]) -> bool:
    """Loose prose: almost no blank lines, and some lines take one of the item forms."""
    lines = "\n".join(lines).strip().split("\n")
    content = [line for line in lines if line.strip()]
    if len(content) < 3:
        return False
    blank = len(lines) - len(content)
    items = sum(1 for i, line in enumerate(content[1:], 1) if _opener(line, content[min(i + 1, len(content) - 1)]))
    return blank <= len(content) // 10 and items >= 1


def parse_qa(text: str) -> list[Draft]:
    lines = text.split("\n")
    numbered = [(i + 1, line.strip()) for i, line in enumerate(lines) if line.strip()]
    if not numbered:
        return []
    first_line, question = numbered[0]
    root = (question,)
    drafts: list[Draft] = []
    current = Draft(question, root, first_line, first_line, is_section=True)
    last_was_prose = False
    prose_line = first_line
    pending: list[tuple[int, str]] = []

    def close() -> None:
        if current.has_content or not current.is_section:
            drafts.append(current)

    rest = numbered[1:]
    skip_next = False
    for index, (number, line) in enumerate(rest):
        if skip_next:
            skip_next = False
            continue
        if _FOOTER.match(line):
            break
        if _FOOTER_ITEM.match(line):
            continue
        next_line = rest[index + 1][1] if index + 1 < len(rest) else ""
        opened = _opener(line, next_line)
        if opened:
            title, url = opened
            close()
            current = Draft(title, root, number, number)
            if url:
                current.add_link(url, title, opener=True, line_end=number)
            portal = _PORTAL.match(line)
            if portal:
                pending.append((number, f"{portal.group(1)}:"))  # "傳送門:": the label is the item's text too
            for intro_line, intro in pending:
                current.add_intro(intro, intro_line)
            pending = []
            if next_line == title or _BULLET.sub(r"\1", next_line) == title:
                skip_next = True  # the same title repeated on the next line
            last_was_prose = False
            continue
        bare = _BARE_URL.match(line)
        if bare:
            if last_was_prose and current.parts:
                # a description whose paper is the bare URL below it: that description opens the entry
                description = current.parts.pop()
                close()
                current = Draft(description, root, prose_line, number)
            current.add_link(bare.group(1), line_end=number)
            last_was_prose = False
            continue
        following = _opener(next_line, rest[index + 2][1] if index + 2 < len(rest) else "") if next_line else None
        if following and not _ABSTRACT.match(line):
            pending.append((number, line))  # a line right before an item introduces it
        else:
            current.add_text(line, number)
            prose_line = number
        last_was_prose = not following
    close()
    return drafts
