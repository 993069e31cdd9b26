"""The state the chat core keeps between messages: first-wins claims (dedupe of Slack retries and of
messages delivered twice), answer sessions behind **More results**, per-user cooldowns, and the reindex
lease. It outlives the process, and with Redis it is shared by every replica.

Back-ends:
- `SqliteState`: the default, `KB_DATA_DIR/bot.sqlite` (tables `state_*`; other modules keep their own
  tables in the same file). WAL, short transactions, a busy timeout: safe for several processes on one
  machine. Every write is one statement, so first-wins decisions are atomic.
- `RedisState`: Redis or Valkey at `KB_REDIS_URL`, through `redis.asyncio`; shared by replicas on many
  machines. Atomic primitives only: `SET NX PX` for claims, cooldowns and the lease, expiring keys for
  sessions, Lua scripts for a page turn and for compare-and-renew / compare-and-delete of the lease.
- `MemoryState`: this process only; the fallback while the store is unreachable, and the store of a
  read-only replica without Redis (its data dir may be read-only).

`ResilientState` wraps the configured back-end with the failure policy: when the store cannot be reached,
answers still go out; claims, sessions and cooldowns use this process's memory (one log line a minute at
most), and the reindex lease fails closed (a reindex is refused: two rebuilds over one Chroma server could
drop each other's collection). Dedupe fails open: a message whose claim cannot be checked is answered,
since a duplicate answer is a nuisance the reader sees, while a lost one is silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import sqlite3
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from bot import sqlitedb

_log = logging.getLogger(__name__)

T = TypeVar("T")

STATE_FILE = "bot.sqlite"
MEMORY_LIMIT = 20_000  # claims and cooldowns a MemoryState keeps, oldest forgotten first
MEMORY_SESSIONS = 2_000  # and sessions (an answer with every item is a few kB)
PURGE_EVERY = 60.0  # seconds between purges of expired SQLite rows
REDIS_TIMEOUT = 1.0  # seconds: a slow store must not hold answers up
RETRY_AFTER = 5.0  # seconds the shared store is left alone after a failure
LOG_EVERY = 60.0  # at most one line a minute about an unreachable store
LEASE_SECONDS = 60.0  # a lease's length: a holder that dies frees the lock within it
FENCE_TIMEOUT = 10.0  # seconds a fencing check may take before it counts as lost


class StateUnavailable(Exception):
    """The state store cannot be reached or used right now; `str(error)` says why, for the log."""


@dataclass(frozen=True)
class Session:
    """A stored session: its value (the core's JSON) and how many pages were shown."""

    value: str
    shown: int


@dataclass(frozen=True)
class Turn:
    """A page turn: the session's value, the page now shown, and whether it moved (False: no more pages)."""

    value: str
    page: int
    moved: bool


@dataclass(frozen=True)
class Lease:
    """A held lock: `token` is its fencing token, larger than every earlier lease's of the same name
    (even across a store that lost its data: it is at least the time in milliseconds)."""

    name: str
    token: int
    holder: str

    @property
    def value(self) -> str:
        return f"{self.holder}:{self.token}"


def new_holder() -> str:
    """Who holds a lease: host, process and a random part, so the log can tell holders apart."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


class StateStore(ABC):
    """What the chat core asks of its state store. Keys are opaque strings chosen by the caller;
    durations are seconds."""

    backend = "store"

    @property
    def where(self) -> str:
        """The store, as logs and /healthz name it (never a password)."""
        return self.backend

    @abstractmethod
    async def claim(self, key: str, ttl: float) -> bool:
        """True for the first claim of `key` within `ttl`, False for every later one (on any replica)."""

    @abstractmethod
    async def put_session(self, key: str, value: str, ttl: float) -> None:
        """Store a session (page 1 shown), kept for `ttl`."""

    @abstractmethod
    async def get_session(self, key: str) -> Session | None:
        """The session, or None when unknown or expired."""

    @abstractmethod
    async def turn_page(self, key: str, pages: int) -> Turn | None:
        """Show the next page, atomically: the page shown goes up by one unless `pages` were shown
        (`moved` False then); None when the session is unknown or expired."""

    @abstractmethod
    async def admit(self, user: str, seconds: float) -> float:
        """Start `user`'s cooldown of `seconds` and return 0.0, or, when one is running, the seconds
        left of it (and change nothing)."""

    @abstractmethod
    async def acquire(self, name: str, lease_seconds: float) -> Lease | None:
        """Take the lock `name` for `lease_seconds`, or None when someone holds it."""

    @abstractmethod
    async def renew(self, lease: Lease, lease_seconds: float) -> bool:
        """Extend a lease still held; False when it was lost (expired and maybe taken)."""

    @abstractmethod
    async def release(self, lease: Lease) -> None:
        """Give the lock up, if this lease still holds it."""

    @abstractmethod
    async def holds(self, lease: Lease) -> bool:
        """The fencing check: whether `lease` is still the lock's current holder."""

    @abstractmethod
    async def held(self, name: str) -> bool:
        """Whether anyone holds the lock `name` now."""

    async def ping(self) -> None:  # noqa: B027 - a store in this process is always there
        """Raise StateUnavailable when the store cannot be reached."""

    async def close(self) -> None:  # noqa: B027 - nothing to close by default
        """Release connections and threads."""


# -- this process only ----------------------------------------------------------------------------------


class MemoryState(StateStore):
    """The state of this process only, bounded (oldest keys forgotten first), on an injected clock."""

    backend = "memory"

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, limit: int = MEMORY_LIMIT, sessions: int = MEMORY_SESSIONS
    ) -> None:
        self._clock = clock
        self._limit = limit
        self._session_limit = sessions
        self._claims: OrderedDict[str, float] = OrderedDict()  # key -> expires
        self._sessions: OrderedDict[str, tuple[str, int, float]] = OrderedDict()  # key -> value, shown, expires
        self._cooldowns: dict[str, float] = {}  # user -> until
        self._locks: dict[str, tuple[Lease, float]] = {}  # name -> lease, expires
        self._tokens: dict[str, int] = {}

    @staticmethod
    def _bound(table: OrderedDict[str, Any], limit: int) -> None:
        while len(table) > limit:
            table.popitem(last=False)

    async def claim(self, key: str, ttl: float) -> bool:
        now = self._clock()
        expires = self._claims.get(key)
        if expires is not None and expires > now:
            return False
        self._claims[key] = now + ttl
        self._claims.move_to_end(key)
        self._bound(self._claims, self._limit)
        return True

    async def put_session(self, key: str, value: str, ttl: float) -> None:
        self._sessions[key] = (value, 1, self._clock() + ttl)
        self._sessions.move_to_end(key)
        self._bound(self._sessions, self._session_limit)

    def _live(self, key: str) -> tuple[str, int, float] | None:
        found = self._sessions.get(key)
        if found is None:
            return None
        if found[2] <= self._clock():
            del self._sessions[key]
            return None
        return found

    async def get_session(self, key: str) -> Session | None:
        found = self._live(key)
        return Session(found[0], found[1]) if found else None

    async def turn_page(self, key: str, pages: int) -> Turn | None:
        found = self._live(key)
        if found is None:
            return None
        value, shown, expires = found
        if shown >= pages:
            return Turn(value, shown, moved=False)
        self._sessions[key] = (value, shown + 1, expires)
        return Turn(value, shown + 1, moved=True)

    async def admit(self, user: str, seconds: float) -> float:
        now = self._clock()
        until = self._cooldowns.get(user)
        if until is not None and until > now:
            return until - now
        self._cooldowns[user] = now + seconds
        if len(self._cooldowns) > self._limit:  # forget users whose cooldown is over
            self._cooldowns = {u: t for u, t in self._cooldowns.items() if t > now}
        return 0.0

    async def acquire(self, name: str, lease_seconds: float) -> Lease | None:
        now = self._clock()
        current = self._locks.get(name)
        if current is not None and current[1] > now:
            return None
        token = max(self._tokens.get(name, 0) + 1, int(time.time() * 1000))
        self._tokens[name] = token
        lease = Lease(name, token, new_holder())
        self._locks[name] = (lease, now + lease_seconds)
        return lease

    def _current(self, name: str) -> Lease | None:
        current = self._locks.get(name)
        return current[0] if current is not None and current[1] > self._clock() else None

    async def renew(self, lease: Lease, lease_seconds: float) -> bool:
        if self._current(lease.name) != lease:
            return False
        self._locks[lease.name] = (lease, self._clock() + lease_seconds)
        return True

    async def release(self, lease: Lease) -> None:
        if self._current(lease.name) == lease:
            del self._locks[lease.name]

    async def holds(self, lease: Lease) -> bool:
        return self._current(lease.name) == lease

    async def held(self, name: str) -> bool:
        return self._current(name) is not None


