"""Hostile questions through every front-end: 0 crashes, 0 pings, and always a clear reply.

Every question below goes through five real paths: the console chat (its read loop on piped input),
Discord as an @mention (on_message) and as `/ask` (the real command tree), and Slack as a signed
`app_mention` event and as a signed `/ask` slash command, both over HTTP into the real bolt app.
Outgoing traffic is recorded by the fakes in tests/fake_discord.py and tests/fake_slack.py.

For every (question, path) delivery: nothing escapes, nothing is logged at ERROR, no traceback;
exactly one reply (an answer split at Discord's 2,000 characters counts as one); the reply is an
answer, the refusal or the usage hint, never the apology or exception text; nothing can ping; and
no bidi override or isolate from the question reaches the reply.
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fake_discord import (
    ALICE,
    BOT_ID,
    BOT_ROLE,
    BOT_USER,
    GENERAL,
    FakeDiscord,
    Recorded,
    command_payload,
    deliver,
    endpoints_restored,
    member_payload,
    message_payload,
    run_command,
    start_client,
    user_payload,
)
from fake_slack import BOT_USER_ID, CHANNEL, TEAM_ID, Call, Slack, mention, serve
from rich.console import Console

from bot import texts
from bot.chat import ChatCore, clean_question
from bot.console import ConsoleChat
from bot.discord_bot import OPTION_MAX_CHARS, KnowledgeBot
from bot.i18n import LOCALES, texts_for
from bot.settings import BotSettings
from bot.texts import APOLOGY
from knowledge import KnowledgeBase

# -- the questions -------------------------------------------------------------------------------------

ADAMW = "Fixing Weight Decay Regularization in Adam"
MOCO = "Momentum Contrast for Unsupervised Visual Representation Learning"
TRANSFORMER = "Attention Is All You Need"
NAT = "非自回歸機器翻譯"
Q = "Which paper fixes weight decay in Adam?"
USAGE = "usage"
REFUSAL = "refusal"
ANSWER = "answer"
ROLE = "<@&123456789012345678>"

CONSOLE = "console"
DISCORD_MENTION = "discord-mention"
DISCORD_SLASH = "discord-slash"
SLACK_MENTION = "slack-mention"
SLACK_SLASH = "slack-slash"
PATHS = (CONSOLE, DISCORD_MENTION, DISCORD_SLASH, SLACK_MENTION, SLACK_SLASH)

Expectation = str | dict[str, str] | None


@dataclass(frozen=True)
class Hostile:
    """A question, and what it must get: USAGE, REFUSAL, a title the answer shows, or just a clear reply.

    `expect` may depend on the path: a dict keyed by path or by platform ("discord", "slack").
    """

    name: str
    text: str
    expect: Expectation = None

    def expected(self, path: str) -> str | None:
        if isinstance(self.expect, dict):
            return self.expect.get(path, self.expect.get(path.split("-")[0]))
        return self.expect


ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
BIDI = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
MENTION_TOKENS = {
    "everyone": "@everyone",
    "here": "@here",
    "everyone-upper": "@EVERYONE",
    "role": ROLE,
    "user": "<@123>",
    "user-nick": "<@!123>",
    "channel": "<#123>",
    "slack-channel": "<!channel>",
    "slack-here": "<!here>",
    "slack-everyone": "<!everyone>",
    "slack-subteam": "<!subteam^S123>",
    "slack-subteam-label": "<!subteam^S123|@team>",
    "slack-user": "<@U024BE7LH>",
    "slack-user-label": "<@U024BE7LH|bob>",
}

LITERAL: list[Hostile] = [
    # blank in every way
    Hostile("empty", "", USAGE),
    Hostile("spaces", "   ", USAGE),
    Hostile("unicode-spaces", " \t\u00a0\u3000\u2028\u2029 ", USAGE),
    Hostile("newline-tab-cr", "\n\t\r", USAGE),
    Hostile("crlf-lines", "\r\n\r\n\r\n", USAGE),
    Hostile("c0-controls", "".join(map(chr, range(0x20))) + "\x7f", USAGE),
    Hostile("nul-x50", "\x00" * 50, USAGE),
    Hostile("c1-controls", "\x80\x85\x9b\x9c\x9f", USAGE),
    Hostile("zero-width", ZERO_WIDTH, USAGE),
    Hostile("bidi-marks", "\u200e\u200f\u061c", USAGE),
    Hostile("bidi-embeddings-overrides", "\u202a\u202b\u202c\u202d\u202e", USAGE),
    Hostile("bidi-isolates", "\u2066\u2067\u2068\u2069", USAGE),
    Hostile("all-invisible", ZERO_WIDTH + BIDI + "\x00\x1b\x7f \t", USAGE),
    # long
    Hostile("ascii-100k", (Q + " ") * 2500, ADAMW),
    Hostile("chinese-100k", "对比学习" * 25_000, MOCO),
    Hostile("single-token-100k", "A" * 100_000, REFUSAL),
    Hostile("question-then-100k-filler", Q + " " + "blah " * 20_000, ADAMW),
    Hostile("long-url-token", "https://evil.example/" + "a" * 5_000),
    Hostile("combining-5000", "e" + "\u0301" * 5_000),
    Hostile("question-marks-200", "?" * 200, USAGE),  # no letters or digits: nothing to search for
    # controls, terminal escapes, odd code points
    Hostile("controls-around-words", "\x00\x07Adam\x1b[31m weight decay\x7f", ADAMW),
    Hostile("ansi-clear-and-title", "\x1b[2J\x1b[H\x1b]0;pwned\x07 hello"),
    Hostile("csi-8bit", "\x9b31m red \x9b0m"),
    Hostile("zero-width-inside-words", "Ad\u200bam we\u200cight de\u200dcay"),
    Hostile("soft-hyphen-cgj-mvs", "\u00ad\u034f\u180e"),
    Hostile("tag-characters", "\U000e0041\U000e0042\U000e007f"),
    Hostile("private-use", "\ue000\uf8ff\U000f0000"),
    Hostile("noncharacters", "\ufffe\uffff\U0010ffff"),
    Hostile("replacement-chars", "\ufffd" * 10),
    Hostile("lone-high-surrogate", "\ud800"),
    Hostile("lone-low-surrogate", "abc\udfff"),
    Hostile("surrogate-halves-in-question", "Adam \udc80 weight \ud83d decay"),
    Hostile("zalgo", "Z̷̢͓̈́͘a̸̛͎l̵g̸o̷"),
    Hostile("fullwidth", "Ａｄａｍ ｗｅｉｇｈｔ ｄｅｃａｙ", ADAMW),
    # bidi around a real question
    Hostile("rlo-question", "\u202e" + Q + "\u202c", ADAMW),
    Hostile("rli-question", "\u2067" + Q + "\u2069", ADAMW),
    Hostile("trojan-source", "\u202e\u2066 Adam weight decay \u2069\u2066"),
    Hostile("arabic-hebrew-mixed", "ما هو Adam؟ מה זה weight decay?", ADAMW),
    Hostile("rtl-only", "مرحبا بالعالم שלום עולם"),
    # emoji
    Hostile("emoji-only", "😀😂🤖", USAGE),
    Hostile("emoji-zwj", "👩\u200d👩\u200d👧\u200d👦 👨🏽\u200d💻 🏳️\u200d🌈"),
    Hostile("emoji-flags", "🇨🇳🇺🇸🇯🇵🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"),
    Hostile("emoji-keycaps", "1️⃣#️⃣*️⃣"),
    # mentions, alone
    Hostile("bot-self-discord", f"<@{BOT_ID}>", {DISCORD_MENTION: USAGE, "slack": USAGE}),
    Hostile("bot-self-discord-twice", f"<@!{BOT_ID}> <@{BOT_ID}>", {DISCORD_MENTION: USAGE}),
    Hostile("bot-self-slack", f"<@{BOT_USER_ID}>", {"slack": USAGE}),
    Hostile("bot-role", f"<@&{BOT_ROLE}>", {DISCORD_MENTION: USAGE}),
    Hostile(
        "discord-everything",
        "@everyone @here <@&1> <@1> <@!1> <#1> <:emoji:1> <a:anim:1> </ask:1> <t:0:R> <id:customize>",
    ),
    Hostile("slack-everything", "<!channel> <!here> <!everyone> <!subteam^S1> <@U1> <#C1> <!date^0^{date}|x>"),
    Hostile("at-zwsp-everyone", "@\u200beveryone @\u2060here"),
    Hostile("slack-pre-escaped", "&lt;!channel&gt; &amp;lt;!here&amp;gt; &lt;@U1&gt;"),
    # markup injection
    Hostile("markdown", "**bold** [x](https://evil.example) `code` ```block``` > quote # h1 ||spoiler||"),
    Hostile("markdown-lines", "# h1\n> quote\n- item\n-# subtext\n```py\nprint(1)\n```"),
    Hostile("masked-link-title", f"[{ADAMW}](https://evil.example/phish)"),
    Hostile("mrkdwn-link", "<https://evil.example|click me>"),
    Hostile("mrkdwn-format", "*bold* _it_ ~strike~ `code` > quote"),
    Hostile("mrkdwn-mailto", "<mailto:help@evil.example|support>"),
    Hostile("html", "<script>alert(1)</script><img src=x onerror=alert(1)>"),
    Hostile("html-entities", "&lt;b&gt;&amp;amp;&#x27;&#0;&nbsp;"),
    # query-language lookalikes
    Hostile("sql-drop", "'; DROP TABLE entries; --", REFUSAL),
    Hostile("sql-or", "1 OR 1=1"),
    Hostile("sql-union", '" UNION SELECT * FROM embeddings --'),
    Hostile("chroma-where", '{"$where": {"$ne": null}}'),
    Hostile("chroma-in", '{"lang": {"$in": ["en"]}}'),
    Hostile("chroma-or", '{"$or": [{"id": {"$gt": ""}}, {"$contains": "Adam"}]}'),
    Hostile("json-question", '{"question": "Adam", "k": 1000000, "filter": null}'),
    Hostile("path-traversal", "../../etc/passwd", REFUSAL),
    Hostile("format-string", "%s%s%n", REFUSAL),
    Hostile("format-braces", "{0} {question!r} {__class__} ${HOME} $(rm -rf /)"),
    Hostile("regex", ".*(a+)+$ [^\\w] \\d{1000000}"),
    # small and odd
    Hostile("punctuation", "!?.,;:-_()[]{}<>\"'`~@#$%^&*+=|\\/"),
    Hostile("number", "42"),
    Hostile("arxiv-id", "1711.05101"),
    Hostile("many-nines", "9" * 400),
    # normal questions: still answered right
    Hostile("normal-en", Q, ADAMW),
    Hostile("normal-zh", "哪篇论文修正了 Adam 的 weight decay?", ADAMW),
    Hostile("normal-moco", "何恺明 动量对比 无监督", MOCO),
    Hostile("normal-transformer", "attention only transformer", TRANSFORMER),
    Hostile("traditional-simplified", "非自回歸机器翻译", NAT),
    Hostile("out-of-domain", "今天北京的天气怎么样", REFUSAL),
]


def generated() -> Iterator[Hostile]:
    """Each invisible character alone, and every mention and markup token around a real question."""
    for char in ZERO_WIDTH + BIDI:
        yield Hostile(f"alone-U+{ord(char):04X}", char, USAGE)
    for char in "\x00\x07\x08\x0b\x0c\x1b\x7f\x85":
        yield Hostile(f"alone-{ord(char):#04x}", char, USAGE)
    for name, token in MENTION_TOKENS.items():
        yield Hostile(f"{name}-alone", token)
        yield Hostile(f"{name}-around-question", f"{token} {Q} {token}", ADAMW)
    for char in ("\u200b", "\u200f", "\u202e", "\u2067", "\ufeff", "\x00"):
        yield Hostile(f"U+{ord(char):04X}-around-question", f"{char}{Q}{char}", ADAMW)


QUESTIONS: list[Hostile] = LITERAL + list(generated())

# -- judging one delivery ------------------------------------------------------------------------------

# Replies follow the question's language: a Chinese question gets the Chinese texts.
TRUNCATION_NOTES = tuple(texts_for(locale)(texts.QUESTION_CUT).strip() for locale in LOCALES)
KINDS = {
    "Results for": ANSWER,
    "I found nothing in the collection": REFUSAL,
    "There is no question to answer": USAGE,
    "In the collection: ": ANSWER,  # a paper the question names, found exactly
    "Not in the collection: ": REFUSAL,
    "合集中有：": ANSWER,
    "合集中没有：": REFUSAL,
    "合集中没有找到": REFUSAL,
    "合集中沒有找到": REFUSAL,
    "没有可回答的问题": USAGE,
    "沒有可回答的問題": USAGE,
}
CHINESE_RESULTS = re.compile(r"(与|與)?“[^”]*”(最接近)?的(结果|結果)")  # the question may wrap on the console
EXCEPTION_TEXT = re.compile(r"Traceback|Exception\b|Error\b|File \"")
# Bidi embeddings, overrides and isolates reorder what follows them: none may reach a reply.
REORDERING = re.compile("[\u202a-\u202e\u2066-\u2069]")
TERMINAL_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")
SLACK_PINGS = ("<!channel>", "<!here>", "<!everyone>", "<!subteam", "<@")
ANSWER_SIZE = 5
MAX_QUESTION_CHARS = 500  # the default of KB_MAX_QUESTION_CHARS, set explicitly for every path


def kind_of(text: str) -> str | None:
    if CHINESE_RESULTS.match(text.lstrip()):
        return ANSWER
    return next((kind for start, kind in KINDS.items() if text.lstrip().startswith(start)), None)


@dataclass
class Delivery:
    """One question through one path: what was sent, what came back, and what was wrong with it."""

    path: str
    hostile: Hostile
    sent: str  # the question as this path delivered it
    replies: list[str] = field(default_factory=list)  # the text of every message sent back
    crashes: list[str] = field(default_factory=list)
    pings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    silent: bool = False  # the console ignores a blank line, as a shell does

    @property
    def ok(self) -> bool:
        return not (self.crashes or self.pings or self.problems)

    def describe(self) -> str:
        reply = self.replies[0][:160] if self.replies else "<none>"
        issues = [f"crash: {c}" for c in self.crashes] + [f"ping: {p}" for p in self.pings] + self.problems
        return f"[{self.path}] {self.hostile.name} (sent {self.sent[:60]!r}): {'; '.join(issues)} | reply {reply!r}"


RESULTS: dict[str, list[Delivery]] = {}


def judge_logs(delivery: Delivery, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing logged at ERROR and no traceback while the question was handled."""
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    if errors:
        delivery.crashes.append(f"logged at ERROR by {errors[0].name}: {errors[0].getMessage()[:200]}")
    if "Traceback" in caplog.text:
        delivery.crashes.append("a traceback was logged")


