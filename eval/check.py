"""Validate eval/questions.jsonl and print its make-up.

    .venv/bin/python eval/check.py [path/to/questions.jsonl]
    .venv/bin/python eval/check.py --train [eval/train.jsonl]
    .venv/bin/python eval/check.py --fresh [eval/fresh.jsonl]
    .venv/bin/python eval/check.py --fresh2 [eval/fresh2.jsonl]
    .venv/bin/python eval/check.py --train2 [eval/train2.jsonl]

`--train` checks a supplementary training set instead (`eval/train.jsonl` by default): split `train`,
ids `t…` in-domain and `u…` out-of-domain, the same field, expect_any and grep checks, the tables
in a `train` column, and not the targets below, which are the held-out set's.

`--fresh` checks the second held-out set the same way (`eval/fresh.jsonl` by default): split `fresh`,
ids `f…` in-domain and `g…` out-of-domain, the tables in a `fresh` column, no held-out targets.
`--fresh2` checks the third (`eval/fresh2.jsonl`): split `fresh2`, ids `h…` and `k…`.
`--train2` checks the second training set (`eval/train2.jsonl`): split `train2`, ids `p…` and `n…`.

Checks, each failure printed as `ERROR ...` (exit status 1 if there is any):
  * every line is a JSON object with the required fields and allowed values
    (id, lang, query, kind, split; expect_any + pair + section in-domain;
    expect_none + checked out-of-domain), ids are unique;
  * it loads with knowledge.evaluate.load_questions, the loader `eval` uses;
  * every expect_any string occurs in at least one entry of the bundled
    collection, matched exactly as the evaluation matches (entry.search_text(),
    lower case, all whitespace removed);
  * every "checked" grep term of an out-of-domain question has no hit in the
    raw source files (case-insensitive; a term of at most four ASCII letters or
    digits must match as a whole word, so "RAG" is not found in "average");
  * the set meets the targets it was written to (see README.md).

Warnings (`WARN ...`) do not fail the run: an expect_any string that matches
many entries (too generic), a section name the current parser no longer
produces, a top-level section of the collection with no question.

This script parses the collection; it never searches or ranks.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from knowledge.evaluate import load_questions  # noqa: E402
from knowledge.parse import parse_sources  # noqa: E402
from knowledge.settings import BUNDLED_SOURCES  # noqa: E402

DEFAULT_PATH = Path(__file__).with_name("questions.jsonl")
LANGS = {"en", "zh", "zh-tw"}
ENTRY_LANGS = {"en", "zh", "zh-tw"}
IN_KINDS = {"keyword", "descriptive", "url"}
OOD_KINDS = {"ood-everyday", "ood-programming", "ood-near-ml"}
SPLITS = {"tune", "heldout"}
TRAIN_PATH = Path(__file__).with_name("train.jsonl")
FRESH_PATH = Path(__file__).with_name("fresh.jsonl")
FRESH2_PATH = Path(__file__).with_name("fresh2.jsonl")
TRAIN2_PATH = Path(__file__).with_name("train2.jsonl")
# mode flag -> (default path, split, in-domain id prefix, out-of-domain id prefix)
MODES = {
    "--train": (TRAIN_PATH, "train", "t", "u"),
    "--fresh": (FRESH_PATH, "fresh", "f", "g"),
    "--fresh2": (FRESH2_PATH, "fresh2", "h", "k"),
    "--train2": (TRAIN2_PATH, "train2", "p", "n"),
}
TOO_MANY = 4  # an expect_any string matching more entries than this is suspicious

_SPACE = re.compile(r"\s+")


def squash(text: str) -> str:
    return _SPACE.sub("", text).lower()


def lang_family(lang: str) -> str:
    return "en" if lang == "en" else "zh"


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _ljust(text: str, width: int) -> str:
    return text + " " * max(width - _width(text), 0)


def table(title: str, rows: dict[str, Counter], columns: list[str]) -> None:
    width = max([_width(title)] + [_width(str(k)) for k in rows]) + 2
    print()
    print(_ljust(title, width) + "".join(c.rjust(9) for c in [*columns, "total"]))
    for key in sorted(rows, key=lambda k: (-sum(rows[k].values()), str(k))):
        counts = rows[key]
        print(
            _ljust(str(key), width)
            + "".join(str(counts[c]).rjust(9) for c in columns)
            + str(sum(counts.values())).rjust(9)
        )
    totals = Counter()
    for counts in rows.values():
        totals.update(counts)
    print(
        _ljust("(all)", width) + "".join(str(totals[c]).rjust(9) for c in columns) + str(sum(totals.values())).rjust(9)
    )


def grep_hits(term: str, sources: dict[str, str]) -> int:
    if re.fullmatch(r"[A-Za-z0-9]{1,4}", term):
        pattern = re.compile(r"(?<![A-Za-z0-9])" + re.escape(term) + r"(?![A-Za-z0-9])", re.IGNORECASE)
    else:
        pattern = re.compile(re.escape(term), re.IGNORECASE)
    return sum(len(pattern.findall(text)) for text in sources.values())


def main(argv: list[str]) -> int:
    flags = [arg for arg in argv[1:] if arg in MODES]
    paths = [arg for arg in argv[1:] if arg not in MODES]
    if len(flags) > 1:
        print(f"use at most one of {', '.join(MODES)}")
        return 2
    mode = MODES[flags[0]] if flags else None
    supplementary = mode is not None  # a training or fresh set: one split, no held-out targets
    path = Path(paths[0]) if paths else mode[0] if mode else DEFAULT_PATH
    splits_allowed = {mode[1]} if mode else SPLITS
    in_prefix, ood_prefix = (mode[2], mode[3]) if mode else ("q", "o")
    errors: list[str] = []
    warnings: list[str] = []

    questions: list[dict] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
        except json.JSONDecodeError as error:
            errors.append(f"line {number}: not JSON ({error})")
            continue
        if not isinstance(q, dict):
            errors.append(f"line {number}: not a JSON object")
            continue
        q["_line"] = number
        questions.append(q)

    try:
        load_questions(path)
    except ValueError as error:
        errors.append(f"knowledge.evaluate.load_questions refuses the file: {error}")

    # ---- fields
    ids = Counter(q.get("id") for q in questions)
    for qid, n in ids.items():
        if n > 1:
            errors.append(f"id {qid!r} used {n} times")
    for q in questions:
        where = f"line {q['_line']} ({q.get('id')})"
        for name in ("id", "lang", "query", "kind", "split"):
            if not isinstance(q.get(name), str) or not q.get(name).strip():
                errors.append(f"{where}: missing or empty {name!r}")
        if q.get("lang") not in LANGS:
            errors.append(f"{where}: lang {q.get('lang')!r} not in {sorted(LANGS)}")
        if q.get("split") not in splits_allowed:
            errors.append(f"{where}: split {q.get('split')!r} not in {sorted(splits_allowed)}")
        kind = q.get("kind")
        if "expect_none" in q:
            if q.get("expect_none") is not True or "expect_any" in q:
                errors.append(f"{where}: out-of-domain questions have expect_none: true and no expect_any")
            if kind not in OOD_KINDS:
                errors.append(f"{where}: kind {kind!r} not in {sorted(OOD_KINDS)}")
            checked = q.get("checked")
            if not isinstance(checked, list) or not checked or not all(isinstance(t, str) and t for t in checked):
                errors.append(f"{where}: 'checked' must list the grep terms used")
            if not str(q.get("id", "")).startswith(ood_prefix):
                errors.append(f"{where}: out-of-domain ids start with {ood_prefix!r}")
        else:
            exp = q.get("expect_any")
            if not isinstance(exp, list) or not exp or not all(isinstance(s, str) and s.strip() for s in exp):
                errors.append(f"{where}: expect_any must be a non-empty list of strings")
            if kind not in IN_KINDS:
                errors.append(f"{where}: kind {kind!r} not in {sorted(IN_KINDS)}")
            pair = q.get("pair", "")
            m = re.fullmatch(r"([a-z-]+)->([a-z-]+)", pair or "")
            if not m or m.group(1) != q.get("lang") or m.group(2) not in ENTRY_LANGS:
                errors.append(f"{where}: pair {pair!r} must be '<lang>-><entry lang>' with lang {q.get('lang')!r}")
            if not isinstance(q.get("section"), str) or not q.get("section"):
                errors.append(f"{where}: missing section")
            if not str(q.get("id", "")).startswith(in_prefix):
                errors.append(f"{where}: in-domain ids start with {in_prefix!r}")

    # ---- expect_any against the parsed collection
    result = parse_sources([BUNDLED_SOURCES])
    entries = result.entries
    texts = [squash(e.search_text()) for e in entries]
    top_sections = Counter(e.section_path[0] for e in entries if e.section_path)
    hits_of: dict[str, list[int]] = {}
    for q in questions:
        for s in q.get("expect_any") or []:
            key = squash(s)
            if key not in hits_of:
                hits_of[key] = [i for i, t in enumerate(texts) if key in t]
            n = len(hits_of[key])
            if n == 0:
                errors.append(f"{q['id']}: expect_any string {s!r} matches no entry")
            elif n > TOO_MANY:
                warnings.append(f"{q['id']}: expect_any string {s!r} matches {n} entries")
    answered = set()
    for q in questions:
        for s in q.get("expect_any") or []:
            answered.update(hits_of.get(squash(s), []))
    for q in questions:
        if q.get("section") and "expect_any" in q and q["section"] not in top_sections:
            warnings.append(f"{q['id']}: section {q['section']!r} is not a top-level section of the current parse")
    asked = {q.get("section") for q in questions if "expect_any" in q}
    for section in top_sections:
        if section not in asked:
            warnings.append(f"top-level section {section!r} ({top_sections[section]} entries) has no question")

    # ---- out-of-domain grep terms
    sources = {
        p.name: p.read_text(encoding="utf-8", errors="replace")
        for p in sorted(BUNDLED_SOURCES.iterdir())
        if p.is_file()
    }
    for q in questions:
        for term in q.get("checked") or []:
            n = grep_hits(term, sources)
            if n:
                errors.append(f"{q['id']}: grep term {term!r} occurs {n} times in the sources")

    # ---- tables
    ind = [q for q in questions if "expect_any" in q]
    ood = [q for q in questions if "expect_none" in q]
    splits = [mode[1]] if mode else ["tune", "heldout"]

    def by(field: str, qs: list[dict]) -> dict[str, Counter]:
        rows: dict[str, Counter] = defaultdict(Counter)
        for q in qs:
            rows[q.get(field, "?")][q.get("split", "?")] += 1
        return rows

    print(
        f"{path}: {len(questions)} questions ({len(ind)} in-domain, {len(ood)} out-of-domain); "
        f"collection: {len(entries)} entries, {len(top_sections)} top-level sections"
    )
    table("kind", by("kind", questions), splits)
    table("lang", by("lang", questions), splits)
    table("pair (in-domain)", by("pair", ind), splits)
    table("section (in-domain)", by("section", ind), splits)
    ood_lang: dict[str, Counter] = defaultdict(Counter)
    for q in ood:
        ood_lang[q["kind"]][q["lang"]] += 1
    table("out-of-domain kind x lang", ood_lang, sorted(LANGS))

    # ---- targets the set was written to
    cross = sum(1 for q in ind if lang_family(q["lang"]) != lang_family(q["pair"].split("->")[-1]))
    descriptive = sum(1 for q in ind if q["kind"] == "descriptive")
    url = sum(1 for q in ind if q["kind"] == "url")
    tw = sum(1 for q in questions if q.get("lang") == "zh-tw")
    headline_only = {i for i, e in enumerate(entries) if not e.summary and not e.body}
    ood_langs = {lang_family(q["lang"]) for q in ood}
    print()

    def target(text: str) -> str:  # the targets are the held-out set's: not printed for a training or fresh set
        return "" if supplementary else f" (target {text})"

    def share(n: int) -> str:
        return f"{n / max(len(ind), 1):.0%}"

    print(f"in-domain: {len(ind)}{target('>= 200')}")
    print(f"descriptive: {descriptive} = {share(descriptive)} of in-domain{target('>= 50%')}")
    print(f"cross-lingual (en <-> zh/zh-tw): {cross} = {share(cross)} of in-domain{target('>= 40%')}")
    print(f"url: {url}{target('>= 10')}; zh-tw: {tw}{target('>= 10')}")
    print(f"out-of-domain: {len(ood)} in {sorted(ood_langs)}{target('>= 80, en and zh')}")
    print(
        f"entries answering some question: {len(answered)} of {len(entries)}; "
        f"headline-only (no summary/body): {len(answered & headline_only)} of {len(headline_only)}"
    )
    targets = [
        (len(ind) >= 200, "fewer than 200 in-domain questions"),
        (descriptive * 2 >= len(ind), "fewer than half the in-domain questions are descriptive"),
        (cross * 10 >= len(ind) * 4, "fewer than 40% cross-lingual"),
        (url >= 10, "fewer than 10 url questions"),
        (tw >= 10, "fewer than 10 zh-tw questions"),
        (len(ood) >= 80 and ood_langs >= {"en", "zh"}, "fewer than 80 out-of-domain questions in both languages"),
    ]
    if not supplementary:
        errors += [message for ok, message in targets if not ok]

    print()
    for w in warnings:
        print("WARN", w)
    for e in errors:
        print("ERROR", e)
    print("OK" if not errors else f"{len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
