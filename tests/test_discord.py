"""The Discord front-end end to end: the real command tree and discord.py objects built from raw gateway
payloads, a real collection and embedder, and a recording fake of Discord's REST API."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord
import pytest
import yarl
from conftest import free_port
from fake_discord import (
    ALICE,
    APP_ID,
    BOT_ID,
    BOT_ROLE,
    BOT_USER,
    DM_CHANNEL,
    EPHEMERAL,
    GENERAL,
    GROUP_DM_CHANNEL,
    GUILD_ID,
    MANAGE_GUILD,
    NO_PINGS,
    OTHER_BOT,
    OTHER_CHANNEL,
    SUPPRESS_EMBEDS,
    VIEW_AND_SEND,
    FakeDiscord,
    answer_id_of,
    autocomplete_payload,
    button_payload,
    click,
    command_payload,
    custom_ids,
    deliver,
    guild_payload,
    message_payload,
    more_id_of,
    run_command,
    select_payload,
    start_client,
    user_payload,
)

from bot import discord_bot
from bot.chat import Answer, ChatCore, Question
from bot.discord_bot import (
    OPTION_MAX_CHARS,
    KnowledgeBot,
    ShardedKnowledgeBot,
    create_discord_client,
    run_discord,
    sync_commands,
    sync_only,
)
from bot.errors import AlreadyRunning, CannotStart, EmptyQuestion, NotAdmin, NothingMore, ReadOnlyReplica, UnknownAnswer
from bot.settings import BotSettings
from bot.state import Lease, MemoryState, Session, open_state
from bot.texts import APOLOGY, QUESTION_CUT, REINDEX_FAILED, REINDEX_STARTED, THANKS
from knowledge import KnowledgeBase, SectionTree, Settings, SyncReport
from knowledge.embed import Embedder

if TYPE_CHECKING:
    from conftest import MakeKb

NOTES = """\
# 深度学习

## 优化器

