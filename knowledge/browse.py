"""The collection's sections as a tree with entry counts, for browsing and for naming a section to filter by.

A section is a path (`("9 推荐系统", "9.3 召回")`); it counts the entries in it and in its subsections.
Sections and entries are in the collection's own order: sections by the numbers their names start with
(`9 …` before `10 …`), then by where their first entry is; entries by their place in their source. A
reader names a section by part of its name in either language: `推荐`, `recommend` (through the bilingual
glossary), `9` or `9.3` (the numbers the curator gave), or its whole path (`9 推荐系统 / 9.3 召回`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from knowledge.entry import Entry
from knowledge.filters import parse_section, section_key
from knowledge.lexical import glossary_notions
from knowledge.normalize import to_simplified

_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)(?:\s|$)")
_SPACES = re.compile(r"\s+")


def _fold(text: str) -> str:
    """What matching compares: NFKC, Simplified, lower case, single spaces."""
    return _SPACES.sub(" ", to_simplified(unicodedata.normalize("NFKC", text)).lower()).strip()


def _number(name: str) -> tuple[int, ...]:
    """`"9.10 x"` → (9, 10), which sorts after `"9.2 y"`; a name without a number sorts after numbered ones."""
    number = _NUMBER.match(name)
    return tuple(int(part) for part in number[1].split(".")) if number else (1 << 30,)


def _contains(name: str, term: str) -> bool:
    """Whether `name` contains `term`; a Latin term only at the start of a word (`graph` is not in
    `bytograph`)."""
    if term.isascii() and term[:1].isalnum():
        return re.search(rf"(?<![a-z0-9]){re.escape(term)}", name) is not None
    return term in name


def section_id(path: Sequence[str]) -> str:
    """A short stable id of a section path (12 hex digits), for places with little room: Discord's
    custom ids and select values, Slack's action values."""
    return hashlib.sha1(section_key(path).encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class Section:
    """One section of the tree: its path, how many entries it holds (`count`, subsections included;
    `direct`, its own), and its subsections."""

    path: tuple[str, ...]
    count: int
    direct: int
    children: tuple[Section, ...] = field(default=(), repr=False)

    @property
    def name(self) -> str:
        return self.path[-1] if self.path else ""

    @property
    def key(self) -> str:
        return section_key(self.path)

    @property
    def id(self) -> str:
        return section_id(self.path)


@lru_cache(maxsize=1)
def _glossary() -> tuple[tuple[frozenset[str], frozenset[str]], ...]:
    """(English variants, Chinese variants) of each notion, folded."""
    return tuple(
        (frozenset(_fold(v) for v in english if v), frozenset(_fold(v) for v in chinese if v))
        for english, chinese in glossary_notions()
    )


def _terms(query: str) -> set[str]:
    """The query, and the other language's names of a notion the query names (or begins to name):
    `recommend` → 推荐, 推荐系统; `强化` → reinforcement learning."""
    terms = {query}
    if len(query) < 2:
        return terms
    for english, chinese in _glossary():
        if any(query == v or (len(query) >= 3 and v.startswith(query)) for v in english) or query in chinese:
            terms |= english | chinese
    return terms


class SectionTree:
    """The sections of a set of entries."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        counts: dict[tuple[str, ...], list[int]] = {}  # path -> [count, direct]
        self._first: dict[tuple[str, ...], tuple[str, int]] = {}  # path -> where its first entry is
        self._entries: dict[tuple[str, ...], list[Entry]] = {}
        self.total = 0
        for entry in entries:
            self.total += 1
            path = entry.section_path
            place = (entry.source.file, entry.source.line_start)
            self._entries.setdefault(path, []).append(entry)
            for depth in range(1, len(path) + 1):
                counts.setdefault(path[:depth], [0, 0])[0] += 1
                self._first[path[:depth]] = min(self._first.get(path[:depth], place), place)
            if path:
                counts[path][1] += 1
        for listed in self._entries.values():
            listed.sort(key=lambda entry: (entry.source.file, entry.source.line_start, entry.id))
        self._by_path: dict[tuple[str, ...], Section] = {}
        self.roots = self._build((), counts)
        self._by_id = {section.id: section for section in self._by_path.values()}
        self._positions = {path: at for at, path in enumerate(self._by_path)}  # the tree's order, depth first

    def _build(self, parent: tuple[str, ...], counts: dict[tuple[str, ...], list[int]]) -> tuple[Section, ...]:
        names = sorted({path[len(parent)] for path in counts if len(path) == len(parent) + 1 and path[:-1] == parent})
        sections = []
        for name in sorted(names, key=lambda name: (_number(name), self._first[(*parent, name)], name)):
            path = (*parent, name)
            count, direct = counts[path]
            section = Section(path, count, direct, self._build(path, counts))
            self._by_path[path] = section
            sections.append(section)
        return tuple(sections)

    def __len__(self) -> int:
        return len(self._by_path)

    def get(self, path: Sequence[str]) -> Section | None:
        """The section at `path`, or None."""
        return self._by_path.get(tuple(path))

    def by_id(self, ident: str) -> Section | None:
        """The section whose `id` is `ident`, or None."""
        return self._by_id.get(ident)

    def entries_in(self, path: Sequence[str]) -> list[Entry]:
        """The entries right in the section at `path` (not in its subsections), in the collection's order;
        `()`: the entries in no section."""
        return list(self._entries.get(tuple(path), ()))

    def find(self, text: str, limit: int = 25) -> list[Section]:
        """The sections `text` names, best first, at most `limit`: a whole path or name first, then
        sections numbered `text`, then those whose name contains it or its glossary translations (a
        top-level section before a subsection, then the larger). Empty text: the top-level sections."""
        query = _fold(text)
        if not query:
            return list(self.roots[:limit])
        numbered = bool(re.fullmatch(r"\d+(?:\.\d+)*", query))
        terms = set() if numbered else _terms(query)
        wanted = parse_section(text)
        ranked: list[tuple[tuple[int, int, int, int], Section]] = []
        for path, section in self._by_path.items():
            name = _fold(section.name)
            number = _NUMBER.match(section.name)
            if tuple(wanted) == path or query == name:
                rank = 0
            elif number and number[1] == query:
                rank = 1
            elif any(_contains(name, term) for term in terms) or (len(wanted) > 1 and query in _fold(section.key)):
                rank = 2
            else:
                continue
            ranked.append(((rank, len(path), -section.count, self._positions[path]), section))
        ranked.sort(key=lambda pair: pair[0])
        return [section for _, section in ranked[:limit]]

    def resolve(self, text: str) -> Section | None:
        """The one section `text` names best: the section whose `id` it is, else `find`'s first; None
        when none matches."""
        if section := self.by_id(text.strip()):
            return section
        found = self.find(text, 1) if _fold(text) else []
        return found[0] if found else None
