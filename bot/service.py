"""One service process: whichever front-ends have tokens, plus /healthz, /metrics and /slack/events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.chat import ChatCore
from bot.console import ConsoleChat
from bot.settings import BotSettings
from knowledge import KnowledgeBase

_log = logging.getLogger(__name__)

DRAIN_SECONDS = 20.0


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
            # Degraded: questions are still answered from the index loaded in memory; reindexing waits.
            down = {
                "status": "degraded" if entries else "unavailable",
                "store": "unavailable",
                "entries": entries,
                "embedder": health.embedder,
            }
            return web.json_response(down, status=200 if entries else 503)
        if failed is not None and failed.is_set():
            return web.json_response({"status": "failed", "embedder": health.embedder}, status=503)
        body = {
            "status": "ok" if stats.collection else "empty",
            "index_loaded": stats.collection is not None,
            "entries": stats.entries,
            "embedder": stats.embedder,
            "collection": stats.collection,
            "indexed_at": stats.indexed_at.isoformat() if stats.indexed_at else None,
            "reindex_running": core.reindex_running,
        }
        return web.json_response(body, status=200 if stats.collection else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=core.metrics.exposition(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    if slack_handler is not None:
        app.router.add_post("/slack/events", slack_handler)
    return app


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
            if error is not None:
                _log.error("%s stopped with an error", name, exc_info=error)
            else:
                _log.error("%s stopped", name)
            self.failed.set()

        task.add_done_callback(done)
        self.tasks.append(task)


async def start(settings: BotSettings, kb: KnowledgeBase) -> Service:
    """Ingest (incrementally), start the HTTP server and the front-ends that have tokens."""
    core = ChatCore(kb, settings)
    service = Service(settings, kb, core)
    await asyncio.to_thread(kb.warm_up)
    report = await asyncio.to_thread(kb.ingest)
    _log.info(
        "index %s: %d entries (%d embedded now), embedder %s",
        report.summary.collection,
        report.summary.entries,
        report.summary.embedded,
        kb.embedder_name,
    )
    slack_app = None
    slack_handler = None
    if settings.slack_enabled:
        from bot.slack_bot import create_slack_app, slack_http_handler

        slack_app = create_slack_app(core, settings)
        if not settings.slack_app_token:
            slack_handler = slack_http_handler(slack_app)
    app = create_web_app(core, slack_handler, service.failed)
    service.runner = web.AppRunner(app, handle_signals=False)
    await service.runner.setup()
    site = web.TCPSite(service.runner, settings.http_host, settings.http_port)
    await site.start()
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
        from bot.discord_bot import create_discord_client, run_discord

        client = create_discord_client(core, settings)
        service.watch("Discord", asyncio.get_running_loop().create_task(run_discord(client, settings)))
        service.closers.append(client.close)
        _log.info("Discord: connecting to %s", settings.discord_gateway_url)
    return service


async def stop(service: Service) -> None:
    """Finish the answers in flight, close the front-ends, the HTTP server and Chroma."""
    if not await service.core.drain(DRAIN_SECONDS):
        _log.warning("shutting down with %d answers still in flight", service.core.inflight)
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
    await asyncio.to_thread(service.kb.close)


async def serve(settings: BotSettings, kb: KnowledgeBase | None = None) -> int:
    """`python -m bot run`: the chat front-ends with tokens, or the console when there are none."""
    kb = kb or KnowledgeBase(settings)
    fronts = [name for name, on in (("Discord", settings.discord_enabled), ("Slack", settings.slack_enabled)) if on]
    _log.info("starting: %s", ", ".join(fronts) or "console (no chat tokens configured)")
    service = await start(settings, kb)
    code = 0
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stopping.set)
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
            console = loop.create_task(ConsoleChat(service.core).run())
            waiter = loop.create_task(stopping.wait())
            await asyncio.wait({console, waiter}, return_when=asyncio.FIRST_COMPLETED)
            for task in (console, waiter):
                task.cancel()
    finally:
        _log.info("shutting down")
        await stop(service)
    return code
