"""Typed values that flow from the parser to the index: `Entry`, `Link`, `SourceRef`."""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

Format = Literal["markdown", "pdf_text", "qa"]
Lang = Literal["zh-Hans", "zh-Hant", "en"]
LinkRole = Literal["primary", "code", "extra", "location"]

SUMMARY_LIMIT = 400
CHUNK_LIMIT = 1500


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Link(_Frozen):
    """One URL of an entry; `role` says whether it is the entry's own page, its code, or extra (or, for
    `Entry.location`, the entry's place in the collection)."""

    url: str
    text: str = ""
    role: LinkRole = "extra"

    @field_validator("url")
    @classmethod
    def _url_is_web(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"not a web URL: {value!r}")
        return value


class SourceRef(_Frozen):
    """Where an entry was read: file (relative to its source root), 1-based line span, format."""

    file: str
    line_start: int
    line_end: int
    format: Format

    @model_validator(mode="after")
    def _span_is_ordered(self) -> SourceRef:
        if not 1 <= self.line_start <= self.line_end:
            raise ValueError(f"bad line span {self.line_start}-{self.line_end}")
        return self

    def __str__(self) -> str:
        return f"{self.file}:{self.line_start}-{self.line_end}"


class Entry(_Frozen):
    """One answerable item of the collection: a headline or paper with the lines that describe it."""

    id: str
    title: str
    alt_titles: tuple[str, ...] = ()
    summary: str = ""
    body: str = ""
    links: tuple[Link, ...] = ()
    section_path: tuple[str, ...] = ()
    source: SourceRef
    lang: Lang
    also_in: tuple[SourceRef, ...] = ()
    location: Link | None = None  # its place in the collection on the web, filled at ingest (knowledge.locations)

    @field_validator("title")
    @classmethod
    def _title_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("an entry needs a non-empty title")
        return value

    @field_validator("summary")
    @classmethod
    def _summary_short(cls, value: str) -> str:
        if len(value) > SUMMARY_LIMIT:
            raise ValueError(f"summary is {len(value)} characters, over {SUMMARY_LIMIT}")
        return value

    @property
    def primary_link(self) -> Link | None:
        return next((link for link in self.links if link.role == "primary"), None)

    @property
    def code_link(self) -> Link | None:
        return next((link for link in self.links if link.role == "code"), None)

    @property
    def main_link(self) -> Link | None:
        """The link an answer gives the entry: its own primary link, else its place in the collection
        (`location`, whose text says where: "§3.24 …"); None when neither is known, and then `place`
        says where it sits."""
        return self.primary_link or self.location

    @property
    def shown_title(self) -> str:
        """The title as an answer shows it: an entry titled only by its section's heading ("小结", "beta作用")
        is named with the section above it ("DPO › beta作用"), which says what it is a part of."""
        if len(self.section_path) >= 2 and self.title.strip() == strip_heading_number(self.section_path[-1]):
            return f"{strip_heading_number(self.section_path[-2])} › {self.title}"
        return self.title

    @property
    def place(self) -> str:
        """Where the entry sits in the collection, as text: its file and section (`notes.md › 推荐 › 召回`)."""
        return " › ".join((self.source.file, *self.section_path))

    def search_text(self, *, titles: bool = True) -> str:
        """Everything a reader could match on: titles (unless `titles` is false), summary, body, URLs and
        section path."""
        parts = [self.title, *self.alt_titles] if titles else []
        parts += [self.summary, self.body]
        parts += [link.url for link in self.links]
        parts += list(self.section_path)
        return "\n".join(part for part in parts if part)

    def content_hash(self) -> str:
        """A hash of everything the index stores, so unchanged entries are never embedded again."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:32]

    def chunks(self, limit: int = CHUNK_LIMIT) -> list[str]:
        """The body split at paragraph boundaries into pieces of at most `limit` characters."""
        return split_text(self.body, limit) if self.body else [""]


def split_text(text: str, limit: int) -> list[str]:
    """Split `text` into pieces no longer than `limit`, preferring blank lines, then lines, then hard cuts."""
    pieces: list[str] = []
    current = ""
    for paragraph in text.split("\n\n"):
        candidate = f"{current}\n\n{paragraph}" if current else paragraph
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while len(paragraph) > limit:
            cut = paragraph.rfind("\n", 0, limit)
            cut = cut if cut > limit // 2 else limit
            pieces.append(paragraph[:cut])
            paragraph = paragraph[cut:].lstrip("\n")
        current = paragraph
    if current or not pieces:
        pieces.append(current)
    return pieces


_HEADING_NUMBER = re.compile(r"^\d+(\.\d+)*\s*")


def strip_heading_number(heading: str) -> str:
    """A section's heading without its number (`3.24 cross-entropy` → `cross-entropy`)."""
    return _HEADING_NUMBER.sub("", heading).strip() or heading
