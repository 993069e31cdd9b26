"""The Slack front-end end to end: signed requests over HTTP into the real bolt app, the small collection,
and a recording fake of Slack's Web API and response_urls (tests/fake_slack.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from conftest import Clock, MakeKb
from fake_slack import (
    ACK_LIMIT,
    ADMIN,
    APP_TOKEN,
    BOT_ID,
    BOT_TOKEN,
    BOT_USER_ID,
    CHANNEL,
    SECRET,
    USER,
    FakeSlack,
    Slack,
    answer_id,
    button_ids,
    dm,
    mention,
    serve,
    sign,
)
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError

from bot.chat import ChatCore
from bot.errors import AlreadyRunning, EmptyQuestion, NotAdmin, NotHere, NothingMore, ReadOnlyReplica, UnknownAnswer
from bot.render import SLACK_SECTION_LIMIT, escape_mrkdwn
from bot.service import start, stop
from bot.settings import BotSettings
from bot.slack_bot import (
    RateLimitedLog,
    conversation_key,
    create_slack_app,
    message_key,
    slack_manifest,
    slack_question,
    start_socket_mode,
    user_key,
)
from bot.texts import APOLOGY
from knowledge import KnowledgeBase

ROOT = Path(__file__).resolve().parents[1]
ADAMW_TITLE = "Fixing Weight Decay Regularization in Adam"
ADAMW_URL = "https://arxiv.org/abs/1711.05101"
QUESTION = "Which paper fixes weight decay in Adam?"
ADAM_TITLE = "Adam: A Method for Stochastic Optimization"
TWO_PAGES = "Adam"  # the Adam paper and AdamW, one entry a page
PINGS = ("<!channel>", "<!here>", "<!everyone>")
HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
async def slack(kb: KnowledgeBase, tmp_path: Path) -> AsyncIterator[Slack]:
    async with serve(kb, tmp_path) as running:
        yield running


# -- /ask ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("question", [QUESTION, "哪篇论文修正了 Adam 的 weight decay?"])
async def test_ask_is_acknowledged_at_once_and_answered_in_the_channel(slack: Slack, question: str) -> None:
    started = time.monotonic()
    status, ack, response_url = await slack.command("/ask", question)
    assert status == 200 and ack == ""
    assert time.monotonic() - started < ACK_LIMIT

    [reply] = await slack.reply_to(response_url)
    assert reply.data["response_type"] == "in_channel"
    assert reply.data["replace_original"] is False
    first = reply.blocks[1]["text"]["text"]
    assert ADAMW_TITLE in first and ADAMW_URL in first
    contexts = [block for block in reply.blocks if block["type"] == "context"]
    assert "深度学习 › 优化" in contexts[0]["elements"][0]["text"]
    assert all(
        len(block["text"]["text"]) <= SLACK_SECTION_LIMIT for block in reply.blocks if block["type"] == "section"
    )
    assert {"kb_vote_up", "kb_vote_down"} <= set(button_ids(reply))
    # Slash commands are answered through the response_url only; the bot token was used for auth.test.
    assert slack.fake.named("chat.postMessage") == []
    assert [call.token for call in slack.fake.named("auth.test")] == [BOT_TOKEN]


async def test_an_empty_ask_gets_the_usage_hint_only_the_asker_sees(slack: Slack) -> None:
    _, _, response_url = await slack.command("/ask", "   ")
    [reply] = await slack.reply_to(response_url)
    assert reply.data["response_type"] == "ephemeral"
    assert reply.text == escape_mrkdwn(EmptyQuestion().user_message)
    assert "blocks" not in reply.data


async def test_more_command_pages_through_the_last_answer_in_the_channel(slack: Slack) -> None:
    _, _, asked = await slack.command("/ask", TWO_PAGES)
    [first] = await slack.reply_to(asked)
    assert "kb_more" in button_ids(first)

    _, _, more = await slack.command("/more")
    [second] = await slack.reply_to(more)
    assert second.data["response_type"] == "in_channel"
    assert "(page 2/" in second.blocks[0]["text"]["text"]
    shown, rest = (ADAM_TITLE, ADAMW_TITLE) if ADAM_TITLE in first.everything else (ADAMW_TITLE, ADAM_TITLE)
    assert shown in first.everything and rest not in first.everything
    assert rest in second.everything and shown not in second.everything  # the next entry, not the first again

    _, _, elsewhere = await slack.command("/more", channel="COTHER")
    [nothing] = await slack.reply_to(elsewhere)
    assert nothing.data["response_type"] == "ephemeral"
    assert nothing.text == escape_mrkdwn(NothingMore().user_message)


async def test_asking_again_too_soon_is_told_to_wait(kb: KnowledgeBase, tmp_path: Path) -> None:
    async with serve(kb, tmp_path, cooldown_seconds=60) as slack:
        _, _, first = await slack.command("/ask", QUESTION)
        _, _, second = await slack.command("/ask", "contrastive learning")
        [answer] = await slack.reply_to(first)
        [wait] = await slack.reply_to(second)
    assert answer.data["response_type"] == "in_channel"
    assert wait.data["response_type"] == "ephemeral"
    assert "please wait" in wait.text and "blocks" not in wait.data


async def test_stats_and_help_are_shown_only_to_the_asker(slack: Slack) -> None:
    _, _, stats_url = await slack.command("/kb-stats")
    [stats] = await slack.reply_to(stats_url)
    assert stats.data["response_type"] == "ephemeral"
    assert "10 entries; last indexed " in stats.text and "\nSources (1):\n• small-notes" in stats.text
    assert "/tmp" not in stats.text and "In the last 7 days: " in stats.text  # a source by its name, never its path

    status, ack, _ = await slack.command("/kb-help")
    assert status == 200
    assert "/kb-reindex" in ack  # acknowledged with the text itself: an ephemeral reply


# -- mentions and direct messages ------------------------------------------------------------------------


@pytest.mark.parametrize("thread", [None, "1700000000.000001"])
async def test_a_mention_is_answered_in_its_thread(slack: Slack, thread: str | None) -> None:
    ts = "1700000100.000200"
    extra = {"thread_ts": thread} if thread else {}
    assert await slack.event(mention(ts, f"<@{BOT_USER_ID}> which paper fixes weight decay in Adam?", **extra)) == 200
    [post] = await slack.fake.wait_for(count=1)
    assert post.name == "chat.postMessage"
    assert post.token == BOT_TOKEN
    assert post.data["channel"] == CHANNEL
    assert post.data["thread_ts"] == (thread or ts)
    assert ADAMW_TITLE in post.blocks[1]["text"]["text"] and ADAMW_URL in post.blocks[1]["text"]["text"]
    assert BOT_USER_ID not in post.blocks[0]["text"]["text"]  # the mention is not part of the question
    assert post.data["unfurl_links"] is False


async def test_what_a_mention_gets_wrong_is_told_to_the_asker_only(slack: Slack) -> None:
    await slack.event(mention("1700000150.000100", f"<@{BOT_USER_ID}> in:天文学 Adam"))
    [post] = await slack.fake.wait_for(count=1)
    assert post.name == "chat.postEphemeral" and post.data["user"] == USER and post.data["channel"] == CHANNEL
    assert post.data["thread_ts"] == "1700000150.000100"
    assert post.data["text"].startswith("No section of the collection matches “天文学”")

    await slack.event(dm("DALICE", "1700000150.000200", "in:天文学 Adam"))  # in a DM: a message, as the answers
    [_, in_dm] = await slack.fake.wait_for(count=2)
    assert in_dm.name == "chat.postMessage" and in_dm.data["channel"] == "DALICE"


async def test_a_direct_message_is_answered_in_the_dm(slack: Slack) -> None:
    await slack.event(dm("DALICE", "1700000200.000100", "哪篇论文修正了 Adam 的 weight decay?"))
    [post] = await slack.fake.wait_for(count=1)
    assert post.data["channel"] == "DALICE"
    assert "thread_ts" not in post.data
    assert ADAMW_URL in post.everything


@pytest.mark.parametrize(
    "event",
    [
        mention(
            "1700000250.000100", f"<@{BOT_USER_ID}> {QUESTION}", subtype="thread_broadcast", thread_ts="1700000250.0"
        ),
        dm("DALICE", "1700000250.000200", QUESTION, subtype="file_share", files=[{"id": "F1", "name": "a.png"}]),
        dm("DALICE", "1700000250.000300", QUESTION, subtype="thread_broadcast", thread_ts="1700000250.0"),
    ],
    ids=["mention-also-sent-to-channel", "dm-with-a-file", "dm-reply-also-sent"],
)
async def test_questions_sent_to_the_channel_too_or_with_a_file_are_answered(
    slack: Slack, event: dict[str, Any]
) -> None:
    assert await slack.event(event) == 200
    [post] = await slack.fake.wait_for(count=1)
    assert post.data["channel"] == event["channel"] and ADAMW_URL in post.everything


async def test_an_answer_slack_rate_limits_is_sent_again(slack: Slack) -> None:
    slack.fake.rate_limits["chat.postMessage"] = 2  # Slack allows about a message a second per channel
    await slack.event(dm("DALICE", "1700000260.000100", QUESTION))
    await slack.fake.wait_for(lambda replies: any(r.status == 200 for r in replies), timeout=15)
    assert [call.status for call in slack.fake.named("chat.postMessage")] == [429, 429, 200]
    assert ADAMW_URL in slack.fake.named("chat.postMessage")[-1].everything


async def test_an_answer_that_meets_a_passing_slack_server_error_is_sent_again(slack: Slack) -> None:
    """The event was acknowledged, so Slack will not deliver it again: the post itself is retried, once."""
    slack.fake.server_errors["chat.postMessage"] = 1
    await slack.event(dm("DALICE", "1700000265.000100", QUESTION))
    await slack.fake.wait_for(lambda replies: any(r.status == 200 for r in replies), timeout=15)
    assert [call.status for call in slack.fake.named("chat.postMessage")] == [503, 200]
    assert ADAMW_URL in slack.fake.named("chat.postMessage")[-1].everything


async def test_an_answer_slack_refuses_is_logged_in_one_line(slack: Slack, caplog: pytest.LogCaptureFixture) -> None:
    slack.fake.errors["chat.postMessage"] = "not_in_channel"
    await slack.event(mention("1700000270.000100", f"<@{BOT_USER_ID}> {QUESTION}"))
    await slack.fake.wait_for(count=1)
    deadline = time.monotonic() + 10
    while not any("Slack refused the reply" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    (refused,) = [r for r in caplog.records if "Slack refused the reply" in r.getMessage()]
    assert refused.getMessage().endswith(": not_in_channel") and refused.exc_info is None
    assert not any(r.exc_info for r in caplog.records if r.name.startswith(("bot", "slack_bolt")))


async def test_a_message_delivered_several_times_is_answered_once(slack: Slack) -> None:
    ts = "1700000300.000100"
    text = f"<@{BOT_USER_ID}> {QUESTION}"
    first = mention(ts, text, channel="DALICE")
    body = slack.event_body(first)
    # Slack retries with the same body; the DM also arrives as a message.im event, with another event_id.
    statuses = await asyncio.gather(
        slack.event(first, body=body),
        slack.event(first, body=body, retry=1),
        slack.event(dm("DALICE", ts, text)),
    )
    assert list(statuses) == [200, 200, 200]
    await slack.event(first, body=body, retry=2)
    await slack.fake.wait_for(lambda replies: any(reply.data.get("channel") == "DALICE" for reply in replies))
    await slack.sentinel()  # answers are posted as they are ready: a second one would have come by now
    assert len(slack.posts()) == 1


@pytest.mark.parametrize(
    "event",
    [
        dm("DALICE", "1700000400.000001", QUESTION, bot_id="BOTHER", user="UOTHERBOT"),
        dm("DALICE", "1700000400.000002", QUESTION, subtype="bot_message", bot_id="BOTHER", user=None),
        dm("DALICE", "1700000400.000003", QUESTION, user=BOT_USER_ID),
        dm("DALICE", "1700000400.000004", QUESTION, bot_id=BOT_ID, user=BOT_USER_ID),
        dm("DALICE", "1700000400.000005", QUESTION, subtype="message_changed"),
        mention("1700000400.000006", f"<@{BOT_USER_ID}> {QUESTION}", bot_id="BOTHER"),
        {**dm("CGENERAL", "1700000400.000007", QUESTION), "channel_type": "channel"},
        # An edited mention comes again as app_mention with the first one's ts (answered again after an hour)
        mention("1700000400.000008", f"<@{BOT_USER_ID}> {QUESTION}", edited={"user": "UALICE", "ts": "1700007600.0"}),
    ],
    ids=["bot", "bot_message", "itself", "itself-as-bot", "edit", "bot-mention", "channel-message", "edited-mention"],
)
async def test_bots_edits_and_channel_chatter_are_not_answered(slack: Slack, event: dict[str, Any]) -> None:
    assert await slack.event(event) == 200  # acknowledged, so Slack does not retry
    await slack.sentinel()
    assert slack.posts() == []


# -- signatures ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"secret": "forged-secret"}, 401),
        ({"age": 6 * 60}, 401),
        ({"age": -6 * 60}, 401),
        ({"headers": {"X-Slack-Signature": "v0=" + "0" * 64}}, 401),
        ({"headers": {"X-Slack-Request-Timestamp": "yesterday"}}, 401),
        # each was a 500 and a traceback per request: int() of 5,000 digits, compare_digest of non-ASCII
        ({"headers": {"X-Slack-Request-Timestamp": "1" * 5000}}, 401),
        ({"headers": {"X-Slack-Signature": "v0=é"}}, 401),
    ],
    ids=["forged", "stale", "future", "bad-signature", "bad-timestamp", "huge-timestamp", "non-ascii-signature"],
)
async def test_unsigned_or_stale_requests_are_refused(slack: Slack, change: dict[str, Any], expected: int) -> None:
    if "age" in change:  # the timestamp is taken now, not when the tests were collected
        change = {"timestamp": int(time.time()) - change["age"]}
    body = slack.event_body(dm("DALICE", "1700000500.000100", QUESTION))
    status, _, _ = await slack.post(body, "application/json", **change)
    assert status == expected
    assert slack.fake.calls == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("ssl_check=1&token=legacy-token", 200),  # Slack checking the certificate, unsigned
        ("ssl_check=1&command=%2Fask&text=Adam&response_url=https%3A%2F%2Fhooks.example%2Fx", 200),  # nothing run
        ("ssl_check=0&token=legacy-token", 401),
        ("ssl_check=true&token=legacy-token", 401),
        ("ssl_check=1&ssl_check=0", 401),
    ],
)
async def test_slack_s_certificate_check_is_answered_and_nothing_else_passes_unsigned(
    slack: Slack, body: str, expected: int
) -> None:
    response = await slack.http.post(
        "/slack/events", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status == expected
    assert await response.text() == ("" if expected == 200 else '{"error": "invalid request"}')
    assert slack.fake.calls == []  # answered before anything is dispatched


async def test_a_body_changed_after_signing_is_refused(slack: Slack) -> None:
    body = slack.event_body(dm("DALICE", "1700000500.000200", QUESTION))
    headers = sign(body, int(time.time()))
    response = await slack.http.post(
        "/slack/events", data=body.replace("Adam", "Adan"), headers={"Content-Type": "application/json", **headers}
    )
    assert response.status == 401
    assert slack.fake.calls == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{not json", "application/json"),
        ("[1, 2]", "application/json"),
        ("payload=%7Bbroken", "application/x-www-form-urlencoded"),
        (b"\xff\xfe not utf-8", "application/x-www-form-urlencoded"),
        # signed, parsed, but not what Slack sends: each was a 500 with a traceback, or a KeyError before the ack
        (json.dumps({"type": "event_callback", "event": "x", "team_id": "T1"}), "application/json"),
        (
            "payload=" + quote(json.dumps({"type": "block_actions", "user": {"id": "U1"}, "actions": []})),
            "application/x-www-form-urlencoded",
        ),
        ("command=%2Fask&text=Adam&user_id=U1&team_id=T1", "application/x-www-form-urlencoded"),
    ],
)
@pytest.mark.parametrize("secret", [SECRET, "forged-secret"])
async def test_a_malformed_body_is_a_client_error_not_a_crash(
    slack: Slack, body: str | bytes, content_type: str, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    status, _, _ = await slack.post(body, content_type, secret=secret)
    assert status == 400 if secret == SECRET else status in (400, 401)  # forged: 400 only for a body not in UTF-8
    assert slack.fake.calls == []
    assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_url_verification_is_answered_by_bolt(slack: Slack) -> None:
    body = json.dumps({"token": "t", "challenge": "challenge-123", "type": "url_verification"})
    status, text, _ = await slack.post(body, "application/json")
    assert status == 200 and "challenge-123" in text


NESTED = b"[" * 200_000 + b"]" * 200_000  # 400 KB of [[[…]]]: json.loads raises RecursionError on it


async def test_a_flood_of_deeply_nested_json_is_refused_with_at_most_one_log_line_a_second(
    make_kb: MakeKb, small_notes: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the service's own HTTP server (as `python -m bot run` serves /slack/events in HTTP mode)."""
    caplog.set_level(logging.INFO)  # the service's level
    fake = await FakeSlack().start()
    kb = make_kb(
        [small_notes],
        tmp_path,
        http_port=0,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SECRET,
        slack_api_url=fake.api_url,
    )
    assert isinstance(kb.settings, BotSettings)
    service = await start(kb.settings, kb)
    try:
        url = f"http://127.0.0.1:{service.port}/slack/events"
        json_type = {"Content-Type": "application/json"}
        statuses: list[int] = []
        async with aiohttp.ClientSession(trust_env=False) as http:
            caplog.clear()
            began = time.monotonic()
            for number in range(60):
                if number % 3 == 0:
                    headers = json_type  # unsigned
                elif number % 3 == 1:
                    headers = {**json_type, **sign(NESTED, int(time.time()), "forged-secret")}
                else:  # signed with the app's secret (only Slack could): parsed, and refused as malformed
                    headers = {**json_type, **sign(NESTED, int(time.time()))}
                async with http.post(url, data=NESTED, headers=headers) as response:
                    statuses.append(response.status)
            seconds = time.monotonic() - began
        lines = [record for record in caplog.records if record.levelno >= logging.INFO]
    finally:
        await stop(service)
        await fake.close()
    assert statuses == [401, 401, 400] * 20
    assert len(lines) <= seconds + 1, [record.getMessage() for record in lines]
    assert "Traceback" not in caplog.text and all(record.exc_info is None for record in lines)
    assert "refused a request to /slack/events" in lines[0].getMessage()
    assert fake.calls == []  # nothing reached the app, nor Slack
    print(f"60 nested-JSON requests in {seconds:.2f} s: {len(lines)} log line(s)")


