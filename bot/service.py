"""One service process: whichever front-ends have tokens, plus /healthz, /metrics and /slack/events, the
`KB_SYNC_INTERVAL` ticks that follow the sources, and the digests they make due."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from bot.chat import REINDEX_LOCK, ChatCore, DigestPoster, Fence, unread_sources
from bot.console import ConsoleChat
from bot.errors import CannotStart
from bot.settings import BotSettings
from bot.state import LEASE_SECONDS, LeaseKeeper, ResilientState, StateStore, StateUnavailable, open_state
from knowledge import (
    Health,
    IngestLocked,
    IngestReport,
    KnowledgeBase,
    KnowledgeUnavailable,
    MassRemoval,
    StorageError,
    SyncReport,
    check_sources,
)

_log = logging.getLogger(__name__)

DRAIN_SECONDS = 20.0
# How often a start whose ingest was skipped (the reindex lease held, the state store unreachable) tries it
# again: half a lease, so that a lease a killed process left is taken within a minute and a half.
CATCH_UP_SECONDS = LEASE_SECONDS / 2
STOP_WRITING_SECONDS = 10.0  # for a sync or reindex told to stop at shutdown: one batch's embedding


def create_web_app(
    core: ChatCore,
    slack_handler: Callable[[web.Request], Awaitable[web.StreamResponse]] | None,
    failed: asyncio.Event | None = None,
) -> web.Application:
    """/healthz and /metrics, and /slack/events when Slack runs over HTTP."""

    async def healthz(_: web.Request) -> web.Response:
        health = await core.health()
        stats = health.stats
        if stats is None:
            entries = health.answerable_offline
            # Degraded: questions are still answered from the index loaded in memory; a reindex fails
            # ("unavailable") until the store is back.
            down = {
                "status": "degraded" if entries else "unavailable",
                "store": "unavailable",
                "entries": entries,
                "embedder": health.embedder,
                "state": await core.state_health(),
            }
            return web.json_response(down, status=200 if entries else 503)
        if failed is not None and failed.is_set():
            return web.json_response({"status": "failed", "embedder": health.embedder}, status=503)
        serving = bool(stats.collection and stats.entries)  # an active collection of 0 entries answers nothing
        body = {
            "status": "ok" if serving else "empty",
            "index_loaded": stats.collection is not None,
            "entries": stats.entries,
            "embedder": stats.embedder,
            "collection": stats.collection,
            "indexed_at": stats.indexed_at.isoformat() if stats.indexed_at else None,
            "reindex_running": core.reindex_running,
            "state": await core.state_health(),  # answers go out whatever it says: see bot.state
            **sync_health(health),
        }
        return web.json_response(body, status=200 if serving else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=core.metrics.exposition(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    if slack_handler is not None:
        app.router.add_post("/slack/events", slack_handler)
    return app


def sync_health(health: Health) -> dict[str, object]:
    """/healthz's view of the sources: `sync` is "failed" when a source's last sync failed (the index keeps
    serving, so the status stays what it is), with the failure in one line and each source's state."""
    return {
        "sync": "failed" if health.sync_failure else "ok",
        "sync_failure": health.sync_failure,
        "sources": [source.as_dict() for source in health.sources],
    }


@dataclass
class Service:
    """The running parts, so shutdown can close each."""

    settings: BotSettings
    kb: KnowledgeBase
    core: ChatCore
    runner: web.AppRunner | None = None
    port: int | None = None
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    failed: asyncio.Event = field(default_factory=asyncio.Event)  # a front-end stopped by itself

    def watch(self, name: str, task: asyncio.Task[Any]) -> None:
        """Run `task` as a front-end: if it ends on its own, log why and flag the service as failed."""

        def done(finished: asyncio.Task[Any]) -> None:
            if finished.cancelled():
                return
            error = finished.exception()
            if isinstance(error, CannotStart):  # a refused token, nothing at the address: one line
                _log.error("%s stopped: %s", name, error)
            elif error is not None:
                _log.error("%s stopped with an error", name, exc_info=error)
            else:
                _log.error("%s stopped", name)
            self.failed.set()

        task.add_done_callback(done)
        self.tasks.append(task)


