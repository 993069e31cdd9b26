"""Merge entries that are the same paper or article, within and across sources."""

from __future__ import annotations

from knowledge.entry import Entry
from knowledge.normalize import title_key, url_key

# markdown links are typed by hand; PDF text lost or garbled many of them
FORMAT_RANK = {"markdown": 0, "qa": 1, "pdf_text": 2}


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

    The entry from the best source (markdown, then Q&A, then PDF text; earlier first) keeps its id,
    title and links; the others add their titles to `alt_titles` and their location to `also_in`.
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


def _merge(members: list[Entry]) -> Entry:
    ordered = sorted(members, key=lambda e: FORMAT_RANK[e.source.format])
    best, others = ordered[0], ordered[1:]
    alt = [*best.alt_titles]
    for other in others:
        alt += [other.title, *other.alt_titles]
    seen = {_loose_key(best.title)}
    alt_titles: list[str] = []
    for title in alt:
        key = _loose_key(title)
        if key not in seen:
            seen.add(key)
            alt_titles.append(title)
    links = best.links or next((o.links for o in others if o.links), ())
    summary = best.summary or next((o.summary for o in others if o.summary), "")
    body = best.body or next((o.body for o in others if o.body), "")
    also_in = [*best.also_in]
    for other in others:
        also_in += [other.source, *other.also_in]
    return best.model_copy(
        update={
            "alt_titles": tuple(alt_titles),
            "links": links,
            "summary": summary,
            "body": body,
            "also_in": tuple(also_in),
        }
    )
