"""Opening `KB_DATA_DIR/bot.sqlite`, the file that `bot.records` and `bot.state` share.

Every connection gets a busy timeout and `synchronous = NORMAL`, and the file is put in WAL mode.
SQLite does not call the busy handler for `PRAGMA journal_mode = WAL`: while another connection (a
thread of this process, another replica, `python -m bot gaps`) is switching a fresh file to WAL, the
pragma fails at once with "database is locked". So the switch is retried here until the busy timeout.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

RETRY_PAUSE = 0.01  # s between two tries of the WAL switch


def connect(path: Path, busy_ms: int) -> sqlite3.Connection:
    """An autocommit connection to `path` (created with its folder), in WAL mode, that waits up to
    `busy_ms` for a lock; raises sqlite3.OperationalError when the file stays locked that long."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=busy_ms / 1000, isolation_level=None)
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        deadline = time.monotonic() + busy_ms / 1000
        while True:
            try:
                connection.execute("PRAGMA journal_mode = WAL")  # kept by the file once set
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(RETRY_PAUSE)
        connection.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable at checkpoints, never corrupt
    except BaseException:
        connection.close()
        raise
    return connection
