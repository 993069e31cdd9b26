"""A recording fake of Discord's REST API and gateway: one aiohttp server on a free loopback port.

REST (under `/api/v10`): it answers what the bot calls (login, interaction callbacks, followups, channel
messages, command sync) with payloads shaped like Discord's, and records every request so tests can
assert what a user would see.

Gateway (a WebSocket at `/gateway`, v10, JSON text frames): enough of Discord's protocol for a real
discord.py `Client` to connect and become ready. It sends HELLO (op 10), records every frame the client
sends, answers IDENTIFY (op 2; refused with close code 4004 when `tokens` is set and lacks the token; a REST
request with another bot token gets 401, as Discord answers it) with
the READY dispatch and one GUILD_CREATE per guild in `guilds`, acknowledges heartbeats (op 1) with op 11,
answers RESUME (op 6) with RESUMED, and lets the test push any dispatch (`MESSAGE_CREATE`,
`INTERACTION_CREATE`, ...) to the connected client with `dispatch`. For a sharded client it answers
`GET /gateway/bot` with its URL, `shards` (the recommended count) and the session start limit, and takes
one connection per shard, each IDENTIFY naming its `[shard_id, shard_count]` (READY says it back); a
dispatch goes to the shard the test names. Frames are sent uncompressed: the
client asks for `compress=zlib-stream`, but discord.py parses text frames as plain JSON.

Also here, for every test that drives the Discord front-end: raw gateway payloads of the test guild
(messages, slash commands, button clicks), the calls that feed them to a client the way discord.py does,
and `start_client`, which logs a `KnowledgeBot` in to the fake.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import discord
from aiohttp import WSMsgType, web
from discord import app_commands

from bot.chat import ChatCore
from bot.discord_bot import KnowledgeBot, create_discord_client
from bot.settings import BotSettings

API_PREFIX = "/api/v10"
GATEWAY_PATH = "/gateway"
GATEWAY_VERSION = 10
HEARTBEAT_INTERVAL_MS = 41250  # what Discord sends; discord.py beats at once, then every interval
# Gateway opcodes
DISPATCH, HEARTBEAT, IDENTIFY, RESUME, HELLO, HEARTBEAT_ACK = 0, 1, 2, 6, 10, 11
AUTHENTICATION_FAILED = 4004  # the close code for a bad token
DISALLOWED_INTENTS = 4014  # the close code for a privileged intent the application was not granted
APP_ID = 1100000000000000001
BOT_ID = APP_ID  # Discord gives a bot user the application's id
OWNER_ID = 1100000000000000002
# The one server of the tests, and its first member.
GUILD_ID = 1000000000000000001
ALICE = 1400000000000000001
VIEW_AND_SEND = (1 << 10) | (1 << 11)  # the permission bits a role needs for the bot to answer
MANAGE_GUILD = 1 << 5
EPHEMERAL = 1 << 6  # a message flag
SUPPRESS_EMBEDS = 1 << 2  # a message flag
NO_PINGS: dict[str, list[str]] = {"parse": []}  # allowed_mentions that ping nobody
# The test guild's channels and the bot's role; GENERAL is where FakeDiscord says followups were posted.
GENERAL = 1200000000000000001
OTHER_CHANNEL = 1200000000000000002
DM_CHANNEL = 1200000000000000003
GROUP_DM_CHANNEL = 1200000000000000004
BOB = 1400000000000000003  # another person, in a group DM
BOT_ROLE = 1000000000000000099
OTHER_BOT = 1400000000000000002

BOT_USER: dict[str, Any] = {
    "id": str(BOT_ID),
    "username": "notes-bot",
    "discriminator": "0",
    "global_name": None,
    "avatar": None,
    "bot": True,
    "flags": 0,
    "verified": True,
    "mfa_enabled": False,
}


# -- gateway payloads, as Discord delivers them ----------------------------------------------------


def user_payload(user_id: int = ALICE, *, name: str = "alice", bot: bool = False) -> dict[str, Any]:
    return {"id": str(user_id), "username": name, "discriminator": "0", "global_name": None, "avatar": None, "bot": bot}


def thread_channel(thread_id: int, parent_id: int) -> dict[str, Any]:
    """A public thread of `parent_id`, as GET /channels/{id} returns it."""
    metadata = {"archived": False, "auto_archive_duration": 1440, "archive_timestamp": "2026-11-30T12:00:00+00:00"}
    return {
        "id": str(thread_id),
        "type": 11,
        "guild_id": str(GUILD_ID),
        "parent_id": str(parent_id),
        "owner_id": str(ALICE),
        "name": "a thread",
        "thread_metadata": {**metadata, "locked": False},
        "message_count": 1,
        "member_count": 1,
        "rate_limit_per_user": 0,
    }


def text_channel(channel_id: int, name: str) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(GUILD_ID),
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "rate_limit_per_user": 0,
    }


def role(role_id: int, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(role_id),
        "name": name,
        "permissions": str(VIEW_AND_SEND),
        "position": 0,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
        **extra,
    }


_payload_ids = itertools.count(1500000000000000001)


def snowflake() -> str:
    return str(next(_payload_ids))


def now() -> str:
    return datetime.now(UTC).isoformat()


def guild_payload() -> dict[str, Any]:
    """The test guild as a client learns it: #general and #off-topic, and the bot's managed role."""
    return {
        "id": str(GUILD_ID),
        "name": "ML readers",
        "owner_id": str(ALICE),
        "roles": [role(GUILD_ID, "@everyone"), role(BOT_ROLE, "notes-bot", managed=True, tags={"bot_id": str(BOT_ID)})],
        "channels": [text_channel(GENERAL, "general"), text_channel(OTHER_CHANNEL, "off-topic")],
        "member_count": 3,
        "features": [],
        "emojis": [],
        "stickers": [],
    }


