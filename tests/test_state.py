"""The state store (bot/state.py) against its real back-ends: SQLite files (from several processes at once),
a real Valkey server (tests/valkey_server.py), and this process's memory; then the failure policy with a
Valkey server that is stopped, and one that never was."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from conftest import Clock, free_port
from valkey_server import ValkeyServer

from bot.state import (
    Lease,
    LeaseKeeper,
    MemoryState,
    RedisState,
    ResilientState,
    SqliteState,
    StateStore,
    StateUnavailable,
    open_state,
    redacted,
)

ROOT = Path(__file__).resolve().parents[1]
SHORT = 0.3  # seconds: a TTL the tests wait out


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    made: StateStore
    if request.param == "memory":
        made = MemoryState()
    elif request.param == "sqlite":
        made = SqliteState(tmp_path / "bot.sqlite")
    else:
        server: ValkeyServer = request.getfixturevalue("valkey_server")
        made = RedisState(server.url, prefix=f"test-{uuid.uuid4().hex[:8]}:")
    try:
        yield made
    finally:
        await made.close()


async def test_a_claim_is_won_once_until_it_expires(store: StateStore) -> None:
    assert await store.claim("C1:1700000000.000100", SHORT)
    assert not await store.claim("C1:1700000000.000100", SHORT)
    assert await store.claim("C1:1700000000.000200", SHORT)  # another key
    await asyncio.sleep(SHORT + 0.1)
    assert await store.claim("C1:1700000000.000100", SHORT)


async def test_concurrent_claims_of_one_key_have_one_winner(store: StateStore) -> None:
    won = await asyncio.gather(*(store.claim("same", 60) for _ in range(50)))
    assert won.count(True) == 1


async def test_a_session_pages_once_per_turn_up_to_its_last_page(store: StateStore) -> None:
    await store.put_session("a1", '{"q": "召回"}', 60)
    found = await store.get_session("a1")
    assert found is not None and (found.value, found.shown) == ('{"q": "召回"}', 1)
    turns = [await store.turn_page("a1", 3) for _ in range(3)]
    assert [(turn.page, turn.moved) for turn in turns if turn] == [(2, True), (3, True), (3, False)]
    assert turns[0] is not None and turns[0].value == '{"q": "召回"}'
    assert await store.get_session("missing") is None and await store.turn_page("missing", 3) is None
    await store.put_session("a1", "again", 60)  # stored again: page 1 again
    again = await store.get_session("a1")
    assert again is not None and (again.value, again.shown) == ("again", 1)


async def test_concurrent_page_turns_show_each_page_once(store: StateStore) -> None:
    await store.put_session("a2", "v", 60)
    turns = await asyncio.gather(*(store.turn_page("a2", 4) for _ in range(10)))
    assert sorted(turn.page for turn in turns if turn and turn.moved) == [2, 3, 4]


async def test_a_session_expires(store: StateStore) -> None:
    await store.put_session("a3", "v", SHORT)
    assert await store.get_session("a3") is not None
    await asyncio.sleep(SHORT + 0.1)
    assert await store.get_session("a3") is None and await store.turn_page("a3", 2) is None


async def test_a_cooldown_admits_then_says_how_long_to_wait(store: StateStore) -> None:
    assert await store.admit("slack:U1", 1.0) == 0.0
    left = await store.admit("slack:U1", 1.0)
    assert 0.5 < left <= 1.0
    assert await store.admit("slack:U2", 1.0) == 0.0  # another user
    await asyncio.sleep(1.1)
    assert await store.admit("slack:U1", 1.0) == 0.0


async def test_a_lease_is_held_by_one_renewed_released_and_its_token_grows(store: StateStore) -> None:
    first = await store.acquire("reindex", 5)
    assert first is not None and await store.holds(first) and await store.held("reindex")
    assert await store.acquire("reindex", 5) is None
    assert await store.renew(first, 5)
    await store.release(first)
    assert not await store.holds(first) and not await store.held("reindex")
    assert not await store.renew(first, 5)
    second = await store.acquire("reindex", 5)
    assert second is not None and second.token > first.token
    assert await store.acquire("other", 5) is not None  # locks are per name
    await store.release(first)  # a stale lease frees nothing
    assert await store.holds(second)


async def test_an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_off(store: StateStore) -> None:
    old = await store.acquire("reindex", SHORT)
    assert old is not None
    await asyncio.sleep(SHORT + 0.1)
    new = await store.acquire("reindex", 5)
    assert new is not None and new.token > old.token
    assert not await store.holds(old) and not await store.renew(old, 5)
    await store.release(old)
    assert await store.holds(new)


async def test_concurrent_acquires_have_one_winner(store: StateStore) -> None:
    leases = await asyncio.gather(*(store.acquire("race", 5) for _ in range(20)))
    assert len([lease for lease in leases if lease is not None]) == 1


# -- SQLite: several processes on one file --------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from bot.state import SqliteState

    async def main() -> None:
        store = SqliteState(Path(sys.argv[1]))
        start = float(sys.argv[2])
        while __import__("time").time() < start:
            await asyncio.sleep(0.001)
        claimed = [key for key in map(str, range(300)) if await store.claim(key, 60)]
        lease = await store.acquire("reindex", 60)
        pages = [turn.page for _ in range(5) if (turn := await store.turn_page("shared", 4)) and turn.moved]
        await store.close()
        print(json.dumps({"claimed": claimed, "token": lease.token if lease else None, "pages": pages}))

    asyncio.run(main())
    """
)


