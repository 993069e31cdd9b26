"""A terminal chat with the same commands as Discord and Slack, for trying the bot without tokens.

Everything it prints goes through `printable`: no control character from a question, a command, an
entry or an error message reaches the terminal, so nothing can move the cursor, recolour the output or
retitle the window.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import io
import logging
import os
import re
import sys
import threading
from dataclasses import replace
from typing import TextIO

from rich.console import Console
from rich.text import Text

from bot import texts
from bot.chat import NEW_DAYS, TOP, Answer, ChatCore, stats_text
from bot.errors import BadDays, user_message_for
from bot.i18n import Locale, texts_for
from bot.render import render_browse_text, render_new_text, render_text
from bot.request import number_in, read_request
from knowledge import SyncReport, printable

_log = logging.getLogger(__name__)

CONVERSATION = "console"
USER = "console"
PROMPT = "? "
_NUMBERED = re.compile(r"^\d+\. ")
_READ_SIZE = 65536


_PAGE = re.compile(r"(?:^|\s)page[:：](\d{1,4})\s*$", re.I)


def browse_arguments(text: str) -> tuple[str, int]:
    """`/browse 9 推荐系统 page:2` → ("9 推荐系统", 2): the section as written, and the page (1 by default)."""
    found = _PAGE.search(text)
    if found is None:
        return text.strip(), 1
    return text[: found.start()].strip(), int(found[1])


def new_arguments(text: str) -> tuple[int, int]:
    """`/new 30 page:2` → (30, 2): the days (7 by default) and the page (1 by default); BadDays when the
    days are not a number."""
    rest, page = browse_arguments(text)
    if not rest:
        return NEW_DAYS, page
    days = number_in(rest)
    if days is None:
        raise BadDays(rest)
    return days, page


def render_console(answer: Answer, page_size: int = 5) -> Text:
    """The answer for a terminal: the plain-text rendering, with titles in bold and paths dimmed."""
    rendered = printable(render_text(answer, page_size))
    if answer.refused:
        return Text(rendered, style="yellow")
    section_line = "   " + texts_for(answer.locale)(texts.IN_SECTION, section="")
    text = Text()
    for line in rendered.splitlines():
        style = "bold cyan" if _NUMBERED.match(line) else "dim" if line.startswith(section_line) else ""
        text.append(line + "\n", style=style)
    text.rstrip()
    return text


class _LineReader:
    """The lines of `stream`, read by a daemon thread into the event loop, so that the process can exit
    while the thread still waits for input (a thread blocked on a terminal or a pipe cannot be stopped).

    A stream with a file descriptor is read with `os.read`, which holds no lock of the stream: a daemon
    thread blocked in `sys.stdin.readline()` would hold its buffer's lock, and interpreter shutdown
    aborts when it finds that lock taken.
    """

    def __init__(self, stream: TextIO, loop: asyncio.AbstractEventLoop) -> None:
        self._stream = stream
        self._loop = loop
        self.lines: asyncio.Queue[str] = asyncio.Queue()  # "" marks the end of input
        self._fd = _fileno(stream)
        threading.Thread(target=self._run, name="console-input", daemon=True).start()

    def _run(self) -> None:
        try:
            if self._fd is None:
                while line := self._stream.readline():
                    self._put(line)
            else:
                self._read_fd(self._fd, getattr(self._stream, "encoding", None) or "utf-8")
        except (OSError, ValueError) as error:  # a closed or unreadable stdin ends the input
            _log.debug("console input ended: %s", error)
        except RuntimeError:  # the event loop is closed: nobody reads any more
            return
        with contextlib.suppress(RuntimeError):
            self._put("")

    def _read_fd(self, fd: int, encoding: str) -> None:
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        pending = ""
        while chunk := os.read(fd, _READ_SIZE):
            pending += decoder.decode(chunk)
            *lines, pending = pending.split("\n")
            for line in lines:
                self._put(line + "\n")
        pending += decoder.decode(b"", final=True)
        if pending:
            self._put(pending)

    def _put(self, line: str) -> None:
        self._loop.call_soon_threadsafe(self.lines.put_nowait, line)


def _fileno(stream: TextIO) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None


class ConsoleChat:
    """Reads lines, runs them through the chat core, prints replies.

    The local user is an admin and is never asked to wait: questions skip the cooldown.
    """

    def __init__(self, core: ChatCore, *, stdin: TextIO | None = None, console: Console | None = None) -> None:
        self.core = core
        self.stdin = stdin or sys.stdin
        self.console = console or Console(highlight=False)
        self._reindex: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def say(self, text: str, *, style: str = "", end: str = "\n") -> None:
        """Print `text` as it is (no markup), without control characters."""
        self.console.print(Text(printable(text), style=style), end=end, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        """Read no further line: `run` returns once the line being handled is answered, without waiting for
        a running reindex to report."""
        self._stopping.set()

    async def run(self) -> None:
        """Until end of input, /quit, or `stop()`."""
        setting = self.core.settings.locale
        # Before the first question the reader's language is unknown: the banner in English and Chinese.
        for locale in ("en", "zh-Hans") if setting == "auto" else (setting,):
            self.say(texts_for(locale)(texts.CONSOLE_BANNER), style="dim")
        reader = _LineReader(self.stdin, asyncio.get_running_loop())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                if self.stdin.isatty():
                    self.say(PROMPT, end="")
                next_line = asyncio.ensure_future(reader.lines.get())
                await asyncio.wait({next_line, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not next_line.done():
                    next_line.cancel()
                    break
                line = next_line.result()
                if not line or line.strip().lower() in ("/quit", "/exit", "quit", "exit"):
                    break
                await self.handle(line.rstrip("\n"))
        finally:
            stopping.cancel()
        if self._reindex is not None:
            if self._stopping.is_set():
                self._reindex.cancel()  # only the report: the reindex itself carries on
            else:
                await self._reindex  # let a running reindex report before leaving

    async def handle(self, line: str) -> None:
        """One line: a /command or a question. Replies are in the language of the question, else of the
        last reply (`ChatCore.locale_for`)."""
        command, _, rest = line.strip().partition(" ")
        if not command.startswith("/"):
            command, rest = "", line
        # A question's words tell its language; a command's arguments (a section's name, `full`) do not.
        locale = self.core.locale_for(CONVERSATION, text=read_request(rest).text if command in ("", "/ask") else "")
        t = texts_for(locale)
        size = self.core.settings.answer_size
        try:
            if not line.strip():
                return
            if command in ("", "/ask"):
                question, scope = await self.core.prepare(None, rest)  # no cooldown for the local user
                scope = replace(scope, private=False)  # nobody else reads this terminal
                answer = await self.core.answer(CONVERSATION, question, locale=locale, scope=scope)
                self.console.print(render_console(answer, size), soft_wrap=True)
            elif command == "/browse":
                section, page = browse_arguments(rest)
                self.say(render_browse_text(await self.core.browse(section or TOP, page, locale=locale)))
            elif command == "/new":
                days, page = new_arguments(rest)
                self.say(render_new_text(await self.core.new(days, page, locale=locale)))
            elif command == "/similar":
                number = number_in(rest.strip().lstrip("#"))
                if number is None:
                    self.say(t(texts.USAGE_SIMILAR, similar="/similar"))
                else:
                    self.console.print(
                        render_console(await self.core.similar(CONVERSATION, number), size), soft_wrap=True
                    )
            elif command == "/more":
                answer = await self.core.more(CONVERSATION)
                self.console.print(render_console(answer, self.core.settings.answer_size), soft_wrap=True)
            elif command == "/stats":
                self.say(stats_text(await self.core.stats(), t))
            elif command == "/help":
                self.say(self.core.help(locale))
            elif command == "/reindex":
                full = rest.strip() == "full"
                task = await self.core.start_reindex(USER, full=full)
                self.say(self.core.reindex_started(full=full, locale=locale))
                self._reindex = asyncio.get_running_loop().create_task(self._report(task, locale))
            else:
                self.say(t(texts.UNKNOWN_COMMAND, command=command))
        except Exception as error:  # noqa: BLE001 - every failure becomes a friendly line
            self.say(user_message_for(error, t), style="red")

    async def _report(self, task: asyncio.Task[SyncReport], locale: Locale) -> None:
        self.say(await self.core.reindex_outcome(task, locale))