def judge_replies(delivery: Delivery) -> None:
    """The checks every path shares: one clear reply of the expected kind, no apology or exception text."""
    for text in delivery.replies:
        if APOLOGY in text:
            delivery.crashes.append("the apology was sent")
        if match := EXCEPTION_TEXT.search(text):
            delivery.crashes.append(f"exception text in the reply: {match[0]!r}")
        if match := REORDERING.search(text):
            delivery.problems.append(f"bidi control U+{ord(match[0]):04X} in the reply")
    if delivery.silent:
        if delivery.replies:
            delivery.problems.append("a blank console line got a reply")
        return
    if not delivery.replies:
        delivery.problems.append("no reply")
        return
    kind = kind_of(delivery.replies[0])
    if kind is None:
        delivery.problems.append("the reply is neither an answer, the refusal nor the usage hint")
    # Several messages are one reply only as an answer split at Discord's limit: no part repeats a header.
    if len(delivery.replies) > 1 and (kind != ANSWER or any(kind_of(part) for part in delivery.replies[1:])):
        delivery.problems.append(f"{len(delivery.replies)} replies")
    whole = "\n".join(delivery.replies)
    cut = clean_question(delivery.sent, MAX_QUESTION_CHARS)[1]
    if kind == ANSWER and cut and not any(note in whole for note in TRUNCATION_NOTES):
        delivery.problems.append("a cut question's answer does not say it was cut")
    expected = delivery.hostile.expected(delivery.path)
    if expected in (USAGE, REFUSAL, ANSWER):
        if kind != expected:
            delivery.problems.append(f"expected the {expected}, got the {kind}")
    elif expected is not None and (kind != ANSWER or expected not in whole):
        delivery.problems.append(f"expected an answer with {expected!r}, got the {kind}")


