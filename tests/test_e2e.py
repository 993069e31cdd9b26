"""The whole service end to end: `python -m bot run` as a real process, with Discord (REST and gateway) and
Slack (Web API) faked on loopback ports in this test's event loop.

The process ingests the small collection, serves /healthz and /metrics, connects to the fake gateway as a
real discord.py client, answers an @mention pushed through the gateway and a signed Slack `app_mention`
event, and stops cleanly on SIGTERM, without ever writing a token to its output.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from conftest import free_port
from fake_discord import (
    ALICE,
    APP_ID,
    BOT_ID,
    BOT_ROLE,
    BOT_USER,
    GENERAL,
    GUILD_ID,
    VIEW_AND_SEND,
    FakeDiscord,
    Recorded,
    role,
    text_channel,
    user_payload,
)
from fake_slack import BOT_USER_ID, TEAM_ID, FakeSlack, sign

DISCORD_TOKEN = "fake-discord-token.e2e.Zq7Kp2Vx9Lm4"
SLACK_BOT_TOKEN = "xoxb-fake-e2e-8f3a1c9d7b2e"
SLACK_SIGNING_SECRET = "fake-signing-secret-e2e-5d1e9a7c"
SECRETS = (DISCORD_TOKEN, SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET)

TITLE = "Fixing Weight Decay Regularization in Adam"
URL = "https://arxiv.org/abs/1711.05101"

GUILD_MESSAGES, MESSAGE_CONTENT = 1 << 9, 1 << 15

START_TIMEOUT = 40.0  # imports, the embedder and the first ingest of ten entries: ~5 s here
READY_TIMEOUT = 15.0  # discord.py waits 2 s after the last GUILD_CREATE before on_ready
ANSWER_TIMEOUT = 15.0
ACK_LIMIT = 3.0  # Slack wants its events acknowledged within 3 s
STOP_TIMEOUT = 30.0
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "ws_proxy", "wss_proxy", "socks_proxy"}


# -- Discord payloads, as the gateway delivers them ----------------------------------------------------


def guild_create() -> dict[str, Any]:
    """The GUILD_CREATE for a server with one text channel, #general, which the bot is in."""
    joined = datetime.now(UTC).isoformat()
    return {
        "id": str(GUILD_ID),
        "name": "ML readers",
        "owner_id": str(ALICE),
        "unavailable": False,
        "large": False,
        "joined_at": joined,
        "member_count": 2,
        "roles": [
            role(GUILD_ID, "@everyone"),
            role(BOT_ROLE, "notes-bot", managed=True, tags={"bot_id": str(BOT_ID)}),
        ],
        "channels": [text_channel(GENERAL, "general")],
        "members": [
            {"user": BOT_USER, "roles": [str(BOT_ROLE)], "joined_at": joined, "deaf": False, "mute": False, "flags": 0}
        ],
        "threads": [],
        "voice_states": [],
        "presences": [],
        "features": [],
        "emojis": [],
        "stickers": [],
    }


