"""Assign every question in eval/questions.jsonl to the "tune" or "heldout" half.

The split was made once, with SEED below, and the result is stored in the
`split` field of questions.jsonl.  Re-running this script on the same file
reproduces the same assignment (it ignores any existing `split` values).

How it splits
-------------
* Questions are stratified by (kind, lang): "keyword", "descriptive", "url" and
  the three out-of-domain kinds, each crossed with the question language, so
  both halves get the same mix of in-domain / out-of-domain questions, kinds
  and languages (to within one question per stratum).
* In-domain questions that share an `expect_any` string (compared the way the
  matcher compares: lower case, all whitespace removed) are about the same
  entry, so they are kept together in one half.  Otherwise tuning on one
  phrasing of a question would leak the answer to its held-out twin.
* Groups are visited in a random order drawn from random.Random(SEED) (larger
  groups first), and each goes to the half where its stratum (kind x lang),
  its top-level section and its language pair currently hold fewer questions;
  ties are broken by the same random generator.  So sections and language
  pairs are also split about evenly.

The script reads only questions.jsonl: no entries, no search, no ranker.

Usage:  python eval/split.py [path/to/questions.jsonl]
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

SEED = 20240917
SPLITS = ("tune", "heldout")
DEFAULT_PATH = Path(__file__).with_name("questions.jsonl")


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def _stratum(q: dict) -> tuple[str, str]:
    return (q["kind"], q["lang"])


def _section(q: dict) -> str:
    return q.get("section") or "(out-of-domain)"


def _pair(q: dict) -> str:
    return q.get("pair") or "(out-of-domain)"


def _groups(questions: list[dict]) -> list[list[int]]:
    """Union-find over in-domain questions sharing a normalised expect_any string."""
    parent = list(range(len(questions)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, q in enumerate(questions):
        for s in q.get("expect_any") or []:
            key = _norm(s)
            if key in owner:
                parent[find(i)] = find(owner[key])
            else:
                owner[key] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(questions)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def assign(questions: list[dict], seed: int = SEED) -> list[str]:
    rng = random.Random(seed)
    groups = _groups(questions)
    rng.shuffle(groups)
    groups.sort(key=len, reverse=True)  # stable: random order within each size
    counts = {s: Counter() for s in SPLITS}
    section_counts = {s: Counter() for s in SPLITS}
    pair_counts = {s: Counter() for s in SPLITS}
    totals = Counter()
    result: list[str] = [""] * len(questions)
    for group in groups:
        strata = Counter(_stratum(questions[i]) for i in group)
        sections = Counter(_section(questions[i]) for i in group)
        pairs = Counter(_pair(questions[i]) for i in group)

        def cost(split: str, strata: Counter = strata, sections: Counter = sections, pairs: Counter = pairs):
            per_stratum = sum(counts[split][k] * n for k, n in strata.items())
            per_section = sum(section_counts[split][k] * n for k, n in sections.items())
            per_pair = sum(pair_counts[split][k] * n for k, n in pairs.items())
            return (per_stratum + per_section + per_pair, totals[split], rng.random())

        ranked = sorted(SPLITS, key=cost)
        chosen = ranked[0]
        for i in group:
            result[i] = chosen
        counts[chosen].update(strata)
        section_counts[chosen].update(sections)
        pair_counts[chosen].update(pairs)
        totals[chosen] += len(group)
    return result


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT_PATH
    questions = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    splits = assign(questions)
    with path.open("w", encoding="utf-8") as f:
        for q, s in zip(questions, splits, strict=True):
            q["split"] = s
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    c = Counter(splits)
    print(f"seed={SEED} " + " ".join(f"{s}={c[s]}" for s in SPLITS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
