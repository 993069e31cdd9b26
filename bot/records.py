"""What readers asked and what they thought of the answers, in one embedded SQLite database.

The database is `KB_DATA_DIR/bot.sqlite`, shared with other state of the bot: this module owns only the
tables whose names start with `records_` (and its rows of `records_meta`), so other modules can keep
their own tables in the same file. For the same reason it never uses `PRAGMA user_version`, which
belongs to the whole file: its schema version is a row of `records_meta`.

Each call opens its own connection and runs one short transaction, so the chat core can call it from
worker threads and `python -m bot gaps` can read while the bot writes: the file is in WAL mode (readers
never block the writer) and a writer waits up to `BUSY_TIMEOUT_MS` for another.

Recorded:
- every question the chat core answered (`records_questions`): when, on which platform, its text, and
  whether it was answered, refused, or named a paper the collection lacks (`missing`); who asked is kept
  only as a short hash, enough to count how many people asked and never enough to name them;
- every 👍/👎 (`records_votes`): the question, the entries shown (ids and titles), the vote, who voted; a
  user's second vote on an answer replaces the first.

Votes used to be appended to `KB_DATA_DIR/feedback.jsonl`: an existing file is imported once (a marker
row in `records_meta` says so, and the file is renamed `feedback.jsonl.imported`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from bot import sqlitedb

_log = logging.getLogger(__name__)

DB_FILE = "bot.sqlite"
FEEDBACK_FILE = "feedback.jsonl"
IMPORTED_SUFFIX = ".imported"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000

Outcome = Literal["answered", "refused", "missing"]
Vote = Literal["up", "down"]
UNANSWERED: tuple[Outcome, ...] = ("refused", "missing")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS records_questions (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        platform TEXT NOT NULL,
        asker TEXT NOT NULL,
        question TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('answered', 'refused', 'missing')),
        subject TEXT NOT NULL DEFAULT '',
        section TEXT NOT NULL DEFAULT '',
        entry_ids TEXT NOT NULL DEFAULT '[]'
    )""",
    "CREATE INDEX IF NOT EXISTS records_questions_by_time ON records_questions (time)",
    """CREATE TABLE IF NOT EXISTS records_votes (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        platform TEXT NOT NULL,
        user TEXT NOT NULL,
        question TEXT NOT NULL,
        vote TEXT NOT NULL CHECK (vote IN ('up', 'down')),
        entries TEXT NOT NULL DEFAULT '[]',
        answer_id TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS records_votes_by_time ON records_votes (time)",
    "CREATE INDEX IF NOT EXISTS records_votes_by_answer ON records_votes (answer_id, platform, user)",
)


@dataclass(frozen=True)
class Activity:
    """What readers did since `since`: questions answered and refused (a paper the collection lacks
    counts as refused), and votes."""

    since: datetime
    answered: int = 0
    refused: int = 0
    up: int = 0
    down: int = 0


@dataclass(frozen=True)
class AskedQuestion:
    """A question the collection could not answer."""

    time: datetime
    platform: str
    asker: str  # a hash of who asked
    question: str
    outcome: Outcome
    subject: str = ""  # the identifiers of the papers it named that the collection lacks


@dataclass(frozen=True)
class VoteRecord:
    """A 👍 or 👎 on an answer, with the entries (id, title) it showed."""

    time: datetime
    platform: str
    user: str
    question: str
    vote: Vote
    entries: tuple[tuple[str, str], ...]


def asker_hash(user: str) -> str:
    """Who asked, as a short hash: enough to count distinct askers, not to name them."""
    return hashlib.sha256(user.encode("utf-8")).hexdigest()[:16]


def _when(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)


class Records:
    """The `records_` tables of one database file. Blocking: call it from a thread in async code."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._ready = False
        self._preparing = threading.Lock()  # the first calls of several threads prepare once

    # -- the connection -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection for one transaction (BEGIN IMMEDIATE when `write`: writers queue at once rather
        than fail midway), committed on success and closed either way."""
        if not self._ready:
            with self._preparing:
                if not self._ready:
                    self._prepare()
        connection = self._open()
        try:
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield connection
            except BaseException:
                connection.rollback()
                raise
            connection.commit()
        finally:
            connection.close()

    def _open(self) -> sqlite3.Connection:
        return sqlitedb.connect(self.path, BUSY_TIMEOUT_MS)

    def _prepare(self) -> None:
        """Create the file and the tables (once per process), then import an old feedback.jsonl."""
        connection = self._open()
        try:
            connection.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                connection.execute(statement)
            row = connection.execute("SELECT value FROM records_meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                connection.execute("INSERT INTO records_meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                _log.warning(
                    "%s has records of a newer version (%s) of the bot; reading what this one knows", self.path, row[0]
                )
            connection.commit()
        finally:
            connection.close()
        self._ready = True
        self.import_feedback(self.path.parent / FEEDBACK_FILE)

    # -- writing --------------------------------------------------------------------------------------
    def add_question(
        self,
        platform: str,
        user: str,
        question: str,
        outcome: Outcome,
        *,
        subject: str = "",
        section: Sequence[str] = (),
        entry_ids: Sequence[str] = (),
    ) -> None:
        """Record a question the chat core answered (`answered`), refused, or could only answer with
        related entries because the paper it named is not in the collection (`missing`)."""
        with self._connect(write=True) as db:
            db.execute(
                "INSERT INTO records_questions (time, platform, asker, question, outcome, subject, section, entry_ids)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self._clock(),
                    platform,
                    asker_hash(user),
                    question,
                    outcome,
                    subject,
                    " › ".join(section),
                    json.dumps(list(entry_ids)),
                ),
            )

    def add_vote(
        self,
        platform: str,
        user: str,
        question: str,
        vote: Vote,
        entries: Sequence[tuple[str, str]],
        *,
        answer_id: str = "",
    ) -> None:
        """Record a 👍/👎 on an answer that showed `entries` (id, title). A user has one vote on an answer:
        clicking again (the same button or the other) replaces it, so that counts are of people, not clicks."""
        with self._connect(write=True) as db:
            if answer_id:
                db.execute(
                    "DELETE FROM records_votes WHERE answer_id = ? AND platform = ? AND user = ?",
                    (answer_id, platform, user),
                )
            db.execute(
                "INSERT INTO records_votes (time, platform, user, question, vote, entries, answer_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    self._clock(),
                    platform,
                    user,
                    question,
                    vote,
                    json.dumps(list(entries), ensure_ascii=False),
                    answer_id,
                ),
            )

    def import_feedback(self, path: Path) -> int:
        """Import the votes of an old `feedback.jsonl` once: the rows it holds, in one transaction, with a
        marker so that no later call (in this process or another) imports it again; then the file is
        renamed `feedback.jsonl.imported`. Lines that are not a vote are skipped and counted in the log.
        Returns how many votes were imported (0 when there is no file or it was imported before)."""
        if not path.is_file():
            return 0
        marker = f"imported:{path.name}"
        imported = skipped = 0
        with self._connect(write=True) as db:
            if db.execute("SELECT 1 FROM records_meta WHERE key = ?", (marker,)).fetchone() is None:
                for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                    row = _old_vote(line)
                    if row is None:
                        skipped += bool(line.strip())
                        continue
                    db.execute(
                        "INSERT INTO records_votes (time, platform, user, question, vote, entries)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        row,
                    )
                    imported += 1
                db.execute(
                    "INSERT INTO records_meta VALUES (?, ?)",
                    (marker, json.dumps({"votes": imported, "at": self._clock()})),
                )
                _log.info("imported %d votes from %s into %s (%d lines skipped)", imported, path, self.path, skipped)
        with contextlib.suppress(OSError):  # the marker already keeps it from being imported twice
            path.rename(path.with_name(path.name + IMPORTED_SUFFIX))
        return imported

    # -- reading --------------------------------------------------------------------------------------
    def activity(self, since: datetime) -> Activity:
        """Questions answered and refused, and votes, since `since`."""
        start = since.timestamp()
        with self._connect() as db:
            outcomes = dict(
                db.execute(
                    "SELECT outcome, COUNT(*) FROM records_questions WHERE time >= ? GROUP BY outcome", (start,)
                ).fetchall()
            )
            votes = dict(
                db.execute(
                    "SELECT vote, COUNT(*) FROM records_votes WHERE time >= ? GROUP BY vote", (start,)
                ).fetchall()
            )
        refused = sum(outcomes.get(outcome, 0) for outcome in UNANSWERED)
        return Activity(since, outcomes.get("answered", 0), refused, votes.get("up", 0), votes.get("down", 0))

    def unanswered(self, since: datetime) -> list[AskedQuestion]:
        """The questions refused, or naming a paper the collection lacks, since `since`, oldest first."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT time, platform, asker, question, outcome, subject FROM records_questions"
                " WHERE time >= ? AND outcome IN ('refused', 'missing') ORDER BY time, id",
                (since.timestamp(),),
            ).fetchall()
        return [AskedQuestion(_when(row[0]), row[1], row[2], row[3], row[4], row[5]) for row in rows]

    def votes(self, since: datetime, vote: Vote | None = None) -> list[VoteRecord]:
        """The votes since `since` (only `vote`s when given), oldest first."""
        query = "SELECT time, platform, user, question, vote, entries FROM records_votes WHERE time >= ?"
        values: tuple[object, ...] = (since.timestamp(),)
        if vote is not None:
            query += " AND vote = ?"
            values += (vote,)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY time, id", values).fetchall()
        return [
            VoteRecord(
                _when(row[0]), row[1], row[2], row[3], row[4], tuple((str(i), str(t)) for i, t in json.loads(row[5]))
            )
            for row in rows
        ]


def _old_vote(line: str) -> tuple[float, str, str, str, str, str] | None:
    """A line of the old feedback.jsonl as a row of records_votes, or None when it is not a vote."""
    try:
        row = json.loads(line)
        when = datetime.fromisoformat(str(row["time"]))
        vote = str(row["vote"])
        entry_ids = [str(entry_id) for entry_id in row.get("entry_ids") or []]
    except (ValueError, KeyError, TypeError):
        return None
    if vote not in ("up", "down") or not isinstance(row, dict):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    entries = json.dumps([[entry_id, ""] for entry_id in entry_ids])
    return (
        when.timestamp(),
        str(row.get("platform") or ""),
        str(row.get("user") or ""),
        str(row.get("question") or ""),
        vote,
        entries,
    )
