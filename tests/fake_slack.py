"""A recording fake of Slack for tests: the Web API, response_url endpoints and a Socket Mode WebSocket.

An aiohttp server on a free loopback port (in the spirit of bolt-python's tests/mock_web_api_server).
Point `AsyncWebClient(base_url=fake.api_url)` at it and hand out `fake.response_url()`s in payloads;
every call is recorded as a `Call`, and `wait_for` polls the record.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
TEAM_ID = "T0FAKE"
WAIT_TIMEOUT = 10.0


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
