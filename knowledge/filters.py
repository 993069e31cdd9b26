"""Search filters: an entry language and a section path prefix, and how sections are keyed in the index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from knowledge.entry import Entry

SECTION_KEY_SEPARATOR = " / "
"""Joins a section path into the one string the index stores and `--section` accepts."""


def section_key(path: Sequence[str]) -> str:
    """`("推荐", "召回")` -> `"推荐 / 召回"`."""
    return SECTION_KEY_SEPARATOR.join(path)


def parse_section(text: str) -> tuple[str, ...]:
    """`"推荐 / 召回"` (or `"推荐/召回"`) -> `("推荐", "召回")`."""
    return tuple(part.strip() for part in text.split(SECTION_KEY_SEPARATOR.strip()) if part.strip())


LANG_GROUPS = {"zh": ("zh-Hans", "zh-Hant")}
"""Languages a filter may name that stand for several entry languages: `zh` is either Chinese script."""


@dataclass(frozen=True)
class Where:
    """A search filter: an entry language (`zh`: either Chinese script), and/or a section path the entry
    must lie under."""

    lang: str | None = None
    section_prefix: tuple[str, ...] = ()

    @property
    def langs(self) -> tuple[str, ...]:
        """The entry languages the filter lets through (empty: all)."""
        if not self.lang:
            return ()
        return LANG_GROUPS.get(self.lang, (self.lang,))

    @property
    def everything(self) -> bool:
        """Whether the filter lets every entry through."""
        return not self.lang and not self.section_prefix

    def matches_section(self, section: str) -> bool:
        """Whether a stored section key lies under `section_prefix`."""
        if not self.section_prefix:
            return True
        prefix = section_key(self.section_prefix)
        return section == prefix or section.startswith(prefix + SECTION_KEY_SEPARATOR)

    def allows(self, entry: Entry) -> bool:
        """Whether `entry` passes the filter."""
        if self.lang and entry.lang not in self.langs:
            return False
        return self.matches_section(section_key(entry.section_path))