def mention_message(message_id: int, content: str) -> dict[str, Any]:
    """A MESSAGE_CREATE from Alice in #general that @mentions the bot."""
    return {
        "id": str(message_id),
        "channel_id": str(GENERAL),
        "guild_id": str(GUILD_ID),
        "author": user_payload(ALICE, name="alice"),
        "member": {"roles": [], "joined_at": datetime.now(UTC).isoformat(), "deaf": False, "mute": False, "flags": 0},
        "content": content,
        "timestamp": datetime.now(UTC).isoformat(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [BOT_USER],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        "flags": 0,
        "components": [],
    }


def ask_interaction(interaction_id: int, question: str) -> dict[str, Any]:
    """An INTERACTION_CREATE for `/ask question:<question>` typed by Alice in #general."""
    channel = guild_create()["channels"][0]
    return {
        "id": str(interaction_id),
        "application_id": str(APP_ID),
        "type": 2,
        "data": {
            "id": "1600000000000000001",
            "name": "ask",
            "type": 1,
            "options": [{"name": "question", "type": 3, "value": question}],
        },
        "token": "interaction-token-e2e",
        "version": 1,
        "locale": "en-US",
        "guild_id": str(GUILD_ID),
        "guild_locale": "en-US",
        "channel_id": str(GENERAL),
        "channel": channel,
        "member": {
            "user": user_payload(ALICE, name="alice"),
            "roles": [],
            "joined_at": datetime.now(UTC).isoformat(),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "permissions": str(VIEW_AND_SEND),
        },
        "app_permissions": str(VIEW_AND_SEND),
        "entitlements": [],
        "context": 0,
        "authorizing_integration_owners": {"0": str(GUILD_ID)},
        "attachment_size_limit": 10 * 1024 * 1024,
    }


# -- Slack ---------------------------------------------------------------------------------------------


def signed_event(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """An Events API callback carrying `event`, with the headers Slack signs it with."""
    body = json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": TEAM_ID,
            "api_app_id": "AFAKE",
            "event": event,
            "type": "event_callback",
            "event_id": "Ev0E2E000001",
            "event_time": int(time.time()),
            "authorizations": [{"enterprise_id": None, "team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
        }
    ).encode()
    return body, {"Content-Type": "application/json", **sign(body, int(time.time()), SLACK_SIGNING_SECRET)}


# -- the process ---------------------------------------------------------------------------------------


def service_env(**settings: str) -> dict[str, str]:
    """This process's environment without KB_* settings or proxies, plus `settings`: loopback only."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("KB_") and key.lower() not in PROXY_VARIABLES and key.lower() != "no_proxy"
    }
    return {
        **env,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
        "PYTHONUNBUFFERED": "1",
        **settings,
    }


@dataclass
class Output:
    """Everything a stream of the process wrote, read as it comes."""

    lines: list[str] = field(default_factory=list)

    async def read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines.append(line.decode(errors="replace"))

    @property
    def text(self) -> str:
        return "".join(self.lines)


@dataclass
class Service:
    process: asyncio.subprocess.Process
    stderr: Output = field(default_factory=Output)
    stdout: Output = field(default_factory=Output)

    async def wait_for(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        """`check()`'s first truthy value, polling; fails early (with the log) when the process has exited."""
        deadline = time.monotonic() + timeout
        while not (found := check()):
            if self.process.returncode is not None:
                raise AssertionError(f"the service exited ({self.process.returncode}) before {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n{self.tail()}")
            await asyncio.sleep(0.05)
        return found

    async def wait_for_log(self, text: str, timeout: float) -> str:
        line: str = await self.wait_for(
            lambda: next((line for line in self.stderr.lines if text in line), None), timeout, repr(text)
        )
        return line

    def tail(self, lines: int = 40) -> str:
        return "".join(self.stderr.lines[-lines:])


async def wait_for_request(fake: FakeDiscord, predicate: Callable[[Recorded], bool], service: Service) -> Recorded:
    try:
        return await fake.wait_for(predicate, timeout=ANSWER_TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"no matching Discord request; got {fake.requests}\n{service.tail()}") from None


async def test_the_service_answers_on_discord_and_slack_and_stops_on_sigterm(small_notes: Path, tmp_path: Path) -> None:
    timings: dict[str, float] = {}
    began = time.monotonic()

    def lap(step: str) -> None:
        timings[step] = round(time.monotonic() - began, 2)

    discord_fake = FakeDiscord(channel_id=GENERAL, guilds=[guild_create()], tokens={DISCORD_TOKEN})
    slack_fake = FakeSlack()
    try:
        await discord_fake.start()
        await slack_fake.start()
        await run_service(discord_fake, slack_fake, small_notes, tmp_path, lap)
    finally:
        await slack_fake.close()
        await discord_fake.stop()
        print("timings (s since start):", timings)


async def run_service(
    discord_fake: FakeDiscord, slack_fake: FakeSlack, small_notes: Path, tmp_path: Path, lap: Callable[[str], None]
) -> None:
    """Start `python -m bot run` against the fakes, drive it through every step, and always kill it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(
        KB_SOURCES=str(small_notes),
        KB_DATA_DIR=str(tmp_path / "data"),
        KB_CONFIG_DIR=str(tmp_path / "config"),  # no settings.toml: only what is set here
        KB_HTTP_HOST="127.0.0.1",
        KB_HTTP_PORT=str(port),
        KB_COOLDOWN_SECONDS="0",
        KB_EMBED_THREADS="2",
        KB_DISCORD_TOKEN=DISCORD_TOKEN,
        KB_DISCORD_API_URL=discord_fake.url,
        KB_DISCORD_GATEWAY_URL=discord_fake.gateway_url,
        KB_SLACK_BOT_TOKEN=SLACK_BOT_TOKEN,
        KB_SLACK_SIGNING_SECRET=SLACK_SIGNING_SECRET,
        KB_SLACK_API_URL=slack_fake.api_url,
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,  # no .env from the repository
    )
    service = Service(process)
    assert process.stdout is not None and process.stderr is not None
    readers = [
        asyncio.create_task(service.stderr.read(process.stderr)),
        asyncio.create_task(service.stdout.read(process.stdout)),
    ]
    try:
        # 1. It starts both front-ends and the HTTP server.
        await service.wait_for_log("starting: Discord, Slack", START_TIMEOUT)
        await service.wait_for_log("Slack: HTTP mode at /slack/events", START_TIMEOUT)
        await service.wait_for_log("Discord: connecting to", START_TIMEOUT)
        lap("started")

        # 2. discord.py logs in over REST, then identifies on the gateway with the token.
        identify = await discord_fake.wait_for_identify(timeout=READY_TIMEOUT)
        assert identify["token"] == DISCORD_TOKEN
        # no privileged intent by default: DMs and mentions of the bot carry their text without Message Content
        assert identify["intents"] & GUILD_MESSAGES and not identify["intents"] & MESSAGE_CONTENT
        assert discord_fake.sessions[0].query["v"] == "10" and discord_fake.sessions[0].query["encoding"] == "json"
        assert discord_fake.find("GET", "/users/@me")[0].authorization == f"Bot {DISCORD_TOKEN}"
        await service.wait_for_log("connected to Discord as notes-bot in 1 server(s)", READY_TIMEOUT)
        assert discord_fake.heartbeats >= 1  # and each was acknowledged (op 11), or discord.py would reconnect
        lap("discord ready")

        # 3. /healthz and /metrics.
        async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
                health = await response.json()
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 200 and response.content_type == "text/plain"
                metrics = await response.text()
        assert health["status"] == "ok" and health["index_loaded"] is True and health["entries"] == 10
        assert "# TYPE kb_questions_answered_total counter" in metrics and "kb_answer_seconds_bucket" in metrics
        lap("healthz and metrics")

        # 4. An @mention pushed through the gateway is answered in the channel, pinging no one.
        question_id = 1500000000000000001
        await discord_fake.dispatch(
            "MESSAGE_CREATE", mention_message(question_id, f"<@{BOT_ID}> which paper fixes weight decay in Adam?")
        )
        reply = await wait_for_request(
            discord_fake, lambda r: r.method == "POST" and r.path == f"/channels/{GENERAL}/messages", service
        )
        assert TITLE in reply.content and URL in reply.content
        assert reply.body["allowed_mentions"]["parse"] == []
        assert reply.body["allowed_mentions"].get("replied_user") is False
        assert int(reply.body["message_reference"]["message_id"]) == question_id
        assert reply.authorization == f"Bot {DISCORD_TOKEN}" and reply.status == 200
        lap("discord @mention answered")

        # 5. A slash command arriving as INTERACTION_CREATE is deferred, then answered with a followup.
        interaction_id = 1700000000000000001
        await discord_fake.dispatch("INTERACTION_CREATE", ask_interaction(interaction_id, "Adam weight decay"))
        followup = await wait_for_request(
            discord_fake,
            lambda r: r.method == "POST" and r.path == f"/webhooks/{APP_ID}/interaction-token-e2e",
            service,
        )
        (callback,) = discord_fake.find("POST", rf"/interactions/{interaction_id}/interaction-token-e2e/callback")
        assert callback.body == {"type": 5}  # "thinking…"
        assert TITLE in followup.content and followup.body["allowed_mentions"]["parse"] == []
        lap("discord /ask answered")

        # 6. A signed app_mention is acknowledged at once, then answered in its thread with chat.postMessage.
        ts = f"{time.time():.6f}"
        event = {
            "type": "app_mention",
            "user": "UALICE",
            "text": f"<@{BOT_USER_ID}> which paper fixes weight decay in Adam?",
            "ts": ts,
            "channel": "CGENERAL",
            "event_ts": ts,
        }
        body, headers = signed_event(event)
        async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=10)) as http:
            started = time.monotonic()
            async with http.post(f"{base}/slack/events", data=body, headers=headers) as response:
                assert response.status == 200, await response.text()
            assert time.monotonic() - started < ACK_LIMIT
        replies = await slack_fake.wait_for(
            lambda calls: any(call.name == "chat.postMessage" for call in calls), timeout=ANSWER_TIMEOUT
        )
        (posted,) = [call for call in replies if call.name == "chat.postMessage"]
        assert posted.token == SLACK_BOT_TOKEN
        assert posted.data["channel"] == "CGENERAL" and posted.data["thread_ts"] == ts
        blocks = json.dumps(posted.blocks, ensure_ascii=False)
        assert TITLE in blocks and URL in blocks
        lap("slack answered")

        # 7. SIGTERM: a clean exit that closes the gateway connection.
        process.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        await asyncio.wait_for(asyncio.gather(*readers), 5)
        lap("stopped")
        assert returncode == 0, service.tail()
        assert "shutting down" in service.stderr.text
        session = discord_fake.sessions[-1]
        await discord_fake.wait_until(lambda: not session.open, 5, "the gateway connection to close")
        # discord.py means 1000, but its reader wakes first and closes with 4000 (discord.py 2.7 on aiohttp 3.14).
        assert session.close_code in (1000, 4000)
        assert len(discord_fake.sessions) == 1  # connected once, never reconnected
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)

    # 8. Nothing the process wrote holds a secret.
    for secret in SECRETS:
        assert secret not in service.stderr.text, f"a secret leaked into stderr: {secret[:8]}…"
        assert secret not in service.stdout.text, f"a secret leaked into stdout: {secret[:8]}…"
