"""A terminal chat with the same commands as Discord and Slack, for trying the bot without tokens."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from typing import TextIO

from rich.console import Console, RenderableType
from rich.markup import escape
from rich.text import Text

from bot.chat import Answer, ChatCore, reindex_summary, stats_text
from bot.errors import user_message_for
from bot.render import render_text
from knowledge.base import IngestReport

_log = logging.getLogger(__name__)

CONVERSATION = "console"
USER = "console"
PROMPT = "? "
_NUMBERED = re.compile(r"^\d+\. ")


def render_console(answer: Answer, page_size: int = 5) -> RenderableType:
    """The answer for a terminal: the plain-text rendering, with titles in bold and paths dimmed."""
    if answer.refused:
        return Text(render_text(answer, page_size), style="yellow")
    text = Text()
    for line in render_text(answer, page_size).splitlines():
        style = "bold cyan" if _NUMBERED.match(line) else "dim" if line.startswith("   in ") else ""
        text.append(line + "\n", style=style)
    text.rstrip()
    return text


class ConsoleChat:
    """Reads lines, runs them through the chat core, prints replies. The local user is an admin."""

    def __init__(self, core: ChatCore, *, stdin: TextIO | None = None, console: Console | None = None) -> None:
        self.core = core
        self.stdin = stdin or sys.stdin
        self.console = console or Console(highlight=False)
        self._reindex: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Until end of input or /quit."""
        self.console.print(
            "Ask a question (中文 or English), or /help. /quit or Ctrl-D leaves.", style="dim", highlight=False
        )
        while True:
            if self.stdin.isatty():
                self.console.print(PROMPT, end="")
            line = await asyncio.to_thread(self.stdin.readline)
            if not line:
                break
            if line.strip().lower() in ("/quit", "/exit", "quit", "exit"):
                break
            await self.handle(line.rstrip("\n"))
        if self._reindex is not None:
            await self._reindex  # let a running reindex report before leaving

    async def handle(self, line: str) -> None:
        """One line: a /command or a question."""
        command, _, rest = line.strip().partition(" ")
        try:
            if not line.strip():
                return
            if command == "/ask":
                answer = await self.core.ask(CONVERSATION, USER, rest, cooldown=False)
                self.console.print(render_console(answer, self.core.settings.answer_size))
            elif command == "/more":
                self.console.print(render_console(await self.core.more(CONVERSATION), self.core.settings.answer_size))
            elif command == "/stats":
                self.console.print(stats_text(await self.core.stats()), highlight=False)
            elif command == "/help":
                self.console.print(escape(self.core.help()), highlight=False)
            elif command == "/reindex":
                task = self.core.start_reindex(USER, full=rest.strip() == "full")
                self.console.print("Reindex started; answers keep coming from the current index meanwhile.")
                self._reindex = asyncio.get_running_loop().create_task(self._report(task))
            elif command.startswith("/"):
                self.console.print(f"Unknown command {escape(command)}. Try /help.", highlight=False)
            else:
                answer = await self.core.ask(CONVERSATION, USER, line, cooldown=False)
                self.console.print(render_console(answer, self.core.settings.answer_size))
        except Exception as error:  # noqa: BLE001 - every failure becomes a friendly line
            self.console.print(user_message_for(error), style="red", highlight=False)

    async def _report(self, task: asyncio.Task[IngestReport]) -> None:
        try:
            report = await task
        except Exception as error:  # noqa: BLE001
            self.console.print(f"Reindex failed: {user_message_for(error)}", style="red", highlight=False)
            return
        self.console.print(reindex_summary(report), highlight=False)
