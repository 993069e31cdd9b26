"""A recording fake of Slack for tests: the Web API, response_url endpoints and a Socket Mode WebSocket.

An aiohttp server on a free loopback port (in the spirit of bolt-python's tests/mock_web_api_server).
Point `AsyncWebClient(base_url=fake.api_url)` at it and hand out `fake.response_url()`s in payloads;
every call is recorded as a `Call`, and `wait_for` polls the record.

Also here, for every test that drives the Slack front-end: `serve`, the real bolt app on an aiohttp test
server wired to a fresh fake, and `Slack`, which sends it signed commands, events and button clicks.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from bot.chat import ChatCore
from bot.settings import BotSettings
from bot.slack_bot import create_slack_app, slack_http_handler
from knowledge import KnowledgeBase

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T0FAKE"
WAIT_TIMEOUT = 10.0
BOT_TOKEN = "xoxb-test-bot-token-0123456789"
APP_TOKEN = "xapp-test-app-token-9876543210"
SECRET = "test-signing-secret-abcdef"
ADMIN, USER, CHANNEL = "UADMIN", "UALICE", "CGENERAL"
ACK_LIMIT = 3.0  # Slack wants every request acknowledged within 3 s


@dataclass(frozen=True)
class Call:
    """One request the fake received: a Web API method (`chat.postMessage`) or `response_url/<n>`."""

    name: str
    data: dict[str, Any]
    token: str | None  # from the Authorization header
    status: int = 200  # what the fake answered: 404 for an expired response_url

    @property
    def blocks(self) -> list[dict[str, Any]]:
        blocks = self.data.get("blocks") or []
        return json.loads(blocks) if isinstance(blocks, str) else list(blocks)

    @property
    def text(self) -> str:
        return str(self.data.get("text") or "")

    @property
    def everything(self) -> str:
        """The whole payload as JSON text, for searching it."""
        return json.dumps(self.data, ensure_ascii=False)


@dataclass
class FakeSlack:
    """Answers Web API calls with `{"ok": true, ...}` (or a configured error) and records them all."""

    calls: list[Call] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # method -> error it answers with
    rate_limits: dict[str, int] = field(default_factory=dict)  # method -> calls still answered 429 ratelimited
    server_errors: dict[str, int] = field(default_factory=dict)  # method -> calls still answered 503
    socket_replies: list[dict[str, Any]] = field(default_factory=list)  # what Socket Mode clients sent
    _runner: web.AppRunner | None = None
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _uses_left: dict[str, int] = field(default_factory=dict)
    url: str = ""

    async def start(self) -> FakeSlack:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_post("/response_url/{number}", self._response_url)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        for socket in self._sockets:
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, uses: int = 5) -> str:
        """A fresh response_url, good for `uses` posts as on Slack; posts are recorded as `response_url/<n>`."""
        number = str(next(self._numbers))
        self._uses_left[number] = uses
        return f"{self.url}/response_url/{number}"

    # -- reading the record --------------------------------------------------------------------------
    def named(self, name: str) -> list[Call]:
        return [call for call in self.calls if call.name == name]

    def replies(self) -> list[Call]:
        """Every message sent: chat.postMessage, chat.postEphemeral and response_url posts."""
        return [
            call
            for call in self.calls
            if call.name in {"chat.postMessage", "chat.postEphemeral"} or call.name.startswith("response_url/")
        ]

    async def wait_for(
        self, predicate: Callable[[list[Call]], bool] | None = None, *, count: int = 1, timeout: float = WAIT_TIMEOUT
    ) -> list[Call]:
        """The replies once `predicate(replies)` holds (default: at least `count` of them)."""
        check = predicate or (lambda replies: len(replies) >= count)
        deadline = time.monotonic() + timeout
        while not check(self.replies()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for Slack replies; got {self.replies()}")
            await asyncio.sleep(0.01)
        return self.replies()

    # -- Socket Mode ---------------------------------------------------------------------------------
    async def send_envelope(self, payload: dict[str, Any], kind: str = "events_api") -> str:
        """Deliver `payload` to the connected Socket Mode client; returns its envelope id."""
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload, "accepts_response_payload": False}
        await self._sockets[-1].send_json(envelope)
        return envelope_id

    @property
    def socket_connected(self) -> bool:
        return any(not socket.closed for socket in self._sockets)

    # -- handlers ------------------------------------------------------------------------------------
    async def _record(self, request: web.Request, name: str, status: int = 200) -> Call:
        body = await request.text()
        if request.content_type == "application/json":
            data = json.loads(body) if body else {}
        else:
            data = dict(parse_qsl(body, keep_blank_values=True))
        auth = request.headers.get("Authorization", "")
        call = Call(name, data, auth.removeprefix("Bearer ") or None, status)
        self.calls.append(call)
        return call

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if self.rate_limits.get(method, 0) > 0:  # as Slack does: HTTP 429 with the seconds to wait
            self.rate_limits[method] -= 1
            await self._record(request, method, 429)
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "0"})
        if self.server_errors.get(method, 0) > 0:  # Slack's passing outage: HTTP 503, nothing done
            self.server_errors[method] -= 1
            await self._record(request, method, 503)
            return web.Response(text="Service Unavailable", status=503)
        call = await self._record(request, method)
        if method in self.errors:
            return web.json_response({"ok": False, "error": self.errors[method]})
        ts = f"{time.time():.6f}"
        if method == "auth.test":
            body = {
                "url": "https://fake.slack.com/",
                "team": "Fake",
                "user": "collections-bot",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            }
            headers = {"X-OAuth-Scopes": "app_mentions:read,chat:write,commands,im:history,im:read,im:write"}
            return web.json_response({"ok": True, **body}, headers=headers)
        if method == "chat.postMessage":
            message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": ts, "text": call.text}
            return web.json_response({"ok": True, "channel": call.data.get("channel"), "ts": ts, "message": message})
        if method == "chat.postEphemeral":
            return web.json_response({"ok": True, "message_ts": ts})
        if method == "apps.connections.open":
            return web.json_response({"ok": True, "url": self.url.replace("http", "ws", 1) + "/socket"})
        return web.json_response({"ok": False, "error": "unknown_method"})

    async def _response_url(self, request: web.Request) -> web.Response:
        number = request.match_info["number"]
        self._uses_left[number] = self._uses_left.get(number, 0) - 1
        status = 200 if self._uses_left[number] >= 0 else 404
        await self._record(request, f"response_url/{number}", status)
        return web.Response(text="ok" if status == 200 else "expired_url", status=status)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "AFAKE"}})
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                self.socket_replies.append(json.loads(message.data))
        return socket


# -- the harness: the real app served over HTTP, driven with signed requests ---------------------------


def sign(body: str | bytes, timestamp: int, secret: str = SECRET) -> dict[str, str]:
    raw = body.encode() if isinstance(body, str) else body
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + raw, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


def event_body(event: dict[str, Any], number: int) -> str:
    """The JSON body of an Events API delivery of `event`, as Slack posts it (a retry posts the same body)."""
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": "AFAKE",
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{number:08d}",
            "event_time": int(time.time()),
            "authorizations": [{"enterprise_id": None, "team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
        }
    )


def command_form(
    command: str, text: str, response_url: str, number: int, *, user: str = USER, channel: str = CHANNEL
) -> str:
    """The form body of a slash command, as Slack posts it."""
    form = {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "team_domain": "fake",
        "channel_id": channel,
        "channel_name": "general",
        "user_id": user,
        "user_name": user.lower(),
        "command": command,
        "text": text,
        "api_app_id": "AFAKE",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": f"{number}.1.abc",
    }
    return urlencode(form)


def action_form(
    action_id: str,
    value: str,
    response_url: str,
    number: int,
    *,
    channel: str = CHANNEL,
    thread_ts: str | None = None,
    selected: dict[str, Any] | None = None,
) -> str:
    """The form body of a click on a button (or, `selected`, a choice in a static_select), as Slack posts it."""
    container = {"type": "message", "message_ts": "1700000000.000100", "channel_id": channel, "is_ephemeral": False}
    if thread_ts:
        container["thread_ts"] = thread_ts
    payload = {
        "type": "block_actions",
        "user": {"id": USER, "username": "alice", "name": "alice", "team_id": TEAM_ID},
        "api_app_id": "AFAKE",
        "token": "legacy-verification-token",
        "container": container,
        "trigger_id": f"{number}.1.abc",
        "team": {"id": TEAM_ID, "domain": "fake"},
        "channel": {"id": channel, "name": "general"},
        "message": {"type": "message", "ts": "1700000000.000100", "bot_id": BOT_ID, "text": "results"},
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "kb_actions",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
            if selected is None
            else {
                "type": "static_select",
                "action_id": action_id,
                "block_id": "kb_actions",
                "selected_option": selected,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


@dataclass
class Slack:
    """The app served over HTTP, the fake Slack it talks to, and helpers that send signed requests."""

    fake: FakeSlack
    http: TestClient[web.Request, web.Application]
    core: ChatCore
    settings: BotSettings
    _numbers: Iterator[int]

    async def post(
        self,
        body: str | bytes,
        content_type: str,
        *,
        timestamp: int | None = None,
        secret: str = SECRET,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str, float]:
        """POST /slack/events, signed; (status, body, seconds taken)."""
        signed = sign(body, int(time.time()) if timestamp is None else timestamp, secret)
        started = time.monotonic()
        response = await self.http.post(
            "/slack/events",
            data=body.encode() if isinstance(body, str) else body,
            headers={"Content-Type": content_type, **signed, **(headers or {})},
        )
        text = await response.text()
        return response.status, text, time.monotonic() - started

    async def command(
        self, command: str, text: str = "", *, user: str = USER, channel: str = CHANNEL, uses: int = 5
    ) -> tuple[int, str, str]:
        """A slash command; (status, ack body, its response_url, good for `uses` replies)."""
        response_url = self.fake.response_url(uses)
        form = command_form(command, text, response_url, next(self._numbers), user=user, channel=channel)
        status, body, seconds = await self.post(form, "application/x-www-form-urlencoded")
        assert seconds < ACK_LIMIT
        return status, body, response_url

    def event_body(self, event: dict[str, Any]) -> str:
        return event_body(event, next(self._numbers))

    async def event(self, event: dict[str, Any], *, retry: int | None = None, body: str | None = None) -> int:
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else {}
        status, _, seconds = await self.post(body or self.event_body(event), "application/json", headers=headers)
        assert seconds < ACK_LIMIT
        return status

    async def action(
        self,
        action_id: str,
        value: str,
        *,
        channel: str = CHANNEL,
        thread_ts: str | None = None,
        selected: dict[str, Any] | None = None,
    ) -> tuple[int, str]:
        """A click on a button, or (`selected`: the option picked) a choice in a static_select; (status,
        its response_url)."""
        response_url = self.fake.response_url()
        form = action_form(
            action_id, value, response_url, next(self._numbers), channel=channel, thread_ts=thread_ts, selected=selected
        )
        status, _, seconds = await self.post(form, "application/x-www-form-urlencoded")
        assert seconds < ACK_LIMIT
        return status, response_url

    async def reply_to(self, response_url: str, count: int = 1) -> list[Call]:
        """The first `count` posts to `response_url`, once they have arrived."""
        name = response_url.removeprefix(self.fake.url + "/")
        await self.fake.wait_for(lambda replies: len([r for r in replies if r.name == name]) >= count)
        return self.fake.named(name)[:count]

    async def sentinel(self) -> None:
        """Ask in a separate DM and wait for its answer: events sent before it have been handled by then."""
        channel = f"DSENTINEL{next(self._numbers)}"
        await self.event(dm(channel, f"{time.time():.6f}", "attention only transformer"))
        await self.fake.wait_for(lambda replies: any(r.data.get("channel") == channel for r in replies))

    def posts(self) -> list[Call]:
        """chat.postMessage calls, without the sentinels'."""
        return [call for call in self.fake.named("chat.postMessage") if "SENTINEL" not in call.data["channel"]]