def test_refusals_are_logged_at_most_once_an_interval_with_a_count_of_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock(0.0)
    log = RateLimitedLog(logging.getLogger("test.refusals"), interval=1.0, clock=clock)
    for _ in range(50):
        log.warning("refused %s", "x")
        clock.advance(0.01)
    clock.advance(1.0)
    log.warning("refused %s", "y")
    assert [record.getMessage() for record in caplog.records] == [
        "refused x",
        "refused y (49 more like it since the last line)",
    ]


# -- admin -----------------------------------------------------------------------------------------------


async def test_reindex_is_for_admins_only(slack: Slack) -> None:
    _, _, response_url = await slack.command("/kb-reindex", "full", user=USER)
    [reply] = await slack.reply_to(response_url)
    assert reply.data["response_type"] == "ephemeral"
    assert reply.text == escape_mrkdwn(NotAdmin().user_message)
    assert not slack.core.reindex_running


async def test_a_read_only_replica_tells_an_admin_it_does_not_index(kb: KnowledgeBase, tmp_path: Path) -> None:
    async with serve(kb, tmp_path, ingest_on_start=False) as slack:
        _, _, response_url = await slack.command("/kb-reindex", "", user=ADMIN)
        [reply] = await slack.reply_to(response_url)
        assert reply.data["response_type"] == "ephemeral"
        assert reply.text == escape_mrkdwn(ReadOnlyReplica().user_message)
        assert not slack.core.reindex_running