class _DebugAccessLog(AbstractAccessLogger):
    """One DEBUG line a request (`-v`): at INFO, a burst of requests (health checks, forged Slack
    posts) would write as many log lines."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug("%s %s %s %.3f s", request.method, request.path, response.status, time)


def listen_sockets(settings: BotSettings) -> list[socket.socket]:
    """The HTTP server's sockets, bound at once: a port in use, or a host that does not resolve, is one
    line naming the settings before anything slow (loading the model, the start-up ingest) runs.
    Connections are accepted once the server starts on them (`start`)."""
    host, port = settings.http_host, settings.http_port
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in dict.fromkeys(infos):  # as asyncio binds every address
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as error:
        for sock in sockets:
            sock.close()
        reason = error.strerror or error
        raise CannotStart(f"cannot listen on {host}:{port} (KB_HTTP_HOST, KB_HTTP_PORT): {reason}") from None
    return sockets


def state_for(settings: BotSettings) -> ResilientState:
    """The state store the settings ask for (`bot.state.open_state`): Redis at `KB_REDIS_URL`, else
    `KB_DATA_DIR/bot.sqlite`, else (a read-only replica without Redis) this process's memory."""
    url = settings.redis_url.get_secret_value() if settings.redis_url else None
    state = open_state(settings.data_dir, url, writable=settings.ingest_on_start)
    _log.info("state (dedupe, answer sessions, cooldowns, the reindex lease): %s", state.where)
    return state


def _first_ingest(kb: KnowledgeBase, fence: Fence | None = None) -> IngestReport:
    """The start-up ingest: with git sources, a sync that fetches them first (a start is when a bot that
    was down catches up, and when a sync killed midway is completed); else an ingest of the folders."""
    if not any(source.kind == "git" for source in kb.source_status()):
        return kb.ingest(fence=fence)
    report = kb.sync(force=True, fence=fence)
    assert report.ingest is not None  # force: it always indexes
    return report.ingest


async def reindex_now(
    settings: BotSettings, kb: KnowledgeBase, *, full: bool = False, allow_mass_removal: bool = False
) -> SyncReport:
    """`python -m bot reindex`: what `/reindex` does, from the operator's shell. It takes the reindex lease in
    the state store the bots share (`KB_REDIS_URL`, else `KB_DATA_DIR/bot.sqlite`), so that it never runs
    beside a reindex, a sync tick or a start-up ingest of any replica; then fetches the git sources and
    ingests every source (a full rebuild when `full`), switching the index only while the lease holds.

    Raises IngestLocked when the lease is held, StateUnavailable when the store cannot be reached (the lease
    fails closed), StorageError when these settings say this machine never writes, and what
    `KnowledgeBase.sync` raises."""
    if not settings.ingest_on_start:
        raise StorageError(
            "KB_INGEST_ON_START=false: this machine only serves the index; reindex on the indexer instead"
        )
    state = state_for(settings)
    try:
        keeper = await LeaseKeeper.take(state, REINDEX_LOCK)
        if keeper is None:
            raise IngestLocked("the reindex lease is held: a reindex or sync runs on another replica or process")
        try:
            return await asyncio.to_thread(
                kb.sync, force=True, rebuild=full, allow_mass_removal=allow_mass_removal, fence=keeper.fence
            )
        finally:
            await keeper.release()
    finally:
        await state.close()