- [Fixing Weight Decay Regularization in Adam](https://arxiv.org/abs/1711.05101) 指出 Adam 中 L2 正则与权重衰减不等价，提出 AdamW 优化器。
- [Adam: A Method for Stochastic Optimization](https://arxiv.org/abs/1412.6980) 自适应学习率的一阶优化器。
- [Lookahead Optimizer: k steps forward, 1 step back](https://arxiv.org/abs/1907.08610) 快慢两组权重的优化器，可以包住 Adam 或 SGD。
- [Large Batch Optimization for Deep Learning: Training BERT in 76 minutes](https://arxiv.org/abs/1904.00962) LAMB 优化器：逐层自适应的大批量训练。

## 自监督

- [Momentum Contrast for Unsupervised Visual Representation Learning](https://arxiv.org/abs/1911.05722) 何恺明等提出 MoCo，用动量编码器和队列做对比学习。
- [A Simple Framework for Contrastive Learning of Visual Representations](https://arxiv.org/abs/2002.05709) SimCLR：数据增强加对比损失。

# 推荐

- [深度检索：字节跳动提出可学习的召回结构](https://example.com/deep-retrieval) 用路径结构代替向量检索做召回。
- [CTR 预估中的位置偏置消除框架 PAL](https://example.com/pal) 华为提出在训练时建模位置偏置。
"""
OPTIMIZERS = {
    "Fixing Weight Decay Regularization in Adam",
    "Adam: A Method for Stochastic Optimization",
    "Lookahead Optimizer: k steps forward, 1 step back",
    "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes",
}
ADAM_W = "https://arxiv.org/abs/1711.05101"


# -- the collection, the core and the client -----------------------------------------------------------


class GatedKnowledgeBase(KnowledgeBase):
    """A real KnowledgeBase whose sync (a reindex) waits for `gate`, so a test can hold a reindex open."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None, **options: Any) -> None:
        super().__init__(settings, embedder, **options)
        self.gate = threading.Event()
        self.gate.set()
        self.sections_gate = threading.Event()  # sections() waits for it: a slow store, as a test holds it
        self.sections_gate.set()
        self.failure: Exception | None = None

    def sections(self) -> SectionTree:
        if not self.sections_gate.wait(timeout=30):
            raise TimeoutError("the test never opened the sections gate")
        return super().sections()

    def sync(self, *args: Any, **kwargs: Any) -> SyncReport:
        if not self.gate.wait(timeout=30):
            raise TimeoutError("the test never opened the gate")
        if self.failure is not None:
            raise self.failure
        return super().sync(*args, **kwargs)


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("discord-notes")
    (folder / "notes.md").write_text(NOTES, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def kb(make_kb: MakeKb, notes: Path, tmp_path_factory: pytest.TempPathFactory) -> GatedKnowledgeBase:
    base = make_kb([notes], tmp_path_factory.mktemp("discord-data"), kb_cls=GatedKnowledgeBase)
    assert isinstance(base, GatedKnowledgeBase)
    assert base.ingest().summary.entries == 8
    return base


@pytest.fixture
def fake(discord_fake: FakeDiscord) -> FakeDiscord:
    return discord_fake


@pytest.fixture
def make_settings(notes: Path, tmp_path: Path, fake: FakeDiscord) -> Callable[..., BotSettings]:
    def make(**extra: Any) -> BotSettings:
        values: dict[str, Any] = {
            "sources": [notes],
            "data_dir": tmp_path,
            "cooldown_seconds": 0,
            "answer_size": 2,
            "discord_token": "test-token",
            "discord_api_url": fake.url,
            "discord_gateway_url": "ws://127.0.0.1:9/gateway",
        }
        return BotSettings(_env_file=None, **{**values, **extra})

    return make


@pytest.fixture
def core(kb: KnowledgeBase, make_settings: Callable[..., BotSettings]) -> ChatCore:
    return ChatCore(kb, make_settings())


ClientFactory = Callable[..., Awaitable[KnowledgeBot]]


@pytest.fixture(name="start_client")
async def client_factory(fake: FakeDiscord) -> AsyncIterator[ClientFactory]:
    """Create clients logged in to the fake (login runs `setup_hook`), each knowing the test guild."""
    clients: list[KnowledgeBot] = []

    async def start(core: ChatCore, settings: BotSettings | None = None, **options: Any) -> KnowledgeBot:
        client = await start_client(fake, core, settings, **options)
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def client(core: ChatCore, start_client: ClientFactory) -> KnowledgeBot:
    return await start_client(core)


# -- slash commands ------------------------------------------------------------------------------------


def test_the_configured_api_and_gateway_are_applied(core: ChatCore, fake: FakeDiscord) -> None:
    create_discord_client(core, core.settings)
    assert fake.url == discord.http.Route.BASE
    assert yarl.URL("ws://127.0.0.1:9/gateway") == discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    assert discord.http.Route("GET", "/users/@me").url == f"{fake.url}/users/@me"


async def test_ask_defers_then_answers_with_the_paper_and_its_link(client: KnowledgeBot, fake: FakeDiscord) -> None:
    await run_command(client, command_payload("ask", question="Which paper fixes weight decay in Adam?"))

    first, *rest = fake.requests
    assert first.path.endswith("/callback") and first.body == {"type": 5}  # defer, "thinking…"
    assert rest and rest == fake.followups
    answer = rest[0]
    assert "Fixing Weight Decay Regularization in Adam" in answer.content
    assert ADAM_W in answer.content
    assert answer.body["allowed_mentions"] == NO_PINGS
    assert answer.flags & SUPPRESS_EMBEDS and not answer.private
    ids = custom_ids(rest[-1])
    assert any(cid.startswith("kb:vote:up:") for cid in ids) and any(cid.startswith("kb:vote:down:") for cid in ids)
    # "More results" exactly when the answer has further pages (the other optimizers, as closest matches)
    assert any(cid.startswith("kb:more:") for cid in ids) == ("(page 1/" in answer.content)


async def test_a_question_cannot_ping_anyone(client: KnowledgeBot, fake: FakeDiscord) -> None:
    await run_command(client, command_payload("ask", question="@everyone <@&123> <@42> Adam weight decay"))

    (answer,) = fake.followups
    assert answer.body["allowed_mentions"] == NO_PINGS  # no "everyone", no roles, no users
    assert "@\u200beveryone" in answer.content and "<\u200b@&123>" in answer.content
    assert "@everyone" not in answer.content and "<@&123>" not in answer.content and "<@42>" not in answer.content


async def test_help_and_stats(client: KnowledgeBot, fake: FakeDiscord) -> None:
    await run_command(client, command_payload("help"))
    await run_command(client, command_payload("stats"))

    help_text, stats = (r.content for r in fake.followups)
    assert "/ask" in help_text and "reindex" in help_text
    assert "8 entries" in stats and "Sources (1):\n• discord-notes" in stats
    assert "/tmp" not in stats and "In the last 7 days: " in stats
    assert all(r.body["allowed_mentions"] == NO_PINGS for r in fake.followups)


async def test_a_second_question_within_the_cooldown_is_told_to_wait(
    kb: KnowledgeBase, make_settings: Callable[..., BotSettings], start_client: ClientFactory, fake: FakeDiscord
) -> None:
    client = await start_client(ChatCore(kb, make_settings(cooldown_seconds=60)))
    await run_command(client, command_payload("ask", question="contrastive learning"))
    await run_command(client, command_payload("ask", question="MoCo"))

    (answer,) = fake.followups
    assert "Momentum Contrast" in answer.content
    defer, refusal = fake.callbacks  # refused at once, not deferred, so it can be private
    assert defer.body == {"type": 5}
    assert refusal.body["type"] == 4 and refusal.private
    assert "please wait" in refusal.content and "s before the next question" in refusal.content


async def test_a_question_with_nothing_to_search_gets_the_usage_hint_privately_at_once(
    client: KnowledgeBot, fake: FakeDiscord
) -> None:
    await run_command(client, command_payload("ask", question="?!\u200b"))

    (hint,) = fake.requests  # no "thinking…" first
    assert hint in fake.callbacks and hint.body["type"] == 4 and hint.private
    assert hint.content == EmptyQuestion().user_message


async def test_an_unexpected_error_gets_an_apology_not_the_error(
    kb: KnowledgeBase,
    make_settings: Callable[..., BotSettings],
    start_client: ClientFactory,
    fake: FakeDiscord,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BrokenCore(ChatCore):
        async def answer(self, conversation: str, question: Question, **options: Any) -> Answer:
            raise RuntimeError("secret detail: /srv/kb/chroma.sqlite3 is locked")

    client = await start_client(BrokenCore(kb, make_settings()))
    await run_command(client, command_payload("ask", question="Adam"))
    await deliver(client, message_payload(f"<@{BOT_ID}> Adam", mentions=[BOT_USER]))

    (followup,) = fake.followups
    (reply,) = fake.channel_messages
    assert followup.content == APOLOGY and followup.private  # not shown to the channel
    # The public "thinking…" message went first, so the apology is a message of its own.
    (deleted,) = fake.find("DELETE", rf"/webhooks/{APP_ID}/[^/]+/messages/@original")
    assert fake.requests.index(deleted) < fake.requests.index(followup)
    assert reply.content == APOLOGY
    assert all("secret" not in json.dumps(r.body) for r in fake.requests)
    logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], RuntimeError)]
    assert len(logged) == 2  # with the traceback, for the operator


# -- /reindex ------------------------------------------------------------------------------------------


async def test_reindex_is_refused_to_members_without_manage_server(
    client: KnowledgeBot, core: ChatCore, fake: FakeDiscord
) -> None:
    await run_command(client, command_payload("reindex", permissions=VIEW_AND_SEND))
    await run_command(client, command_payload("reindex", dm=True))

    assert len(fake.requests) == 2 and fake.followups == []
    for refusal in fake.callbacks:  # answered at once, privately, without deferring
        assert refusal.body["type"] == 4
        assert refusal.content == NotAdmin().user_message and refusal.private
    assert not core.reindex_running


OTHER_GUILD = GUILD_ID + 7  # a server the bot is not in: a user installed the app there


@pytest.mark.parametrize(
    ("settings", "permissions", "guild", "allowed"),
    [
        ({}, VIEW_AND_SEND | MANAGE_GUILD, GUILD_ID, True),
        ({}, VIEW_AND_SEND | MANAGE_GUILD, OTHER_GUILD, False),  # was allowed: a manager of any server
        ({"discord_guild_id": GUILD_ID + 8}, VIEW_AND_SEND | MANAGE_GUILD, GUILD_ID, False),  # not the bot's server
        ({"discord_admins": [ALICE]}, VIEW_AND_SEND, GUILD_ID, True),  # named: Manage Server not needed
        ({"discord_admins": [ALICE]}, VIEW_AND_SEND, OTHER_GUILD, False),
        ({"discord_admins": [ALICE + 1]}, VIEW_AND_SEND | MANAGE_GUILD, GUILD_ID, False),  # named others
    ],
)
async def test_reindex_is_for_the_named_admins_or_managers_of_a_server_the_bot_is_in(
    kb: KnowledgeBase,
    make_settings: Callable[..., BotSettings],
    start_client: ClientFactory,
    fake: FakeDiscord,
    settings: dict[str, Any],
    permissions: int,
    guild: int,
    allowed: bool,
) -> None:
    core = ChatCore(kb, make_settings(**settings))
    client = await start_client(core)
    payload = command_payload("reindex", permissions=permissions) | {"guild_id": str(guild)}
    if guild != GUILD_ID:
        payload |= {"context": 1, "authorizing_integration_owners": {"1": str(ALICE)}}
    await run_command(client, payload)
    (reply,) = fake.callbacks
    if allowed:
        assert reply.content == REINDEX_STARTED
        await fake.wait_for(lambda r: r.content.startswith("Reindex done in"))
    else:
        assert reply.content == NotAdmin().user_message and reply.private and not core.reindex_running


def test_reindex_is_never_offered_where_only_a_user_installed_the_app(client: KnowledgeBot) -> None:
    command = client.tree.get_command("reindex")
    assert command is not None and command.allowed_installs is not None
    assert command.allowed_installs.guild and not command.allowed_installs.user


async def test_a_read_only_replica_tells_an_admin_it_does_not_index(
    kb: KnowledgeBase, make_settings: Callable[..., BotSettings], start_client: ClientFactory, fake: FakeDiscord
) -> None:
    core = ChatCore(kb, make_settings(ingest_on_start=False))
    client = await start_client(core)
    await run_command(client, command_payload("reindex", permissions=VIEW_AND_SEND | MANAGE_GUILD))
    (refusal,) = fake.callbacks
    assert refusal.content == ReadOnlyReplica().user_message and refusal.private
    assert not core.reindex_running and fake.followups == []


async def test_an_admin_s_reindex_reports_when_done_and_a_second_one_waits(
    client: KnowledgeBot, core: ChatCore, kb: GatedKnowledgeBase, fake: FakeDiscord
) -> None:
    kb.gate.clear()
    try:
        await run_command(client, command_payload("reindex", permissions=VIEW_AND_SEND | MANAGE_GUILD))
        assert core.reindex_running
        await run_command(client, command_payload("reindex", permissions=VIEW_AND_SEND | MANAGE_GUILD, full=True))
    finally:
        kb.gate.set()
    summary = await fake.wait_for(lambda r: r.content.startswith("Reindex done in"))

    started, already = fake.callbacks  # both answered at once: starting a reindex does not wait for it
    assert started.body["type"] == 4 and started.content == REINDEX_STARTED and not started.private
    assert already.body["type"] == 4 and already.content == AlreadyRunning().user_message and already.private
    assert fake.followups == [summary]
    assert "8 entries" in summary.content and "0 embedded, 8 unchanged" in summary.content
    assert summary.flags & SUPPRESS_EMBEDS  # sources named by a public URL: no previews
    assert already.flags & SUPPRESS_EMBEDS
    assert not core.reindex_running


async def test_a_failed_reindex_says_so_without_the_error(
    client: KnowledgeBot, core: ChatCore, kb: GatedKnowledgeBase, fake: FakeDiscord
) -> None:
    kb.failure = OSError("secret: /srv/notes is not readable")
    try:
        await run_command(client, command_payload("reindex", permissions=VIEW_AND_SEND | MANAGE_GUILD))
        failed = await fake.wait_for(lambda r: r in fake.followups)
    finally:
        kb.failure = None

    assert failed.content == REINDEX_FAILED
    assert all("secret" not in json.dumps(r.body) for r in fake.requests)


async def test_a_summary_after_the_interaction_expired_goes_to_the_channel(
    client: KnowledgeBot, kb: GatedKnowledgeBase, fake: FakeDiscord
) -> None:
    payload = command_payload("reindex", permissions=VIEW_AND_SEND | MANAGE_GUILD)
    fake.expired_tokens.add(payload["token"])  # as if the reindex had outlived the 15-minute token
    await run_command(client, payload)
    summary = await fake.wait_for(lambda r: r in fake.channel_messages)

    assert summary.path == f"/channels/{GENERAL}/messages" and summary.content.startswith("Reindex done in")
    assert summary.body["allowed_mentions"] == NO_PINGS
    (expired,) = fake.followups
    assert expired.status == 401


async def test_commands_sync_to_the_guild_on_start_when_one_is_set(
    core: ChatCore, make_settings: Callable[..., BotSettings], fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.discord_bot")
    client = create_discord_client(core, make_settings(discord_guild_id=GUILD_ID))
    try:
        await client.login("test-token")
    finally:
        await client.close()

    (sync,) = fake.find("PUT", r"/applications/\d+(/guilds/\d+)?/commands")
    assert sync.path == f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands"
    commands = {command["name"]: command for command in sync.body}
    assert set(commands) == {"ask", "more", "similar", "browse", "new", "stats", "help", "reindex"}
    assert int(commands["reindex"]["default_member_permissions"]) == MANAGE_GUILD
    assert commands["ask"]["description"] == "Ask the collection of ML reading notes a question."
    question, section, lang, private = commands["ask"]["options"]
    assert (section["name"], section["required"], section["autocomplete"]) == ("section", False, True)
    assert [choice["value"] for choice in lang["choices"]] == ["en", "zh", "zh-Hans", "zh-Hant"]
    assert (private["name"], private["type"], private["required"]) == ("private", 5, False)
    # Discord's own maximum: the core cuts at max_question_chars, and says so (see the next test).
    assert (
        question["name"] == "question" and question["required"] and question["max_length"] == OPTION_MAX_CHARS == 6000
    )
    assert f"in guild {GUILD_ID}" in caplog.text and "/reindex" in caplog.text


async def test_the_question_limit_is_the_setting_and_a_cut_question_is_told(
    make_kb: MakeKb,
    notes: Path,
    tmp_path: Path,
    make_settings: Callable[..., BotSettings],
    start_client: ClientFactory,
    fake: FakeDiscord,
) -> None:
    long_kb = make_kb([notes], tmp_path / "long-kb", max_question_chars=800)
    long_kb.ingest()
    client = await start_client(ChatCore(long_kb, make_settings(max_question_chars=800)))
    question = "Which paper fixes weight decay in Adam? " * 25
    await run_command(client, command_payload("ask", question=question[:700]))
    await run_command(client, command_payload("ask", question=question[:900]))

    whole, cut = (r.content for r in fake.followups if r.content.startswith("Results for"))
    assert "Fixing Weight Decay Regularization in Adam" in whole and QUESTION_CUT not in whole
    assert "Fixing Weight Decay Regularization in Adam" in cut and QUESTION_CUT in cut


async def test_commands_sync_globally_only_when_asked(
    core: ChatCore, start_client: ClientFactory, fake: FakeDiscord
) -> None:
    client = await start_client(core)  # no guild id: nothing synced on start
    assert fake.find("PUT", r".*") == []

    synced = await sync_commands(client)

    (sync,) = fake.find("PUT", r".*")
    assert sync.path == f"/applications/{APP_ID}/commands"
    assert sorted(command.name for command in synced) == [
        "ask",
        "browse",
        "help",
        "more",
        "new",
        "reindex",
        "similar",
        "stats",
    ]


async def test_sync_only_logs_in_with_the_token_syncs_and_never_logs_the_token(
    core: ChatCore, make_settings: Callable[..., BotSettings], fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(discord_guild_id=GUILD_ID, discord_token="s3cret-token")
    await sync_only(create_discord_client(core, settings), settings)

    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", "/users/@me"),
        ("GET", "/oauth2/applications/@me"),
        ("PUT", f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands"),
    ]
    assert {r.authorization for r in fake.requests} == {"Bot s3cret-token"}
    assert "s3cret" not in caplog.text


async def test_a_refused_token_or_no_discord_stops_with_one_line_naming_the_setting(
    core: ChatCore, make_settings: Callable[..., BotSettings], fake: FakeDiscord
) -> None:
    """What ends discord.py's start for good is CannotStart, one line (`bot run` logs it without a traceback,
    `bot discord` exits 1 with it), and never the token."""
    fake.tokens = {"the-real-token"}
    settings = make_settings(discord_token="s3cret-token", discord_gateway_url=fake.gateway_url)
    for start in (sync_only, run_discord):
        with pytest.raises(CannotStart) as refused:
            await asyncio.wait_for(start(create_discord_client(core, settings), settings), 20)
        assert str(refused.value) == (
            "Discord refused the bot token (KB_DISCORD_TOKEN): copy it again from the Developer Portal"
        )
    assert [r.status for r in fake.find("GET", "/users/@me")] == [401, 401]

    fake.tokens = None
    fake.refused_intents = discord.Intents(message_content=True).value
    asks = make_settings(discord_message_content=True, discord_gateway_url=fake.gateway_url)
    with pytest.raises(CannotStart) as no_intent:
        await asyncio.wait_for(run_discord(create_discord_client(core, asks), asks), 20)
    assert str(no_intent.value).startswith("Discord refused the Message Content intent (KB_DISCORD_MESSAGE_CONTENT)")

    nowhere = make_settings(discord_api_url=f"http://127.0.0.1:{free_port()}/api/v10")
    with pytest.raises(CannotStart) as unreachable:
        await asyncio.wait_for(run_discord(create_discord_client(core, nowhere), nowhere), 20)
    assert str(unreachable.value).startswith(
        f"cannot reach Discord at {nowhere.discord_api_url} (KB_DISCORD_API_URL): Client"
    )
    assert "s3cret" not in str(unreachable.value) + str(refused.value)


# -- buttons -------------------------------------------------------------------------------------------


async def test_more_results_button_shows_the_next_page(client: KnowledgeBot, fake: FakeDiscord) -> None:
    await run_command(client, command_payload("ask", question="optimizer"))
    (first,) = fake.followups
    assert "page 1/2" in first.content
    more = next(cid for cid in custom_ids(first) if cid.startswith("kb:more:"))
    assert more == f"kb:more:{answer_id_of(first)}:2"  # the page it shows

    click(client, button_payload(more, first.response))
    second = await fake.wait_for(lambda r: "page 2/2" in r.content)

    assert fake.callbacks[-1].body == {"type": 5}
    shown = [title for title in OPTIMIZERS if title in first.content or title in second.content]
    assert len(shown) == 4  # two on each page, none repeated
    assert not any(title in second.content for title in OPTIMIZERS if title in first.content)
    assert not any(cid.startswith("kb:more:") for cid in custom_ids(second))  # the last page

    await run_command(client, command_payload("more"))
    assert fake.followups[-1].content == NothingMore().user_message and fake.followups[-1].private


class SlowState(MemoryState):
    """The real in-memory state store, whose reads of answers wait while `held` is clear (a slow store)."""

    def __init__(self) -> None:
        super().__init__()
        self.held = asyncio.Event()
        self.held.set()

    async def get_session(self, key: str) -> Session | None:
        await self.held.wait()
        return await super().get_session(key)

    async def acquire(self, name: str, lease_seconds: float) -> Lease | None:
        await self.held.wait()
        return await super().acquire(name, lease_seconds)


@pytest.fixture
async def on_a_slow_store(
    kb: KnowledgeBase,
    make_settings: Callable[..., BotSettings],
    start_client: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[KnowledgeBot, SlowState]:
    """A client whose state store's reads can be held, after an answer to "optimizer" in the channel."""
    monkeypatch.setattr(discord_bot, "BEFORE_DEFER_SECONDS", 0.2)
    state = SlowState()
    client = await start_client(ChatCore(kb, make_settings(), state=state))
    await run_command(client, command_payload("ask", question="optimizer"))
    return client, state


async def test_buttons_on_a_slow_store_are_deferred_privately_in_time(
    on_a_slow_store: tuple[KnowledgeBot, SlowState], fake: FakeDiscord
) -> None:
    client, state = on_a_slow_store
    (first,) = fake.followups
    more = next(cid for cid in custom_ids(first) if cid.startswith("kb:more:"))

    state.held.clear()
    click(client, button_payload(more, first.response))
    deferred = await fake.wait_for(lambda r: r in fake.callbacks[1:])
    # Whether the answer is private is not known yet: deferred privately, the safe side
    assert deferred.body == {"type": 5, "data": {"flags": EPHEMERAL}}
    state.held.set()
    second = await fake.wait_for(lambda r: "page 2/2" in r.content)
    assert second.private

    # "Similar to…" and a vote on the same answer: deferred privately in time too, then answered
    (menu,) = [item for row in first.body["components"] for item in row["components"] if item["type"] == 3]
    up = next(cid for cid in custom_ids(first) if cid.startswith("kb:vote:up:"))
    for payload, shown in (
        (select_payload(menu["custom_id"], [menu["options"][0]["value"]], first.response), "Entries like #1"),
        (button_payload(up, first.response), THANKS),
    ):
        state.held.clear()
        before = len(fake.callbacks)
        click(client, payload)
        deferred = await fake.wait_for(lambda r, before=before: r in fake.callbacks[before:])
        assert deferred.body == {"type": 5, "data": {"flags": EPHEMERAL}}
        state.held.set()
        reply = await fake.wait_for(lambda r, shown=shown: r in fake.followups and r.content.startswith(shown))
        assert reply.private


async def test_similar_and_reindex_on_a_slow_store_are_deferred_in_time(
    on_a_slow_store: tuple[KnowledgeBot, SlowState], fake: FakeDiscord
) -> None:
    client, state = on_a_slow_store

    # /similar reads the channel's last answer: late, it is deferred privately (its privacy is not known yet)
    state.held.clear()
    before = len(fake.callbacks)
    similar = asyncio.create_task(run_command(client, command_payload("similar", number=1)))
    deferred = await fake.wait_for(lambda r: r in fake.callbacks[before:])
    assert deferred.body == {"type": 5, "data": {"flags": EPHEMERAL}} and not similar.done()
    state.held.set()
    await similar
    assert fake.followups[-1].content.startswith("Entries like #1") and fake.followups[-1].private

    # /reindex takes the lease: late, it is deferred in public, and "started" follows up in public
    state.held.clear()
    before = len(fake.callbacks)
    reindex = asyncio.create_task(
        run_command(client, command_payload("reindex", permissions=VIEW_AND_SEND | MANAGE_GUILD))
    )
    deferred = await fake.wait_for(lambda r: r in fake.callbacks[before:])
    assert deferred.body["type"] == 5 and not deferred.private and not reindex.done()
    state.held.set()
    await reindex
    started = await fake.wait_for(lambda r: r in fake.followups and r.content == REINDEX_STARTED)
    assert not started.private
    await fake.wait_for(lambda r: r.content.startswith("Reindex done in"))
    assert len(fake.callbacks) == before + 1  # one response: the deferral; the rest were followups


async def test_slash_more_pages_the_channel_s_last_answer(client: KnowledgeBot, fake: FakeDiscord) -> None:
    await run_command(client, command_payload("ask", question="优化器"))
    await run_command(client, command_payload("more"))

    first, second = fake.followups
    assert "page 1/2" in first.content and "page 2/2" in second.content


async def test_vote_buttons_record_feedback(client: KnowledgeBot, core: ChatCore, fake: FakeDiscord) -> None:
    await run_command(client, command_payload("ask", question="Which paper fixes weight decay in Adam?"))
    (answer,) = fake.followups
    answer_id = answer_id_of(answer)

    click(client, button_payload(f"kb:vote:up:{answer_id}", answer.response))
    thanks = await fake.wait_for(lambda r: r.content == THANKS)

    assert thanks in fake.callbacks and thanks.body["type"] == 4 and thanks.private
    assert core.records is not None
    (row,) = core.records.votes(datetime.fromtimestamp(0, UTC))
    assert row.question == "Which paper fixes weight decay in Adam?"
    assert row.vote == "up" and row.platform == "discord" and row.user == f"discord:{ALICE}"
    (adamw,) = [e.id for e in core.retriever.index.snapshot.entries if e.title.startswith("Fixing Weight Decay")]  # type: ignore[attr-defined]
    assert row.entries[0] == (adamw, "Fixing Weight Decay Regularization in Adam")
    assert len(row.entries) <= 2  # the first page: answer_size 2


async def test_buttons_of_a_forgotten_answer_say_so(client: KnowledgeBot, fake: FakeDiscord) -> None:
    # A message from before a restart: its buttons still reach the bot, through their custom_id alone.
    stale = "0123456789ab"
    row = {
        "type": 1,
        "components": [
            {"type": 2, "style": 1, "label": "More results", "custom_id": f"kb:more:{stale}"},
            {"type": 2, "style": 2, "emoji": {"name": "👎"}, "custom_id": f"kb:vote:down:{stale}"},
        ],
    }
    old = fake.message(GENERAL, {"content": "an old answer", "components": [row]})

    click(client, button_payload(f"kb:vote:down:{stale}", old))
    vote = await fake.wait_for(lambda r: r.path.endswith("/callback") and r.body["type"] == 4)
    click(client, button_payload(f"kb:more:{stale}", old))
    more = await fake.wait_for(lambda r: r is not vote and r.path.endswith("/callback") and r.body["type"] == 4)

    assert vote.content == UnknownAnswer().user_message and vote.private
    assert more.content == UnknownAnswer().user_message and more.private
    # said at once and privately: no public "thinking…" shown, then deleted
    assert all(r.body["type"] == 4 for r in fake.callbacks) and not fake.find("DELETE", r".*/messages/@original")


# -- @mentions and DMs ---------------------------------------------------------------------------------


async def test_a_mention_gets_a_reply_with_the_answer(client: KnowledgeBot, fake: FakeDiscord) -> None:
    question = await deliver(
        client, message_payload(f"<@!{BOT_ID}> Which paper fixes weight decay in Adam?", mentions=[BOT_USER])
    )

    (reply,) = fake.requests
    assert reply.method == "POST" and reply.path == f"/channels/{GENERAL}/messages"
    assert int(reply.body["message_reference"]["message_id"]) == question.id
    assert "Fixing Weight Decay Regularization in Adam" in reply.content and ADAM_W in reply.content
    assert "<@" not in reply.content.split("\n")[0]  # the mention was stripped from the question
    assert reply.body["allowed_mentions"] == {"parse": [], "replied_user": False}
    assert reply.flags & SUPPRESS_EMBEDS
    assert any(cid.startswith("kb:vote:up:") for cid in custom_ids(reply))


async def test_a_mention_of_the_bot_s_role_counts(client: KnowledgeBot, fake: FakeDiscord) -> None:
    await deliver(client, message_payload(f"<@&{BOT_ROLE}> contrastive learning", mention_roles=[BOT_ROLE]))

    (reply,) = fake.channel_messages
    assert "Momentum Contrast" in reply.content and f"{BOT_ROLE}" not in reply.content


async def test_a_reply_to_the_bot_that_does_not_mention_it_in_its_text_gets_nothing(
    client: KnowledgeBot, fake: FakeDiscord
) -> None:
    # Replying pings the author of the message replied to by default: the bot is in `mentions`, not in the text.
    await deliver(client, message_payload("thanks!", mentions=[BOT_USER]))
    assert fake.requests == []

    await deliver(client, message_payload(f"<@{BOT_ID}> contrastive learning", mentions=[BOT_USER]))
    (reply,) = fake.channel_messages
    assert "Momentum Contrast" in reply.content


async def test_system_notices_and_polls_are_no_questions(client: KnowledgeBot, fake: FakeDiscord) -> None:
    pinned = message_payload("", dm=True) | {"type": 6}  # "Alice pinned a message" in a DM with the bot
    thread = message_payload(f"<@{BOT_ID}> optimizers", mentions=[BOT_USER]) | {"type": 18}  # a thread created
    poll = message_payload("", dm=True) | {
        "poll": {
            "question": {"text": "lunch?"},
            "answers": [{"answer_id": 1, "poll_media": {"text": "yes"}}],
            "expiry": "2030-01-01T00:00:00+00:00",
            "allow_multiselect": False,
            "layout_type": 1,
        }
    }
    for data in (pinned, thread, poll):
        await deliver(client, data)
    assert fake.requests == []  # each had got the usage hint, or an answer to the thread's name


async def test_what_the_user_typed_comes_back_escaped_in_an_error(client: KnowledgeBot, fake: FakeDiscord) -> None:
    typed = "[Free Nitro](https://evil.example/x) @everyone <@&123>"
    await deliver(client, message_payload(f'<@{BOT_ID}> in:"{typed}" Adam', mentions=[BOT_USER]))

    (reply,) = fake.channel_messages
    assert reply.content.startswith("No section of the collection matches")
    assert "\\[Free Nitro\\](https://evil.example/x)" in reply.content  # shown as typed, not as a link of the bot's
    assert "@everyone" not in reply.content and "<@&123>" not in reply.content
    assert reply.body["allowed_mentions"] == {"parse": [], "replied_user": False}


def test_the_message_content_intent_is_asked_for_only_when_set(
    core: ChatCore, make_settings: Callable[..., BotSettings]
) -> None:
    assert not create_discord_client(core, make_settings()).intents.message_content
    asked = create_discord_client(core, make_settings(discord_message_content=True)).intents
    assert asked.message_content and asked.guild_messages and asked.dm_messages


async def test_bots_the_bot_itself_and_unaddressed_messages_get_nothing(
    client: KnowledgeBot, fake: FakeDiscord
) -> None:
    other_bot = user_payload(OTHER_BOT, name="other-bot", bot=True)
    await deliver(client, message_payload(f"<@{BOT_ID}> Adam", author=other_bot, mentions=[BOT_USER]))
    await deliver(client, message_payload(f"<@{BOT_ID}> Adam", author=BOT_USER, mentions=[BOT_USER]))
    await deliver(client, message_payload("Which paper fixes weight decay in Adam?"))
    await deliver(client, message_payload("@everyone Adam weight decay"))

    assert fake.requests == []


async def test_the_channel_allowlist_limits_mentions(
    kb: KnowledgeBase, make_settings: Callable[..., BotSettings], start_client: ClientFactory, fake: FakeDiscord
) -> None:
    client = await start_client(ChatCore(kb, make_settings(discord_channels=str(GENERAL))))
    await deliver(client, message_payload(f"<@{BOT_ID}> Adam", channel_id=OTHER_CHANNEL, mentions=[BOT_USER]))
    assert fake.requests == []

    await deliver(client, message_payload(f"<@{BOT_ID}> Adam", channel_id=GENERAL, mentions=[BOT_USER]))
    await deliver(client, message_payload("Adam weight decay", dm=True))  # the allowlist is for channels
    assert [r.path for r in fake.channel_messages] == [
        f"/channels/{GENERAL}/messages",
        f"/channels/{DM_CHANNEL}/messages",
    ]


async def test_a_group_dm_is_a_channel_for_the_allowlist_not_a_dm(
    kb: KnowledgeBase, make_settings: Callable[..., BotSettings], start_client: ClientFactory, fake: FakeDiscord
) -> None:
    """A user-installed app's /ask in a group DM answers in front of other people: with an allowlist, only
    when the group DM is on it (it was let through as a DM)."""
    client = await start_client(ChatCore(kb, make_settings(discord_channels=str(GENERAL))))
    await run_command(client, command_payload("ask", group_dm=True, question="Adam weight decay"))
    (refused,) = fake.callbacks
    assert refused.body["type"] == 4 and refused.private
    assert refused.content.startswith("I don't answer in this channel.")

    allowed = await start_client(ChatCore(kb, make_settings(discord_channels=f"{GENERAL},{GROUP_DM_CHANNEL}")))
    await run_command(allowed, command_payload("ask", group_dm=True, question="Adam weight decay"))
    assert ADAM_W in fake.followups[-1].content
    await run_command(client, command_payload("ask", dm=True, question="Adam weight decay"))  # the bot's own DM
    assert ADAM_W in fake.followups[-1].content


@pytest.mark.parametrize("cooldown", [3, 0])
async def test_a_mention_is_answered_once_by_replicas_that_share_the_state_store(
    kb: KnowledgeBase,
    make_settings: Callable[..., BotSettings],
    start_client: ClientFactory,
    fake: FakeDiscord,
    tmp_path: Path,
    cooldown: int,
) -> None:
    """Every gateway session gets the message: the other replica said "please wait" (the shared cooldown) or,
    with no cooldown, posted the answer again."""
    settings = make_settings(cooldown_seconds=cooldown)
    replicas = [await start_client(ChatCore(kb, settings, state=open_state(tmp_path / "shared"))) for _ in range(2)]
    ask = message_payload(f"<@{BOT_ID}> Which paper fixes weight decay in Adam?", mentions=[BOT_USER])
    for replica in replicas:
        await deliver(replica, ask)
    (reply,) = fake.channel_messages
    assert ADAM_W in reply.content


async def test_a_mention_in_a_thread_not_cached_is_answered_when_its_channel_is_allowed(
    kb: KnowledgeBase, make_settings: Callable[..., BotSettings], start_client: ClientFactory, fake: FakeDiscord
) -> None:
    """discord.py gives a message in a thread it has not cached (an archived one, a private one the bot was
    just added to) a channel without its parent: the thread is looked up once to apply the allowlist."""
    client = await start_client(ChatCore(kb, make_settings(discord_channels=str(GENERAL))))
    in_general, elsewhere = 1_300_000_000_000_000_001, 1_300_000_000_000_000_002
    fake.threads.update({in_general: GENERAL, elsewhere: OTHER_CHANNEL})
    await deliver(client, message_payload(f"<@{BOT_ID}> Adam", channel_id=elsewhere, mentions=[BOT_USER]))
    await deliver(client, message_payload(f"<@{BOT_ID}> Adam", channel_id=in_general, mentions=[BOT_USER]))

    assert [r.path for r in fake.find("GET", r"/channels/\d+")] == [f"/channels/{elsewhere}", f"/channels/{in_general}"]
    (answer,) = fake.channel_messages
    assert answer.path == f"/channels/{in_general}/messages" and "Adam" in answer.content


async def test_a_dm_is_answered_without_a_mention(client: KnowledgeBot, fake: FakeDiscord) -> None:
    await deliver(client, message_payload("哪篇论文修正了 Adam 的 weight decay?", dm=True))

    (reply,) = fake.requests
    assert reply.path == f"/channels/{DM_CHANNEL}/messages"
    assert ADAM_W in reply.content


async def test_an_empty_mention_gets_the_usage_hint(client: KnowledgeBot, fake: FakeDiscord) -> None:
    await deliver(client, message_payload(f"  <@{BOT_ID}>  ", mentions=[BOT_USER]))

    (reply,) = fake.requests
    assert reply.content == EmptyQuestion().user_message
    assert reply.body["message_reference"] and reply.body["allowed_mentions"] == {"parse": [], "replied_user": False}


async def test_a_long_answer_is_split_with_the_buttons_under_the_last_message(
    client: KnowledgeBot, core: ChatCore, fake: FakeDiscord
) -> None:
    # A real answer whose entries get long summaries: together they exceed Discord's 2,000 characters.
    answer = await core.ask("discord:test", "discord:test", "optimizer")
    long_items = tuple(replace(item, summary="长摘要" * 500) for item in answer.items)
    await client.send_answer(
        discord.Interaction(data=command_payload("ask", question="optimizer"), state=client._connection),  # type: ignore[arg-type]
        Answer(answer.id, answer.question, long_items, answer.page, answer.pages),
    )

    assert len(fake.followups) > 1
    assert all(len(r.content) <= 2000 for r in fake.followups)
    assert [bool(custom_ids(r)) for r in fake.followups] == [False] * (len(fake.followups) - 1) + [True]


# -- the reply's language ------------------------------------------------------------------------------


async def test_a_chinese_discord_gets_chinese_texts_whatever_the_question_s_language(
    client: KnowledgeBot, fake: FakeDiscord
) -> None:
    await run_command(client, command_payload("ask", question="optimizer", locale="zh-CN"))
    await run_command(client, command_payload("help", locale="zh-CN"))
    await run_command(client, command_payload("stats", locale="zh-TW"))

    answer, help_text, stats = fake.followups
    assert answer.content.startswith("“optimizer”的结果（第 1/2 页）：")
    assert "Lookahead Optimizer" in answer.content or "Adam" in answer.content  # the entries as they are
    more, up, down, similar = (item for row in answer.body["components"] for item in row["components"])
    assert more["label"] == "更多结果" and up["emoji"]["name"] == "👍" and down["emoji"]["name"] == "👎"
    assert similar["placeholder"] == "找相似…" and similar["options"][0]["label"].startswith("与第 1 条相似 · ")
    # The help names the commands as a Chinese Discord shows them.
    assert help_text.content.startswith("我根据一份精选的机器学习阅读笔记合集")
    assert "• /提问：向我提一个关于合集的问题，例如 `/提问 对比学习的论文`" in help_text.content
    assert "• /重建索引：" in help_text.content and "/ask" not in help_text.content
    assert stats.content.startswith("共 8 個條目；上次索引時間：")

    first = fake.followups[0]
    click(client, button_payload(more_id_of(first), first.response, locale="zh-CN"))
    second = await fake.wait_for(lambda r: "第 2/2 页" in r.content)
    assert second.content.startswith("“optimizer”的结果")


async def test_an_english_discord_gets_english_texts_for_a_chinese_question(
    client: KnowledgeBot, fake: FakeDiscord
) -> None:
    await run_command(client, command_payload("ask", question="哪篇论文修正了 Adam 的 weight decay?"))
    (answer,) = fake.followups
    assert answer.content.startswith("Results for “哪篇论文修正了 Adam 的 weight decay?”")
    assert ADAM_W in answer.content


async def test_the_server_s_language_counts_when_the_bot_does_not_speak_the_user_s(
    client: KnowledgeBot, fake: FakeDiscord
) -> None:
    await run_command(client, command_payload("ask", question="Adam", locale="fr", guild_locale="zh-TW"))
    await run_command(client, command_payload("ask", question="Adam", locale="fr", guild_locale="de"))

    chinese, english = fake.followups
    assert chinese.content.startswith("“Adam”的結果")
    assert english.content.startswith("Results for “Adam”")  # neither: the question's language


async def test_commands_are_named_as_the_user_s_discord_shows_them(
    kb: KnowledgeBase, make_settings: Callable[..., BotSettings], start_client: ClientFactory, fake: FakeDiscord
) -> None:
    # Replies in Traditional Chinese for everyone (KB_LOCALE), but an English Discord shows `/ask`, a Simplified
    # one `/提问`: the help and the hints named `/提問` to both.
    client = await start_client(ChatCore(kb, make_settings(locale="zh-Hant")))
    await run_command(client, command_payload("help", locale="en-US"))
    await run_command(client, command_payload("ask", question="?!", locale="zh-CN"))
    (help_text,) = fake.followups
    (usage,) = fake.callbacks[1:]
    assert (
        help_text.content.startswith("我根據") and "• /ask：" in help_text.content and "/提問" not in help_text.content
    )
    assert "`/提问 " in usage.content and "/提問" not in usage.content
    # A mention says nothing of its author's client: both names
    await deliver(client, message_payload(f"<@{BOT_ID}>", mentions=[BOT_USER]))
    (hint,) = fake.channel_messages
    assert "`/提問 (/ask) " in hint.content


async def test_private_replies_are_in_the_user_s_language(client: KnowledgeBot, fake: FakeDiscord) -> None:
    await run_command(client, command_payload("ask", question="?!", locale="zh-CN"))
    await run_command(client, command_payload("reindex", locale="zh-TW"))

    usage, not_admin = fake.callbacks
    assert usage.private and usage.content.startswith("没有可回答的问题。向我提一个关于合集的问题，例如 `/提问 ")
    assert not_admin.private and not_admin.content == "只有機器人的管理員才能重建索引。"


async def test_mentions_follow_the_language_of_the_question(client: KnowledgeBot, fake: FakeDiscord) -> None:
    await deliver(client, message_payload(f"<@{BOT_ID}> 哪篇论文修正了 Adam 的 weight decay?", mentions=[BOT_USER]))
    await deliver(client, message_payload(f"<@{BOT_ID}> Which paper fixes weight decay in Adam?", mentions=[BOT_USER]))
    await deliver(client, message_payload(f"<@{BOT_ID}>", mentions=[BOT_USER]))  # the channel's last language

    chinese, english, usage = fake.channel_messages
    assert chinese.content.startswith("“哪篇论文修正了 Adam 的 weight decay?”的结果")
    assert english.content.startswith("Results for “Which paper fixes weight decay in Adam?”")
    assert usage.content.startswith("There is no question to answer.")


async def test_kb_locale_fixes_the_language_of_every_reply(
    kb: KnowledgeBase, make_settings: Callable[..., BotSettings], start_client: ClientFactory, fake: FakeDiscord
) -> None:
    client = await start_client(ChatCore(kb, make_settings(locale="zh-Hant")))
    await run_command(client, command_payload("ask", question="Which paper fixes weight decay in Adam?"))
    await deliver(client, message_payload(f"<@{BOT_ID}> Adam weight decay", mentions=[BOT_USER]))

    (answer,) = fake.followups
    (reply,) = fake.channel_messages
    assert answer.content.startswith("“Which paper fixes weight decay in Adam?”的結果")
    assert reply.content.startswith("“Adam weight decay”的結果")


async def test_slash_commands_are_localised_for_chinese_discord(
    core: ChatCore, make_settings: Callable[..., BotSettings], fake: FakeDiscord
) -> None:
    client = create_discord_client(core, make_settings(discord_guild_id=GUILD_ID))
    try:
        await client.login("test-token")
    finally:
        await client.close()

    (sync,) = fake.find("PUT", r"/applications/\d+(/guilds/\d+)?/commands")
    commands = {command["name"]: command for command in sync.body}
    assert {name: c["name_localizations"] for name, c in commands.items()} == {
        "ask": {"zh-CN": "提问", "zh-TW": "提問"},
        "more": {"zh-CN": "更多", "zh-TW": "更多"},
        "stats": {"zh-CN": "统计", "zh-TW": "統計"},
        "help": {"zh-CN": "帮助", "zh-TW": "幫助"},
        "reindex": {"zh-CN": "重建索引", "zh-TW": "重建索引"},
        "similar": {"zh-CN": "相似", "zh-TW": "相似"},
        "browse": {"zh-CN": "浏览", "zh-TW": "瀏覽"},
        "new": {"zh-CN": "新增", "zh-TW": "新增"},
    }
    for command in commands.values():  # every description, in both Chinese locales
        assert set(command["description_localizations"]) == {"zh-CN", "zh-TW"}, command["name"]
        for option in command["options"]:
            assert set(option["name_localizations"]) == {"zh-CN", "zh-TW"}, option["name"]
            assert set(option["description_localizations"]) == {"zh-CN", "zh-TW"}, option["name"]
    assert commands["ask"]["description_localizations"]["zh-CN"] == "向机器学习阅读笔记合集提问。"
    question, section, lang, private = commands["ask"]["options"]
    assert question["name"] == "question" and question["name_localizations"]["zh-CN"] == "问题"
    assert section["name_localizations"] == {"zh-CN": "分类", "zh-TW": "分類"}
    assert [choice["name_localizations"]["zh-CN"] for choice in lang["choices"]] == [
        "英文",
        "中文（简繁皆可）",
        "简体中文",
        "繁体中文",
    ]
    assert private["name_localizations"]["zh-TW"] == "私密"


# -- where the bot answers, and private answers --------------------------------------------------------


async def test_the_channel_allowlist_applies_to_slash_commands_suggestions_and_buttons(
    kb: KnowledgeBase, make_settings: Callable[..., BotSettings], start_client: ClientFactory, fake: FakeDiscord
) -> None:
    client = await start_client(ChatCore(kb, make_settings(discord_channels=str(GENERAL))))
    await run_command(client, command_payload("ask", question="optimizer"))
    (answer,) = fake.followups
    fake.requests.clear()

    await run_command(client, command_payload("ask", question="optimizer", channel_id=OTHER_CHANNEL))
    await run_command(client, command_payload("help", channel_id=OTHER_CHANNEL, locale="zh-CN"))
    await run_command(client, autocomplete_payload("ask", "section", "优化", channel_id=OTHER_CHANNEL))
    click(client, button_payload(more_id_of(answer), answer.response, channel_id=OTHER_CHANNEL))
    await fake.wait_for(lambda r: len(fake.callbacks) == 4)

    ask, help_, suggestions, more = fake.callbacks
    for refusal in (ask, more):  # answered at once, privately, and nothing else happens
        assert refusal.body["type"] == 4 and refusal.private
        assert (
            refusal.content
            == "I don't answer in this channel. Ask me in a channel where I answer, or in a direct message."
        )
    assert help_.private and help_.content.startswith("我不在这个频道回答")
    assert suggestions.body == {"type": 8, "data": {"choices": []}}
    assert fake.followups == [] and fake.channel_messages == []

    await run_command(client, command_payload("ask", question="optimizer", dm=True))  # a DM is always fine
    assert "Lookahead" in fake.followups[0].content or "Adam" in fake.followups[0].content


async def test_more_under_a_page_shows_the_page_after_it_however_often_it_is_pressed(
    kb: KnowledgeBase, make_settings: Callable[..., BotSettings], start_client: ClientFactory, fake: FakeDiscord
) -> None:
    """Two readers of a channel, or a double click, pressing More under page 1 each see page 2; More under
    a page 2 shows page 3."""
    client = await start_client(ChatCore(kb, make_settings(answer_size=1)))
    await run_command(client, command_payload("ask", question="optimizer"))
    (first,) = fake.followups
    for _ in range(2):
        before = len(fake.followups)
        click(client, button_payload(more_id_of(first), first.response))
        await fake.wait_for(lambda r, before=before: r in fake.followups[before:])
    second, again = fake.followups[1:]
    assert "(page 2/4)" in second.content and "(page 2/4)" in again.content
    click(client, button_payload(more_id_of(again), again.response))
    third = await fake.wait_for(lambda r: "(page 3/4)" in r.content)
    assert more_id_of(third).endswith(":4")


async def test_a_private_ask_and_its_pages_are_seen_by_the_asker_only(client: KnowledgeBot, fake: FakeDiscord) -> None:
    await run_command(client, command_payload("ask", question="optimizer", private=True))

    defer, *_ = fake.callbacks
    assert defer.body == {"type": 5, "data": {"flags": EPHEMERAL}}
    (first,) = fake.followups
    assert first.private and first.content.startswith("Results for “optimizer” (page 1/2):")
    click(client, button_payload(more_id_of(first), first.response))
    second = await fake.wait_for(lambda r: "page 2/2" in r.content)
    assert second.private and fake.callbacks[-1].body == {"type": 5, "data": {"flags": EPHEMERAL}}

    # Someone's private answer is not the channel's last answer: /more does not page it for others.
    await run_command(client, command_payload("more"))
    assert fake.followups[-1].content == NothingMore().user_message and fake.followups[-1].private


async def test_a_private_mention_is_answered_in_a_dm(client: KnowledgeBot, fake: FakeDiscord) -> None:
    await deliver(
        client, message_payload(f"<@{BOT_ID}> -p which paper fixes weight decay in Adam?", mentions=[BOT_USER])
    )

    (opened,) = fake.find("POST", r"/users/@me/channels")
    assert opened.body == {"recipient_id": ALICE} or int(opened.body["recipient_id"]) == ALICE
    (reply,) = fake.channel_messages
    assert reply.path == f"/channels/{DM_CHANNEL}/messages" and "message_reference" not in reply.body
    assert reply.content.startswith("Results for “which paper fixes weight decay in Adam?”")  # without the -p
    assert ADAM_W in reply.content


async def test_a_mention_where_the_bot_cannot_read_history_is_answered_without_the_reply_reference(
    client: KnowledgeBot, fake: FakeDiscord
) -> None:
    """A reply needs Read Message History; without it the answer is sent as a message of its own."""
    fake.no_history.add(GENERAL)
    await deliver(client, message_payload(f"<@{BOT_ID}> 哪篇论文修正了 Adam 的 weight decay?", mentions=[BOT_USER]))

    refused, answer = fake.channel_messages
    assert refused.status == 403 and "message_reference" in refused.body
    assert answer.status == 200 and "message_reference" not in answer.body and ADAM_W in answer.content
    assert answer.body["allowed_mentions"] == NO_PINGS


async def test_a_private_mention_whose_asker_has_closed_dms_is_told_so_where_they_asked(
    client: KnowledgeBot, fake: FakeDiscord
) -> None:
    fake.closed_dms = True
    question = await deliver(
        client, message_payload(f"<@{BOT_ID}> -p 哪篇论文修正了 Adam 的 weight decay?", mentions=[BOT_USER])
    )

    refused, note = fake.channel_messages
    assert refused.path == f"/channels/{DM_CHANNEL}/messages" and refused.status == 403
    assert (
        note.path == f"/channels/{GENERAL}/messages"
        and int(note.body["message_reference"]["message_id"]) == question.id
    )
    assert (
        note.content
        == "无法通过私信把答案发给你：你可能关闭了来自我的私信。想要只有你能看到的回答，请使用 `/提问` 并加上 `私密: True`。"
    )
    assert ADAM_W not in note.content  # the answer itself stays private
    assert note.body["allowed_mentions"] == {"parse": [], "replied_user": False}


# -- filters -------------------------------------------------------------------------------------------


async def test_a_filtered_ask_returns_only_entries_under_that_section(client: KnowledgeBot, fake: FakeDiscord) -> None:
    await run_command(client, command_payload("ask", question="optimizer Adam 召回 位置偏置", section="推荐"))
    await run_command(client, command_payload("ask", question="对比学习 in:自监督"))  # inline, as on Slack
    await run_command(client, command_payload("ask", question="Adam", lang="zh-Hant"))  # no Traditional entry

    in_recommendation, in_self_supervised, refused = fake.followups
    assert in_recommendation.content.startswith("Results for “optimizer Adam 召回 位置偏置” in §推荐")
    titles = re.findall(r"\*\*\d+\. \[([^\]]+)\]", in_recommendation.content)
    assert titles and set(titles) <= {"深度检索：字节跳动提出可学习的召回结构", "CTR 预估中的位置偏置消除框架 PAL"}
    assert in_self_supervised.content.startswith("Results for “对比学习” in §深度学习 › 自监督")
    assert "Adam" not in in_self_supervised.content and "Momentum Contrast" in in_self_supervised.content
    assert refused.content.startswith("I found nothing in the collection about “Adam” (Traditional Chinese entries)")


async def test_an_unknown_section_is_told_privately_at_once(client: KnowledgeBot, fake: FakeDiscord) -> None:
    await run_command(client, command_payload("ask", question="Adam", section="天文学", locale="zh-CN"))

    (refusal,) = fake.requests  # no "thinking…" first
    assert refusal.body["type"] == 4 and refusal.private
    assert refusal.content == "合集中没有与“天文学”匹配的分类。试试分类名称的一部分，中英文皆可。"


async def test_ask_and_browse_on_a_slow_section_tree_are_deferred_before_discord_drops_them(
    client: KnowledgeBot, kb: GatedKnowledgeBase, fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Resolving a section waits for the section tree, rebuilt after a reindex (a slow store, a busy host);
    # Discord drops an interaction not responded to within 3 s.
    monkeypatch.setattr(discord_bot, "BEFORE_DEFER_SECONDS", 0.2)
    kb.sections_gate.clear()
    try:
        # section suggestions: none rather than none in time
        await asyncio.wait_for(run_command(client, autocomplete_payload("browse", "section", "自监督")), 5)
        assert fake.callbacks[0].body == {"type": 8, "data": {"choices": []}}
        asking = asyncio.create_task(
            run_command(client, command_payload("ask", question="Adam -p", section="深度学习"))
        )
        browsing = asyncio.create_task(run_command(client, command_payload("browse")))
        await fake.wait_for(lambda r: len(fake.callbacks) == 3)
        # both deferred privately at once: "-p" is in the question, and a walk is the reader's own
        assert [r.body for r in fake.callbacks[1:]] == [{"type": 5, "data": {"flags": EPHEMERAL}}] * 2
        assert not asking.done() and not browsing.done()
    finally:
        kb.sections_gate.set()
    await asking
    await browsing
    answer, top = sorted(fake.followups, key=lambda r: "Adam" not in r.content)
    assert "Fixing Weight Decay Regularization in Adam" in answer.content and answer.private
    assert top.private and top.content.startswith("The collection's sections, 8 entries in all")


@pytest.mark.parametrize(
    ("typed", "suggested"),
    [
        ("推荐", ["推荐 (2)"]),
        ("recommend", ["推荐 (2)"]),
        ("优化", ["深度学习 / 优化器 (4)"]),
        ("optim", ["深度学习 / 优化器 (4)"]),
        ("self-supervised", ["深度学习 / 自监督 (2)"]),
        ("", ["深度学习 (6)", "推荐 (2)"]),
        ("天文学", []),
    ],
)
async def test_section_suggestions_match_either_language_with_counts(
    client: KnowledgeBot, fake: FakeDiscord, typed: str, suggested: list[str]
) -> None:
    await run_command(client, autocomplete_payload("ask", "section", typed, question="Adam"))

    (suggestions,) = fake.callbacks
    assert suggestions.body["type"] == 8
    choices = suggestions.body["data"]["choices"]
    assert [choice["name"] for choice in choices] == suggested
    assert all(choice["value"] == choice["name"].rsplit(" (", 1)[0] for choice in choices)


async def test_a_command_the_bot_no_longer_has_says_it_is_out_of_date(
    client: KnowledgeBot, fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    # registered by an older version (global commands are synced only by `--sync`), or with other options
    await run_command(client, command_payload("search", query="Adam"))
    await run_command(client, command_payload("ask", query="Adam"))  # `question` was once `query`
    await run_command(client, autocomplete_payload("search", "section", "优化"))

    retired, renamed, suggestions = fake.callbacks
    for reply in (retired, renamed):  # was "Sorry, something went wrong on my side. Please try again", and an ERROR
        assert reply.body["type"] == 4 and reply.private
        assert reply.body["data"]["content"].startswith("This command is out of date")
    assert suggestions.body == {"type": 8, "data": {"choices": []}}  # a message cannot answer suggestions
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


async def test_section_suggestions_stay_within_discord_s_limits_on_the_bundled_collection() -> None:
    from fake_retriever import FakeRetriever

    from bot.discord_bot import section_choices
    from knowledge.parse import parse_sources
    from knowledge.settings import BUNDLED_SOURCES

    entries = tuple(parse_sources([BUNDLED_SOURCES]).entries)
    core = ChatCore(FakeRetriever(entries), BotSettings(_env_file=None))
    tree = await core.sections()
    for typed in ("", "1", "推荐", "recommend", "graph", "图", "nlp", "a", "强化学习"):
        choices = await section_choices(core, typed)
        assert 0 < len(choices) <= 25, typed
        assert all(len(c.name) <= 100 and len(c.value) <= 100 for c in choices)
        assert all(tree.resolve(c.value) is not None for c in choices)  # each value names its section
    assert len(await section_choices(core, "")) == 25 < len(tree.roots)
    chinese = [c.value for c in await section_choices(core, "推荐")]
    english = [c.value for c in await section_choices(core, "recommend")]
    assert chinese[0] == english[0] == "9 推荐系统"


# -- papers by identifier, and "more like this" ----------------------------------------------------------


async def test_a_paper_link_is_looked_up_exactly_first(client: KnowledgeBot, fake: FakeDiscord) -> None:
    await run_command(client, command_payload("ask", question="https://arxiv.org/pdf/1711.05101v2.pdf"))
    # The rest of the question is clearly about entries the collection has (refusal probability about 0.7;
    # "low-rank adaptation of Adam optimizer" sat within 0.001 of the threshold, answered or not by chance).
    await run_command(
        client, command_payload("ask", question="arXiv:2106.09685 low-rank adaptation, like weight decay in Adam")
    )

    found, missing = fake.followups
    assert found.content.startswith("In the collection: arXiv:1711.05101 in §深度学习 › 优化器:")
    assert re.search(r"\*\*1\. \[Fixing Weight Decay Regularization in Adam\]", found.content)
    assert missing.content.startswith(
        "Not in the collection: arXiv:2106.09685. Related entries, not the one you asked for"
    )
    assert "Adam" in missing.content  # the related entries, found with the rest of the question


async def test_similar_to_an_item_shows_its_neighbours_and_never_itself(
    client: KnowledgeBot, core: ChatCore, fake: FakeDiscord
) -> None:
    await run_command(client, command_payload("ask", question="Which paper fixes weight decay in Adam?"))
    (answer,) = fake.followups
    (menu,) = [item for row in answer.body["components"] for item in row["components"] if item["type"] == 3]
    assert menu["custom_id"] == f"kb:similar:{answer_id_of(answer)}"
    first = menu["options"][0]
    assert first["label"] == "Similar to #1 · Fixing Weight Decay Regularization in Adam"

    click(client, select_payload(menu["custom_id"], [first["value"]], answer.response))
    similar = await fake.wait_for(lambda r: r.content.startswith("Entries like #1"))
    assert similar.content.startswith("Entries like #1 “Fixing Weight Decay Regularization in Adam”")
    assert "Fixing Weight Decay" not in similar.content.split("\n", 1)[1]  # never the entry itself
    assert "Adam: A Method for Stochastic Optimization" in similar.content  # its neighbour
    assert not similar.private

    await run_command(client, command_payload("similar", number=2))
    again = fake.followups[-1]
    assert again.content.startswith("Entries like #2 “")
    await run_command(client, command_payload("similar", number=9))
    assert fake.callbacks[-1].content == "The last answer here has no entry #9." and fake.callbacks[-1].private


# -- browsing ------------------------------------------------------------------------------------------


def _components(recorded: Any) -> list[dict[str, Any]]:
    return [item for row in (recorded.body or {}).get("components", []) for item in row["components"]]


async def test_browse_descends_two_levels_and_pages_through_a_section(
    kb: KnowledgeBase, make_settings: Callable[..., BotSettings], start_client: ClientFactory, fake: FakeDiscord
) -> None:
    client = await start_client(ChatCore(kb, make_settings(answer_size=1)))
    await run_command(client, command_payload("browse"))
    (top,) = fake.followups
    assert fake.callbacks[0].body == {"type": 5, "data": {"flags": EPHEMERAL}} and top.private  # the reader's own walk
    assert top.content == "The collection's sections, 8 entries in all:\n\n**Subsections:**\n• 深度学习 (6)\n• 推荐 (2)"
    (menu,) = _components(top)  # at the top, with one page: no buttons
    assert menu["custom_id"] == "kb:browse:open" and [o["label"] for o in menu["options"]] == [
        "深度学习 (6)",
        "推荐 (2)",
    ]

    click(client, select_payload("kb:browse:open", [menu["options"][0]["value"]], top.response))
    deep = await fake.wait_for(lambda r: r.content.startswith("§深度学习"))
    assert deep.content.startswith("§深度学习, 6 entries:\n\n**Subsections:**\n• 优化器 (4)\n• 自监督 (2)")
    menu, up = _components(deep)
    assert up["label"] == "Up" and up["custom_id"] == "kb:browse:top:1"

    click(client, select_payload("kb:browse:open", [menu["options"][0]["value"]], deep.response))
    first = await fake.wait_for(lambda r: r.content.startswith("§深度学习 › 优化器"))
    assert first.content.startswith("§深度学习 › 优化器, 4 entries (page 1/4):\n\n**Entries:**\n\n**1. [")
    up, following = _components(first)
    assert up["label"] == "Up" and following["label"] == "Next" and following["custom_id"].endswith(":2")

    click(client, button_payload(following["custom_id"], first.response))
    second = await fake.wait_for(lambda r: "(page 2/4)" in r.content)
    assert re.search(r"\*\*2\. \[", second.content) and not re.search(r"\*\*1\. \[", second.content)
    assert [c["label"] for c in _components(second)] == ["Up", "Previous", "Next"] and second.private
    titles = {re.findall(r"\*\*\d\. \[([^\]]+)\]", r.content)[0] for r in (first, second)}
    assert len(titles) == 2 and titles <= OPTIMIZERS  # two different optimizers, in the section's order

    click(client, button_payload(up["custom_id"], second.response))
    back = await fake.wait_for(lambda r: r is not deep and r.content.startswith("§深度学习, 6 entries"))
    assert back.private


async def test_browse_opens_a_section_named_in_either_language_and_speaks_the_user_s(
    client: KnowledgeBot, fake: FakeDiscord
) -> None:
    await run_command(client, command_payload("browse", section="recommend", locale="zh-CN"))
    await run_command(client, autocomplete_payload("browse", "section", "自监督"))
    await run_command(client, command_payload("browse", section="天文学"))

    (recommendation,) = fake.followups
    assert recommendation.content.startswith("§推荐，共 2 个条目：\n\n**条目：**")
    assert "深度检索" in recommendation.content and "位置偏置" in recommendation.content
    assert [c["label"] for c in _components(recommendation)] == ["上一级"]
    suggestions = fake.callbacks[1]
    assert suggestions.body["data"]["choices"] == [{"name": "深度学习 / 自监督 (2)", "value": "深度学习 / 自监督"}]
    unknown = fake.callbacks[-1]
    assert unknown.private and unknown.content.startswith("No section of the collection matches “天文学”.")


@pytest.mark.parametrize(("shards", "count"), [("auto", 2), ("3", 3)])
async def test_kb_discord_shards_runs_every_shard_and_answers_on_the_guild_s_own(
    kb: KnowledgeBase, make_settings: Callable[..., BotSettings], fake: FakeDiscord, shards: str, count: int
) -> None:
    fake.shards, fake.max_concurrency = 2, 16  # what /gateway/bot recommends; all may identify at once
    fake.guilds = [guild_payload()]
    settings = make_settings(discord_shards=shards, discord_gateway_url=fake.gateway_url)
    client = create_discord_client(ChatCore(kb, settings), settings)
    assert isinstance(client, ShardedKnowledgeBot)
    running = asyncio.get_running_loop().create_task(run_discord(client, settings))
    try:
        every_shard = [(shard, count) for shard in range(count)]
        await fake.wait_until(lambda: sorted(s.shard for s in fake.sessions if s.ready) == every_shard, 20, "READY")
        assert sorted(tuple(identify["shard"]) for identify in fake.identifies) == every_shard
        assert all(identify["token"] == "test-token" for identify in fake.identifies)
        assert fake.find("GET", "/gateway/bot")  # auto: the count; both: the session start limit
        assert client.shard_count == count

        own = (GUILD_ID >> 22) % count  # the guild's shard: its events arrive on that connection only
        ask = message_payload(f"<@{BOT_ID}> Which paper fixes weight decay in Adam?", mentions=[BOT_USER])
        await fake.dispatch("MESSAGE_CREATE", ask, shard=own)
        reply = await fake.wait_for(lambda r: r.method == "POST" and r.path == f"/channels/{GENERAL}/messages", 20)
        assert "Fixing Weight Decay Regularization in Adam" in reply.content
        assert client.get_guild(GUILD_ID) is not None and client.get_guild(GUILD_ID).shard_id == own  # type: ignore[union-attr]
    finally:
        await client.close()
        await asyncio.wait_for(running, 10)


async def test_a_browse_button_whose_section_a_reindex_removed_says_so_not_its_id(
    client: KnowledgeBot, fake: FakeDiscord
) -> None:
    await run_command(client, command_payload("browse", locale="zh-CN"))
    (top,) = fake.followups
    # a page shown before a reindex: its Next button names a section the collection no longer has
    stale = "kb:browse:0123456789ab:2"
    button = {"type": 2, "style": 2, "label": "下一页", "custom_id": stale}
    shown = {**top.response, "components": [*top.response["components"], {"type": 1, "components": [button]}]}
    click(client, button_payload(stale, shown, locale="zh-CN"))
    click(client, select_payload("kb:browse:open", ["fedcba987654"], top.response))
    gone = await fake.wait_for(lambda r: r.content.startswith("该分类已不在合集中"))
    moved = await fake.wait_for(lambda r: r.content.startswith("That section is no longer in the collection"))
    assert gone.private and moved.private
    assert all("0123456789ab" not in r.content and "fedcba987654" not in r.content for r in fake.requests)


async def test_an_unknown_section_typed_at_length_is_repeated_short_enough_to_be_sent(
    client: KnowledgeBot, fake: FakeDiscord
) -> None:
    """Repeated whole, a 3,000-character `in:` made a reply Discord refuses: the asker got nothing."""
    await run_command(client, command_payload("ask", question="Adam in:" + "x" * 3000))
    (refusal,) = fake.callbacks
    assert refusal.private and refusal.content.startswith("No section of the collection matches “" + "x" * 59 + "…”")
    assert len(refusal.content) < 200


async def test_stats_longer_than_a_message_comes_in_several(
    make_settings: Callable[..., BotSettings], start_client: ClientFactory, fake: FakeDiscord
) -> None:
    from fake_retriever import FakeRetriever

    from knowledge import SourceStatus

    retriever = FakeRetriever()
    failed = datetime(2026, 11, 30, tzinfo=UTC)
    retriever.statuses = [
        SourceStatus(
            f"https://github.com/some-org/reading-notes-part-{n:02d}.git", "git", "main", error="x", failed_at=failed
        )
        for n in range(15)
    ]
    client = await start_client(ChatCore(retriever, make_settings()))
    await run_command(client, command_payload("stats"))
    assert len(fake.followups) > 1 and all(len(message.content) <= 2000 for message in fake.followups)
    shown = "\n".join(message.content for message in fake.followups)
    assert all(f"reading-notes-part-{n:02d}" in shown for n in range(15))


@pytest.mark.parametrize("command", [{"name": "ask", "question": "Adam"}, {"name": "stats"}, {"name": "help"}])
async def test_an_interaction_discord_dropped_is_logged_once_without_a_traceback(
    client: KnowledgeBot, fake: FakeDiscord, caplog: pytest.LogCaptureFixture, command: dict[str, Any]
) -> None:
    caplog.set_level(logging.INFO)
    payload = command_payload(**command)
    fake.dropped.add(payload["token"])
    await run_command(client, payload)

    (refused,) = fake.callbacks  # no second attempt to answer what cannot be answered
    assert refused.status == 404
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert any("expired before it was answered" in r.getMessage() for r in caplog.records)
