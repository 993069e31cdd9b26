"""Papers and code by identifier: arXiv ids and URLs, OpenReview links, GitHub repositories, any URL.

A question that is, or contains, an identifier is looked up exactly before it is searched. Both sides
are normalised to the same key: http and https, `www.`, trailing slashes, `/abs/` or `/pdf/`, a `.pdf`
suffix and a version (`v2`) all give `arxiv:1711.05101`; a GitHub link to a file of a repository gives
the repository, `github:owner/repo` (lower case, no `.git`); an OpenReview forum or pdf link gives
`openreview:<id>`; any other URL gives `url:<host without www><path without trailing slash><query>`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from knowledge.entry import Entry
from knowledge.normalize import url_key

Kind = Literal["arxiv", "openreview", "github", "url"]

# A new-style arXiv id is YYMM.NNNN(N); the month keeps decimals such as 2019.1234 out.
_NEW_ID = r"\d{2}(?:0[1-9]|1[0-2])\.\d{4,5}"
_OLD_ID = r"[a-z][a-z\-]+(?:\.[A-Z]{2})?/\d{7}"
_ARXIV_URL = re.compile(
    rf"(?:https?://)?(?:www\.|export\.)?arxiv\.org/(?:abs|pdf|html|format)/(?P<id>{_NEW_ID}|{_OLD_ID})"
    r"(?:v\d+)?(?:\.pdf)?",
    re.I,
)
_ARXIV_NAMED = re.compile(rf"\barxiv\s*[:：]?\s*(?P<id>{_NEW_ID}|{_OLD_ID})(?:v\d+)?", re.I)
_ARXIV_BARE = re.compile(rf"(?<![\w./-])(?P<id>{_NEW_ID})(?:v\d+)?(?![\w/-]|\.\d)")
_ARXIV_BRACKETED = re.compile(rf"\[(?P<id>{_NEW_ID})(?:v\d+)?\]")
_URL = re.compile(
    r"(?:https?://|www\.)[^\s<>\"'`，。、；）)\]}]+|(?:arxiv\.org|github\.com|openreview\.net)/[^\s<>\"'`，。、；）)\]}]+",
    re.I,
)
_GITHUB_RESERVED = frozenset(
    "about apps collections contact customer-stories enterprise events explore features issues login marketplace "
    "new notifications orgs pricing pulls search security settings sponsors topics trending".split()
)


@dataclass(frozen=True)
class Identifier:
    """A paper or code identifier, normalised: `key` is what entries are matched on, `label` how a reply
    names it (`arXiv:1711.05101`, `github.com/owner/repo`, `openreview.net/forum?id=…`, the URL)."""

    kind: Kind
    key: str
    label: str


def _arxiv(paper_id: str) -> Identifier:
    return Identifier("arxiv", f"arxiv:{paper_id.lower()}", f"arXiv:{paper_id}")


def identify_url(url: str) -> Identifier | None:
    """The identifier a URL stands for, or None when it is not a web address."""
    text = url.strip().rstrip(".,;:!?")
    if not re.match(r"https?://", text, re.I):
        text = "https://" + text
    if arxiv := _ARXIV_URL.match(text):
        return _arxiv(arxiv["id"])
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    host = (parts.hostname or "").lower().removeprefix("www.")
    if not host or "." not in host:
        return None
    segments = [segment for segment in parts.path.split("/") if segment]
    if host == "github.com" and len(segments) >= 2 and segments[0].lower() not in _GITHUB_RESERVED:
        owner, repo = segments[0], segments[1].removesuffix(".git")
        return Identifier("github", f"github:{owner.lower()}/{repo.lower()}", f"github.com/{owner}/{repo}")
    if host == "openreview.net" and (paper := parse_qs(parts.query).get("id")):
        return Identifier("openreview", f"openreview:{paper[0]}", f"openreview.net/forum?id={paper[0]}")
    key = url_key(text)
    return Identifier("url", f"url:{key}", text) if key else None


def identifiers_in(text: str) -> list[Identifier]:
    """The identifiers a question is or contains, in the order it names them, each once: URLs, and arXiv
    ids written out (`arXiv:1711.05101`, `1711.05101v2`)."""
    found: list[tuple[int, Identifier]] = []
    rest = text
    for match in _URL.finditer(text):
        if identifier := identify_url(match[0]):
            found.append((match.start(), identifier))
        rest = rest[: match.start()] + " " * len(match[0]) + rest[match.end() :]  # positions kept
    for pattern in (_ARXIV_NAMED, _ARXIV_BARE):
        found += [(match.start(), _arxiv(match["id"])) for match in pattern.finditer(rest)]
    unique: dict[str, Identifier] = {}
    for _, identifier in sorted(found, key=lambda pair: pair[0]):
        unique.setdefault(identifier.key, identifier)
    return list(unique.values())


def without_identifiers(text: str) -> str:
    """`text` with its identifiers (URLs, arXiv ids and an `arXiv:` before them) taken out: the words left
    to search for related entries."""
    text = _URL.sub(" ", text)
    text = _ARXIV_NAMED.sub(" ", text)
    text = _ARXIV_BARE.sub(" ", text)
    return " ".join(text.split())


def entry_identifiers(entry: Entry) -> list[Identifier]:
    """What identifies `entry`: its links (primary first), then arXiv ids its titles and text name
    (`arXiv:1711.05101`, `[1711.05101]`)."""
    found: dict[str, Identifier] = {}
    links = sorted(entry.links, key=lambda link: link.role != "primary")
    for link in links:
        if identifier := identify_url(link.url):
            found.setdefault(identifier.key, identifier)
    for identifier in _named_arxiv("\n".join((entry.title, *entry.alt_titles, entry.summary, entry.body))):
        found.setdefault(identifier.key, identifier)
    return list(found.values())


def _named_arxiv(text: str) -> Iterator[Identifier]:
    """The arXiv ids `text` names (`arxiv.org/abs/…`, `arXiv:1711.05101`, `[1711.05101]`), pattern by pattern."""
    for pattern in (_ARXIV_URL, _ARXIV_NAMED, _ARXIV_BRACKETED):
        for match in pattern.finditer(text):
            yield _arxiv(match["id"])


def arxiv_id(entry: Entry) -> str | None:
    """The arXiv id (`1711.05101`) of the paper the entry is: its primary link's, else that of a link named
    by one of its titles (a Chinese headline's paper), else one its titles name (`[1711.05101] Title`); None
    otherwise. Not any arXiv link of its text: a note citing Longformer is not Longformer."""
    titles = {entry.title.strip(), *(title.strip() for title in entry.alt_titles)}
    links = sorted(entry.links, key=lambda link: link.role != "primary")
    for link in links:
        if link.role == "primary" or link.text.strip() in titles:
            identifier = identify_url(link.url)
            if identifier is not None and identifier.kind == "arxiv":
                return identifier.key.removeprefix("arxiv:")
    if named := next(_named_arxiv("\n".join(titles)), None):
        return named.key.removeprefix("arxiv:")
    if not entry.links:  # a Q&A item `[1810.04805] BERT …` with no link: the one id its text names
        ids = {i.key for i in entry_identifiers(entry) if i.kind == "arxiv"}
        if len(ids) == 1:
            return ids.pop().removeprefix("arxiv:")
    return None


@dataclass(frozen=True)
class Lookup:
    """What a question names (`identifiers`: papers and code first, then other URLs) and the entries
    those name exactly."""

    identifiers: tuple[Identifier, ...]
    entries: tuple[Entry, ...]
    found: tuple[Identifier, ...] = ()  # the identifiers that named an entry

    @property
    def papers(self) -> tuple[Identifier, ...]:
        """The identifiers of papers and code (arXiv, OpenReview, GitHub): a reply says when they are missing."""
        return tuple(identifier for identifier in self.identifiers if identifier.kind != "url")


class IdentifierIndex:
    """Which entries each identifier names, for exact lookup; built once per loaded version of the index."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self._entries: dict[str, list[Entry]] = {}
        for entry in entries:
            for identifier in entry_identifiers(entry):
                self._entries.setdefault(identifier.key, []).append(entry)

    def find(self, identifiers: Iterable[Identifier]) -> list[Entry]:
        """The entries any of `identifiers` names, in the order of the identifiers, each once."""
        found: dict[str, Entry] = {}
        for identifier in identifiers:
            for entry in self._entries.get(identifier.key, ()):
                found.setdefault(entry.id, entry)
        return list(found.values())

    def lookup(self, text: str) -> Lookup:
        """The identifiers `text` names and the entries they name."""
        identifiers = identifiers_in(text)
        found = tuple(identifier for identifier in identifiers if identifier.key in self._entries)
        return Lookup(tuple(identifiers), tuple(self.find(identifiers)), found)
