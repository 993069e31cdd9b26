"""The chat core against a fake retriever (tests/fake_retriever.py, no model): asking, paging, the
question limit, cooldowns, feedback, reindex and its texts, stats, health and metrics."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from fake_retriever import EMBEDDER, FakeRetriever

from bot import texts
from bot.chat import (
    Answer,
    AnswerItem,
    ChatCore,
    Retriever,
    Scope,
    clean_question,
    decode_answer,
    encode_answer,
    reindex_summary,
    stats_text,
)
from bot.errors import (
    AlreadyRunning,
    CannotCoordinate,
    Cooldown,
    EmptyQuestion,
    EntryGone,
    IndexEmpty,
    NoSuchItem,
    NothingMore,
    ReadOnlyReplica,
    UnknownAnswer,
    UnknownSection,
    user_message_for,
)
from bot.i18n import texts_for
from bot.records import Records
from bot.render import render_text
from bot.request import Request, number_in, read_request
from bot.settings import BotSettings
from bot.state import MemoryState, RedisState, ResilientState, SqliteState
from bot.texts import APOLOGY
from knowledge import IngestLocked, KnowledgeUnavailable, MassRemoval, SourceStatus
from knowledge.parse import Skipped

Q = "Which paper fixes weight decay in Adam?"
EPOCH = datetime.fromtimestamp(0, UTC)


@pytest.fixture
def retriever() -> FakeRetriever:
    """The fake in place of the knowledge base: the small collection's ten entries, matched by words."""
    return FakeRetriever()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def core_for(retriever: Retriever, tmp_path: Path, **overrides: object) -> ChatCore:
    settings = BotSettings(_env_file=None, data_dir=tmp_path, **overrides)  # type: ignore[arg-type]
    return ChatCore(retriever, settings, clock=Clock())


async def test_ask_gives_titles_summaries_links_and_sections(retriever: FakeRetriever, tmp_path: Path) -> None:
    core = core_for(retriever, tmp_path)
    answer = await core.ask("c1", "u1", "  哪篇论文修正了 Adam 的 weight decay?  ")
    first = answer.items[0]
    assert (first.title, first.url) == (
        "Fixing Weight Decay Regularization in Adam",
        "https://arxiv.org/abs/1711.05101",
    )
    assert first.summary.startswith("指出 Adam") and first.section == ("深度学习", "优化")
    assert answer.question == "哪篇论文修正了 Adam 的 weight decay?"
    assert not answer.refused and answer.page == 1


async def test_refusal_has_a_hint(retriever: FakeRetriever, tmp_path: Path) -> None:
    answer = await core_for(retriever, tmp_path).ask("c1", "u1", "How do I bake sourdough bread at home?")
    assert answer.refused and answer.items == () and "other language" in answer.hint


async def test_more_pages_the_last_answer_of_the_conversation(retriever: FakeRetriever, tmp_path: Path) -> None:
    core = core_for(retriever, tmp_path, answer_size=1)
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


async def test_empty_long_and_odd_questions(retriever: FakeRetriever, tmp_path: Path) -> None:
    core = core_for(retriever, tmp_path, max_question_chars=40)
    for blank in ("", "   ", "\u200b\u200f\u202e", "\x00\x07"):
        with pytest.raises(EmptyQuestion):
            await core.ask("c", "u", blank)
    long = await core.ask("c", "u2", Q + " " + "x" * 10_000)
    assert long.truncated and len(long.question) <= 40
    assert clean_question("a\u200bb\n\tc\ud800", 100) == ("a b c?", False)
    assert clean_question("\x1b[31mbert\x1b[0m \x1b[1mcontrastive\x1b[22m", 100) == ("bert contrastive", False)


