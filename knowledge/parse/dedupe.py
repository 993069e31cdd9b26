"""Merge entries that are the same paper or article, within and across sources."""

from __future__ import annotations

from knowledge.entry import Entry, Link
from knowledge.normalize import detect_lang, letters_and_digits, title_key, url_key
from knowledge.parse.draft import link_role
from knowledge.parse.lines import split_blocks

# markdown links are typed by hand; PDF text lost or garbled many of them
FORMAT_RANK = {"markdown": 0, "qa": 1, "pdf_text": 2}
_SCAN_LIMIT = 50_000  # characters of merged text searched for a block already there


def _keys(entry: Entry) -> list[str]:
    keys = [f"t:{k}" for k in (title_key(t) for t in (entry.title, *entry.alt_titles)) if k]
    primary = entry.primary_link
    if primary is not None:
        key = url_key(primary.url)
        if key:
            keys.append(f"u:{key}")
    return keys


def dedupe(entries: list[Entry]) -> tuple[list[Entry], int]:
    """Entries with equal title keys or primary-URL keys merged; returns (entries, number merged away).

    The entry from the best source (markdown, then Q&A, then PDF text; earlier first) keeps its id
    and source; the one with the most text gives the title and summary; every copy's text and links
    are kept, its other titles in `alt_titles` and its location in `also_in` (see `_merge`).
    Secondary URLs never merge, since they chain unrelated entries together.
    """
    parent = list(range(len(entries)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for index, entry in enumerate(entries):
        for key in _keys(entry):
            if key in owner:
                a, b = find(owner[key]), find(index)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                owner[key] = index

    groups: dict[int, list[int]] = {}
    for index in range(len(entries)):
        groups.setdefault(find(index), []).append(index)

    merged: list[Entry] = []
    for root in sorted(groups):
        members = [entries[i] for i in groups[root]]
        merged.append(_merge(members) if len(members) > 1 else members[0])
    return merged, len(entries) - len(merged)


def _loose_key(title: str) -> str:
    return title_key(title) or "".join(ch for ch in title.lower() if ch.isalnum())


def _richness(entry: Entry) -> int:
    return len(letters_and_digits(entry.summary)) + len(letters_and_digits(entry.body))


def _merge(members: list[Entry]) -> Entry:
    """One entry for copies of the same item. The best-ranked copy (`FORMAT_RANK`, then the order
    read) gives the id and source, so neither changes when the text of a copy does; the copy with
    the most text (ties: the best-ranked) gives the title, summary and section path. Every copy's
    body is kept, each piece of text once; links are merged, the best-ranked copy's first."""
    ranked = sorted(members, key=lambda e: FORMAT_RANK[e.source.format])
    anchor = ranked[0]
    richest = max(ranked, key=_richness)  # the first of equals: ties go to the best-ranked
    rest = [entry for entry in ranked if entry is not richest]
    titles = [*richest.alt_titles]
    for entry in rest:
        titles += [entry.title, *entry.alt_titles]
    seen = {_loose_key(richest.title)}
    alt_titles: list[str] = []
    for title in titles:
        key = _loose_key(title)
        if key not in seen:
            seen.add(key)
            alt_titles.append(title)
    summary = richest.summary or next((e.summary for e in rest if e.summary), "")
    body = _join_bodies([richest.body, *(e.body for e in rest)])
    also_in = [*anchor.also_in]
    for entry in ranked[1:]:
        also_in += [entry.source, *entry.also_in]
    return anchor.model_copy(
        update={
            "title": richest.title,
            "alt_titles": tuple(alt_titles),
            "summary": summary,
            "body": body,
            "links": _join_links(ranked),
            "section_path": richest.section_path,
            "lang": detect_lang(richest.title, f"{summary} {body[:600]}"),
            "also_in": tuple(also_in),
        }
    )


def _join_bodies(bodies: list[str]) -> str:
    """The first body whole, then each block (paragraph, code fence, math) of the others whose
    letters and digits are not already there: the same text rendered twice is kept once."""
    kept = [bodies[0]] if bodies[0] else []
    seen = letters_and_digits(bodies[0])
    exact = {seen}
    for body in bodies[1:]:
        for block in split_blocks(body.split("\n")):
            key = letters_and_digits(block.text) or block.text
            # a substring scan while the text is small; past that, exact repeats only (bounded time)
            if key in exact or (len(seen) <= _SCAN_LIMIT and key in seen):
                continue
            exact.add(key)
            if len(seen) <= _SCAN_LIMIT:
                seen += f"\x00{key}"
            kept.append(block.text)
    return "\n\n".join(kept)


def _join_links(ranked: list[Entry]) -> tuple[Link, ...]:
    """Every copy's links, once each by URL key; the first primary stays primary, later ones take
    the role their URL gives them."""
    seen: set[str] = set()
    links: list[Link] = []
    primary = False
    for entry in ranked:
        for link in entry.links:
            key = url_key(link.url) or link.url
            if key in seen:
                continue
            seen.add(key)
            if link.role == "primary":
                if primary:
                    link = link.model_copy(update={"role": link_role(link.url)})
                primary = True
            links.append(link)
    return tuple(links)