# -- SQLite: processes on one machine ---------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state_claims (key TEXT PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state_sessions (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, shown INTEGER NOT NULL, expires REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state_cooldowns (user TEXT PRIMARY KEY, until REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state_locks (
    name TEXT PRIMARY KEY, holder TEXT, token INTEGER NOT NULL, expires REAL NOT NULL
) WITHOUT ROWID;
"""


class SqliteState(StateStore):
    """The state in a SQLite file, for every process on this machine that opens it.

    Each operation is one short statement (autocommit) in WAL mode, run on this store's own thread so
    the event loop never waits on the file; writers queue for up to `busy_timeout`. Expiry is wall-clock
    time, so sessions outlive a restart. Expired rows are purged once a minute.
    """

    backend = "sqlite"

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time, busy_timeout: float = 5.0) -> None:
        self.path = path
        self._clock = clock
        self._busy_ms = int(busy_timeout * 1000)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._purged = 0.0

    @property
    def where(self) -> str:
        return f"sqlite at {self.path}"

    # -- plumbing --------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlitedb.connect(self.path, self._busy_ms)
            connection.executescript(_SCHEMA)
            self._connection = connection
        return self._connection

    async def _run(self, work: Callable[[sqlite3.Connection, float], T]) -> T:
        def call() -> T:
            try:
                connection = self._connect()
                now = self._clock()
                if now - self._purged > PURGE_EVERY:
                    self._purge(connection, now)
                return work(connection, now)
            except (sqlite3.Error, OSError) as error:
                raise StateUnavailable(f"{self.where}: {error}") from error

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _purge(self, connection: sqlite3.Connection, now: float) -> None:
        self._purged = now
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute("DELETE FROM state_claims WHERE expires <= ?", (now,))
            connection.execute("DELETE FROM state_sessions WHERE expires <= ?", (now,))
            connection.execute("DELETE FROM state_cooldowns WHERE until <= ?", (now,))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    async def ping(self) -> None:
        await self._run(lambda connection, _: connection.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        def close() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown(wait=True)

    # -- the operations --------------------------------------------------------------------------
    async def claim(self, key: str, ttl: float) -> bool:
        def claim(connection: sqlite3.Connection, now: float) -> bool:
            cursor = connection.execute(
                "INSERT INTO state_claims (key, expires) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE state_claims.expires <= ?",
                (key, now + ttl, now),
            )
            return cursor.rowcount == 1

        return await self._run(claim)

    async def put_session(self, key: str, value: str, ttl: float) -> None:
        await self._run(
            lambda connection, now: connection.execute(
                "INSERT OR REPLACE INTO state_sessions (key, value, shown, expires) VALUES (?, ?, 1, ?)",
                (key, value, now + ttl),
            )
        )

    async def get_session(self, key: str) -> Session | None:
        def get(connection: sqlite3.Connection, now: float) -> Session | None:
            row = connection.execute(
                "SELECT value, shown FROM state_sessions WHERE key = ? AND expires > ?", (key, now)
            ).fetchone()
            return Session(row[0], row[1]) if row else None

        return await self._run(get)

    async def turn_page(self, key: str, pages: int) -> Turn | None:
        def turn(connection: sqlite3.Connection, now: float) -> Turn | None:
            row = connection.execute(
                "UPDATE state_sessions SET shown = shown + 1 WHERE key = ? AND expires > ? AND shown < ? "
                "RETURNING value, shown",
                (key, now, pages),
            ).fetchone()
            if row:
                return Turn(row[0], row[1], moved=True)
            row = connection.execute(
                "SELECT value, shown FROM state_sessions WHERE key = ? AND expires > ?", (key, now)
            ).fetchone()
            return Turn(row[0], row[1], moved=False) if row else None

        return await self._run(turn)

    async def admit(self, user: str, seconds: float) -> float:
        def admit(connection: sqlite3.Connection, now: float) -> float:
            cursor = connection.execute(
                "INSERT INTO state_cooldowns (user, until) VALUES (?, ?) "
                "ON CONFLICT (user) DO UPDATE SET until = excluded.until WHERE state_cooldowns.until <= ?",
                (user, now + seconds, now),
            )
            if cursor.rowcount == 1:
                return 0.0
            row = connection.execute("SELECT until FROM state_cooldowns WHERE user = ?", (user,)).fetchone()
            return max(0.0, float(row[0]) - now) if row else 0.0

        return await self._run(admit)

    async def acquire(self, name: str, lease_seconds: float) -> Lease | None:
        holder = new_holder()

        def acquire(connection: sqlite3.Connection, now: float) -> Lease | None:
            # One statement: a free (or expired) lock is taken with a token above the last one and the time.
            row = connection.execute(
                "INSERT INTO state_locks (name, holder, token, expires) VALUES (?1, ?2, ?3, ?4) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "token = max(state_locks.token + 1, excluded.token), expires = excluded.expires "
                "WHERE state_locks.holder IS NULL OR state_locks.expires <= ?5 "
                "RETURNING token",
                (name, holder, int(time.time() * 1000), now + lease_seconds, now),
            ).fetchone()
            return Lease(name, int(row[0]), holder) if row else None

        return await self._run(acquire)

    async def renew(self, lease: Lease, lease_seconds: float) -> bool:
        def renew(connection: sqlite3.Connection, now: float) -> bool:
            cursor = connection.execute(
                "UPDATE state_locks SET expires = ? WHERE name = ? AND holder = ? AND token = ? AND expires > ?",
                (now + lease_seconds, lease.name, lease.holder, lease.token, now),
            )
            return cursor.rowcount == 1

        return await self._run(renew)

    async def release(self, lease: Lease) -> None:
        # The row stays, with its token: the next lease's token is above it.
        await self._run(
            lambda connection, _: connection.execute(
                "UPDATE state_locks SET holder = NULL, expires = 0 WHERE name = ? AND holder = ? AND token = ?",
                (lease.name, lease.holder, lease.token),
            )
        )

    async def holds(self, lease: Lease) -> bool:
        def holds(connection: sqlite3.Connection, now: float) -> bool:
            row = connection.execute(
                "SELECT 1 FROM state_locks WHERE name = ? AND holder = ? AND token = ? AND expires > ?",
                (lease.name, lease.holder, lease.token, now),
            ).fetchone()
            return row is not None

        return await self._run(holds)

    async def held(self, name: str) -> bool:
        def held(connection: sqlite3.Connection, now: float) -> bool:
            row = connection.execute(
                "SELECT 1 FROM state_locks WHERE name = ? AND holder IS NOT NULL AND expires > ?", (name, now)
            ).fetchone()
            return row is not None

        return await self._run(held)


# -- Redis or Valkey: replicas on many machines -------------------------------------------------------

# KEYS[1] the session. Turn a page unless ARGV[1] pages were shown: {value, page, moved}; nil when unknown.
_TURN_PAGE = """
local found = redis.call('HMGET', KEYS[1], 'value', 'shown')
if not found[1] then return nil end
local shown = tonumber(found[2])
if shown >= tonumber(ARGV[1]) then return {found[1], shown, 0} end
return {found[1], redis.call('HINCRBY', KEYS[1], 'shown', 1), 1}
"""
# KEYS[1] the lock, KEYS[2] its token counter; ARGV[1] the holder, ARGV[2] the lease in ms. The token is
# above every earlier one and at least the server's time in ms, so it grows even after the store lost
# its data. Returns the token, or 0 when the lock is held.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if ms > token then
    token = ms
    redis.call('SET', KEYS[2], string.format('%d', token))
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. string.format('%d', token), 'NX', 'PX', ARGV[2])
return token
"""
# Compare-and-renew and compare-and-delete: only the lease's own holder extends or frees the lock.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def redacted(url: str) -> str:
    """`url` without its password (for logs and /healthz): the one before the host, and any in the query
    (redis-py reads `?password=…` too); the rest of the query is not shown."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        netloc = f"{user}:***@{host}{port}"
    query = "…" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class RedisState(StateStore):
    """The state in Redis or Valkey, shared by every replica that points at it. Keys start with
    `prefix` and expire by themselves (claims, sessions, cooldowns, the lease)."""

    backend = "redis"

    def __init__(self, url: str, *, prefix: str = "kb:", timeout: float = REDIS_TIMEOUT) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = url
        self.prefix = prefix
        self.client: Redis = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),  # one reconnection at once (a dropped connection), then give up
            decode_responses=True,
        )
        self._turn_page = self.client.register_script(_TURN_PAGE)
        self._acquire = self.client.register_script(_ACQUIRE)
        self._renew = self.client.register_script(_RENEW)
        self._release = self.client.register_script(_RELEASE)

    @property
    def where(self) -> str:
        return f"redis at {redacted(self.url)}"

    def _key(self, kind: str, key: str) -> str:
        return f"{self.prefix}{kind}:{key}"

    async def _call(self, work: Awaitable[T]) -> T:
        from redis.exceptions import RedisError

        try:
            return await work
        except (RedisError, OSError) as error:
            raise StateUnavailable(f"{self.where}: {type(error).__name__}: {error}") from error

    async def ping(self) -> None:
        await self._call(self.client.ping())  # type: ignore[arg-type]

    async def close(self) -> None:
        await self.client.aclose()

    async def claim(self, key: str, ttl: float) -> bool:
        return bool(await self._call(self.client.set(self._key("claim", key), 1, px=_ms(ttl), nx=True)))

    async def put_session(self, key: str, value: str, ttl: float) -> None:
        name = self._key("session", key)
        async with self.client.pipeline(transaction=True) as pipe:  # MULTI/EXEC: stored whole, with its expiry
            pipe.delete(name)
            pipe.hset(name, mapping={"value": value, "shown": 1})
            pipe.pexpire(name, _ms(ttl))
            await self._call(pipe.execute())

    async def get_session(self, key: str) -> Session | None:
        found = await self._call(self.client.hmget(self._key("session", key), ["value", "shown"]))  # type: ignore[misc]
        value, shown = found
        return Session(str(value), int(shown)) if value is not None and shown is not None else None

    async def turn_page(self, key: str, pages: int) -> Turn | None:
        found = await self._call(self._turn_page(keys=[self._key("session", key)], args=[pages]))
        if found is None:
            return None
        value, page, moved = found
        return Turn(str(value), int(page), moved=bool(int(moved)))

    async def admit(self, user: str, seconds: float) -> float:
        key = self._key("cooldown", user)
        if await self._call(self.client.set(key, 1, px=_ms(seconds), nx=True)):
            return 0.0
        left = await self._call(self.client.pttl(key))
        return max(0.0, left / 1000) if left > 0 else 0.0

    async def acquire(self, name: str, lease_seconds: float) -> Lease | None:
        holder = new_holder()
        keys = [self._key("lock", name), self._key("fence", name)]
        token = int(await self._call(self._acquire(keys=keys, args=[holder, _ms(lease_seconds)])))
        return Lease(name, token, holder) if token else None

    async def renew(self, lease: Lease, lease_seconds: float) -> bool:
        keys = [self._key("lock", lease.name)]
        return bool(await self._call(self._renew(keys=keys, args=[lease.value, _ms(lease_seconds)])))

    async def release(self, lease: Lease) -> None:
        await self._call(self._release(keys=[self._key("lock", lease.name)], args=[lease.value]))

    async def holds(self, lease: Lease) -> bool:
        return bool(await self._call(self.client.get(self._key("lock", lease.name))) == lease.value)

    async def held(self, name: str) -> bool:
        return bool(await self._call(self.client.exists(self._key("lock", name))))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


# -- the failure policy ---------------------------------------------------------------------------------


class ResilientState(StateStore):
    """The configured store, with this process's memory standing in while it cannot be reached.

    Claims are checked in memory first (a message seen here is not claimed again), then in the store;
    unreachable, the memory's answer stands (fail open: answered, perhaps twice across replicas).
    Sessions are written to both, so a replica pages its own answers through an outage, and sessions
    made during one are found afterwards. Cooldowns use the memory while the store is down. The lease
    fails closed: StateUnavailable. After a failure the store is left alone for `retry_after` seconds
    (no message waits for a timeout meanwhile), and the log gets at most a line every `log_every` s.
    """

    def __init__(
        self,
        store: StateStore,
        *,
        fallback: MemoryState | None = None,
        retry_after: float = RETRY_AFTER,
        log_every: float = LOG_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.backend = store.backend
        self.memory = fallback or MemoryState(clock)
        self.failures = 0  # operations that fell back to memory, or were refused, since the start
        self._retry_after = retry_after
        self._log_every = log_every
        self._clock = clock
        self._down_until = 0.0
        self._down = False
        self._logged_at: float | None = None
        self._held_back = 0

    @property
    def where(self) -> str:
        return self.store.where

    @property
    def reachable(self) -> bool:
        """False from a failure until the store answers again."""
        return not self._down

    def _failed(self, error: StateUnavailable) -> None:
        now = self._clock()
        self.failures += 1
        self._down = True
        self._down_until = now + self._retry_after
        if self._logged_at is not None and now - self._logged_at < self._log_every:
            self._held_back += 1
            return
        held, self._held_back, self._logged_at = self._held_back, 0, now
        more = f" ({held} more failures since the last line)" if held else ""
        _log.warning(
            "the state store is unreachable (%s); answering anyway: dedupe, sessions and cooldowns are this "
            "process's own, and reindexes are refused, until it is back%s",
            error,
            more,
        )

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            _log.info("the state store is reachable again (%s)", self.where)

    async def _try(self, work: Callable[[], Awaitable[T]]) -> T:
        """`work()` on the store; StateUnavailable at once while it is left alone after a failure."""
        if self._down and self._clock() < self._down_until:
            self.failures += 1
            self._held_back += 1
            raise StateUnavailable(f"{self.where}: unreachable a moment ago")
        try:
            result = await work()
        except StateUnavailable as error:
            self._failed(error)
            raise
        self._recovered()
        return result

    async def ping(self) -> None:
        try:
            await self.store.ping()
        except StateUnavailable as error:
            self._failed(error)
            raise
        self._recovered()

    async def close(self) -> None:
        await self.store.close()

    async def claim(self, key: str, ttl: float) -> bool:
        if not await self.memory.claim(key, ttl):
            return False
        try:
            return await self._try(lambda: self.store.claim(key, ttl))
        except StateUnavailable:
            return True  # fail open

    async def put_session(self, key: str, value: str, ttl: float) -> None:
        await self.memory.put_session(key, value, ttl)
        with contextlib.suppress(StateUnavailable):
            await self._try(lambda: self.store.put_session(key, value, ttl))

    async def get_session(self, key: str) -> Session | None:
        try:
            found = await self._try(lambda: self.store.get_session(key))
        except StateUnavailable:
            found = None
        return found or await self.memory.get_session(key)

    async def turn_page(self, key: str, pages: int) -> Turn | None:
        try:
            turned = await self._try(lambda: self.store.turn_page(key, pages))
        except StateUnavailable:
            turned = None
        if turned is None:
            return await self.memory.turn_page(key, pages)
        return turned

    async def admit(self, user: str, seconds: float) -> float:
        try:
            return await self._try(lambda: self.store.admit(user, seconds))
        except StateUnavailable:
            return await self.memory.admit(user, seconds)

    async def acquire(self, name: str, lease_seconds: float) -> Lease | None:
        return await self._try(lambda: self.store.acquire(name, lease_seconds))

    async def renew(self, lease: Lease, lease_seconds: float) -> bool:
        return await self._try(lambda: self.store.renew(lease, lease_seconds))

    async def release(self, lease: Lease) -> None:
        await self._try(lambda: self.store.release(lease))

    async def holds(self, lease: Lease) -> bool:
        return await self._try(lambda: self.store.holds(lease))

    async def held(self, name: str) -> bool:
        return await self._try(lambda: self.store.held(name))


class LeaseKeeper:
    """Holds a lease while work runs: renews it every third of its length in the background, gives the
    work (running in a thread) the fencing check `fence`, and releases it at the end (`release`)."""

    def __init__(self, state: StateStore, lease: Lease, lease_seconds: float = LEASE_SECONDS) -> None:
        self.state = state
        self.lease = lease
        self.lease_seconds = lease_seconds
        self.lost = False
        self._confirmed = time.monotonic()  # when the store last said the lease is ours (it was just taken)
        self._loop = asyncio.get_running_loop()
        self._renewing = self._loop.create_task(self._renew())

    @classmethod
    async def take(cls, state: StateStore, name: str, lease_seconds: float = LEASE_SECONDS) -> LeaseKeeper | None:
        """Take the lock `name` and keep it, or None when another holds it; StateUnavailable when the
        store cannot be reached (the caller refuses the work: the lease fails closed)."""
        lease = await state.acquire(name, lease_seconds)
        return cls(state, lease, lease_seconds) if lease is not None else None

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                confirming = time.monotonic()
                if not await self.state.renew(self.lease, self.lease_seconds):
                    self.lost = True
                    _log.warning("the %s lease (token %d) was lost; its work will not switch the index", *self._name)
                    return
                self._confirmed = confirming
            except StateUnavailable as error:
                _log.info("could not renew the %s lease (token %d): %s; trying again", *self._name, error)

    @property
    def _name(self) -> tuple[str, int]:
        return self.lease.name, self.lease.token

    def give_up(self) -> None:
        """Make the fencing check fail from now on (the work stops at its next check, writing nothing more);
        the lease stays held until `release`."""
        self.lost = True

    def fence(self) -> int | None:
        """The fencing check, for the work's thread (never the event loop's): the lease's token while the
        store says it is still held, else None (lost or given up). When the store cannot say, the token while
        the store confirmed the lease less than half its length ago (no one else can hold it before it
        expires: a blip of the store does not stop an ingest between two batches), else None (fail closed)."""
        if self.lost:
            return None
        asking = time.monotonic()
        check = asyncio.run_coroutine_threadsafe(self.state.holds(self.lease), self._loop)
        try:
            held = check.result(timeout=FENCE_TIMEOUT)
        except (StateUnavailable, TimeoutError) as error:
            if time.monotonic() - self._confirmed < self.lease_seconds / 2:
                _log.info("the %s lease (token %d) could not be checked (%s); held as renewed", *self._name, error)
                return self.lease.token
            _log.warning("the %s lease (token %d) could not be checked: %s", *self._name, error)
            return None
        if held:
            self._confirmed = max(self._confirmed, asking)
        return self.lease.token if held else None

    async def release(self) -> None:
        """Stop renewing and free the lock (if this lease still holds it)."""
        self._renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._renewing
        try:
            await self.state.release(self.lease)
        except StateUnavailable as error:
            _log.info("could not release the %s lease (token %d): %s; it expires by itself", *self._name, error)


def open_state(
    data_dir: Path, redis_url: str | None = None, *, writable: bool = True, clock: Callable[[], float] = time.monotonic
) -> ResilientState:
    """The state store the settings ask for: Redis when `redis_url` is set, else SQLite in `data_dir`, else
    (`writable` False: a read-only replica's data dir) this process's memory; with the failure policy."""
    store: StateStore
    if redis_url:
        store = RedisState(redis_url)
    elif writable:
        store = SqliteState(data_dir / STATE_FILE)
    else:
        store = MemoryState(clock)
    return ResilientState(store, clock=clock)