async def test_the_question_limit_is_one_setting_and_a_cut_is_told(tmp_path: Path) -> None:
    retriever = FakeRetriever(max_question_chars=800)  # the knowledge base reads the same setting
    core = core_for(retriever, tmp_path, max_question_chars=800)
    padding = " ".join(["filler"] * 200)
    fits, too_long = f"{Q} {padding}"[:700], f"{Q} {padding}"[:900]

    whole = await core.ask("c", "u1", fits)
    assert not whole.truncated and whole.question == fits and retriever.questions[-1] == fits
    assert texts.QUESTION_CUT not in render_text(whole)

    cut = await core.ask("c", "u2", too_long)
    assert cut.truncated and cut.question == too_long[:800].rstrip()
    assert retriever.questions[-1] == cut.question  # searched as cut, not cut again elsewhere
    assert cut.items[0].title == "Fixing Weight Decay Regularization in Adam"
    assert texts.QUESTION_CUT in render_text(cut)


async def test_a_question_the_retriever_cuts_shorter_is_still_told(tmp_path: Path) -> None:
    core = core_for(FakeRetriever(max_question_chars=500), tmp_path, max_question_chars=800)
    answer = await core.ask("c", "u", Q + " " + "filler " * 100)
    assert answer.truncated and texts.QUESTION_CUT in render_text(answer)


async def test_cooldown_per_user(retriever: FakeRetriever, tmp_path: Path) -> None:
    core = core_for(retriever, tmp_path, cooldown_seconds=3)
    clock = core._clock
    assert isinstance(clock, Clock)
    await core.ask("c", "alice", "attention transformer")
    with pytest.raises(Cooldown) as raised:
        await core.ask("c", "alice", "attention transformer")
    assert "wait 3 s" in raised.value.user_message
    await core.ask("c", "bob", "attention transformer")  # another user is not slowed down
    clock.now += 3.5
    await core.ask("c", "alice", "attention transformer")


async def test_a_section_that_matches_none_does_not_start_the_cooldown(
    retriever: FakeRetriever, tmp_path: Path
) -> None:
    """A typo in `in:` is refused; the corrected question, sent at once, was told to wait."""
    core = core_for(retriever, tmp_path, cooldown_seconds=3)
    with pytest.raises(UnknownSection):
        await core.ask("c", "alice", "in:推存 召回")
    answer = await core.ask("c", "alice", "in:推荐 召回")
    assert answer.items and answer.scope.section == ("推荐",)
    with pytest.raises(Cooldown):  # a question that was searched does start it
        await core.ask("c", "alice", "in:推荐 排序")


async def test_admit_checks_the_question_first_then_the_cooldown(retriever: FakeRetriever, tmp_path: Path) -> None:
    core = core_for(retriever, tmp_path, cooldown_seconds=3)
    with pytest.raises(EmptyQuestion):
        await core.admit("alice", " \u200b ")  # a blank question does not start the cooldown
    question = await core.admit("alice", "  attention   transformer ")
    assert (question.text, question.truncated) == ("attention transformer", False)
    with pytest.raises(EmptyQuestion):
        await core.admit("alice", "?!")  # the usage hint, even while waiting
    with pytest.raises(Cooldown):
        await core.admit("alice", "BERT")
    answer = await core.answer("c", question)
    assert answer.items[0].url == "https://arxiv.org/abs/1706.03762"
    unlimited = await core.answer("c", core.read_question("BERT"))  # no cooldown: the console's way
    assert not unlimited.refused


async def test_votes_are_stored_for_evaluation(retriever: FakeRetriever, tmp_path: Path) -> None:
    core = core_for(retriever, tmp_path)
    answer = await core.ask("c", "u", "contrastive learning")
    assert await core.record_vote(answer.id, "up", "u", "test") == texts.THANKS
    await core.record_vote(answer.id, "down", "v", "test")
    votes = Records(tmp_path / "bot.sqlite").votes(EPOCH)
    assert [vote.vote for vote in votes] == ["up", "down"]
    assert votes[0].question == "contrastive learning" and votes[0].platform == "test" and votes[1].user == "v"
    assert votes[0].entries == tuple((item.entry_id, item.title) for item in answer.items)
    assert votes[0].time.tzinfo is not None and not (tmp_path / "feedback.jsonl").exists()
    with pytest.raises(UnknownAnswer):
        await core.record_vote("gone", "up", "u", "test")

    # one vote a user and answer: clicking again replaces it (five 👎 and a 👍 from "v" count once, as 👍)
    for vote in ("down", "down", "down", "down", "up"):
        await core.record_vote(answer.id, vote, "v", "test")
    await core.record_vote(answer.id, "up", "v", "other-platform")  # another platform's "v" is someone else
    votes = Records(tmp_path / "bot.sqlite").votes(EPOCH)
    assert [(vote.user, vote.vote, vote.platform) for vote in votes] == [
        ("u", "up", "test"),
        ("v", "up", "test"),
        ("v", "up", "other-platform"),
    ]