async def prepare_index(settings: BotSettings, kb: KnowledgeBase, state: StateStore | None = None) -> bool:
    """Warm up, then bring the index up to date with the sources, git sources fetched first (or only load
    it, on a read-only replica). What another process or the sources cause never stops the bot: it serves
    the current index and logs one warning line (an ingest already running, here or, with `state`'s
    reindex lease, on another replica; a refused mass removal; sources that could not be read, whose
    entries were kept; a git source that could not be fetched). An unreachable store still raises
    KnowledgeUnavailable.

    False when the start-up ingest was skipped because the reindex lease was held or the state store could
    not be reached: the index may be behind (or half-written by a process killed while it ingested, whose
    lease outlives it by up to a minute), and `start_following` catches up."""
    if settings.ingest_on_start:
        # A source folder that is gone (a mount not back yet) leaves its entries in the index, served
        # meanwhile; with no index to serve, it is the bad setting it looks like (SettingsError, exit 2).
        missing = await asyncio.to_thread(check_sources, settings, kb.load)
        if missing:
            _log.warning(
                "KB_SOURCES: no such file or folder: %s; serving the index, whose entries of it are kept until "
                "it is back",
                ", ".join(missing),
            )
    await asyncio.to_thread(kb.warm_up)
    if not settings.ingest_on_start:
        entries = await asyncio.to_thread(kb.load)
        if entries:
            _log.info("read-only replica (KB_INGEST_ON_START=false): serving the current index, %d entries", entries)
        else:
            _log.warning("read-only replica (KB_INGEST_ON_START=false): the store holds no index yet; run an ingest")
        return True
    caught_up = True
    keeper = None
    try:
        keeper = await LeaseKeeper.take(state, REINDEX_LOCK) if state is not None else None
        if state is not None and keeper is None:
            # Held by a reindex or sync elsewhere, or by a process that died within the lease (a minute).
            raise IngestLocked("the reindex lease is held: a reindex or sync runs on another replica or process")
        report = await asyncio.to_thread(_first_ingest, kb, keeper.fence if keeper else None)
    except StateUnavailable as error:
        caught_up = False
        _log.warning(
            "start-up ingest skipped: the state store is unreachable (%s); serving the current index, and trying "
            "again every %.0f s",
            error,
            CATCH_UP_SECONDS,
        )
    except IngestLocked as error:
        caught_up = False
        _log.warning(
            "start-up ingest skipped: %s; serving the current index meanwhile, and trying again every %.0f s",
            error,
            CATCH_UP_SECONDS,
        )
    except MassRemoval as error:
        _log.warning("start-up ingest refused: %s; serving the current index", error)
    except (KnowledgeUnavailable, StorageError):
        raise  # this machine cannot serve: the store is unreachable, or the data folder unusable
    except Exception as error:  # noqa: BLE001 - what the sources do must not stop the bot
        _log.error("start-up ingest failed (%s: %s); serving the current index", type(error).__name__, error)
        _log.debug("start-up ingest failure", exc_info=error)
    else:
        summary = report.summary
        _log.info(
            "index %s: %d entries (%d embedded now), embedder %s",
            summary.collection,
            summary.entries,
            summary.embedded,
            kb.embedder_name,
        )
        if not report.complete:
            _log.warning("start-up ingest: %s; serving the index", unread_sources(report))
        return True
    finally:
        if keeper is not None:
            await keeper.release()
    entries = await asyncio.to_thread(kb.load)
    _log.info("index loaded: %d entries, embedder %s", entries, kb.embedder_name)
    return caught_up


async def start(settings: BotSettings, kb: KnowledgeBase, *, sockets: list[socket.socket] | None = None) -> Service:
    """Bind the HTTP port, prepare the index (`prepare_index`), then serve HTTP and start the
    front-ends that have tokens. `sockets` are already bound ones (`listen_sockets`)."""
    sockets = sockets if sockets is not None else listen_sockets(settings)
    try:
        return await _start(settings, kb, sockets)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise


async def _start(settings: BotSettings, kb: KnowledgeBase, sockets: list[socket.socket]) -> Service:
    core = ChatCore(kb, settings, state=state_for(settings))
    service = Service(settings, kb, core)
    try:
        caught_up = await prepare_index(settings, kb, core.state)
    except BaseException:
        await core.state.close()
        raise
    slack_app = None
    slack_handler = None
    if settings.slack_enabled:
        from bot.slack_bot import create_slack_app, slack_http_handler

        slack_app = create_slack_app(core, settings)
        if not settings.slack_app_token and settings.slack_signing_secret:
            slack_handler = slack_http_handler(slack_app, settings.slack_signing_secret.get_secret_value())
    app = create_web_app(core, slack_handler, service.failed)
    service.runner = web.AppRunner(app, handle_signals=False, access_log_class=_DebugAccessLog)
    await service.runner.setup()
    for sock in sockets:
        await web.SockSite(service.runner, sock).start()
    addresses = service.runner.addresses
    service.port = int(addresses[0][1]) if addresses else settings.http_port
    _log.info(
        "HTTP on %s:%s: /healthz /metrics%s", settings.http_host, service.port, " /slack/events" * bool(slack_handler)
    )
    if slack_app is not None:
        if settings.slack_app_token:
            from bot.slack_bot import start_socket_mode

            handler = await start_socket_mode(slack_app, settings)
            service.closers.append(handler.close_async)
            _log.info("Slack: Socket Mode")
        else:
            _log.info("Slack: HTTP mode at /slack/events")
    if settings.discord_enabled:
        from bot.discord_bot import DiscordDigestPoster, create_discord_client, run_discord

        client = create_discord_client(core, settings)
        if settings.discord_digest_channel is not None:
            core.digest_posters.append(DiscordDigestPoster(client, settings.discord_digest_channel))
        service.watch("Discord", asyncio.get_running_loop().create_task(run_discord(client, settings)))
        service.closers.append(client.close)
        _log.info("Discord: connecting to %s", settings.discord_gateway_url)
    if slack_app is not None and settings.slack_digest_channel:
        from bot.slack_bot import SlackDigestPoster

        core.digest_posters.append(SlackDigestPoster(slack_app.client, settings.slack_digest_channel))
    service.tasks += start_following(core, settings, behind=not caught_up)
    return service