def member_payload(user_id: int = ALICE, permissions: int | None = None) -> dict[str, Any]:
    member: dict[str, Any] = {
        "user": user_payload(user_id),
        "roles": [],
        "joined_at": now(),
        "deaf": False,
        "mute": False,
        "flags": 0,
        "nick": None,
    }
    if permissions is not None:
        member["permissions"] = str(permissions)
    return member


def interaction_payload(
    kind: int,
    data: dict[str, Any],
    *,
    permissions: int = VIEW_AND_SEND,
    dm: bool = False,
    group_dm: bool = False,
    locale: str = "en-US",
    guild_locale: str = "en-US",
    channel_id: int = GENERAL,
    **extra: Any,
) -> dict[str, Any]:
    """An INTERACTION_CREATE payload as the gateway delivers it, in the test guild's #general (unless
    `channel_id`) or a DM, from a user whose Discord speaks `locale` in a server that prefers `guild_locale`."""
    payload: dict[str, Any] = {
        "id": snowflake(),
        "application_id": str(APP_ID),
        "type": kind,
        "data": data,
        "token": f"token-{snowflake()}",
        "version": 1,
        "locale": locale,
        "app_permissions": str(VIEW_AND_SEND),
        "entitlements": [],
        "attachment_size_limit": 10 * 1024 * 1024,
        **extra,
    }
    if dm or group_dm:
        group = {"id": str(GROUP_DM_CHANNEL), "type": 3, "recipients": [user_payload(), user_payload(BOB, name="bob")]}
        payload |= {
            "channel_id": str(GROUP_DM_CHANNEL if group_dm else DM_CHANNEL),
            "channel": group if group_dm else {"id": str(DM_CHANNEL), "type": 1, "recipients": [user_payload()]},
            "user": user_payload(),
            "context": 2 if group_dm else 1,  # a private channel (a user-installed app's command), or the bot's DM
            "authorizing_integration_owners": {"1": str(ALICE)} if group_dm else {"0": str(GUILD_ID)},
        }
    else:
        payload |= {
            "guild_id": str(GUILD_ID),
            "guild_locale": guild_locale,
            "channel_id": str(channel_id),
            "channel": text_channel(channel_id, "general" if channel_id == GENERAL else "off-topic"),
            "member": member_payload(permissions=permissions),
            "context": 0,
            "authorizing_integration_owners": {"0": str(GUILD_ID)},
        }
    return payload


