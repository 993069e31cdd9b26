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

from bot import texts
from bot.chat import Answer, ChatCore, stats_text
from bot.errors import user_message_for
from bot.render import render_text
from knowledge import IngestReport

_log = logging.getLogger(__name__)

CONVERSATION = "console"
USER = "console"
PROMPT = "? "
_NUMBERED = re.compile(r"^\d+\. ")
_SECTION_LINE = "   " + texts.IN_SECTION.format(section="")


def render_console(answer: Answer, page_size: int = 5) -> RenderableType:
    """The answer for a terminal: the plain-text rendering, with titles in bold and paths dimmed."""
    if answer.refused:
        return Text(render_text(answer, page_size), style="yellow")
    text = Text()
    for line in render_text(answer, page_size).splitlines():
        style = "bold cyan" if _NUMBERED.match(line) else "dim" if line.startswith(_SECTION_LINE) else ""
        text.append(line + "\n", style=style)
    text.rstrip()
    return text


class ConsoleChat:
    """Reads lines, runs them through the chat core, prints replies.

    The local user is an admin and is never asked to wait: questions skip the cooldown.
    """

    def __init__(self, core: ChatCore, *, stdin: TextIO | None = None, console: Console | None = None) -> None:
        self.core = core
        self.stdin = stdin or sys.stdin
        self.console = console or Console(highlight=False)
        self._reindex: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Until end of input or /quit."""
        self.console.print(texts.CONSOLE_BANNER, style="dim", highlight=False)
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
                await self._answer(rest)
            elif command == "/more":
                self.console.print(render_console(await self.core.more(CONVERSATION), self.core.settings.answer_size))
            elif command == "/stats":
                self.console.print(escape(stats_text(await self.core.stats())), highlight=False)
            elif command == "/help":
                self.console.print(escape(self.core.help()), highlight=False)
            elif command == "/reindex":
                full = rest.strip() == "full"
                task = self.core.start_reindex(USER, full=full)
                self.console.print(escape(self.core.reindex_started(full=full)), highlight=False)
                self._reindex = asyncio.get_running_loop().create_task(self._report(task))
            elif command.startswith("/"):
                self.console.print(texts.UNKNOWN_COMMAND.format(command=escape(command)), highlight=False)
            else:
                await self._answer(line)
        except Exception as error:  # noqa: BLE001 - every failure becomes a friendly line
            self.console.print(escape(user_message_for(error)), style="red", highlight=False)

    async def _answer(self, text: str) -> None:
        answer = await self.core.answer(CONVERSATION, self.core.read_question(text))
        self.console.print(render_console(answer, self.core.settings.answer_size))

    async def _report(self, task: asyncio.Task[IngestReport]) -> None:
        self.console.print(escape(await self.core.reindex_outcome(task)), highlight=False)