async def test_votes_are_written_off_the_event_loop(retriever: FakeRetriever, tmp_path: Path) -> None:
    writers: list[threading.Thread] = []

    class WatchedRecords(Records):
        def add_vote(self, *args: Any, **kwargs: Any) -> None:
            writers.append(threading.current_thread())
            super().add_vote(*args, **kwargs)

    core = ChatCore(retriever, BotSettings(_env_file=None, data_dir=tmp_path))
    core.records = WatchedRecords(tmp_path / "bot.sqlite")
    answer = await core.ask("c", "u", "contrastive learning")
    await asyncio.gather(*(core.record_vote(answer.id, "up", f"u{n}", "test") for n in range(5)))
    assert writers and threading.main_thread() not in writers
    votes = core.records.votes(EPOCH)
    assert len(votes) == 5 and all(vote.vote == "up" for vote in votes)


async def test_reindex_runs_in_the_background_once(
    retriever: FakeRetriever, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="bot.chat")
    core = core_for(retriever, tmp_path)
    task = await core.start_reindex("slack:U123", full=True)
    assert core.reindex_running
    with pytest.raises(AlreadyRunning):
        await core.start_reindex("admin")
    answer = await core.ask("c", "u", "attention transformer")  # answered while the rebuild runs
    assert answer.items[0].url == "https://arxiv.org/abs/1706.03762"
    report = await task
    assert not core.reindex_running
    audit = [r for r in caplog.records if r.name == "bot.chat" and "reindex requested by slack:U123" in r.getMessage()]
    assert len(audit) == 2  # who asked, when it started and when it finished (the records carry the time)
    assert reindex_summary(report).startswith("Reindex done in ")
    assert "10 entries (10 embedded" in reindex_summary(report)
    assert "kb_reindex_runs_total 1.0" in core.metrics.exposition().decode()


