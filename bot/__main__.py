"""`python -m bot run | console | discord [--sync] | slack-manifest`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from bot.settings import BotSettings
from knowledge import KnowledgeError, SettingsError, configure_logging, load_settings

_log = logging.getLogger("bot")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="The collections bot.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start every front-end that has tokens (the console when none has)")
    commands.add_parser("console", help="chat in the terminal")
    discord = commands.add_parser("discord", help="run only the Discord bot")
    discord.add_argument("--sync", action="store_true", help="sync the slash commands, then exit")
    commands.add_parser("slack-manifest", help="print the manifest to create the Slack app from")
    return parser


async def _console(settings: BotSettings) -> int:
    from bot.chat import ChatCore
    from bot.console import ConsoleChat
    from knowledge import KnowledgeBase

    kb = KnowledgeBase(settings)
    try:
        await asyncio.to_thread(kb.warm_up)
        report = await asyncio.to_thread(kb.ingest)
        _log.info("index ready: %d entries, embedder %s", report.summary.entries, kb.embedder_name)
        await ConsoleChat(ChatCore(kb, settings)).run()
    finally:
        kb.close()
    return 0


async def _discord(settings: BotSettings, sync: bool) -> int:
    from bot.chat import ChatCore
    from bot.discord_bot import create_discord_client, run_discord, sync_only
    from knowledge import KnowledgeBase

    if not settings.discord_enabled:
        print("error: KB_DISCORD_TOKEN is not set", file=sys.stderr)
        return 2
    kb = KnowledgeBase(settings)
    try:
        core = ChatCore(kb, settings)
        client = create_discord_client(core, settings)
        if sync:
            await sync_only(client, settings)
        else:
            await asyncio.to_thread(kb.warm_up)
            await asyncio.to_thread(kb.ingest)
            await run_discord(client, settings)
    finally:
        kb.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in `argv`; 2 for bad settings, 1 when the knowledge base cannot start."""
    args = _parser().parse_args(argv)
    if args.command == "slack-manifest":
        from bot.slack_bot import slack_manifest

        print(slack_manifest(), end="")
        return 0
    configure_logging(args.verbose)
    try:
        settings = load_settings(BotSettings)
        if args.command == "console":
            return asyncio.run(_console(settings))
        if args.command == "discord":
            return asyncio.run(_discord(settings, args.sync))
        from bot.service import serve

        return asyncio.run(serve(settings))
    except SettingsError as error:  # one line naming the setting, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KnowledgeError as error:  # e.g. the Chroma server is not up yet: say so, and let a supervisor retry
        _log.error("cannot start: %s", error)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