async def test_an_admin_reindex_reports_start_then_summary_and_refuses_a_second(
    slack: Slack, kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    ingest = kb.ingest

    def held_ingest(*args: Any, **kwargs: Any) -> Any:
        assert gate.wait(10), "the test never released the reindex"
        return ingest(*args, **kwargs)

    monkeypatch.setattr(kb, "ingest", held_ingest)
    try:
        _, _, first = await slack.command("/kb-reindex", user=ADMIN)
        [started] = await slack.reply_to(first)
        assert started.data["response_type"] == "ephemeral"
        assert "Reindex started" in started.text
        assert slack.core.reindex_running

        _, _, second = await slack.command("/kb-reindex", user=ADMIN)
        [refused] = await slack.reply_to(second)
        assert refused.text == escape_mrkdwn(AlreadyRunning().user_message)
    finally:
        gate.set()
    [_, summary] = await slack.reply_to(first, count=2)
    assert summary.text.startswith("Reindex done in") and "10 entries" in summary.text
    assert summary.data["response_type"] == "ephemeral"


async def test_a_reindex_summary_goes_to_a_dm_once_the_response_url_has_expired(
    slack: Slack, kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    ingest = kb.ingest

    def held_ingest(*args: Any, **kwargs: Any) -> Any:
        assert gate.wait(10), "the test never released the reindex"
        return ingest(*args, **kwargs)

    monkeypatch.setattr(kb, "ingest", held_ingest)
    try:
        _, _, response_url = await slack.command("/kb-reindex", "full", user=ADMIN, uses=1)
        [started] = await slack.reply_to(response_url)
        assert "A full rebuild started" in started.text
    finally:
        gate.set()
    await slack.fake.wait_for(lambda replies: any(r.name == "chat.postMessage" for r in replies), timeout=30)
    [expired] = slack.fake.named(response_url.removeprefix(slack.fake.url + "/"))[1:]
    assert expired.status == 404
    [dm_summary] = slack.fake.named("chat.postMessage")
    assert dm_summary.data["channel"] == ADMIN
    assert dm_summary.text.startswith("Reindex done in") and "10 entries" in dm_summary.text


async def test_a_reindex_summary_nobody_can_be_sent_is_one_line_in_the_log(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    slack.fake.errors["chat.postMessage"] = "messages_tab_disabled"  # the admin's DMs with the bot are off
    await slack.command("/kb-reindex", "", user=ADMIN, uses=1)
    await slack.fake.wait_for(lambda replies: any(r.name == "chat.postMessage" for r in replies), timeout=30)
    for _ in range(100):
        if "could not tell" in caplog.text:
            break
        await asyncio.sleep(0.05)
    (line,) = [r for r in caplog.records if r.levelno >= logging.WARNING]  # was bolt's ERROR with a traceback
    assert line.getMessage() == f"could not tell {ADMIN} the reindex's outcome: Slack said messages_tab_disabled"
    assert line.exc_info is None


# -- buttons ---------------------------------------------------------------------------------------------


async def test_the_more_button_posts_the_next_page_in_the_same_thread(slack: Slack) -> None:
    _, _, asked = await slack.command("/ask", TWO_PAGES)
    [first] = await slack.reply_to(asked)
    status, clicked = await slack.action("kb_more", answer_id(first), thread_ts="1700000000.000001")
    assert status == 200
    [second] = await slack.reply_to(clicked)
    assert second.data["response_type"] == "in_channel"
    assert second.data["replace_original"] is False
    assert second.data["thread_ts"] == "1700000000.000001"
    assert "(page 2/" in second.blocks[0]["text"]["text"]
    assert answer_id(second) == answer_id(first)


async def test_more_under_a_page_shows_the_page_after_it_however_often_it_is_pressed(slack: Slack) -> None:
    """Two readers of a channel, or a double click, pressing More under page 1 each see page 2."""
    _, _, asked = await slack.command("/ask", TWO_PAGES)
    [first] = await slack.reply_to(asked)
    more = next(e for b in first.blocks if b["type"] == "actions" for e in b["elements"] if e["action_id"] == "kb_more")
    assert more["value"] == f"{answer_id(first)}:2"
    pages = []
    for _ in range(2):
        _, clicked = await slack.action("kb_more", more["value"])
        [shown] = await slack.reply_to(clicked)
        pages.append(shown.blocks[0]["text"]["text"])
    assert all("(page 2/" in page for page in pages)
    _, clicked = await slack.action("kb_more", f"{answer_id(first)}:99")  # past the last page
    [beyond] = await slack.reply_to(clicked)
    assert beyond.text == "There are no more results for that question. Ask another one!"


async def test_a_vote_is_stored_and_thanked(slack: Slack) -> None:
    _, _, asked = await slack.command("/ask", QUESTION)
    [first] = await slack.reply_to(asked)
    _, clicked = await slack.action("kb_vote_down", answer_id(first))
    [thanks] = await slack.reply_to(clicked)
    assert thanks.data["response_type"] == "ephemeral" and "Thanks" in thanks.text
    assert slack.core.records is not None
    [row] = slack.core.records.votes(datetime.fromtimestamp(0, UTC))
    assert row.vote == "down" and row.user == f"slack:{USER}" and row.platform == "slack"
    assert row.question == QUESTION and row.entries[0][1] == ADAMW_TITLE


@pytest.mark.parametrize("action_id", ["kb_more", "kb_vote_up"])
async def test_buttons_of_a_forgotten_answer_say_so(slack: Slack, action_id: str) -> None:
    _, clicked = await slack.action(action_id, "0123456789ab")
    [reply] = await slack.reply_to(clicked)
    assert reply.data["response_type"] == "ephemeral"
    assert reply.text == escape_mrkdwn(UnknownAnswer().user_message)


# -- safety ----------------------------------------------------------------------------------------------


async def test_mass_mentions_in_a_question_never_ping(slack: Slack) -> None:
    question = "<!channel> @everyone <!here> <!everyone> weight decay in Adam & more"
    _, _, asked = await slack.command("/ask", question)
    await slack.event(mention("1700000600.000100", f"<@{BOT_USER_ID}> &lt;!here&gt; {question}"))
    [reply] = await slack.reply_to(asked)
    [post] = [call for call in await slack.fake.wait_for(count=2) if call.name == "chat.postMessage"]
    for call in (reply, post):
        for ping in PINGS:
            assert ping not in call.everything
        assert "&lt;!channel&gt;" in call.blocks[0]["text"]["text"]
        assert "&lt;!channel&gt;" in call.text  # the notification text too


async def test_an_unexpected_error_is_an_apology_without_details(
    slack: Slack, kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail /srv/db")

    monkeypatch.setattr(kb, "asearch", broken)
    _, _, asked = await slack.command("/ask", QUESTION)
    await slack.event(dm("DALICE", "1700000700.000100", QUESTION))
    [reply] = await slack.reply_to(asked)
    [post] = [call for call in await slack.fake.wait_for(count=2) if call.name == "chat.postMessage"]
    for call in (reply, post):
        assert call.text == escape_mrkdwn(APOLOGY)
        assert "secret internal detail" not in call.everything
    assert reply.data["response_type"] == "ephemeral"
    assert "secret internal detail" in caplog.text  # the operator sees it in the log


async def test_tokens_and_secrets_never_reach_the_log(slack: Slack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _, _, asked = await slack.command("/ask", QUESTION)
    await slack.event(mention("1700000800.000100", f"<@{BOT_USER_ID}> {QUESTION}"))
    await slack.reply_to(asked)
    await slack.fake.wait_for(count=2)
    await slack.post(slack.event_body(dm("D", "1.2", "x")), "application/json", secret="forged")
    assert "auth.test" in caplog.text  # debug logging was really on
    for secret in (BOT_TOKEN, SECRET, APP_TOKEN):
        assert secret not in caplog.text


# -- Socket Mode -----------------------------------------------------------------------------------------


async def test_socket_mode_connects_acknowledges_envelopes_and_answers(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    handler = await start_socket_mode(create_slack_app(slack.core, slack.settings), slack.settings)
    try:
        [opened] = slack.fake.named("apps.connections.open")
        assert opened.token == APP_TOKEN
        payload = json.loads(slack.event_body(mention("1700000900.000100", f"<@{BOT_USER_ID}> {QUESTION}")))
        envelope_id = await slack.fake.send_envelope(payload)
        [post] = await slack.fake.wait_for(count=1)
        assert post.data["thread_ts"] == "1700000900.000100" and ADAMW_URL in post.everything
        assert {"envelope_id": envelope_id} in slack.fake.socket_replies
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
    for secret in (BOT_TOKEN, SECRET, APP_TOKEN):
        assert secret not in caplog.text


async def test_socket_mode_with_a_refused_token_fails_at_once(slack: Slack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    slack.fake.errors["apps.connections.open"] = "invalid_auth"
    with pytest.raises(SlackApiError):
        await asyncio.wait_for(start_socket_mode(create_slack_app(slack.core, slack.settings), slack.settings), 5)
    assert APP_TOKEN not in caplog.text


async def test_the_app_and_socket_mode_need_their_tokens(kb: KnowledgeBase, tmp_path: Path) -> None:
    settings = BotSettings(_env_file=None, sources=kb.settings.sources, data_dir=tmp_path)
    core = ChatCore(kb, settings)
    with pytest.raises(ValueError, match="KB_SLACK_BOT_TOKEN"):
        create_slack_app(core, settings)
    with_bot_token = settings.model_copy(update={"slack_bot_token": SecretStr(BOT_TOKEN)})
    with pytest.raises(ValueError, match="KB_SLACK_APP_TOKEN"):
        await start_socket_mode(create_slack_app(core, with_bot_token), with_bot_token)


# -- pieces ----------------------------------------------------------------------------------------------


def test_the_manifest_declares_what_the_app_handles() -> None:
    yaml = pytest.importorskip("yaml")
    manifest = yaml.safe_load(slack_manifest())
    commands = {command["command"] for command in manifest["features"]["slash_commands"]}
    assert commands == {"/ask", "/more", "/kb-stats", "/kb-help", "/kb-reindex", "/kb-similar", "/kb-browse", "/kb-new"}
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "app_mentions:read",
        "chat:write",
        "commands",
        "im:history",
        "im:read",
        "im:write",
    }
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_mention", "message.im"]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True


def test_the_manifest_keeps_english_commands_with_chinese_hints() -> None:
    yaml = pytest.importorskip("yaml")
    commands = yaml.safe_load(slack_manifest())["features"]["slash_commands"]
    for command in commands:
        assert command["command"].isascii(), command
        assert HAN.search(command["description"]) and re.search("[A-Za-z]{3}", command["description"]), command
        if "usage_hint" in command:
            assert HAN.search(command["usage_hint"]), command


@pytest.mark.parametrize(
    ("text", "question"),
    [
        (f"<@{BOT_USER_ID}> what is AdamW?", "  what is AdamW?"),
        (f"<@{BOT_USER_ID}|collections-bot> a &lt; b &amp;&amp; c &gt; d", "  a < b && c > d"),
        ("<!channel> hi", "<!channel> hi"),
        # Slack's markup of what was typed: a bare domain becomes a labelled link, which the lookup read as
        # the URL `…/CLIP|github.com/openai/CLIP` ("Not in the collection")
        ("<http://github.com/openai/CLIP|github.com/openai/CLIP> 的论文", "http://github.com/openai/CLIP 的论文"),
        ("<https://arxiv.org/abs/1711.05101?a=1&amp;b=2> 讲了啥", "https://arxiv.org/abs/1711.05101?a=1&b=2 讲了啥"),
        ("<#C0123|general> 里说的 <!subteam^S01|@ml-team> 那篇", "#general 里说的 @ml-team 那篇"),
        ("<!subteam^S01> 推荐 <mailto:a@b.example|a@b.example>", " 推荐 a@b.example"),
        ("&lt;http://typed.example|x&gt;", "<http://typed.example|x>"),  # typed, not markup: left as typed
    ],
)
def test_slack_question(text: str, question: str) -> None:
    assert slack_question(text) == question


def test_message_key() -> None:
    assert message_key({"channel": "C1", "ts": "1.2", "event_id": "x"}) == message_key({"channel": "C1", "ts": "1.2"})
    assert message_key({"channel": "C1", "ts": "1.2"}) != message_key({"channel": "C2", "ts": "1.2"})
    assert message_key({"ts": "1.2"}) is None


def test_the_readme_points_to_the_manifest_instead_of_copying_it() -> None:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Running on Slack", 1)[1].split("\n## ", 1)[0]
    assert "bot/slack-manifest.yaml" in section
    assert "display_information:" not in section and "slash_commands:" not in section
    assert slack_manifest() == (ROOT / "bot" / "slack-manifest.yaml").read_text(encoding="utf-8")


def test_python_m_bot_slack_manifest_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.__main__ import main

    assert main(["slack-manifest"]) == 0
    assert capsys.readouterr().out == slack_manifest()


def test_one_pair_of_keys_for_slack_channels_and_users() -> None:
    assert conversation_key("C1") == "slack:C1" and user_key("U1") == "slack:U1"


# -- the reply's language --------------------------------------------------------------------------------


async def test_replies_follow_the_language_of_the_question(slack: Slack) -> None:
    _, _, chinese = await slack.command("/ask", "哪篇论文修正了 Adam 的 weight decay?")
    [zh] = await slack.reply_to(chinese)
    _, _, stats = await slack.command("/kb-stats")  # no question: the channel's last language
    [zh_stats] = await slack.reply_to(stats)
    _, zh_help, _ = await slack.command("/kb-help")
    _, _, english = await slack.command("/ask", QUESTION)
    [en] = await slack.reply_to(english)
    _, en_help, _ = await slack.command("/kb-help")
    _, zh_help_asked, _ = await slack.command("/kb-help", "中文")

    assert zh.blocks[0]["text"]["text"].startswith("“哪篇论文修正了 Adam 的 weight decay?”的结果")
    assert zh.text.startswith("“哪篇论文修正了 Adam 的 weight decay?”的 ")  # the notification too
    (actions,) = [block for block in zh.blocks if block["type"] == "actions"]
    more, up, down, similar = actions["elements"]
    assert [more["text"]["text"], up["text"]["text"], down["text"]["text"]] == ["更多结果", "👍", "👎"]
    assert similar["placeholder"]["text"] == "找相似…" and similar["options"][0]["text"]["text"].startswith(
        "与第 1 条相似 · "
    )
    assert zh_stats.text.startswith("共 10 个条目；上次索引时间：")
    assert zh_help.startswith("我根据") and "• /kb-reindex：" in zh_help and "• 也可以 @我 提问" in zh_help
    assert en.blocks[0]["text"]["text"].startswith("Results for “Which paper fixes weight decay in Adam?”")
    assert en_help.startswith("I answer questions") and "• /kb-stats: what the index holds" in en_help
    assert zh_help_asked.startswith("我根据")


async def test_mentions_and_dms_follow_the_language_of_the_question(slack: Slack) -> None:
    await slack.event(mention("1700001000.000100", f"<@{BOT_USER_ID}> 非自回歸的機器翻譯"))
    await slack.event(dm("DALICE", "1700001000.000200", "attention only transformer"))
    await slack.event(dm("DBOB", "1700001000.000300", "   "))
    posts = await slack.fake.wait_for(count=3)
    by_channel = {post.data["channel"]: post for post in posts}
    assert by_channel[CHANNEL].blocks[0]["text"]["text"].startswith("“非自回歸的機器翻譯”的結果")
    assert by_channel["DALICE"].blocks[0]["text"]["text"].startswith("Results for “attention only transformer”")
    assert by_channel["DBOB"].text.startswith("There is no question to answer.")  # nothing to tell: English


async def test_kb_locale_fixes_the_language_of_every_reply(kb: KnowledgeBase, tmp_path: Path) -> None:
    async with serve(kb, tmp_path, locale="zh-Hans") as slack:
        _, _, asked = await slack.command("/ask", QUESTION)
        [reply] = await slack.reply_to(asked)
        _, _, refused = await slack.command("/kb-reindex", user=USER)
        [not_admin] = await slack.reply_to(refused)
    assert reply.blocks[0]["text"]["text"].startswith("“Which paper fixes weight decay in Adam?”的结果")
    assert not_admin.text == "只有机器人的管理员才能重建索引。"


# -- where the bot answers, and private answers ----------------------------------------------------------


async def test_the_channel_allowlist_applies_to_commands_mentions_and_buttons(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    async with serve(kb, tmp_path, slack_channels=CHANNEL) as slack:
        _, _, asked = await slack.command("/ask", QUESTION)
        [answer] = await slack.reply_to(asked)
        status, outside, _ = await slack.command("/ask", QUESTION, channel="COTHER")
        _, outside_help, _ = await slack.command("/kb-help", channel="COTHER")
        await slack.event(mention("1700002000.000100", f"<@{BOT_USER_ID}> {QUESTION}", channel="COTHER"))
        _, clicked = await slack.action("kb_more", answer_id(answer), channel="COTHER")
        [more] = await slack.reply_to(clicked)
        await slack.event(dm("DALICE", "1700002000.000200", QUESTION))  # a DM is always fine
        # Answers are posted as they are ready, not in the order asked: wait for the DM's own answer.
        await slack.fake.wait_for(lambda replies: any(reply.data.get("channel") == "DALICE" for reply in replies))
        await slack.sentinel()
        posts = slack.posts()
    not_here = escape_mrkdwn(NotHere().user_message)
    assert status == 200 and outside == not_here and outside_help == not_here  # an ephemeral acknowledgement
    assert more.data["response_type"] == "ephemeral" and more.text == not_here
    assert [post.data["channel"] for post in posts] == ["DALICE"]  # the mention got no reply
    assert answer.data["response_type"] == "in_channel"


async def test_a_private_ask_is_an_ephemeral_reply(slack: Slack) -> None:
    _, _, asked = await slack.command("/ask", f"-p {QUESTION}")
    [reply] = await slack.reply_to(asked)
    await slack.event(mention("1700002100.000100", f"<@{BOT_USER_ID}> --private {QUESTION}"))
    replies = await slack.fake.wait_for(lambda replies: any(r.name == "chat.postEphemeral" for r in replies))
    [ephemeral] = [call for call in replies if call.name == "chat.postEphemeral"]

    assert reply.data["response_type"] == "ephemeral"
    assert reply.blocks[0]["text"]["text"].startswith(f"Results for “{QUESTION}”")  # the flag is not the question
    assert ADAMW_TITLE in reply.everything
    assert ephemeral.name == "chat.postEphemeral"
    assert ephemeral.data["channel"] == CHANNEL and ephemeral.data["user"] == USER
    assert ephemeral.data["thread_ts"] == "1700002100.000100" and ADAMW_TITLE in ephemeral.everything
    assert slack.fake.named("chat.postMessage") == []


# -- filters, papers by identifier, "more like this" -----------------------------------------------------


async def test_inline_filters_narrow_the_search(slack: Slack) -> None:
    _, _, in_section = await slack.command("/ask", "in:推荐 召回 位置偏置 attention")
    _, _, in_english = await slack.command("/ask", "lang:en attention transformer without recurrence")
    _, _, unknown = await slack.command("/ask", "in:天文学 Adam")
    [section_reply] = await slack.reply_to(in_section)
    [english_reply] = await slack.reply_to(in_english)
    [unknown_reply] = await slack.reply_to(unknown)

    assert section_reply.blocks[0]["text"]["text"].startswith("“召回 位置偏置 attention”的结果（§推荐）")
    contexts = [b["elements"][0]["text"] for b in section_reply.blocks if b["type"] == "context"]
    assert contexts and all("📂 推荐" in context for context in contexts)
    header = english_reply.blocks[0]["text"]["text"]
    assert header.startswith("Results for “attention transformer without recurrence” (English entries)")
    assert "Attention Is All You Need" in english_reply.everything and "非自回歸" not in english_reply.everything
    assert unknown_reply.data["response_type"] == "ephemeral" and "天文学" in unknown_reply.text


async def test_a_paper_is_looked_up_exactly_and_a_missing_one_said_so(slack: Slack) -> None:
    _, _, found = await slack.command("/ask", "http://www.arxiv.org/abs/1711.05101v3/")
    _, _, missing = await slack.command("/ask", "2106.09685 attention transformer")
    [found_reply] = await slack.reply_to(found)
    [missing_reply] = await slack.reply_to(missing)

    header = found_reply.blocks[0]["text"]["text"]
    assert header == "In the collection: arXiv:1711.05101 in §深度学习 › 优化:"
    assert ADAMW_TITLE in found_reply.blocks[1]["text"]["text"]
    assert missing_reply.blocks[0]["text"]["text"].startswith(
        "Not in the collection: arXiv:2106.09685. Related entries"
    )
    assert "Attention Is All You Need" in missing_reply.everything


async def test_similar_to_an_item_from_its_menu_and_its_command(slack: Slack) -> None:
    _, _, asked = await slack.command("/ask", "Which paper proposed MoCo, momentum contrast?")
    [answer] = await slack.reply_to(asked)
    (actions,) = [block for block in answer.blocks if block["type"] == "actions"]
    (menu,) = [element for element in actions["elements"] if element["type"] == "static_select"]
    picked = menu["options"][0]
    assert picked["text"]["text"].startswith("Similar to #1 · Momentum Contrast")
    _, clicked = await slack.action("kb_similar", "", selected=picked)
    [similar] = await slack.reply_to(clicked)
    _, _, by_number = await slack.command("/kb-similar", "1")
    [again] = await slack.reply_to(by_number)

    header, *items = [b["text"]["text"] for b in similar.blocks if b["type"] == "section"]
    assert header.startswith("Entries like #1 “Momentum Contrast for Unsupervised Visual Representation Learning”")
    assert items and not any("Momentum Contrast" in item for item in items)  # never the entry itself
    # The channel's last answer is now that one: its #1 is another entry, and it is not among its neighbours.
    header, *items = [b["text"]["text"] for b in again.blocks if b["type"] == "section"]
    subject = header.split("“", 1)[1].split("”", 1)[0]
    assert header.startswith("Entries like #1 “") and subject not in "".join(items)
    assert similar.data["response_type"] == again.data["response_type"] == "in_channel"
    _, _, nothing = await slack.command("/kb-similar", "seven")
    [usage] = await slack.reply_to(nothing)
    assert usage.text == escape_mrkdwn("Give the number of an entry of the last answer here, e.g. `/kb-similar 2`.")
    # "①" and "²" are digits to str.isdigit, and int() refuses them: the usage again, not a failed command
    for odd in ("①", "²", "9" * 5000):
        _, _, odd_number = await slack.command("/kb-similar", odd)
        [usage] = await slack.reply_to(odd_number)
        assert usage.text.startswith("Give the number of an entry")
    _, _, full_width = await slack.command("/kb-similar", "１")  # a decimal digit, as a Chinese keyboard types it
    [by_full_width] = await slack.reply_to(full_width)
    assert by_full_width.blocks[0]["text"]["text"].startswith("Entries like #1 “")


# -- browsing --------------------------------------------------------------------------------------------


async def test_browse_descends_two_levels_and_pages_through_a_section(slack: Slack) -> None:
    _, _, browsed = await slack.command("/kb-browse")
    [top] = await slack.reply_to(browsed)
    assert top.data["response_type"] == "ephemeral" and top.data["replace_original"] is False
    assert top.blocks[0]["text"]["text"] == "The collection's sections, 10 entries in all:"
    assert top.blocks[1]["text"]["text"] == "*Subsections:*\n• 深度学习 (4)\n• 推荐 (3)\n• NLP (3)"
    (actions,) = [block for block in top.blocks if block["type"] == "actions"]
    (menu,) = actions["elements"]
    assert menu["action_id"] == "kb_browse_pick" and [o["text"]["text"] for o in menu["options"]] == [
        "深度学习 (4)",
        "推荐 (3)",
        "NLP (3)",
    ]

    _, picked = await slack.action("kb_browse_pick", "", selected=menu["options"][0])
    [deep] = await slack.reply_to(picked)
    assert deep.data["replace_original"] is True and deep.data["response_type"] == "ephemeral"
    assert deep.blocks[0]["text"]["text"] == "§深度学习, 4 entries:"
    (actions,) = [block for block in deep.blocks if block["type"] == "actions"]
    menu, up = actions["elements"]
    assert [o["text"]["text"] for o in menu["options"]] == ["优化 (2)", "自监督 (2)"]
    assert (up["action_id"], up["value"]) == ("kb_browse_up", "top:1")

    _, picked = await slack.action("kb_browse_pick", "", selected=menu["options"][1])
    [first] = await slack.reply_to(picked)
    assert first.blocks[0]["text"]["text"] == "§深度学习 › 自监督, 2 entries (page 1/2):"
    (actions,) = [block for block in first.blocks if block["type"] == "actions"]
    up, following = actions["elements"]
    assert following["action_id"] == "kb_browse_next" and following["value"].endswith(":2")
    _, moved = await slack.action("kb_browse_next", following["value"])
    [second] = await slack.reply_to(moved)
    assert second.blocks[0]["text"]["text"] == "§深度学习 › 自监督, 2 entries (page 2/2):"
    shown = [first.blocks[1]["text"]["text"], second.blocks[1]["text"]["text"]]
    assert shown[0].startswith("*1. <") and shown[1].startswith("*2. <")
    assert any("Momentum Contrast" in text for text in shown) and any("Simple Framework" in text for text in shown)
    (actions,) = [block for block in second.blocks if block["type"] == "actions"]
    assert [element["action_id"] for element in actions["elements"]] == ["kb_browse_up", "kb_browse_previous"]


async def test_browse_speaks_the_channel_s_language_and_finds_sections_in_either(slack: Slack) -> None:
    _, _, asked = await slack.command("/ask", "召回")  # the channel's last language is now Chinese
    await slack.reply_to(asked)
    _, _, browsed = await slack.command("/kb-browse", "recommend")
    _, _, unknown = await slack.command("/kb-browse", "天文学")
    [recommendation] = await slack.reply_to(browsed)
    [refused] = await slack.reply_to(unknown)
    assert recommendation.blocks[0]["text"]["text"] == "§推荐，共 3 个条目："
    assert recommendation.blocks[1]["text"]["text"] == "*子分类：*\n• 召回（2）\n• 排序（1）"
    assert refused.data["response_type"] == "ephemeral" and refused.text.startswith("合集中没有与“天文学”匹配的分类")


async def test_a_browse_button_whose_section_a_reindex_removed_says_so_not_its_id(slack: Slack) -> None:
    _, moved = await slack.action("kb_browse_next", "0123456789ab:2")
    _, picked = await slack.action(
        "kb_browse_pick", "", selected={"text": {"type": "plain_text", "text": "x"}, "value": "fedcba987654"}
    )
    for response_url in (moved, picked):
        [gone] = await slack.reply_to(response_url)
        assert gone.text.startswith("That section is no longer in the collection")
        assert "0123456789ab" not in gone.text and "fedcba987654" not in gone.text


async def test_an_unknown_section_typed_at_length_is_repeated_short(slack: Slack) -> None:
    _, _, browsed = await slack.command("/kb-browse", "&" * 4000)
    [refused] = await slack.reply_to(browsed)
    assert refused.text.startswith("No section of the collection matches “" + "&amp;" * 59 + "…”")
    assert len(refused.text) < 500
