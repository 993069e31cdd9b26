"""Retrieval evaluation: recall@k per language, MRR@10, refusals, as `shared/eval/README.md` defines them,
and the same per question kind and language pair when the question set records them (`eval/`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

from knowledge.entry import Entry

KS = (1, 5, 10)
_SPACE = re.compile(r"\s+")


class Question(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    query: str
    lang: str = "?"
    expect_any: tuple[str, ...] = ()
    expect_none: bool = False
    kind: str = ""  # e.g. keyword, descriptive, url, ood-everyday
    pair: str = ""  # question language -> entry language, e.g. en->zh
    split: str = ""  # tune or heldout

    @model_validator(mode="after")
    def _one_expectation(self) -> Question:
        if bool(self.expect_any) == self.expect_none:
            raise ValueError(f"question {self.id}: give expect_any or expect_none: true")
        return self


def load_questions(path: Path) -> list[Question]:
    """One JSON object a line; a bad line raises ValueError naming the file and line."""
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            questions.append(Question.model_validate_json(line))
        except ValueError as error:
            raise ValueError(f"{path}:{number}: {error}") from None
    return questions


def _squash(text: str) -> str:
    return _SPACE.sub("", text).lower()


def is_hit(entry: Entry, expect_any: Sequence[str]) -> bool:
    """An entry answers when its text contains any expected string, ignoring case and whitespace."""
    text = _squash(entry.search_text())
    return any(_squash(expected) in text for expected in expect_any)


@dataclass
class Report:
    """The metrics of one retrieval method over one question set."""

    method: str
    questions: int = 0
    recall: dict[str, dict[int, float]] = field(default_factory=dict)  # lang ("all") -> k -> recall
    mrr10: float = 0.0
    refusal_rate: float = 0.0  # of expect_none questions that got no results
    false_refusal_rate: float = 0.0  # of expect_any questions that got no results
    misses: list[str] = field(default_factory=list)  # ids answered wrongly, for tuning
    counts: dict[str, int] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)  # "kind:descriptive", "pair:en->zh" -> figures

    def as_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "questions": self.questions,
            "recall": {lang: {f"@{k}": round(v, 4) for k, v in by_k.items()} for lang, by_k in self.recall.items()},
            "mrr@10": round(self.mrr10, 4),
            "refusal_rate": round(self.refusal_rate, 4),
            "false_refusal_rate": round(self.false_refusal_rate, 4),
            "counts": self.counts,
            "groups": {name: group.as_dict() for name, group in self.groups.items()},
            "misses": self.misses,
        }


@dataclass
class Group:
    """The figures of one kind or language pair: recall@5 and false refusals in domain, refusals out of it."""

    questions: int = 0
    found_at_5: int = 0
    refused: int = 0  # of the in-domain questions

    ood: int = 0
    ood_refused: int = 0

    def as_dict(self) -> dict[str, object]:
        data: dict[str, object] = {}
        if self.questions:
            data |= {"questions": self.questions, "recall@5": round(self.found_at_5 / self.questions, 4)}
            data["false_refusals"] = self.refused
        if self.ood:
            data |= {"out_of_domain": self.ood, "refused": self.ood_refused}
        return data


Retrieve = Callable[[str, int], Sequence[Entry]]


def evaluate(questions: Sequence[Question], retrieve: Retrieve, *, method: str = "hybrid", k: int = 10) -> Report:
    """Ask every question through `retrieve(query, k)`; an empty result is a refusal."""
    report = Report(method=method, questions=len(questions))
    ranks: dict[str, list[int | None]] = {}
    refused_none = answered_none = refused_any = 0
    for question in questions:
        results = list(retrieve(question.query, k))[:k]
        groups = [report.groups.setdefault(name, Group()) for name in _group_names(question)]
        if question.expect_none:
            if results:
                answered_none += 1
                report.misses.append(question.id)
            else:
                refused_none += 1
            for group in groups:
                group.ood += 1
                group.ood_refused += not results
            continue
        if not results:
            refused_any += 1
        rank = next((i + 1 for i, entry in enumerate(results) if is_hit(entry, question.expect_any)), None)
        for group in groups:
            group.questions += 1
            group.found_at_5 += rank is not None and rank <= 5
            group.refused += not results
        if rank is None or rank > 1:
            report.misses.append(question.id)
        for lang in ("all", question.lang):
            ranks.setdefault(lang, []).append(rank)
    for lang, lang_ranks in sorted(ranks.items()):
        report.recall[lang] = {
            cut: sum(1 for r in lang_ranks if r is not None and r <= cut) / len(lang_ranks) for cut in KS if cut <= k
        }
    answerable = ranks.get("all", [])
    report.mrr10 = sum(1 / r for r in answerable if r is not None and r <= 10) / max(len(answerable), 1)
    none_total = refused_none + answered_none
    report.refusal_rate = refused_none / none_total if none_total else 0.0
    report.false_refusal_rate = refused_any / max(len(answerable), 1)
    report.groups = dict(sorted(report.groups.items()))
    report.counts = {
        "answerable": len(answerable),
        "out_of_domain": none_total,
        "refused_out_of_domain": refused_none,
        "refused_answerable": refused_any,
    }
    return report


def _group_names(question: Question) -> list[str]:
    names = [
        name for name in (question.kind and f"kind:{question.kind}", question.pair and f"pair:{question.pair}") if name
    ]
    if question.kind and question.pair and _cross_lingual(question.pair):
        names.append(f"kind:{question.kind} cross-lingual")  # e.g. an English sentence about a Chinese headline
    return names


def _cross_lingual(pair: str) -> bool:
    """Whether `pair` (question language -> entry language) crosses between English and Chinese (Simplified
    and Traditional count as one language here)."""
    asked, _, entry = pair.partition("->")
    family = {"en": "en", "zh": "zh", "zh-tw": "zh", "zh-hans": "zh", "zh-hant": "zh"}
    return bool(entry) and family.get(asked.lower(), asked) != family.get(entry.lower(), entry)