async def test_the_core_says_how_a_reindex_starts_and_ends(
    retriever: FakeRetriever, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    core = core_for(retriever, tmp_path)
    assert core.reindex_started(full=False) == texts.REINDEX_STARTED
    assert core.reindex_started(full=True).startswith("A full rebuild started")

    done = await core.reindex_outcome(await core.start_reindex("admin"))
    assert done.startswith("Reindex done in ") and "10 entries (0 embedded, 10 unchanged" in done

    retriever.failure = IngestLocked("lock held by pid 4242 on /srv/data")
    assert await core.reindex_outcome(await core.start_reindex("admin")) == IngestLocked.default_user_message

    retriever.failure = OSError("secret: /srv/notes is not readable")
    failed = await core.reindex_outcome(await core.start_reindex("admin"))
    assert failed == texts.REINDEX_FAILED and "secret" not in failed
    assert "secret: /srv/notes" in caplog.text  # the operator gets the details
    assert "kb_reindex_failures_total 2.0" in core.metrics.exposition().decode()


async def test_a_reindex_summary_says_how_many_entries_were_kept_for_unreadable_sources(
    retriever: FakeRetriever, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    core = core_for(retriever, tmp_path)
    retriever.unreadable = [Skipped("extra/broken.md", "not UTF-8")]
    retriever.kept = 3
    done = await core.reindex_outcome(await core.start_reindex("admin"))
    assert done.startswith("Reindex done in ")
    assert "1 file(s) skipped" in done
    assert "3 entries were kept as they were because their sources could not be read" in done
    (line,) = [r.getMessage() for r in caplog.records if "not every source could be read" in r.getMessage()]
    assert "extra/broken.md (not UTF-8)" in line and "3 entries" in line  # the operator learns which

    retriever.unreadable, retriever.kept = [], 0
    assert "kept" not in await core.reindex_outcome(await core.start_reindex("admin"))


async def test_a_refused_mass_removal_is_told_and_logged_in_one_line(
    retriever: FakeRetriever, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    core = core_for(retriever, tmp_path)
    retriever.failure = MassRemoval(9, 10, 0.2)
    told = await core.reindex_outcome(await core.start_reindex("admin"))
    assert told == MassRemoval.default_user_message and "KB_MAX_REMOVAL_SHARE" not in told
    (record,) = [r for r in caplog.records if "failed" in r.getMessage()]
    assert "KB_MAX_REMOVAL_SHARE" in record.getMessage() and record.exc_info is None  # no traceback


async def test_a_read_only_replica_refuses_to_reindex_and_writes_no_votes(
    retriever: FakeRetriever, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="bot.chat")
    core = core_for(retriever, tmp_path, ingest_on_start=False)
    with pytest.raises(ReadOnlyReplica) as raised:
        await core.start_reindex("admin", full=True)
    assert "read-only replica" in user_message_for(raised.value) and "operator" in user_message_for(raised.value)
    assert not core.reindex_running
    answer = await core.ask("c", "u", Q)
    assert await core.record_vote(answer.id, "up", "u", "slack") == texts.THANKS
    assert core.records is None and await core.activity() is None
    assert list(tmp_path.iterdir()) == []  # never writes: the vote is in the log instead
    assert '"vote": "up"' in caplog.text


async def test_a_vote_that_cannot_be_stored_is_logged_and_still_thanked(
    retriever: FakeRetriever, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "data").write_text("a file where the data folder should be", encoding="utf-8")
    core = core_for(retriever, tmp_path)
    core.records = Records(tmp_path / "data" / "bot.sqlite")
    answer = await core.ask("c", "u", Q)  # answered, though the question cannot be recorded either
    assert answer.items
    assert await core.record_vote(answer.id, "down", "u", "discord") == texts.THANKS
    (record,) = [r for r in caplog.records if "could not record a vote" in r.getMessage()]
    assert '"vote": "down"' in record.getMessage() and record.exc_info is None


async def test_stats_show_each_source_by_name_with_its_commit_and_sync_never_server_paths(
    retriever: FakeRetriever, tmp_path: Path
) -> None:
    core = core_for(retriever, tmp_path)
    retriever.sources = ("/srv/secret-team/notes", "/home/alice/papers.md", "/srv/data/git/collections")
    synced = datetime(2026, 1, 3, 9, 30, tzinfo=UTC)
    retriever.statuses = [
        SourceStatus("notes", "folder"),
        SourceStatus("papers.md", "file"),
        SourceStatus(
            "https://github.com/daiwk/collections.git#master:posts",
            "git",
            branch="master",
            commit="0123456789abcdef0123456789abcdef01234567",
            commit_date=datetime(2026, 1, 2, 18, 0, tzinfo=UTC),
            synced_at=synced,
        ),
        SourceStatus(
            "curator/notes",
            "git",
            branch="main",
            commit="fedcba9876543210fedcba9876543210fedcba98",
            commit_date=datetime(2026, 1, 1, tzinfo=UTC),
            synced_at=synced,
            error="fatal: '/srv/data/git/notes' does not appear to be a git repository",
            failed_at=datetime(2026, 1, 3, 10, 30, tzinfo=UTC),
        ),
        SourceStatus("new/notes", "git", branch="main"),
    ]
    text = stats_text(await core.stats())
    assert text.splitlines() == [
        "10 entries; last indexed 2026-01-01 00:00 UTC; embedder fake-embedder.",
        "Sources (5):",
        "• notes",
        "• papers.md",
        "• https://github.com/daiwk/collections.git#master:posts (git, branch master): commit 0123456789 of "
        "2026-01-02; last synced 2026-01-03 09:30 UTC",
        "• curator/notes (git, branch main): commit fedcba9876 of 2026-01-01; last synced 2026-01-03 09:30 UTC; "
        "the last sync failed at 2026-01-03 10:30 UTC, so answers come from the commit above",
        "• new/notes (git, branch main): not indexed yet",
        "In the last 7 days: 0 questions answered, 0 not; 👍 0, 👎 0.",
    ]
    assert "/srv" not in text and "alice" not in text  # the failure's reason is for the log and /healthz
    chinese = stats_text(await core.stats(), texts_for("zh-Hans"))
    assert "上次同步在 2026-01-03 10:30 UTC 失败" in chinese and "最近 7 天" in chinese


async def test_stats_count_this_week_s_answers_refusals_and_votes(retriever: FakeRetriever, tmp_path: Path) -> None:
    core = core_for(retriever, tmp_path)
    answered = await core.ask("c", "u1", "attention transformer")
    await core.ask("c", "u2", "contrastive learning")
    await core.ask("c", "u3", "best pizza place in New York")
    await core.record_vote(answered.id, "up", "u", "test")
    await core.record_vote(answered.id, "down", "v", "test")
    await core.record_vote(answered.id, "down", "w", "test")
    stats = await core.stats()
    assert stats.activity is not None
    assert (stats.activity.answered, stats.activity.refused, stats.activity.up, stats.activity.down) == (2, 1, 1, 2)
    assert stats_text(stats).endswith("In the last 7 days: 2 questions answered, 1 not; 👍 1, 👎 2.")


async def test_waiting_for_the_outcome_can_stop_without_stopping_the_reindex(
    retriever: FakeRetriever, tmp_path: Path
) -> None:
    core = core_for(retriever, tmp_path)
    retriever.gate.clear()
    task = await core.start_reindex("admin")
    waiter = asyncio.get_running_loop().create_task(core.reindex_outcome(task))
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert core.reindex_running
    retriever.gate.set()
    report = await task
    assert report.ingest is not None and report.ingest.summary.entries == 10


async def test_stats_and_metrics(retriever: FakeRetriever, tmp_path: Path) -> None:
    core = core_for(retriever, tmp_path)
    await core.ask("c", "u", "attention transformer")
    await core.ask("c", "u2", "best pizza place in New York")
    stats = await core.stats()
    assert stats.index.entries == 10 and stats.index.embedder == retriever.embedder_name and not stats.reindex_running
    assert stats_text(stats).startswith("10 entries; last indexed ")
    exposition = core.metrics.exposition().decode()
    assert "kb_questions_answered_total 2.0" in exposition
    assert "kb_refusals_total 1.0" in exposition
    assert "kb_answer_seconds_count 2.0" in exposition


async def test_health_and_embedder_come_through_the_core(retriever: FakeRetriever, tmp_path: Path) -> None:
    core = core_for(retriever, tmp_path)
    assert core.embedder_name == EMBEDDER
    health = await core.health()
    assert health.store_reachable and health.stats is not None and health.stats.entries == 10
    retriever.reachable = False
    down = await core.health()
    assert not down.store_reachable and down.answerable_offline == 10 and down.embedder == EMBEDDER


async def test_twenty_questions_at_once(retriever: FakeRetriever, tmp_path: Path) -> None:
    core = core_for(retriever, tmp_path)
    questions = ["attention transformer", "对比学习", "Adam weight decay", "召回", "位置偏置"] * 4
    answers = await asyncio.gather(*(core.ask(f"c{i}", f"u{i}", q) for i, q in enumerate(questions)))
    assert all(not answer.refused for answer in answers)
    assert core.inflight == 0 and await core.drain(0.1)


async def test_answers_are_kept_for_session_hours_then_forgotten(retriever: FakeRetriever, tmp_path: Path) -> None:
    core = core_for(retriever, tmp_path, answer_size=1, session_hours=1)
    clock = core._clock
    assert isinstance(clock, Clock)
    first = await core.ask("chan", "u1", "召回")
    clock.now += 3000
    assert (await core.more("elsewhere", first.id)).page == 2
    clock.now += 700  # an hour and more since the answer
    with pytest.raises(UnknownAnswer):
        await core.more("elsewhere", first.id)
    with pytest.raises(NothingMore):  # nor is it the channel's last answer any longer
        await core.more("chan")


def test_an_answer_is_kept_as_json_with_every_field() -> None:
    item = AnswerItem(
        "e01",
        "Fixing Weight Decay Regularization in Adam",
        "指出 Adam 中 L2 正则与权重衰减不等价",
        "https://arxiv.org/abs/1711.05101",
        None,
        ("深度学习", "优化"),
        other_title="修正 Adam 的权重衰减",
        weak=True,
        arxiv_id="1711.05101",
        related=True,
        location_text="notes.md › 深度学习",
        added=datetime(2026, 11, 30, 12, 0, 1, 500000, tzinfo=UTC),
    )
    answer = Answer(
        "abc123",
        "AdamW 1711.05101",
        (item, replace(item, entry_id="e02", added=None)),
        page=2,
        pages=2,
        truncated=True,
        locale="zh-Hant",
        scope=Scope(("深度学习",), "zh", private=True),
        kind="found",
        subject="arXiv:1711.05101",
        subject_section=("深度学习", "优化"),
        number=3,
    )
    text = encode_answer(answer)
    assert "abc123" not in text  # the id and the page are the session's, not the answer's
    assert decode_answer(text) == replace(answer, id="", page=1, pages=1)
    assert decode_answer(text.replace('"format":1', '"format":0')) is None  # another format: forgotten
    assert decode_answer("{not json") is None and decode_answer('{"format": 1}') is None


async def test_cooldowns_deliveries_and_pages_are_shared_by_cores_on_one_store(
    retriever: FakeRetriever, tmp_path: Path
) -> None:
    store = SqliteState(tmp_path / "bot.sqlite")
    settings = BotSettings(_env_file=None, data_dir=tmp_path, cooldown_seconds=30, answer_size=1)  # type: ignore[call-arg]
    a, b = ChatCore(retriever, settings, state=store), ChatCore(retriever, settings, state=store)
    try:
        first = await a.ask("chan", "alice", "对比学习 召回 Adam")  # four pages
        with pytest.raises(Cooldown):
            await b.ask("chan", "alice", "召回")
        assert (await b.more("chan")).page == 2 and (await a.more("chan", first.id)).page == 3  # one page a press
        assert await a.first_delivery("slack:C1:1.2") and not await b.first_delivery("slack:C1:1.2")
    finally:
        await store.close()


async def test_one_reindex_runs_across_cores_and_a_lost_lease_switches_nothing(
    retriever: FakeRetriever, tmp_path: Path
) -> None:
    clock = Clock()
    store = MemoryState(clock)  # shared by both cores, as a Redis server is by two replicas
    a, b = (ChatCore(retriever, BotSettings(_env_file=None, data_dir=tmp_path), state=store) for _ in range(2))  # type: ignore[call-arg]
    retriever.gate.clear()
    task = await a.start_reindex("admin-a")
    with pytest.raises(AlreadyRunning):
        await b.start_reindex("admin-b")
    assert not b.reindex_running and (await b.stats()).reindex_running  # it runs, on the other core
    retriever.gate.set()
    assert (await a.reindex_outcome(task)).startswith("Reindex done in ")
    assert len(retriever.fences) == 1  # the switch was fenced with the lease's token

    retriever.gate.clear()
    stalled = await a.start_reindex("admin-a")
    clock.now += 120  # the lease expires (its holder stalled past it), and the other core takes it over
    taken = await b.start_reindex("admin-b")
    retriever.gate.set()
    assert await a.reindex_outcome(stalled) == IngestLocked.default_user_message  # fenced off: not switched
    assert (await b.reindex_outcome(taken)).startswith("Reindex done in ")
    assert retriever.fences[-1] > retriever.fences[0]


async def test_with_the_state_store_unreachable_answers_go_out_and_reindexes_are_refused(
    retriever: FakeRetriever, tmp_path: Path
) -> None:
    state = ResilientState(RedisState(f"redis://127.0.0.1:{free_port()}/0"))
    core = ChatCore(retriever, BotSettings(_env_file=None, data_dir=tmp_path, answer_size=1), state=state)  # type: ignore[call-arg]
    try:
        first = await core.ask("chan", "alice", "召回")
        assert (await core.more("chan", first.id)).page == 2  # from this process's memory
        assert await core.first_delivery("k") and not await core.first_delivery("k")
        with pytest.raises(CannotCoordinate) as raised:
            await core.start_reindex("admin")
        assert "try again" in user_message_for(raised.value)
        assert await core.state_health() == {"store": "redis", "reachable": False}
    finally:
        await state.close()


def test_user_messages_never_leak_exception_text(caplog: pytest.LogCaptureFixture) -> None:
    assert user_message_for(RuntimeError("secret stack detail")) == APOLOGY
    assert "secret stack detail" in caplog.text  # logged for operators, with its traceback
    assert "unavailable" in user_message_for(KnowledgeUnavailable("connection refused to 10.0.0.1"))
    assert user_message_for(EmptyQuestion()).startswith("There is no question")


# -- filters, privacy, papers by identifier, "more like this" -------------------------------------------


@pytest.mark.parametrize(
    ("text", "question", "section", "lang", "private"),
    [
        ("in:推荐 召回", "召回", "推荐", None, False),
        ('in:"9 推荐系统" lang:en -p two tower', "two tower", "9 推荐系统", "en", True),
        ("in：推荐 lang:中文 召回 --private", "召回", "推荐", "zh", True),
        ("lang:zh-TW 翻譯 --私密", "翻譯", None, "zh-Hant", True),
        ("within:x lang:klingon -pp what", "within:x lang:klingon -pp what", None, None, False),
        # a quote holds at most QUOTED_MAX characters: longer, or unclosed, the option is the word up to a space
        (f'in:"{"x" * 200}" Adam', "Adam", "x" * 200, None, False),
        (f'in:"{"x" * 201}" Adam', "Adam", f'"{"x" * 201}"', None, False),
        ("in:“a b Adam", "b Adam", "“a", None, False),
    ],
)
def test_options_written_in_a_question(
    text: str, question: str, section: str | None, lang: str | None, private: bool
) -> None:
    assert read_request(text) == Request(question, section, lang, private)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7", 7),
        (" 30 ", 30),
        ("１２", 12),  # full-width digits are decimal digits: int() reads them
        ("0", 0),
        ("999999", 999999),
        ("1000000", None),  # past six digits: no count or entry number is that large (and int() stops at 4,300)
        ("①", None),  # digits to str.isdigit, refused by int()
        ("²", None),
        ("-1", None),
        ("3.5", None),
        ("seven", None),
        ("", None),
    ],
)
def test_number_in(text: str, expected: int | None) -> None:
    assert number_in(text) == expected


async def test_a_filtered_ask_searches_only_that_section_and_language(retriever: FakeRetriever, tmp_path: Path) -> None:
    core = core_for(retriever, tmp_path)
    answer = await core.ask("c", "u", "in:recommend 召回 排序 Adam")
    assert answer.scope == Scope(("推荐",), None, False)
    assert answer.items and all(item.section[0] == "推荐" for item in answer.items)
    assert "（§推荐）" in render_text(await core.ask("c", "u2", "in:推荐 召回"))

    english = await core.ask("c", "u3", "Adam attention", lang="en")
    assert english.items and all(item.entry_id in ("e08", "e09") for item in english.items)
    refused = await core.ask("c", "u4", "Adam optimizer", section="NLP")  # filtered: the refusal says where
    assert refused.refused and "in §NLP" in render_text(refused)
    with pytest.raises(UnknownSection) as unknown:
        await core.ask("c", "u5", "in:天文学 Adam")
    assert unknown.value.user_message.startswith("No section of the collection matches “天文学”.")


async def test_a_section_typed_with_invisible_characters_is_read_as_seen(
    retriever: FakeRetriever, tmp_path: Path
) -> None:
    """`/browse` with only a zero-width space was told no section matches “”; with one inside a name, none."""
    core = core_for(retriever, tmp_path)
    top = await core.browse(None, 1)
    assert (await core.browse("\u200b \u2066", 1)).path == top.path == ()
    assert (await core.browse("\u200b推荐\u202e", 1)).path == ("推荐",)
    assert (await core.scope("\ufeff")).section == ()
    assert (await core.scope("推\u200b荐 ")).section == ("推荐",)
    with pytest.raises(UnknownSection) as unknown:
        await core.browse("天文\u200b学", 1)
    assert "“天文学”" in unknown.value.user_message


async def test_a_private_answer_is_not_the_conversation_s_to_page(retriever: FakeRetriever, tmp_path: Path) -> None:
    core = core_for(retriever, tmp_path, answer_size=1)
    public = await core.ask("chan", "u1", "召回")
    private = await core.ask("chan", "u2", "-p 召回")
    assert (
        private.private
        and not public.private
        and await core.is_private(private.id)
        and not await core.is_private(public.id)
    )
    assert (await core.more("chan")).id == public.id  # the channel's /more pages the public one
    assert (await core.more("chan", private.id)).private  # the private one's own button pages it, privately


async def test_a_paper_named_by_identifier_comes_first_and_a_missing_one_is_said(
    retriever: FakeRetriever, tmp_path: Path
) -> None:
    core = core_for(retriever, tmp_path)
    found = await core.ask("c", "u1", "https://arxiv.org/pdf/1911.05722v3.pdf 对比学习")
    assert (
        found.kind == "found"
        and found.subject == "arXiv:1911.05722"
        and found.subject_section == ("深度学习", "自监督")
    )
    assert found.items[0].entry_id == "e03" and not found.items[0].related
    assert found.items[1:] and all(item.related for item in found.items[1:])  # SimCLR, by the words
    text = render_text(found)
    assert text.startswith("合集中有：arXiv:1911.05722（§深度学习 › 自监督）：")  # the question is Chinese
    assert text.count("(相关条目，不是你要找的那一篇)") == len(found.items) - 1
    english = render_text(await core.ask("c", "u5", "is 1911.05722 in there?"))
    assert english.startswith("In the collection: arXiv:1911.05722 in §深度学习 › 自监督:\n1. Momentum Contrast")

    missing = await core.ask("c", "u2", "arXiv:2106.09685 attention transformer")
    assert missing.kind == "missing" and missing.items and all(item.related for item in missing.items)
    assert render_text(missing).startswith("Not in the collection: arXiv:2106.09685. Related entries, not the one")
    alone = await core.ask("c", "u3", "2106.09685")
    assert alone.kind == "missing" and not alone.items and not alone.refused
    assert render_text(alone) == "Not in the collection: arXiv:2106.09685, and I found nothing related."
    chinese = await core.ask("c", "u4", "有 2106.09685 这篇吗")
    assert render_text(chinese).startswith("合集中没有：arXiv:2106.09685")


async def test_similar_to_an_item_never_returns_it(retriever: FakeRetriever, tmp_path: Path) -> None:
    core = core_for(retriever, tmp_path, answer_size=2)
    answer = await core.ask("c", "u", "召回 双塔")
    picked = answer.items[0]
    similar = await core.similar("c", 1)
    assert similar.kind == "similar" and similar.subject == picked.title and similar.number == 1
    assert similar.items and picked.entry_id not in {item.entry_id for item in similar.items}
    assert render_text(similar).startswith(f"与第 1 条“{picked.title}”相似的条目")
    by_id = await core.similar("elsewhere", answer.items[1].entry_id, answer_id=answer.id)
    assert by_id.number == 2 and answer.items[1].entry_id not in {item.entry_id for item in by_id.items}
    with pytest.raises(NoSuchItem):
        await core.similar("c", 99)
    with pytest.raises(UnknownAnswer):
        await core.similar("c", "e01", answer_id="forgotten")
    # a reindex removed the entry since the answer was shown
    retriever.entries = tuple(entry for entry in retriever.entries if entry.id != answer.items[1].entry_id)
    with pytest.raises(EntryGone):
        await core.similar("elsewhere", answer.items[1].entry_id, answer_id=answer.id)


async def test_a_question_before_the_index_has_entries_is_told_so_not_that_nothing_matches(tmp_path: Path) -> None:
    core = core_for(FakeRetriever(entries=()), tmp_path)
    with pytest.raises(IndexEmpty) as raised:
        await core.ask("c", "u", "bert")
    assert user_message_for(raised.value) == texts.INDEX_EMPTY
    assert await core.flush_records(5) and Records(tmp_path / "bot.sqlite").activity(EPOCH).refused == 0  # no gap