def dm(channel: str, ts: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "channel": channel,
        "channel_type": "im",
        "user": USER,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "client_msg_id": f"msg-{ts}",
        **extra,
    }


def mention(ts: str, text: str, *, channel: str = CHANNEL, **extra: Any) -> dict[str, Any]:
    return {
        "type": "app_mention",
        "channel": channel,
        "user": USER,
        "text": text,
        "ts": ts,
        "event_ts": ts,
        "client_msg_id": f"msg-{ts}",
        **extra,
    }


def answer_id(call: Call) -> str:
    """The answer id its buttons carry (More's value is `<answer id>:<page>`)."""
    actions = [block for block in call.blocks if block["type"] == "actions"]
    return str(actions[0]["elements"][0]["value"]).partition(":")[0]


def button_ids(call: Call) -> list[str]:
    return [
        element["action_id"] for block in call.blocks if block["type"] == "actions" for element in block["elements"]
    ]


@asynccontextmanager
async def serve(kb: KnowledgeBase, data_dir: Path, **overrides: Any) -> AsyncIterator[Slack]:
    """The app on an aiohttp test server, with settings pointing at a fresh fake Slack."""
    fake = await FakeSlack().start()
    try:
        options: dict[str, Any] = {
            "sources": kb.settings.sources,
            "data_dir": data_dir,
            "slack_bot_token": BOT_TOKEN,
            "slack_signing_secret": SECRET,
            "slack_app_token": APP_TOKEN,
            "slack_admins": [ADMIN],
            "slack_api_url": fake.api_url,
            "cooldown_seconds": 0,
            "answer_size": 1,
            **overrides,
        }
        settings = BotSettings(_env_file=None, **options)
        core = ChatCore(kb, settings)
        web_app = web.Application()
        web_app.router.add_post("/slack/events", slack_http_handler(create_slack_app(core, settings), SECRET))
        async with TestClient(TestServer(web_app)) as http:
            yield Slack(fake, http, core, settings, iter(range(1, 1_000_000)))
    finally:
        await fake.close()
