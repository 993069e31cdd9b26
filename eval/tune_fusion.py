"""Choose the fusion's defaults (`KB_RRF_K`, `KB_DENSE_WEIGHT`; BM25's weight stays 1) on the tuning questions.

    .venv/bin/python eval/tune_fusion.py [--data DIR]

A grid of reciprocal-rank-fusion constants and dense weights, scored by hybrid recall@5 and MRR@10 of the
ranking alone (before any refusal), on the `tune` half of `eval/questions.jsonl`, `eval/train.jsonl` and the
shared dev set
(when it is there). The held-out half is never read here. Each question is embedded once.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from knowledge.base import KnowledgeBase  # noqa: E402
from knowledge.evaluate import is_hit, load_questions  # noqa: E402
from knowledge.search import clean_query, question_text  # noqa: E402
from knowledge.settings import Settings, load_settings  # noqa: E402

RRF_K = (5, 10, 20, 60)
DENSE_WEIGHT = (0.3, 0.5, 0.7, 1.0, 1.5, 2.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data", help="the data dir to index into (default data)")
    args = parser.parse_args()
    questions = [q for q in load_questions(ROOT / "eval" / "questions.jsonl") if q.split == "tune"]
    questions += load_questions(ROOT / "eval" / "train.jsonl")
    dev = ROOT.parent / "shared" / "eval" / "questions.jsonl"
    if dev.exists():
        questions += load_questions(dev)
    questions = [q for q in questions if q.expect_any]
    kb = KnowledgeBase(load_settings(Settings, data_dir=args.data), refusal=False)
    try:
        kb.ingest()
        searcher = kb.searcher
        queries = [clean_query(q.query, kb.settings.max_question_chars)[0] for q in questions]
        vectors = searcher.embedder.embed_queries([question_text(query) for query in queries])
        default = searcher.config
        rows = []
        for rrf_k, dense_weight in itertools.product(RRF_K, DENSE_WEIGHT):
            searcher.config = replace(default, rrf_k=rrf_k, dense_weight=dense_weight, bm25_weight=1.0)
            found = reciprocal = 0.0
            for question, query, vector in zip(questions, queries, vectors, strict=True):
                ranked = searcher.candidates(query, vector=vector).hits
                rank = next((i + 1 for i, h in enumerate(ranked[:10]) if is_hit(h.entry, question.expect_any)), None)
                found += rank is not None and rank <= 5
                reciprocal += 1 / rank if rank else 0.0
            rows.append((found / len(questions), reciprocal / len(questions), rrf_k, dense_weight))
        searcher.config = default
    finally:
        kb.close()
    print(
        f"{len(questions)} questions (tune half, train.jsonl, dev set); current default k={default.rrf_k}, "
        f"dense weight {default.dense_weight}"
    )
    print("recall@5  MRR@10  k   dense weight")
    for recall, mrr, rrf_k, dense_weight in sorted(rows, reverse=True):
        print(f"{recall:.3f}     {mrr:.3f}   {rrf_k:<3d} {dense_weight}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