def command_payload(
    name: str,
    *,
    permissions: int = VIEW_AND_SEND,
    dm: bool = False,
    group_dm: bool = False,
    locale: str = "en-US",
    guild_locale: str = "en-US",
    channel_id: int = GENERAL,
    **options: Any,
) -> dict[str, Any]:
    """A chat-input command (`/name option:value …`); Discord sends the English names of commands and
    options whatever the user's language."""
    option_type = {str: 3, bool: 5, int: 4}
    data = {
        "id": snowflake(),
        "name": name,
        "type": 1,
        "options": [{"name": key, "type": option_type[type(value)], "value": value} for key, value in options.items()],
    }
    where = {"locale": locale, "guild_locale": guild_locale, "channel_id": channel_id}
    return interaction_payload(2, data, permissions=permissions, dm=dm, group_dm=group_dm, **where)


def autocomplete_payload(
    name: str, focused: str, typed: str, *, channel_id: int = GENERAL, **options: Any
) -> dict[str, Any]:
    """What Discord sends while a user types option `focused` of `/name` (the other options as typed)."""
    data = {
        "id": snowflake(),
        "name": name,
        "type": 1,
        "options": [
            *({"name": key, "type": 3, "value": value} for key, value in options.items()),
            {"name": focused, "type": 3, "value": typed, "focused": True},
        ],
    }
    return interaction_payload(4, data, channel_id=channel_id)


def select_payload(custom_id: str, values: Sequence[str], message: dict[str, Any], **where: Any) -> dict[str, Any]:
    """A choice in the select menu `custom_id` under `message`."""
    data = {"custom_id": custom_id, "component_type": 3, "values": list(values)}
    return interaction_payload(3, data, message=message, **where)


def button_payload(custom_id: str, message: dict[str, Any], **where: Any) -> dict[str, Any]:
    """A click on the button `custom_id` under `message` (Discord sends the message with the click);
    `where`: `locale`, `guild_locale`, `channel_id` as for `interaction_payload`."""
    return interaction_payload(3, {"custom_id": custom_id, "component_type": 2}, message=message, **where)