async def test_sqlite_is_first_wins_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite"
    store = SqliteState(path)
    await store.put_session("shared", "v", 60)
    await store.close()
    start = time.time() + 1.5  # every worker is up by then, and they start together
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), str(start)], stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        for _ in range(4)
    ]
    results = [json.loads(worker.communicate(timeout=60)[0]) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    claimed = [key for result in results for key in result["claimed"]]
    assert sorted(claimed, key=int) == [str(n) for n in range(300)]  # each key exactly once
    assert len([result for result in results if result["token"] is not None]) == 1
    assert sorted(page for result in results for page in result["pages"]) == [2, 3, 4]
    mode = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sqlite3; print(sqlite3.connect({str(path)!r}).execute('PRAGMA journal_mode').fetchone()[0])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert mode.stdout.strip() == "wal"


async def test_sqlite_keeps_its_tables_to_itself_and_survives_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite"
    import sqlite3

    with sqlite3.connect(path) as other:  # another module's table in the same file
        other.execute("CREATE TABLE feedback (id INTEGER PRIMARY KEY, vote TEXT)")
        other.execute("INSERT INTO feedback (vote) VALUES ('up')")
    store = SqliteState(path)
    await store.put_session("a1", "v", 60)
    lease = await store.acquire("reindex", 60)
    await store.close()
    again = SqliteState(path)  # as after a restart
    found = await again.get_session("a1")
    assert found is not None and found.value == "v"
    assert lease is not None and not await again.acquire("reindex", 60)  # the lease outlives its process
    await again.close()
    with sqlite3.connect(path) as other:
        tables = {row[0] for row in other.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert other.execute("SELECT vote FROM feedback").fetchall() == [("up",)]
    assert tables == {"feedback", "state_claims", "state_sessions", "state_cooldowns", "state_locks"}


# -- Redis: what only a shared server shows ------------------------------------------------------------


async def test_a_fencing_token_grows_even_after_the_server_lost_its_data(
    start_valkey_server: Callable[[], ValkeyServer],
) -> None:
    server = start_valkey_server()
    store = RedisState(server.url)
    try:
        before = await store.acquire("reindex", 60)
        assert before is not None
        server.restart()  # no persistence: the lock and the token counter are gone
        after = await store.acquire("reindex", 60)
        assert after is not None and after.token > before.token
    finally:
        await store.close()


async def test_keys_expire_in_the_server_by_themselves(valkey_server: ValkeyServer) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    store = RedisState(valkey_server.url, prefix=prefix)
    try:
        await store.claim("k", 60)
        await store.put_session("s", "v", 60)
        await store.admit("u", 60)
        await store.acquire("l", 60)
        ttls = {key: await store.client.pttl(key) async for key in store.client.scan_iter(f"{prefix}*")}
    finally:
        await store.close()
    expiring = {key.removeprefix(prefix) for key, ttl in ttls.items() if 0 < ttl <= 60_000}
    assert expiring == {"claim:k", "session:s", "cooldown:u", "lock:l"}  # only the token counter stays


class BlinkingState(MemoryState):
    """A store that cannot answer while `down`."""

    down = False

    async def holds(self, lease: Lease) -> bool:
        if self.down:
            raise StateUnavailable("the store blinked")
        return await super().holds(lease)


async def test_a_fence_holds_through_a_blip_of_the_store_only_while_the_lease_cannot_have_expired() -> None:
    """An ingest checks its lease after every batch: a store that does not answer for a moment must not stop it
    while no one else can hold the lease yet (it was confirmed less than half its length ago), and must once
    the lease could have expired (fail closed)."""
    state = BlinkingState()
    keeper = await LeaseKeeper.take(state, "reindex", 60)
    assert keeper is not None
    token = keeper.lease.token
    try:
        assert await asyncio.to_thread(keeper.fence) == token
        state.down = True
        assert await asyncio.to_thread(keeper.fence) == token  # confirmed a moment ago
        keeper._confirmed -= 31  # as if the store had said nothing for half the lease
        assert await asyncio.to_thread(keeper.fence) is None
        state.down = False
        assert await asyncio.to_thread(keeper.fence) == token  # the store says it is ours
        keeper.give_up()  # a bot shutting down: the work stops at its next check
        assert await asyncio.to_thread(keeper.fence) is None
    finally:
        await keeper.release()


def test_the_url_is_shown_without_its_password() -> None:
    assert redacted("redis://:hunter2@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redacted("rediss://bot:hunter2@cache/1") == "rediss://bot:***@cache/1"
    assert redacted("redis://cache:6379") == "redis://cache:6379"
    assert redacted("redis://cache:6379/0?password=hunter2&db=1") == "redis://cache:6379/0?…"  # redis-py reads it
    assert "hunter2" not in RedisState("redis://:hunter2@127.0.0.1:1/0").where


# -- the failure policy -----------------------------------------------------------------------------------


async def test_an_unreachable_store_falls_back_to_memory_and_says_so_once_a_minute(
    start_valkey_server: Callable[[], ValkeyServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.state")
    clock = Clock()
    server = start_valkey_server()
    state = ResilientState(RedisState(server.url), clock=clock)
    try:
        assert await state.claim("before", 60)
        await state.put_session("old", "v", 60)
        lease = await state.acquire("reindex", 60)
        assert lease is not None
        server.stop()

        # Claims fail open: a new key is answered; one this process saw is still not answered twice.
        assert await state.claim("during", 60)
        assert not await state.claim("before", 60) and not await state.claim("during", 60)
        # Sessions: this process's own answers still page; new ones are kept in memory.
        turned = await state.turn_page("old", 2)
        assert turned is not None and turned.moved
        await state.put_session("new", "w", 600)
        assert (await state.get_session("new")) is not None
        # Cooldowns in memory; the lease fails closed.
        assert await state.admit("u", 60) == 0.0 and await state.admit("u", 60) > 0
        with pytest.raises(StateUnavailable):
            await state.acquire("reindex", 60)
        with pytest.raises(StateUnavailable):
            await state.holds(lease)
        for second in range(119):  # two minutes of messages: two lines
            clock.advance(1.0)
            await state.claim(f"k{second}", 60)
        lines = [r for r in caplog.records if "state store is unreachable" in r.getMessage()]
        assert len(lines) == 2 and "more failures since the last line" in lines[1].getMessage()
        assert state.failures > 100 and not state.reachable

        server.start()  # back, empty (no persistence)
        clock.advance(10)
        assert await state.claim("after", 60)
        assert state.reachable and "reachable again" in caplog.text
        assert (await state.get_session("new")) is not None  # made during the outage, still found here
    finally:
        await state.close()


async def test_a_store_that_never_answers_costs_no_message_a_timeout_after_the_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = ResilientState(RedisState(f"redis://127.0.0.1:{free_port()}/0"))
    try:
        started = time.monotonic()
        results = [await state.claim(f"k{n}", 60) for n in range(200)]
        assert all(results) and time.monotonic() - started < 2.0
        with pytest.raises(StateUnavailable):
            await state.ping()
    finally:
        await state.close()
    assert len([r for r in caplog.records if "state store is unreachable" in r.getMessage()]) == 1


async def test_open_state_picks_the_back_end_from_the_settings(tmp_path: Path, valkey_server: ValkeyServer) -> None:
    sqlite = open_state(tmp_path)
    redis = open_state(tmp_path, valkey_server.url)
    memory = open_state(tmp_path / "read-only", writable=False)
    try:
        assert isinstance(sqlite.store, SqliteState) and sqlite.store.path == tmp_path / "bot.sqlite"
        assert isinstance(redis.store, RedisState) and redis.where == f"redis at {valkey_server.url}"
        assert isinstance(memory.store, MemoryState)
        for state in (sqlite, redis, memory):
            await state.ping()
            assert await state.claim("k", 60)
    finally:
        for state in (sqlite, redis, memory):
            await state.close()
    assert not (tmp_path / "read-only").exists()  # a read-only replica writes nothing


async def test_memory_forgets_the_oldest_keys_first() -> None:
    memory = MemoryState(limit=3, sessions=2)
    for n in range(4):
        assert await memory.claim(f"k{n}", 60)
        await memory.put_session(f"s{n}", "v", 60)
    assert await memory.claim("k0", 60) and not await memory.claim("k3", 60)  # k0 was forgotten
    assert await memory.get_session("s1") is None and await memory.get_session("s3") is not None


def test_a_lease_names_its_holder_and_token() -> None:
    lease = Lease("reindex", 1700000000000, "host/1/abcd")
    assert lease.value == "host/1/abcd:1700000000000"