def start_following(core: ChatCore, settings: BotSettings, *, behind: bool = False) -> list[asyncio.Task[Any]]:
    """The background work that follows the collection: the `KB_SYNC_INTERVAL` ticks, and a first post of the
    digests that are due (the start-up sync's, or one a restart interrupted; a Discord digest waits for the
    login and goes when the client is ready); when the start-up ingest was skipped (`behind`: `prepare_index`
    said False), the ingest it skipped, tried until the reindex lease is free (`catch_up`). A read-only
    replica does none of these: the indexer syncs and posts."""
    loop = asyncio.get_running_loop()
    _warn_unused_digest_settings(core.digest_posters, settings)
    if core.digest_posters and not settings.ingest_on_start:
        _log.info("read-only replica: digests are posted by the indexer, which syncs, not here")
        core.digest_posters.clear()
    tasks: list[asyncio.Task[Any]] = []
    if behind and settings.ingest_on_start:
        tasks.append(loop.create_task(catch_up(core)))
    if settings.sync_interval is not None and settings.ingest_on_start:
        tasks.append(loop.create_task(sync_every(core, settings.sync_interval)))
        _log.info("syncing the sources every %s", settings.sync_interval)
    if core.digest_posters:
        tasks.append(loop.create_task(core.post_digests()))
        _log.info("digests go to %s", ", ".join(poster.target for poster in core.digest_posters))
    return tasks


def _warn_unused_digest_settings(posters: list[DigestPoster], settings: BotSettings) -> None:
    targets = {poster.target.partition(":")[0] for poster in posters}
    if settings.discord_digest_channel is not None and "discord" not in targets:
        _log.warning("KB_DISCORD_DIGEST_CHANNEL is set, but Discord does not run here: no digests go there")
    if settings.slack_digest_channel and "slack" not in targets:
        _log.warning("KB_SLACK_DIGEST_CHANNEL is set, but Slack does not run here: no digests go there")


async def sync_every(core: ChatCore, interval: timedelta) -> None:
    """Sync (`ChatCore.sync`: fetch, index what changed, post the digests due) every `interval` until
    cancelled. A tick that fails unexpectedly is logged with its traceback, and the next one runs."""
    while True:
        await asyncio.sleep(interval.total_seconds())
        try:
            await core.sync()
        except Exception:  # noqa: BLE001 - logged with its traceback; the next tick runs
            _log.exception("the sync failed; the current index keeps serving")


async def catch_up(core: ChatCore, every: float | None = None) -> None:
    """The start-up ingest that `prepare_index` skipped, every `every` s (CATCH_UP_SECONDS) until it runs: a
    sync of every source (`force`), which completes an ingest that a killed process left half-done. It stops
    once a sync ran, or failed for another reason than the lease or the state store (logged by the sync)."""
    while True:
        await asyncio.sleep(CATCH_UP_SECONDS if every is None else every)
        try:
            report = await core.sync(force=True)
        except Exception:  # noqa: BLE001 - logged with its traceback; the sync ticks, if any, go on
            _log.exception("the catch-up ingest failed; the current index keeps serving")
            return
        if report is not None or not core.sync_skipped:
            if report is not None:
                _log.info("caught up with the sources the start-up ingest skipped")
            return