def record(path: str, deliveries: list[Delivery]) -> None:
    RESULTS[path] = deliveries
    failed = [d.describe() for d in deliveries if not d.ok]
    assert not failed, f"{len(failed)} of {len(deliveries)} deliveries on {path} failed:\n" + "\n".join(failed)


# -- shared fixtures -----------------------------------------------------------------------------------


def settings_for(kb: KnowledgeBase, data_dir: Path, **extra: Any) -> BotSettings:
    values: dict[str, Any] = {"sources": kb.settings.sources, "data_dir": data_dir, "cooldown_seconds": 0}
    values |= {"answer_size": ANSWER_SIZE, "max_question_chars": MAX_QUESTION_CHARS}
    return BotSettings(_env_file=None, **{**values, **extra})


def test_the_question_list() -> None:
    names = [h.name for h in QUESTIONS]
    assert len(QUESTIONS) >= 70 and len(set(names)) == len(names)
    for hostile in QUESTIONS:
        line = re.sub(r"\r\n|\r|\n", " ", hostile.text).strip().lower()
        assert line not in ("/quit", "/exit", "quit", "exit") and not line.startswith("/"), hostile.name
        assert not EXCEPTION_TEXT.search(hostile.text) and APOLOGY not in hostile.text, hostile.name
    assert sum(len(h.text) >= 100_000 for h in QUESTIONS) >= 3


