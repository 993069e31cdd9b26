"""Prometheus metrics of one service process, in their own registry (tests build as many as they like)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.questions = Counter(
            "kb_questions_answered", "Questions answered (refusals included).", registry=self.registry
        )
        self.refusals = Counter("kb_refusals", "Questions the collection had nothing on.", registry=self.registry)
        self.errors = Counter("kb_errors", "Questions that failed with an error.", registry=self.registry)
        self.latency = Histogram(
            "kb_answer_seconds", "Time to answer a question.", buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.reindex_runs = Counter("kb_reindex_runs", "Reindexes started from chat.", registry=self.registry)
        self.reindex_failures = Counter("kb_reindex_failures", "Reindexes that failed.", registry=self.registry)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