async def finish_writes(core: ChatCore, drain_seconds: float = DRAIN_SECONDS) -> None:
    """At shutdown, before the state store and Chroma are closed: let a running sync or reindex finish within
    `drain_seconds`, else make it stop at its next batch; either way its lease is released, so that the next
    start ingests at once (and completes what it left)."""
    if await core.wait_for_writes(drain_seconds):
        return
    _log.warning("shutting down while a sync or reindex runs: it stops at its next batch; the next start completes it")
    core.stop_writing()
    if not await core.wait_for_writes(STOP_WRITING_SECONDS):
        _log.warning("the sync or reindex did not stop within %.0f s; closing under it", STOP_WRITING_SECONDS)


async def stop(service: Service, drain_seconds: float = DRAIN_SECONDS) -> None:
    """Finish the answers in flight (at most `drain_seconds`), close the front-ends, the HTTP server and Chroma."""
    if not await service.core.drain(drain_seconds):
        _log.warning("shutting down with %d answers still in flight", service.core.inflight)
    await finish_writes(service.core, drain_seconds)
    for close in reversed(service.closers):
        with contextlib.suppress(Exception):
            await close()
    for task in service.tasks:
        if not task.done():
            task.cancel()
    for task in service.tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if service.runner is not None:
        await service.runner.cleanup()
    await service.core.state.close()
    await asyncio.to_thread(service.kb.close)


def stop_on_signals() -> asyncio.Event:
    """An event that SIGTERM and SIGINT set (instead of killing the process), in the running loop."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stopping.set)
    return stopping


async def run_console(console: ConsoleChat, stopping: asyncio.Event, drain_seconds: float = DRAIN_SECONDS) -> float:
    """Run the console chat until end of input, /quit or `stopping`. When stopped, no further line is
    read, and the line being handled (an answer being computed) finishes and is printed, within
    `drain_seconds`; the thread reading stdin is left behind, so an open stdin does not hold the exit.
    Returns what is left of `drain_seconds` for the rest of the shutdown."""
    loop = asyncio.get_running_loop()
    chat = loop.create_task(console.run())
    waiter = loop.create_task(stopping.wait())
    try:
        await asyncio.wait({chat, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    left = drain_seconds
    if not chat.done():
        stopped = loop.time()
        console.stop()
        await asyncio.wait({chat}, timeout=drain_seconds)
        if not chat.done():
            _log.warning("the console's answer in flight did not finish within %.0f s", drain_seconds)
            chat.cancel()
        left = max(0.0, drain_seconds - (loop.time() - stopped))
    with contextlib.suppress(asyncio.CancelledError):
        await chat
    return left


async def serve_console(settings: BotSettings, kb: KnowledgeBase | None = None) -> int:
    """`python -m bot console`: the console chat alone, without the HTTP server; SIGTERM drains it too."""
    kb = kb or KnowledgeBase(settings, read_only=not settings.ingest_on_start)
    tasks: list[asyncio.Task[Any]] = []
    state = state_for(settings)
    try:
        caught_up = await prepare_index(settings, kb, state)
        core = ChatCore(kb, settings, state=state)
        tasks = start_following(core, settings, behind=not caught_up)
        await run_console(ConsoleChat(core), stop_on_signals())
        for task in tasks:
            task.cancel()
        await finish_writes(core)
    finally:
        for task in tasks:
            task.cancel()
        await state.close()
        await asyncio.to_thread(kb.close)
    return 0


async def serve(settings: BotSettings, kb: KnowledgeBase | None = None) -> int:
    """`python -m bot run`: the chat front-ends with tokens, or the console when there are none.

    The HTTP port is bound first, so that a port in use stops the start at once (CannotStart)."""
    sockets = listen_sockets(settings)
    try:
        kb = kb or KnowledgeBase(settings, read_only=not settings.ingest_on_start)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    fronts = [name for name, on in (("Discord", settings.discord_enabled), ("Slack", settings.slack_enabled)) if on]
    _log.info("starting: %s", ", ".join(fronts) or "console (no chat tokens configured)")
    service = await start(settings, kb, sockets=sockets)
    code = 0
    stopping = stop_on_signals()
    loop = asyncio.get_running_loop()
    drain_seconds = DRAIN_SECONDS
    try:
        if fronts:
            waiters = {loop.create_task(stopping.wait()), loop.create_task(service.failed.wait())}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if service.failed.is_set() and not stopping.is_set():
                _log.error("a front-end failed; exiting so that the supervisor restarts the bot")
                code = 1
        else:
            drain_seconds = await run_console(ConsoleChat(service.core), stopping)
    finally:
        _log.info("shutting down")
        await stop(service, drain_seconds)
    return code
