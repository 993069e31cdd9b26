"""State shared by replicas and kept across restarts (bot/state.py), with real processes: `python -m bot run`
replicas in Slack's HTTP mode against the recording fake of Slack (tests/fake_slack.py), a real `chroma run`
server, and a real Valkey server (tests/valkey_server.py).

Two replicas, each with its own data dir as on two machines, share the Chroma server and the Valkey server
and stand behind a round-robin proxy written here, as behind a load balancer: a mention and Slack's retry of
it reach different replicas and are answered once; **More results** on one replica pages an answer the other
gave; two reindexes started at once on both run once. A replica killed with SIGKILL and started again still
pages its answers from before, with Valkey and with the embedded SQLite store.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from conftest import SMALL_NOTES, free_port
from fake_slack import (
    ADMIN,
    BOT_TOKEN,
    BOT_USER_ID,
    SECRET,
    Call,
    FakeSlack,
    action_form,
    answer_id,
    command_form,
    event_body,
    mention,
    sign,
)
from test_replicas import Replica, env_for

from bot.errors import AlreadyRunning
from bot.render import escape_mrkdwn

if TYPE_CHECKING:
    from conftest import ChromaServer, MakeKb
    from valkey_server import ValkeyServer

FORM = "application/x-www-form-urlencoded"
TWO_PAGES = "Adam"  # AdamW first, then the Adam paper: one entry a page
FORWARDED = (
    "Content-Type",
    "X-Slack-Request-Timestamp",
    "X-Slack-Signature",
    "X-Slack-Retry-Num",
    "X-Slack-Retry-Reason",
)


class RoundRobin:
    """A load balancer in front of the replicas: each POST /slack/events goes to the next one in turn,
    as it came (body and Slack's headers); `sent` records which replica each request went to."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.sent: list[int] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> RoundRobin:
        self._http = aiohttp.ClientSession(trust_env=False)
        app = web.Application()
        app.router.add_post("/slack/events", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/slack/events"
        return self

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        target = len(self.sent) % len(self.ports)
        self.sent.append(target)
        headers = {name: request.headers[name] for name in FORWARDED if name in request.headers}
        url = f"http://127.0.0.1:{self.ports[target]}/slack/events"
        async with self._http.post(url, data=await request.read(), headers=headers) as response:
            return web.Response(status=response.status, body=await response.read())


async def post(url: str, body: str, content_type: str, *, retry: int | None = None) -> int:
    """POST a signed Slack request to `url` (a replica or the proxy); its HTTP status."""
    headers = {"Content-Type": content_type, **sign(body, int(time.time()))}
    if retry:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    async with (
        aiohttp.ClientSession(trust_env=False) as http,
        http.post(url, data=body.encode(), headers=headers) as response,
    ):
        await response.read()
        return response.status


def events_url(replica: Replica) -> str:
    return f"http://127.0.0.1:{replica.port}/slack/events"


@asynccontextmanager
async def replicas(
    tmp_path: Path, names: list[str], fake: FakeSlack, **settings: str
) -> AsyncIterator[Callable[[str], Replica]]:
    """Start `python -m bot run` replicas in Slack's HTTP mode, each with its data dir `tmp_path/<name>`;
    yields `start(name)` to start one again (after a kill); every one is killed at the end."""
    running: dict[str, Replica] = {}
    ports = {name: free_port() for name in names}

    async def start(name: str) -> Replica:
        env = env_for(
            tmp_path,
            KB_DATA_DIR=str(tmp_path / name),
            KB_SLACK_BOT_TOKEN=BOT_TOKEN,
            KB_SLACK_SIGNING_SECRET=SECRET,
            KB_SLACK_API_URL=fake.api_url,
            KB_SLACK_ADMINS=ADMIN,
            KB_COOLDOWN_SECONDS="0",
            KB_ANSWER_SIZE="1",
            **settings,
        )
        replica = await Replica.start(name, [sys.executable, "-m", "bot", "run"], env, ports[name], tmp_path)
        running[name] = replica
        return replica

    try:
        await asyncio.gather(*(start(name) for name in names))
        await asyncio.gather(*(replica.ready() for replica in running.values()))

        def get(name: str) -> Replica:
            return running[name]

        get.start = start  # type: ignore[attr-defined]
        yield get
    finally:
        for replica in running.values():
            await replica.kill()


async def ask(fake: FakeSlack, replica: Replica, text: str, number: int) -> Call:
    """/ask `text` on `replica`: its answer, posted to the command's response_url."""
    response_url = fake.response_url()
    assert await post(events_url(replica), command_form("/ask", text, response_url, number), FORM) == 200
    return (await reply_to(fake, response_url))[0]


async def more(fake: FakeSlack, replica: Replica, answer: str, number: int) -> Call:
    """**More results** under the answer `answer`, clicked on `replica`: the page it posts."""
    response_url = fake.response_url()
    assert await post(events_url(replica), action_form("kb_more", answer, response_url, number), FORM) == 200
    return (await reply_to(fake, response_url))[0]


async def reply_to(fake: FakeSlack, response_url: str, count: int = 1, timeout: float = 30) -> list[Call]:
    name = response_url.removeprefix(fake.url + "/")
    await fake.wait_for(lambda replies: len([r for r in replies if r.name == name]) >= count, timeout=timeout)
    return fake.named(name)[:count]


def header(call: Call) -> str:
    return str(call.blocks[0]["text"]["text"])


async def test_two_replicas_share_dedupe_pages_and_the_reindex_lease_and_survive_a_kill(
    make_kb: MakeKb,
    tmp_path: Path,
    start_chroma_server: Callable[[], ChromaServer],
    start_valkey_server: Callable[[], ValkeyServer],
) -> None:
    chroma, valkey = start_chroma_server(), start_valkey_server()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.md").write_text(SMALL_NOTES, encoding="utf-8")
    assert make_kb([notes], tmp_path / "indexer", chroma_url=chroma.url).ingest().summary.entries == 10
    fake = await FakeSlack().start()
    shared = {"KB_SOURCES": str(notes), "KB_CHROMA_URL": chroma.url, "KB_REDIS_URL": valkey.url}
    try:
        async with replicas(tmp_path, ["A", "B"], fake, **shared) as replica:
            a, b = replica("A"), replica("B")
            for one in (a, b):
                status, health = await one.health()
                assert status == 200 and health["state"] == {"store": "redis", "reachable": True}, health
            proxy = await RoundRobin([a.port, b.port]).start()
            try:
                # Each mention, then Slack's retry of it: the proxy sends them to different replicas.
                stamps = [f"1700001000.00010{n}" for n in range(3)]
                for number, ts in enumerate(stamps, 1):
                    body = event_body(mention(ts, f"<@{BOT_USER_ID}> which paper fixes weight decay in Adam?"), number)
                    assert await post(proxy.url, body, "application/json") == 200
                    assert await post(proxy.url, body, "application/json", retry=1) == 200
                assert proxy.sent == [0, 1, 0, 1, 0, 1]
                await fake.wait_for(lambda replies: len(replies) >= 3, timeout=30)
                await asyncio.sleep(2)  # time enough for a second answer, were one coming
                posts = fake.named("chat.postMessage")
                assert sorted(post.data["thread_ts"] for post in posts) == stamps  # each answered exactly once
            finally:
                await proxy.close()

            # More results on B pages the answer A gave.
            first = await ask(fake, a, TWO_PAGES, 10)
            assert "(page 1/" in header(first) or "Results for" in header(first)
            second = await more(fake, b, answer_id(first), 11)
            assert "(page 2/" in header(second) and answer_id(second) == answer_id(first)

            # A reindex started on A and on B at the same moment: one runs, the other is told.
            urls = [fake.response_url(), fake.response_url()]
            forms = [command_form("/kb-reindex", "full", url, 20 + n, user=ADMIN) for n, url in enumerate(urls)]
            sent = (post(events_url(one), form, FORM) for one, form in zip((a, b), forms, strict=True))
            assert await asyncio.gather(*sent) == [200, 200]
            replies = [(await reply_to(fake, url))[0].text for url in urls]
            refused = escape_mrkdwn(AlreadyRunning().user_message)
            assert replies.count(refused) == 1, replies
            started = urls[1 - replies.index(refused)]
            assert replies[urls.index(started)].startswith("A full rebuild started")
            [_, summary] = await reply_to(fake, started, count=2, timeout=120)
            assert summary.text.startswith("Reindex done in") and "10 entries" in summary.text

            # SIGKILL A, start it again: More results under an answer from before the kill still pages.
            before = await ask(fake, a, TWO_PAGES, 30)
            await a.kill()
            again = await replica.start("A")  # type: ignore[attr-defined]
            await again.ready()
            after = await more(fake, again, answer_id(before), 31)
            assert "(page 2/" in header(after)
            for one in (again, b):
                assert "Traceback" not in one.log, one.log[-3000:]
    finally:
        await fake.close()


async def test_a_replica_killed_and_started_again_pages_its_answers_from_sqlite(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.md").write_text(SMALL_NOTES, encoding="utf-8")
    fake = await FakeSlack().start()
    try:
        async with replicas(tmp_path, ["solo"], fake, KB_SOURCES=str(notes)) as replica:
            solo = replica("solo")
            status, health = await solo.health()
            assert status == 200 and health["state"] == {"store": "sqlite", "reachable": True}, health
            first = await ask(fake, solo, TWO_PAGES, 1)
            await solo.kill()
            again = await replica.start("solo")  # type: ignore[attr-defined]
            await again.ready()
            second = await more(fake, again, answer_id(first), 2)
            assert "(page 2/" in header(second) and answer_id(second) == answer_id(first)
            assert (tmp_path / "solo" / "bot.sqlite").exists()
    finally:
        await fake.close()
