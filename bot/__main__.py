"""`python -m bot run | console | discord [--sync] | slack-manifest`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from bot.errors import CannotStart
from bot.settings import BotSettings
from knowledge import KnowledgeError, SettingsError, StorageError, configure_logging, load_settings

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
    from bot.service import serve_console

    return await serve_console(settings)


async def _discord(settings: BotSettings, sync: bool) -> int:
    from bot.chat import ChatCore
    from bot.discord_bot import create_discord_client, run_discord, sync_only
    from knowledge import KnowledgeBase

    if not settings.discord_enabled:
        print("error: KB_DISCORD_TOKEN is not set", file=sys.stderr)
        return 2
    kb = KnowledgeBase(settings, read_only=not settings.ingest_on_start)
    try:
        core = ChatCore(kb, settings)
        client = create_discord_client(core, settings)
        if sync:
            await sync_only(client, settings)
        else:
            from bot.service import prepare_index

            await prepare_index(settings, kb)
            await run_discord(client, settings)
    finally:
        kb.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in `argv`; 2 for bad settings, 1 when the environment does not let it start (the
    HTTP port is in use, the store is unreachable, the data folder cannot be used)."""
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
    except CannotStart as error:  # the environment, e.g. the HTTP port is in use: one line, exit 1
        _log.error("cannot start: %s", error)
        return 1
    except StorageError as error:  # e.g. a read-only data folder
        _log.error("cannot start: %s (a replica that only serves the index can set KB_INGEST_ON_START=false)", error)
        return 1
    except KnowledgeError as error:  # e.g. the Chroma server is not up yet: say so, and let a supervisor retry
        _log.error("cannot start: %s", error)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
