"""The held-out half of `eval/questions.jsonl`, which nothing is tuned on, over the bundled collection: its
false refusals stay within 5 % and its recall@5 within 0.05 of the figure the README reports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import MakeKb

from knowledge.evaluate import evaluate, load_questions
from knowledge.settings import BUNDLED_SOURCES, Settings

ROOT = Path(__file__).resolve().parent.parent
README_ROW = re.compile(r"^\| held-out half of `eval/questions\.jsonl`[^|]*\| ([0-9.]+) \|", re.M)


def test_the_held_out_half_holds_the_readme_s_figures(make_kb: MakeKb, tmp_path: Path) -> None:
    found = README_ROW.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert found, "the README's retrieval table has no held-out row"
    reported = float(found.group(1))
    questions = [q for q in load_questions(ROOT / "eval" / "questions.jsonl") if q.split == "heldout"]
    assert len([q for q in questions if q.expect_any]) >= 200 and len([q for q in questions if q.expect_none]) >= 40
    kb = make_kb([BUNDLED_SOURCES], tmp_path, settings_cls=Settings)
    kb.ingest()
    report = evaluate(questions, lambda query, k: [hit.entry for hit in kb.search(query, k).hits], k=10)
    assert report.false_refusal_rate <= 0.05, report.as_dict()
    assert report.recall["all"][5] >= reported - 0.05, (report.recall["all"][5], reported)
    assert report.refusal_rate >= 0.5, report.as_dict()  # out of domain: the README's figure is 0.60


@pytest.mark.parametrize("split", ["tune", "heldout"])
def test_both_halves_have_every_kind(split: str) -> None:
    questions = [q for q in load_questions(ROOT / "eval" / "questions.jsonl") if q.split == split]
    kinds = {q.kind for q in questions}
    assert {"keyword", "descriptive", "url", "ood-everyday", "ood-programming", "ood-near-ml"} <= kinds