def message_payload(
    content: str,
    *,
    author: dict[str, Any] | None = None,
    channel_id: int = GENERAL,
    dm: bool = False,
    mentions: Sequence[dict[str, Any]] = (),
    mention_roles: Sequence[int] = (),
) -> dict[str, Any]:
    """A MESSAGE_CREATE's data: by Alice (unless `author`) in #general (unless `channel_id`), or a DM."""
    author = author or user_payload()
    data: dict[str, Any] = {
        "id": snowflake(),
        "channel_id": str(DM_CHANNEL if dm else channel_id),
        "author": author,
        "content": content,
        "timestamp": now(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": "@everyone" in content,
        "mentions": list(mentions),
        "mention_roles": [str(role_id) for role_id in mention_roles],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
    }
    if not dm:
        data["guild_id"] = str(GUILD_ID)
        data["member"] = {k: v for k, v in member_payload(int(author["id"])).items() if k != "user"}
    return data


# -- feeding payloads to a client ------------------------------------------------------------------


async def run_command(client: KnowledgeBot, payload: dict[str, Any]) -> None:
    """Invoke the real command tree the way discord.py does on INTERACTION_CREATE (`CommandTree._from_interaction`:
    an error raised before a command runs, such as an unknown command, goes to the tree's error handler), but
    awaited."""
    interaction = discord.Interaction(data=payload, state=client._connection)  # type: ignore[arg-type]
    try:
        await client.tree._call(interaction)
    except app_commands.AppCommandError as error:
        await client.tree._dispatch_error(interaction, error)


def click(client: KnowledgeBot, payload: dict[str, Any]) -> None:
    """Deliver a component interaction through discord.py's gateway handler (it dispatches in tasks)."""
    client._connection.parse_interaction_create(payload)  # type: ignore[arg-type]


async def deliver(client: KnowledgeBot, data: dict[str, Any]) -> discord.Message:
    """A MESSAGE_CREATE: resolve the channel as discord.py does (DMs become a DMChannel), then on_message."""
    state = client._connection
    channel, _ = state._get_guild_channel(data)  # type: ignore[arg-type]
    message = discord.Message(state=state, channel=channel, data=data)  # type: ignore[arg-type]
    await client.on_message(message)
    return message


async def start_client(
    fake: FakeDiscord, core: ChatCore, settings: BotSettings | None = None, **options: Any
) -> KnowledgeBot:
    """A client for `core` logged in to `fake` (login runs `setup_hook`) and knowing the test guild, with
    the fake's record cleared; the caller closes it. `settings` must point at the fake's `url`."""
    client = create_discord_client(core, settings or core.settings, **options)
    await client.login("test-token")
    client._connection._add_guild_from_data(guild_payload())  # type: ignore[arg-type]
    fake.requests.clear()
    return client


@contextmanager
def endpoints_restored() -> Iterator[None]:
    """Put back discord.py's class-wide API base and gateway, which a client sets, afterwards."""
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    try:
        yield
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


# -- the record ------------------------------------------------------------------------------------


@dataclass
class Recorded:
    """One request the bot made, and what the fake answered."""

    method: str
    path: str  # without the /api/v10 prefix
    query: dict[str, str]
    body: Any  # the JSON body, or the `payload_json` part of a multipart body; None when empty
    authorization: str | None
    status: int = 200
    response: Any = None

    @property
    def message_body(self) -> dict[str, Any]:
        """The message part of the body: an interaction callback nests it under `data`."""
        body = self.body if isinstance(self.body, dict) else {}
        nested = body.get("data")
        return nested if self.path.endswith("/callback") and isinstance(nested, dict) else body

    @property
    def content(self) -> str:
        return str(self.message_body.get("content") or "")

    @property
    def flags(self) -> int:
        """The flags the bot asked for."""
        return int(self.message_body.get("flags") or 0)

    @property
    def private(self) -> bool:
        """Whether the message Discord made is ephemeral: the bot's flag is ignored by the first
        followup after a public defer (see FakeDiscord.public_defers)."""
        response = self.response if isinstance(self.response, dict) else {}
        message = response.get("resource", {}).get("message", response) if self.path.endswith("/callback") else response
        return bool(int(message.get("flags") or 0) & EPHEMERAL)


@dataclass
class GatewaySession:
    """One WebSocket connection to the fake gateway."""

    socket: web.WebSocketResponse
    query: dict[str, str]  # what the client asked for: v, encoding, compress
    received: list[dict[str, Any]] = field(default_factory=list)  # every frame the client sent, parsed
    sequence: int = 0  # the last `s` sent
    token: str | None = None  # from IDENTIFY or RESUME
    ready: bool = False  # READY was sent (or RESUMED)
    shard: tuple[int, int] | None = None  # [shard_id, shard_count] from IDENTIFY, for a sharded client

    @property
    def open(self) -> bool:
        return not self.socket.closed

    @property
    def close_code(self) -> int | None:
        """The code the connection was closed with (1000 when discord.py closes it cleanly), once closed."""
        return self.socket.close_code


@dataclass
class FakeDiscord:
    """The fake API and gateway; `url` is what `discord_api_url` should be, `gateway_url` what
    `discord_gateway_url` should be."""

    requests: list[Recorded] = field(default_factory=list)
    channel_id: int = 1200000000000000001  # where webhook (followup) messages say they were posted
    expired_tokens: set[str] = field(default_factory=set)  # interaction tokens whose webhooks answer 401
    threads: dict[int, int] = field(default_factory=dict)  # thread id -> its parent channel (GET /channels/{id})
    dropped: set[str] = field(default_factory=set)  # interaction tokens Discord dropped: callbacks get 404 10062
    closed_dms: bool = False  # the user's DMs are closed to the bot: a message to the DM channel gets 403
    # Channels where the bot lacks Read Message History: a reply (a message with a reference) gets 403
    no_history: set[int] = field(default_factory=set)
    guilds: list[dict[str, Any]] = field(default_factory=list)  # GUILD_CREATE payloads sent after READY
    tokens: set[str] | None = None  # bot tokens the gateway accepts; None: any
    refused_intents: int = 0  # privileged intents not enabled for the application: IDENTIFY with one is closed
    shards: int = 1  # the shard count GET /gateway/bot recommends
    max_concurrency: int = 1  # shards that may IDENTIFY together (session_start_limit.max_concurrency)
    sessions: list[GatewaySession] = field(default_factory=list)  # every gateway connection, oldest first
    # Tokens of interactions deferred publicly whose "thinking…" message still stands: their next
    # followup replaces it, and Discord then ignores the followup's ephemeral flag.
    public_defers: set[str] = field(default_factory=set)
    private_defers: set[str] = field(
        default_factory=set
    )  # likewise after an ephemeral defer: the first followup is too
    url: str = ""
    gateway_url: str = ""
    _runner: web.AppRunner | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1300000000000000001))
    _sessions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Condition | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(GATEWAY_PATH, self._gateway)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}{API_PREFIX}"
        self.gateway_url = f"ws://127.0.0.1:{port}{GATEWAY_PATH}"
        self._changed = asyncio.Condition()

    async def stop(self) -> None:
        for session in self.sessions:
            if session.open:
                await session.socket.close(code=1001, message=b"fake Discord going away")
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what tests look at ----------------------------------------------------------------------

    def find(self, method: str, pattern: str) -> list[Recorded]:
        """Requests whose method matches and whose path fully matches the regular expression."""
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    @property
    def followups(self) -> list[Recorded]:
        return self.find("POST", rf"/webhooks/{APP_ID}/[^/]+")

    @property
    def callbacks(self) -> list[Recorded]:
        return self.find("POST", r"/interactions/\d+/[^/]+/callback")

    @property
    def channel_messages(self) -> list[Recorded]:
        return self.find("POST", r"/channels/\d+/messages")

    async def wait_for(self, predicate: Callable[[Recorded], bool], timeout: float = 10.0) -> Recorded:
        """The first request matching `predicate`, waiting for it to arrive."""
        assert self._changed is not None

        def match() -> Recorded | None:
            return next((r for r in self.requests if predicate(r)), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: match() is not None), timeout)
        found = match()
        assert found is not None
        return found

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, check: Callable[[], Any], timeout: float = 10.0, what: str = "a condition") -> Any:
        """`check()`'s first truthy value, re-checked whenever a request or gateway frame arrives or a
        gateway connection closes."""
        assert self._changed is not None
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(lambda: bool(check())), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None
        return check()

    # -- the gateway: what tests look at and do ------------------------------------------------------

    @property
    def identifies(self) -> list[dict[str, Any]]:
        """The `d` of every IDENTIFY the gateway received, oldest first."""
        return [frame["d"] for s in self.sessions for frame in s.received if frame.get("op") == IDENTIFY]

    @property
    def heartbeats(self) -> int:
        return sum(frame.get("op") == HEARTBEAT for s in self.sessions for frame in s.received)

    @property
    def session(self) -> GatewaySession | None:
        """The newest open connection that got READY (or RESUMED)."""
        return next((s for s in reversed(self.sessions) if s.open and s.ready), None)

    def shard_session(self, shard_id: int) -> GatewaySession | None:
        """The newest open, READY connection of shard `shard_id`."""
        return next(
            (s for s in reversed(self.sessions) if s.open and s.ready and s.shard and s.shard[0] == shard_id), None
        )

    async def wait_for_identify(self, timeout: float = 10.0) -> dict[str, Any]:
        """The first IDENTIFY's `d` (token, intents, properties, ...), waiting for it to arrive."""
        found: dict[str, Any] = await self.wait_until(
            lambda: next(iter(self.identifies), None), timeout, "an IDENTIFY on the gateway"
        )
        return found

    async def wait_for_session(self, timeout: float = 10.0) -> GatewaySession:
        """The connected client's session, once READY has been sent to it."""
        found: GatewaySession = await self.wait_until(lambda: self.session, timeout, "a READY gateway session")
        return found

    async def dispatch(self, event: str, data: Any, timeout: float = 10.0, *, shard: int | None = None) -> int:
        """Send the dispatch `event` (e.g. "MESSAGE_CREATE") with `data` to the connected client (on the
        connection of `shard`, for a sharded client); its `s`."""
        if shard is None:
            session = await self.wait_for_session(timeout)
        else:
            session = await self.wait_until(lambda: self.shard_session(shard), timeout, f"shard {shard} READY")
        return await self._dispatch(session, event, data)

    async def _dispatch(self, session: GatewaySession, event: str, data: Any) -> int:
        session.sequence += 1
        await session.socket.send_json({"op": DISPATCH, "s": session.sequence, "t": event, "d": data})
        return session.sequence

    # -- the gateway: the server -----------------------------------------------------------------------

    def _guilds_of(self, shard: tuple[int, int] | None) -> list[dict[str, Any]]:
        """The guilds a connection gets: all of them, or on a shard those whose id maps to it, as on Discord."""
        if shard is None:
            return self.guilds
        return [guild for guild in self.guilds if (int(guild["id"]) >> 22) % shard[1] == shard[0]]

    def _ready(self, session_id: str, shard: tuple[int, int] | None = None) -> dict[str, Any]:
        ready: dict[str, Any] = {"shard": list(shard)} if shard else {}
        return ready | {
            "v": GATEWAY_VERSION,
            "user": BOT_USER,
            "guilds": [{"id": guild["id"], "unavailable": True} for guild in self._guilds_of(shard)],
            "session_id": session_id,
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(APP_ID), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": ["fake-discord-gateway"],
        }

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await socket.prepare(request)
        session = GatewaySession(socket, dict(request.query))
        self.sessions.append(session)
        await socket.send_json(
            {"op": HELLO, "s": None, "t": None, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS, "_trace": []}}
        )
        try:
            async for message in socket:
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                frame = json.loads(message.data)
                session.received.append(frame)
                await self._answer_frame(session, frame)
                await self._notify()
        except (ConnectionResetError, RuntimeError):  # the client went away mid-send
            pass
        finally:
            await self._notify()
        return socket

    async def _answer_frame(self, session: GatewaySession, frame: dict[str, Any]) -> None:
        op, data = frame.get("op"), frame.get("d") or {}
        if op == HEARTBEAT:
            await session.socket.send_json({"op": HEARTBEAT_ACK, "s": None, "t": None, "d": None})
        elif op in (IDENTIFY, RESUME):
            session.token = data.get("token")
            if self.tokens is not None and session.token not in self.tokens:
                await session.socket.close(code=AUTHENTICATION_FAILED, message=b"Authentication failed.")
                return
            if self.refused_intents & int(data.get("intents") or 0):  # not enabled in the Developer Portal
                await session.socket.close(code=DISALLOWED_INTENTS, message=b"Disallowed intent(s).")
                return
            if op == RESUME:
                session.sequence = int(data.get("seq") or 0)
                session.ready = True
                await self._dispatch(session, "RESUMED", {"_trace": ["fake-discord-gateway"]})
                return
            if op == IDENTIFY and data.get("shard"):
                shard_id, shard_count = data["shard"]
                session.shard = (int(shard_id), int(shard_count))
            session.ready = True
            ready = self._ready(f"fake-session-{next(self._sessions)}", session.shard)
            await self._dispatch(session, "READY", ready)
            for guild in self._guilds_of(session.shard):
                await self._dispatch(session, "GUILD_CREATE", guild)

    # -- the REST API ------------------------------------------------------------------------------

    def _snowflake(self) -> str:
        return str(next(self._ids))

    def message(self, channel_id: int | str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """A message object as Discord returns it for a message the bot created from `body`."""
        message = {
            "id": self._snowflake(),
            "channel_id": str(channel_id),
            "author": BOT_USER,
            "content": body.get("content") or "",
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": body.get("flags") or 0,
            "components": body.get("components") or [],
        }
        message.update(extra)
        return message

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.removeprefix(API_PREFIX)
        body = await _read_body(request)
        recorded = Recorded(request.method, path, dict(request.query), body, request.headers.get("Authorization"))
        bad_token = self.tokens is not None and recorded.authorization not in {f"Bot {token}" for token in self.tokens}
        if bad_token and recorded.authorization is not None:  # interaction webhooks carry no token
            status, payload = 401, {"message": "401: Unauthorized", "code": 0}  # as Discord answers a bad token
        else:
            status, payload = self._answer(request.method, path, body if isinstance(body, dict) else {}, body)
        recorded.status, recorded.response = status, payload
        self.requests.append(recorded)
        await self._notify()
        if payload is None:
            return web.Response(status=status)
        # Exactly "application/json", as Discord sends it: discord.py parses nothing else as JSON.
        return web.Response(
            body=json.dumps(payload).encode(), status=status, headers={"Content-Type": "application/json"}
        )

    def _answer(self, method: str, path: str, body: dict[str, Any], raw: Any) -> tuple[int, Any]:
        route = f"{method} {path}"
        if route == "GET /users/@me":
            return 200, BOT_USER
        if route == "GET /oauth2/applications/@me":
            return 200, _application()
        if route == "GET /gateway/bot":
            limit = {
                "total": 1000,
                "remaining": 999,
                "reset_after": 14_400_000,
                "max_concurrency": self.max_concurrency,
            }
            return 200, {"url": self.gateway_url, "shards": self.shards, "session_start_limit": limit}
        if m := re.fullmatch(r"POST /interactions/(\d+)/([^/]+)/callback", route):
            if m[2] in self.dropped:  # not answered within 3 s
                return 404, {"message": "Unknown interaction", "code": 10062}
            if body.get("type") == 5 and not int((body.get("data") or {}).get("flags") or 0) & EPHEMERAL:
                self.public_defers.add(m[2])
            elif body.get("type") == 5:
                self.private_defers.add(m[2])
            return 200, self._callback(m[1], body)
        if (m := re.fullmatch(rf"\w+ /webhooks/{APP_ID}/([^/]+).*", route)) and m[1] in self.expired_tokens:
            return 401, {"message": "Invalid Webhook Token", "code": 50027}
        if m := re.fullmatch(rf"POST /webhooks/{APP_ID}/([^/]+)", route):
            if m[1] in self.public_defers:  # it takes the place of the public "thinking…" message
                self.public_defers.discard(m[1])
                body = {**body, "flags": int(body.get("flags") or 0) & ~EPHEMERAL}
            elif m[1] in self.private_defers:  # ... or of the private one, and stays private
                self.private_defers.discard(m[1])
                body = {**body, "flags": int(body.get("flags") or 0) | EPHEMERAL}
            return 200, self.message(self.channel_id, body, webhook_id=str(APP_ID), application_id=str(APP_ID))
        if m := re.fullmatch(rf"(PATCH|GET) /webhooks/{APP_ID}/([^/]+)/messages/([^/]+)", route):
            if m[1] == "PATCH" and m[3] == "@original":
                self.public_defers.discard(m[2])
                self.private_defers.discard(m[2])
            return 200, self.message(self.channel_id, body, webhook_id=str(APP_ID))
        if m := re.fullmatch(rf"DELETE /webhooks/{APP_ID}/([^/]+)/messages/([^/]+)", route):
            if m[2] == "@original":
                self.public_defers.discard(m[1])
                self.private_defers.discard(m[1])
            return 204, None
        if (m := re.fullmatch(r"GET /channels/(\d+)", route)) and int(m[1]) in self.threads:
            return 200, thread_channel(int(m[1]), self.threads[int(m[1])])
        if route == "POST /users/@me/channels":  # a DM channel with a user
            recipient = user_payload(int(body.get("recipient_id") or ALICE))
            return 200, {"id": str(DM_CHANNEL), "type": 1, "recipients": [recipient], "last_message_id": None}
        if self.closed_dms and route == f"POST /channels/{DM_CHANNEL}/messages":
            return 403, {"message": "Cannot send messages to this user", "code": 50007}
        if m := re.fullmatch(r"POST /channels/(\d+)/messages", route):
            if int(m[1]) in self.no_history and "message_reference" in body:
                return 403, {"message": "Missing Permissions", "code": 50013}
            extra: dict[str, Any] = {}
            if "message_reference" in body:
                extra = {"type": 19, "message_reference": body["message_reference"]}
            return 200, self.message(m[1], body, **extra)
        if re.fullmatch(r"POST /channels/(\d+)/typing", route):
            return 204, None
        if m := re.fullmatch(r"PUT /applications/(\d+)(?:/guilds/(\d+))?/commands", route):
            return 200, [self._command(command, m[2]) for command in raw or []]
        return 404, {"message": "404: Not Found", "code": 0}

    def _callback(self, interaction_id: str, body: dict[str, Any]) -> dict[str, Any]:
        kind = body.get("type")
        data = body.get("data") or {}
        resource: dict[str, Any] = {"type": kind}
        message_id = None
        if kind in (4, 7):  # a message sent (or updated) with the response
            resource["message"] = self.message(self.channel_id, data)
            message_id = resource["message"]["id"]
        return {
            "interaction": {
                "id": interaction_id,
                "type": 2,
                "response_message_id": message_id,
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(int(data.get("flags") or 0) & 64),
            },
            "resource": resource,
        }

    def _command(self, command: dict[str, Any], guild_id: str | None) -> dict[str, Any]:
        return {
            **command,
            "id": self._snowflake(),
            "application_id": str(APP_ID),
            "guild_id": guild_id,
            "version": self._snowflake(),
            "type": command.get("type", 1),
        }


async def _read_body(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    if request.content_type.startswith("multipart/"):
        fields: dict[str, Any] = {}
        reader = await request.multipart()
        async for part in reader:
            if part.name == "payload_json":  # type: ignore[union-attr]
                fields.update(json.loads(await part.text()))  # type: ignore[union-attr]
        return fields
    text = await request.text()
    return json.loads(text) if text else None


def _application() -> dict[str, Any]:
    return {
        "id": str(APP_ID),
        "name": "notes-bot",
        "description": "Answers from the reading notes",
        "icon": None,
        "bot_public": False,
        "bot_require_code_grant": False,
        "owner": {"id": str(OWNER_ID), "username": "owner", "discriminator": "0", "avatar": None},
        "verify_key": "0" * 64,
        "flags": 0,
    }


def custom_ids(recorded: Recorded) -> list[str]:
    """The custom_ids of the buttons under a message the bot sent."""
    rows = (recorded.body or {}).get("components", [])
    return [button["custom_id"] for row in rows for button in row["components"]]


def more_id_of(recorded: Recorded) -> str:
    """The custom_id of the More results button under a message."""
    return next(cid for cid in custom_ids(recorded) if cid.startswith("kb:more:"))


def answer_id_of(recorded: Recorded) -> str:
    """The answer id a message's 👍 button carries."""
    return next(cid for cid in custom_ids(recorded) if cid.startswith("kb:vote:up:")).rsplit(":", 1)[1]
