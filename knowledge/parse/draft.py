"""The mutable draft every format parser fills in, and how a draft becomes a validated `Entry`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from knowledge.entry import SUMMARY_LIMIT, Entry, Format, Link, LinkRole, SourceRef, strip_heading_number
from knowledge.normalize import detect_lang, title_key, url_key
from knowledge.parse.summary import clean_summary

CODE_HOSTS = ("github.com", "gitlab.com", "gitee.com", "bitbucket.org", "colab.research.google.com")
SUMMARY_LABEL = re.compile(r"^\s*(摘要|Abstract|TL;DR|简介|簡介)\s*[:：]\s*", re.IGNORECASE)
RECOMMEND_LABEL = re.compile(r"^\s*(推荐|推薦)\s*[:：]\s*")
_URL_TRAILER = ").,;:!?>]}'\"，。；：！？、）》】"


def clean_url(url: str) -> str:
    """Strip markup and punctuation that cling to URLs found in running text."""
    url = url.strip().strip("<>")
    while url and url[-1] in _URL_TRAILER:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def is_web_url(url: str) -> bool:
    return url.startswith(("http://", "https://")) and url_key(url) is not None


def link_role(url: str) -> LinkRole:
    host = url.split("/")[2].lower().removeprefix("www.") if url.count("/") >= 2 else ""
    return "code" if host in CODE_HOSTS else "extra"


@dataclass
class Draft:
    """An entry while its lines are still being read."""

    title: str
    section_path: tuple[str, ...]
    line_start: int
    line_end: int
    is_section: bool = False
    kept: bool = False  # already in the parser's drafts
    alt_titles: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    intro: list[str] = field(default_factory=list)
    links: list[tuple[str, str, bool]] = field(default_factory=list)

    def add_text(self, text: str, line_end: int) -> None:
        text = text.strip("\n")
        if text.strip():
            self.parts.append(text)
        self.line_end = max(self.line_end, line_end)

    def add_link(self, url: str, text: str = "", *, opener: bool = False, line_end: int = 0) -> None:
        url = clean_url(url)
        if is_web_url(url):
            self.links.append((url, text.strip(), opener))
        self.line_end = max(self.line_end, line_end)

    def add_intro(self, text: str, line_start: int) -> None:
        """A line that introduced this entry: part of its body, never its summary."""
        self.intro.append(text.strip())
        self.line_start = min(self.line_start, line_start)

    @property
    def has_content(self) -> bool:
        return bool(self.parts or self.links or self.alt_titles)


def _summary(parts: list[str], links: Sequence[str] = ()) -> str:
    """The first 摘要 paragraph, else the first 推荐 one, else the first of prose, made clean
    (`clean_summary`); a paragraph with nothing of a summary left gives way to the next of its kind."""
    labelled = [SUMMARY_LABEL.sub("", p) for p in parts if SUMMARY_LABEL.match(p)]
    recommended = [RECOMMEND_LABEL.sub("", p) for p in parts if RECOMMEND_LABEL.match(p)]
    prose = [
        p
        for p in parts
        if not p.lstrip().startswith(("```", "$$", "|"))
        and "\t" not in p
        and not (SUMMARY_LABEL.match(p) or RECOMMEND_LABEL.match(p))
    ]
    for candidates in (labelled, recommended, prose):
        for candidate in candidates:
            text = clean_summary(candidate, links)
            if text:
                return shorten(text, SUMMARY_LIMIT)
    return ""


def shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    for stop in ("。", ". ", "；", "! ", "？", "? "):
        at = cut.rfind(stop)
        if at > limit // 2:
            return cut[: at + len(stop)].rstrip()
    return cut.rstrip() + "…"


def _links(raw: list[tuple[str, str, bool]]) -> tuple[Link, ...]:
    seen: set[str] = set()
    unique: list[tuple[str, str, bool]] = []
    for url, text, opener in raw:
        key = url_key(url) or url
        if key not in seen:
            seen.add(key)
            unique.append((url, text, opener))
    roles: list[LinkRole] = ["primary" if opener else link_role(url) for url, _, opener in unique]
    if "primary" not in roles and "extra" in roles:
        roles[roles.index("extra")] = "primary"
    if roles.count("primary") > 1:
        first = roles.index("primary")
        roles = [role if role != "primary" or i == first else "extra" for i, role in enumerate(roles)]
    return tuple(Link(url=url, text=text, role=role) for (url, text, _), role in zip(unique, roles, strict=True))


def entry_id(file: str, section_path: tuple[str, ...], title: str, ordinal: int) -> str:
    """Stable across unrelated edits: depends on file, section titles and title, never on line numbers."""
    sections = "/".join(strip_heading_number(s) for s in section_path)
    key = title_key(title) or title.strip().lower()
    raw = f"{file}\x1f{sections}\x1f{key}\x1f{ordinal}"
    return hashlib.sha1(raw.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def finish(drafts: list[Draft], file: str, fmt: Format) -> list[Entry]:
    """Turn a file's drafts into validated entries with stable ids; `drafts` is used up, each draft
    freed once it is an entry, so a large file never holds both in full."""
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    drafts.reverse()
    while drafts:
        draft = drafts.pop()
        title = " ".join(draft.title.split())
        if not title and draft.is_section and not draft.section_path:
            title = PurePosixPath(file).stem  # content before the first heading of an untitled document
        if not title:
            continue
        base = entry_id(file, draft.section_path, title, 0)
        ordinal = seen.get(base, 0)
        seen[base] = ordinal + 1
        body = "\n\n".join([*draft.intro, *draft.parts])
        summary = _summary(draft.parts or draft.intro, [url for url, _, _ in draft.links])
        alt = tuple(dict.fromkeys(a for a in (" ".join(x.split()) for x in draft.alt_titles) if a and a != title))
        entries.append(
            Entry(
                id=base if ordinal == 0 else entry_id(file, draft.section_path, title, ordinal),
                title=title,
                alt_titles=alt,
                summary=summary,
                body=body,
                links=_links(draft.links),
                section_path=draft.section_path,
                source=SourceRef(file=file, line_start=draft.line_start, line_end=draft.line_end, format=fmt),
                lang=detect_lang(title, f"{summary} {body[:600]}"),
            )
        )
    return entries


class Sections:
    """The reading state both structured parsers share: the heading stack, the open draft, and
    lines ending in ':' that wait to learn whether they introduce an entry or belong to the one above."""

    def __init__(self, document_title: str = "") -> None:
        self.document_title = document_title  # content before any heading: "" names it after the file
        self.drafts: list[Draft] = []
        self.stack: list[tuple[int, str]] = []
        self.current: Draft | None = None
        self.intro: list[tuple[int, str]] = []
        self._sections: dict[tuple[str, ...], Draft] = {}
        self._entered = 0  # how many drafts were kept when the last heading was entered

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(title for _, title in self.stack)

    def close(self) -> None:
        draft = self.current
        if draft is not None and (not draft.is_section or draft.has_content) and not draft.kept:
            draft.kept = True  # a section draft is closed each time an entry interrupts it
            self.drafts.append(draft)
        self.current = None

    def enter(self, level: int, title: str) -> None:
        """A heading closes the open entry and replaces the headings at its level and below."""
        self.flush_intro()
        self.close()
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, title))
        self._entered = len(self.drafts)

    def promote(self, title: str, start: int, end: int) -> Draft | None:
        """A title line right under a heading, with nothing but links between them: it titles the entry
        the heading would have named, and the heading stays in its section path and alternative titles.
        None when the line is not right under a heading (the caller reads it as it would otherwise)."""
        if not self.stack or self.intro or len(self.drafts) != self._entered:
            return None  # an entry or an introducing line came between the heading and this line
        draft = self.current if self.current is not None else self.target(start)
        if not draft.is_section or draft.kept or draft.parts or draft.intro or draft.alt_titles:
            return None
        if self._sections.get(self.path) is draft:
            del self._sections[self.path]
        draft.alt_titles.append(draft.title)
        draft.title = " ".join(title.split())
        draft.is_section = False
        draft.line_start = min(draft.line_start, start)
        draft.line_end = max(draft.line_end, end)
        return draft

    def open(self, title: str, line: int) -> Draft:
        self.close()
        self.current = Draft(title=" ".join(title.split()), section_path=self.path, line_start=line, line_end=line)
        for intro_line, intro in self.intro:
            self.current.add_intro(intro, intro_line)
        self.intro = []
        return self.current

    def target(self, line: int, section_title: str | None = None) -> Draft:
        """The draft loose content belongs to: the open entry, else a section entry for the heading
        (before any heading, for the document)."""
        if self.current is not None:
            return self.current
        # loose content after an entry under the same heading joins one section entry
        section = self._sections.get(self.path)
        if section is None:
            title = section_title or (self.stack[-1][1] if self.stack else self.document_title)
            section = self._sections[self.path] = Draft(title, self.path, line, line, is_section=True)
        self.current = section
        return section

    def flush_intro(self) -> None:
        """An introducing line followed by content (not an entry) belongs to the entry above."""
        pending, self.intro = self.intro, []
        for line, text in pending:
            self.target(line).add_text(text, line)

    def attach(self, text: str, start: int, end: int, links: Sequence[tuple[str, str]] = ()) -> None:
        """Add prose, code, math or links (as (text, url)) to the draft they belong to."""
        self.flush_intro()
        draft = self.target(start)
        draft.add_text(text, end)
        for link_text, url in links:
            draft.add_link(url, link_text, line_end=end)

    def finish(self) -> list[Draft]:
        self.flush_intro()
        self.close()
        return self.drafts
