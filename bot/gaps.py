"""What readers could not find: the report for curators (`python -m bot gaps`).

The questions the bot refused or could only answer with related entries (a paper the collection lacks),
and the answers voted 👎, are grouped so that near-identical wordings count together, most frequent
first, with the last time each was asked.

Grouping: each question is normalised (Unicode NFKC, case folded, spaces collapsed, closing punctuation
dropped); equal normalised texts are one wording. Wordings are then compared by the knowledge core's own
search tokens (`knowledge.tokenize`: jieba's search-mode words of the text in Simplified Chinese, lower
case, English words stemmed, stopwords dropped), so "contrastive learning for speech?" and "speech
contrastive learning" or 對比學習 and 对比学习 share their tokens. A wording joins the first group (most
frequent first) whose first wording's token set is at least `SIMILARITY` alike (Jaccard); comparing with
the group's first wording, not with every member, keeps a chain of small changes from merging unrelated
questions.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.records import AskedQuestion, VoteRecord, asker_hash

SIMILARITY = 0.6
VARIANTS = 3  # other wordings a group shows
_CLOSING = re.compile(r"[\s?？!！。.,，;；:：…]+$")

Tokenize = Callable[[str], Sequence[str]]


def normalise(question: str) -> str:
    """A question's wording for counting: NFKC, case folded, spaces collapsed, closing punctuation dropped."""
    text = " ".join(unicodedata.normalize("NFKC", question).casefold().split())
    return _CLOSING.sub("", text) or text


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two token sets (1.0 for two empty ones)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass
class Gap:
    """Questions that count together: how often they were refused, named a missing paper, or got 👎."""

    question: str  # the most frequent wording, as last written
    count: int = 0
    last: datetime | None = None
    refused: int = 0
    missing: int = 0  # named a paper the collection lacks
    down: int = 0  # answers voted 👎
    askers: set[str] = field(default_factory=set)
    wordings: Counter[str] = field(default_factory=Counter)  # normalised wording -> count
    written: dict[str, str] = field(default_factory=dict)  # normalised wording -> last written form
    subjects: Counter[str] = field(default_factory=Counter)  # the missing papers named
    entries: Counter[tuple[str, str]] = field(default_factory=Counter)  # (id, title) shown in 👎 answers

    @property
    def variants(self) -> list[str]:
        """The other wordings, most frequent first."""
        main = normalise(self.question)
        return [self.written[key] for key, _ in self.wordings.most_common() if key != main][:VARIANTS]

    def as_dict(self) -> dict[str, object]:
        return {
            "question": self.question,
            "count": self.count,
            "last_asked": self.last.isoformat() if self.last else None,
            "refused": self.refused,
            "missing": self.missing,
            "voted_down": self.down,
            "askers": len(self.askers),
            "variants": self.variants,
            "papers": [subject for subject, _ in self.subjects.most_common()],
            "voted_down_entries": [
                {"id": entry_id, "title": title, "votes": votes}
                for (entry_id, title), votes in self.entries.most_common()
            ],
        }


@dataclass(frozen=True)
class _Event:
    when: datetime
    question: str
    who: str
    kind: str  # refused | missing | down
    subject: str = ""
    entries: tuple[tuple[str, str], ...] = ()


def find_gaps(
    asked: Iterable[AskedQuestion], down_votes: Iterable[VoteRecord], tokenize: Tokenize, *, limit: int | None = None
) -> list[Gap]:
    """Unanswered questions and 👎-voted answers grouped by wording (see the module's docstring), most
    frequent first, then most recent."""
    events = [_Event(q.time, q.question, q.asker, q.outcome, q.subject) for q in asked]
    events += [
        _Event(v.time, v.question, asker_hash(v.user), "down", entries=v.entries)
        for v in down_votes
        if v.vote == "down"
    ]
    by_wording: dict[str, list[_Event]] = {}
    for event in sorted(events, key=lambda event: event.when):
        by_wording.setdefault(normalise(event.question), []).append(event)
    ordered = sorted(by_wording.items(), key=lambda item: (-len(item[1]), -item[1][-1].when.timestamp(), item[0]))
    groups: list[tuple[frozenset[str], Gap]] = []
    for wording, wording_events in ordered:
        tokens = frozenset(tokenize(wording)) or frozenset({wording})
        gap = next((gap for first, gap in groups if similarity(first, tokens) >= SIMILARITY), None)
        if gap is None:
            gap = Gap(wording_events[-1].question)
            groups.append((tokens, gap))
        for event in wording_events:
            _add(gap, wording, event)
    gaps = sorted((gap for _, gap in groups), key=lambda gap: (-gap.count, -(gap.last.timestamp() if gap.last else 0)))
    return gaps[:limit] if limit is not None else gaps


def _add(gap: Gap, wording: str, event: _Event) -> None:
    gap.count += 1
    gap.last = max(gap.last, event.when) if gap.last else event.when
    gap.wordings[wording] += 1
    gap.written[wording] = event.question
    if event.who:
        gap.askers.add(event.who)
    if event.kind == "refused":
        gap.refused += 1
    elif event.kind == "missing":
        gap.missing += 1
        if event.subject:
            gap.subjects[event.subject] += 1
    else:
        gap.down += 1
        gap.entries.update(event.entries)
    if wording == normalise(gap.question):
        gap.question = event.question  # the most frequent wording (the group's first), as last written


def gaps_text(gaps: Sequence[Gap], since: datetime, total: int) -> str:
    """The report as text for a terminal (operators read it: English only)."""
    when = since.strftime("%Y-%m-%d %H:%M UTC")
    if not gaps:
        return f"No unanswered questions and no 👎 since {when}."
    lines = [
        f"Unanswered questions and 👎-voted answers since {when}: {total} in {len(gaps)} group(s), most asked first.",
        "",
    ]
    for gap in gaps:
        last = gap.last.strftime("%Y-%m-%d %H:%M UTC") if gap.last else "-"
        kinds = [
            f"{count} {label}"
            for count, label in ((gap.refused, "refused"), (gap.missing, "not in the collection"), (gap.down, "👎"))
            if count
        ]
        people = f", {len(gap.askers)} people" if len(gap.askers) > 1 else ""
        lines.append(f"{gap.count:>4}×  {gap.question}")
        lines.append(f"       last asked {last}; {', '.join(kinds)}{people}")
        if gap.variants:
            lines.append("       also asked as: " + " | ".join(f"“{variant}”" for variant in gap.variants))
        if gap.subjects:
            lines.append("       papers named: " + ", ".join(subject for subject, _ in gap.subjects.most_common()))
        for (entry_id, title), votes in gap.entries.most_common():
            shown = f"{title} ({entry_id})" if title else entry_id
            lines.append(f"       👎 {votes}× on {shown}")
    return "\n".join(lines)