# -- the console ---------------------------------------------------------------------------------------


async def test_console(kb: KnowledgeBase, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    core = ChatCore(kb, settings_for(kb, tmp_path))
    deliveries = []
    for hostile in QUESTIONS:
        line = re.sub(r"\r\n|\r|\n", " ", hostile.text)  # one question, one line
        delivery = Delivery(CONSOLE, hostile, line, silent=not line.strip())
        caplog.clear()
        out = io.StringIO()
        console = Console(file=out, width=200, color_system=None, force_terminal=False, legacy_windows=False)
        try:
            await ConsoleChat(core, stdin=io.StringIO(line + "\n"), console=console).run()
        except Exception as error:  # noqa: BLE001 - a crash is what this test looks for
            delivery.crashes.append(f"{type(error).__name__}: {error}"[:300])
        banners = {texts_for(locale)(texts.CONSOLE_BANNER) for locale in LOCALES}
        reply = "\n".join(line for line in out.getvalue().split("\n") if line not in banners)
        if reply.strip():
            delivery.replies.append(reply)
        if match := TERMINAL_CONTROLS.search(reply):
            delivery.problems.append(f"terminal control {match[0]!r} printed")
        judge_logs(delivery, caplog)
        judge_replies(delivery)
        deliveries.append(delivery)
    record(CONSOLE, deliveries)


# -- Discord -------------------------------------------------------------------------------------------

NO_PINGS: list[dict[str, Any]] = [{"parse": []}, {"parse": [], "replied_user": False}]
DISCORD_PINGS = re.compile(r"@(everyone|here)|<@|<#", re.I)
UNESCAPED_LINK = re.compile(r"(?<!\\)\]\(https?://evil")


@pytest.fixture
async def discord_bot(kb: KnowledgeBase, tmp_path: Path) -> AsyncIterator[tuple[KnowledgeBot, FakeDiscord]]:
    fake = FakeDiscord(channel_id=GENERAL)
    await fake.start()
    settings = settings_for(
        kb,
        tmp_path,
        discord_token="test-token",
        discord_api_url=fake.url,
        discord_gateway_url="ws://127.0.0.1:9/gateway",
    )
    with endpoints_restored():
        client = None
        try:
            client = await start_client(fake, ChatCore(kb, settings), settings)
            yield client, fake
        finally:
            if client is not None:
                await client.close()
            await fake.stop()


def check_discord_messages(delivery: Delivery, messages: list[Recorded]) -> None:
    """Mentions off, nothing that renders as a ping or a link from the question, Discord's limits kept."""
    for message in messages:
        body = message.message_body
        if message.status != 200:
            delivery.problems.append(f"the fake answered HTTP {message.status} to {message.path}")
        if body.get("allowed_mentions") not in NO_PINGS:
            delivery.pings.append(f"allowed_mentions {body.get('allowed_mentions')!r}")
        if match := DISCORD_PINGS.search(message.content):
            delivery.pings.append(f"{match[0]!r} in the content")
        if UNESCAPED_LINK.search(message.content):
            delivery.problems.append("a masked link from the question renders")
        if len(message.content) > 2000:
            delivery.problems.append(f"{len(message.content)} characters in one message")
        delivery.replies.append(message.content)
    with_buttons = [bool(m.message_body.get("components") or []) for m in messages]
    if len(messages) > 1 and with_buttons != [False] * (len(messages) - 1) + [True]:
        delivery.problems.append(f"a split answer's buttons are not under its last part: {with_buttons}")


async def test_discord_mentions(
    discord_bot: tuple[KnowledgeBot, FakeDiscord], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    client, fake = discord_bot
    deliveries = []
    for number, hostile in enumerate(QUESTIONS):
        content = f"<@{BOT_ID}> {hostile.text}"
        delivery = Delivery(DISCORD_MENTION, hostile, hostile.text)
        author = user_payload(ALICE + 100 + number, name=f"user{number}")
        data = message_payload(content, author=author, mentions=[BOT_USER])
        caplog.clear()
        before = len(fake.requests)
        try:
            await deliver(client, data)
        except Exception as error:  # noqa: BLE001 - a crash is what this test looks for
            delivery.crashes.append(f"{type(error).__name__}: {error}"[:300])
        sent = fake.requests[before:]
        messages = [r for r in sent if r.method == "POST" and r.path == f"/channels/{GENERAL}/messages"]
        if len(messages) != len(sent):
            delivery.problems.append(f"unexpected requests: {[(r.method, r.path) for r in sent]}")
        if messages and int(messages[0].body.get("message_reference", {}).get("message_id", 0)) != int(data["id"]):
            delivery.problems.append("the first message is not a reply to the question")
        check_discord_messages(delivery, messages)
        judge_logs(delivery, caplog)
        judge_replies(delivery)
        deliveries.append(delivery)
    record(DISCORD_MENTION, deliveries)


async def test_discord_slash_ask(
    discord_bot: tuple[KnowledgeBot, FakeDiscord], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    client, fake = discord_bot
    deliveries = []
    for number, hostile in enumerate(QUESTIONS):
        # Discord itself refuses option values over the declared max_length (its own maximum, 6000) before
        # they reach the bot; the core cuts what is longer than max_question_chars, and says so.
        question = hostile.text[:OPTION_MAX_CHARS]
        delivery = Delivery(DISCORD_SLASH, hostile, question)
        payload = command_payload("ask", question=question)
        payload["member"] = member_payload(ALICE + 100 + number)
        caplog.clear()
        before = len(fake.requests)
        try:
            await run_command(client, payload)
        except Exception as error:  # noqa: BLE001 - a crash is what this test looks for
            delivery.crashes.append(f"{type(error).__name__}: {error}"[:300])
        sent = fake.requests[before:]
        if sent and sent[0].path.endswith("/callback") and sent[0].body.get("type") == 4:
            # Answered at once, without "thinking…": only the usage hint, and privately.
            replies = sent[:1]
            if len(sent) != 1 or not sent[0].private or kind_of(sent[0].content) != USAGE:
                delivery.problems.append(f"an immediate response that is not the private usage hint: {sent}")
        else:
            if not sent or not sent[0].path.endswith("/callback") or sent[0].body != {"type": 5}:
                delivery.problems.append("the command was not deferred first")
            replies = [r for r in sent[1:] if r in fake.followups]
            if len(replies) != len(sent[1:]):
                delivery.problems.append(f"unexpected requests: {[(r.method, r.path) for r in sent]}")
        check_discord_messages(delivery, replies)
        judge_logs(delivery, caplog)
        judge_replies(delivery)
        deliveries.append(delivery)
    record(DISCORD_SLASH, deliveries)


# -- Slack ---------------------------------------------------------------------------------------------

SLACK_LINK_OR_TAG = re.compile(r"<(?!https?://)|<https?://evil")


@pytest.fixture
async def slack(kb: KnowledgeBase, tmp_path: Path) -> AsyncIterator[Slack]:
    async with serve(kb, tmp_path, answer_size=ANSWER_SIZE, max_question_chars=MAX_QUESTION_CHARS) as running:
        yield running


def usv(text: str) -> str:
    """What a Slack client can send: text as Unicode scalar values (lone surrogates become U+FFFD)."""
    return re.sub("[\ud800-\udfff]", "\ufffd", text)


def slack_text(call: Call) -> str:
    sections = [block["text"]["text"] for block in call.blocks if block.get("type") == "section"]
    return "\n".join(sections) if sections else call.text


def check_slack_calls(delivery: Delivery, calls: list[Call]) -> None:
    """One message, with no mass or user mention and no link from the question anywhere in it."""
    if len(calls) > 1:
        delivery.problems.append(f"{len(calls)} messages (Slack answers are never split)")
    for call in calls:
        if call.status != 200:
            delivery.problems.append(f"the fake answered HTTP {call.status} to {call.name}")
        everything = call.everything
        for ping in SLACK_PINGS:
            if ping in everything:
                delivery.pings.append(f"{ping!r} in {call.name}")
        if match := SLACK_LINK_OR_TAG.search(everything):
            delivery.pings.append(f"an unescaped tag or link {everything[match.start() : match.start() + 30]!r}")
        delivery.replies.append(slack_text(call))


async def wait_for_calls(slack: Slack, matches: Callable[[Call], bool], delivery: Delivery) -> None:
    try:
        await slack.fake.wait_for(lambda calls: any(matches(call) for call in calls))
    except AssertionError:
        delivery.problems.append("no reply within 10 s")


async def test_slack_mentions(slack: Slack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    deliveries: list[tuple[Delivery, str]] = []
    for number, hostile in enumerate(QUESTIONS):
        delivery = Delivery(SLACK_MENTION, hostile, hostile.text)
        ts = f"1700010000.{number:06d}"
        # JSON may carry lone surrogates as escapes (json.dumps writes them so): the app gets them as is.
        event = mention(ts, f"<@{BOT_USER_ID}> {hostile.text}", user=f"UHOSTILE{number:04d}")
        caplog.clear()
        try:
            status, _, _ = await slack.post(slack.event_body(event), "application/json")
            if status != 200:
                delivery.crashes.append(f"the event was answered HTTP {status}")
        except Exception as error:  # noqa: BLE001 - a crash is what this test looks for
            delivery.crashes.append(f"{type(error).__name__}: {error}"[:300])
        await wait_for_calls(slack, lambda call, ts=ts: call.data.get("thread_ts") == ts, delivery)
        judge_logs(delivery, caplog)  # the replies are judged once every event has been handled
        deliveries.append((delivery, ts))
    await slack.sentinel()
    posts = slack.posts() + slack.fake.named("chat.postEphemeral")  # the usage hint is the asker's alone
    for delivery, ts in deliveries:
        mine = [call for call in posts if call.data.get("thread_ts") == ts]
        if any(call.data.get("channel") != CHANNEL for call in mine):
            delivery.problems.append("answered outside the mention's channel")
        check_slack_calls(delivery, mine)
        judge_replies(delivery)
    if stray := [call for call in posts if call.data.get("thread_ts") not in {ts for _, ts in deliveries}]:
        deliveries[-1][0].problems.append(f"{len(stray)} posts outside any mention's thread")
    record(SLACK_MENTION, [delivery for delivery, _ in deliveries])


async def test_slack_slash_ask(slack: Slack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    deliveries: list[tuple[Delivery, str]] = []
    for number, hostile in enumerate(QUESTIONS):
        text = usv(hostile.text)
        delivery = Delivery(SLACK_SLASH, hostile, text)
        response_url = slack.fake.response_url()
        name = response_url.removeprefix(slack.fake.url + "/")
        form = {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "team_domain": "fake",
            "channel_id": CHANNEL,
            "channel_name": "general",
            "user_id": f"UHOSTILE{number:04d}",
            "user_name": f"user{number}",
            "command": "/ask",
            "text": text,
            "api_app_id": "AFAKE",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": f"{number}.1.hostile",
        }
        caplog.clear()
        started = time.monotonic()
        try:
            status, ack, _ = await slack.post(urlencode(form), "application/x-www-form-urlencoded")
            if status != 200 or ack != "":
                delivery.crashes.append(f"the command was acknowledged HTTP {status} {ack[:100]!r}")
        except Exception as error:  # noqa: BLE001 - a crash is what this test looks for
            delivery.crashes.append(f"{type(error).__name__}: {error}"[:300])
        if time.monotonic() - started > 3:
            delivery.problems.append("acknowledged after Slack's 3 s")
        await wait_for_calls(slack, lambda call, name=name: call.name == name, delivery)
        judge_logs(delivery, caplog)  # the replies are judged once every command has been handled
        deliveries.append((delivery, name))
    await slack.sentinel()
    for delivery, name in deliveries:
        mine = slack.fake.named(name)
        for call in mine:
            kind = call.data.get("response_type")
            if kind not in ("in_channel", "ephemeral"):
                delivery.problems.append(f"response_type {kind!r}")
        check_slack_calls(delivery, mine)
        judge_replies(delivery)
    if posts := slack.posts():
        deliveries[-1][0].problems.append(f"{len(posts)} chat.postMessage calls for slash commands")
    record(SLACK_SLASH, [delivery for delivery, _ in deliveries])


# -- the count -----------------------------------------------------------------------------------------


def test_summary() -> None:
    """Runs last: at least 200 deliveries over the five paths; none crashed, pinged or got an unclear reply."""
    if set(RESULTS) != set(PATHS):
        pytest.skip(f"needs the whole module; ran only {sorted(RESULTS)}")
    per_path = {path: len(RESULTS[path]) for path in PATHS}
    every = [d for path in PATHS for d in RESULTS[path]]
    crashes = sum(bool(d.crashes) for d in every)
    pings = sum(bool(d.pings) for d in every)
    kinds = Counter(kind_of(d.replies[0]) if d.replies else "silent" for d in every)
    split = sum(len(d.replies) > 1 for d in every)
    other = sum(bool(d.problems) for d in every)
    summary = (
        f"hostile: {len(QUESTIONS)} questions, {len(every)} deliveries {per_path}, "
        f"crashes={crashes}, pings={pings}, other problems={other}, replies {dict(kinds)}, split answers={split}"
    )
    print(summary)
    assert len(every) >= 200 and crashes == pings == other == 0, summary
