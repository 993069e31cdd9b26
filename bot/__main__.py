"""`python -m bot run | console | discord [--sync] | reindex [--full] [--json] | gaps [--since 30d] [--json] |
slack-manifest`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bot.errors import CannotStart
from bot.settings import BotSettings
from knowledge import KnowledgeError, SettingsError, StorageError, check_sources, configure_logging, load_settings

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
    reindex = commands.add_parser(
        "reindex", help="what /reindex does, from the shell: under the bots' lease, fetch and index every source"
    )
    reindex.add_argument("--full", action="store_true", help="build a new collection, then switch to it")
    reindex.add_argument("--json", action="store_true", help="print the report as a JSON object")
    reindex.add_argument(
        "--allow-mass-removal",
        action="store_true",
        help="remove entries even when more than KB_MAX_REMOVAL_SHARE of the index would go",
    )
    gaps = commands.add_parser("gaps", help="what readers could not find: the most frequent unanswered questions")
    gaps.add_argument(
        "--since",
        type=_since,
        default="30d",
        help="how far back: 30d (default), 2w, 12h, or a date such as 2026-01-31",
    )
    gaps.add_argument("--limit", type=_positive, default=30, help="groups to show (default 30)")
    gaps.add_argument("--json", action="store_true", help="one JSON object: the window and the groups")
    return parser


_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdw])\s*$", re.I)
_SPAN_HOURS = {"h": 1, "d": 24, "w": 24 * 7}


def _since(text: str) -> datetime:
    """`30d`, `2w`, `12h` (a window ending now) or a date or time in ISO form (UTC unless it says)."""
    found = _SPAN.match(text)
    if found:
        return datetime.now(UTC) - timedelta(hours=float(found[1]) * _SPAN_HOURS[found[2].lower()])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 30d, 2w, 12h or a date such as 2026-01-31, got {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _positive(text: str) -> int:
    """A whole number from 1 (`--limit -1` had quietly dropped the last group)."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1, got {text!r}")
    return number


def _gaps(settings: BotSettings, since: datetime, limit: int, as_json: bool) -> int:
    """Print the gaps report from the records under KB_DATA_DIR (nothing else is opened: no index, no model)."""
    from bot.gaps import find_gaps, gaps_text
    from bot.records import DB_FILE, Records
    from knowledge import tokenize

    path = settings.data_dir / DB_FILE
    if not path.exists() and not (settings.data_dir / "feedback.jsonl").exists():
        asked, down = [], []
    else:
        try:
            records = Records(path)
            asked, down = records.unanswered(since), records.votes(since, "down")
        except sqlite3.DatabaseError as error:  # a damaged or foreign file: one line, not a traceback
            print(f"error: cannot read the records in {path}: {error}", file=sys.stderr)
            return 1
    gaps = find_gaps(asked, down, tokenize)
    total = sum(gap.count for gap in gaps)
    shown = gaps[:limit]
    if as_json:
        report = {"since": since.isoformat(), "total": total, "groups": [gap.as_dict() for gap in shown]}
        print(json.dumps(report, ensure_ascii=False, indent=1))
    else:
        print(gaps_text(shown, since, total))
    return 0


async def _reindex(settings: BotSettings, full: bool, as_json: bool, allow_mass_removal: bool) -> int:
    """Exit 0 when every source was fetched and read; 1 when the reindex could not run (its lease held, the
    state store or Chroma unreachable, a refused mass removal) or some source could not be fetched or read
    (their entries were kept as they were)."""
    from bot.chat import unread_sources
    from bot.service import reindex_now
    from bot.state import StateUnavailable
    from knowledge import KnowledgeBase

    kb = KnowledgeBase(settings)
    try:
        report = await reindex_now(settings, kb, full=full, allow_mass_removal=allow_mass_removal)
    except StateUnavailable as error:
        print(f"error: the state store cannot be reached, and a reindex needs its lease: {error}", file=sys.stderr)
        return 1
    except KnowledgeError as error:  # the lease or the lock held, a mass removal, Chroma down: one line
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        kb.close()
    if as_json:
        print(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        for source in report.sources:
            print(source.outcome())
        assert report.ingest is not None  # a forced sync always indexes
        summary = report.ingest.summary
        print(
            f"entries {summary.entries}, embedded {summary.embedded}, added {summary.added}, "
            f"removed {summary.removed}; {report.seconds} s ({summary.collection})"
        )
    if report.ingest is not None and not report.ingest.complete:
        print(f"error: {unread_sources(report.ingest)}", file=sys.stderr)
        return 1
    return 1 if report.failed else 0


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
    from bot.service import state_for

    kb = KnowledgeBase(settings, read_only=not settings.ingest_on_start)
    state = state_for(settings)
    try:
        core = ChatCore(kb, settings, state=state)
        client = create_discord_client(core, settings)
        if sync:
            await sync_only(client, settings)
        else:
            from bot.discord_bot import DiscordDigestPoster
            from bot.service import finish_writes, prepare_index, start_following

            caught_up = await prepare_index(settings, kb, state)
            if settings.discord_digest_channel is not None:
                core.digest_posters.append(DiscordDigestPoster(client, settings.discord_digest_channel))
            following = start_following(core, settings, behind=not caught_up)
            try:
                await run_discord(client, settings)
            finally:
                for task in following:
                    task.cancel()
                await finish_writes(core)
    finally:
        await state.close()
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
    configure_logging(args.verbose)  # and "?" for what the terminal cannot show
    try:
        # A bot that serves decides about missing sources itself, once it sees the index (prepare_index).
        serves = args.command in ("run", "console", "discord")
        settings = load_settings(BotSettings, missing_sources_ok=serves)
        if serves and settings.ingest_on_start:
            check_sources(settings)  # no index can exist yet: refused before anything is loaded
        if args.command == "gaps":
            return _gaps(settings, args.since, args.limit, args.json)
        if args.command == "console":
            return asyncio.run(_console(settings))
        if args.command == "discord":
            return asyncio.run(_discord(settings, args.sync))
        if args.command == "reindex":
            return asyncio.run(_reindex(settings, args.full, args.json, args.allow_mass_removal))
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
    except KeyboardInterrupt:  # Ctrl-C while starting (the model loads for seconds): no traceback
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
