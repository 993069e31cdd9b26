"""The writer's lock: one ingest at a time per data directory (flock, released by the kernel if we die).

The flock is local to one machine. Across machines the caller holds a lease elsewhere (the bot's shared
state store) and passes its `Fence`: the writer checks it before it drops orphans and before it switches
the pointer, and records the lease's fencing token in the pointer, so a writer whose lease was lost (and
maybe taken by another) switches nothing, and none switches over a pointer written under a later lease.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from knowledge.errors import IngestLocked, StorageError

Fence = Callable[[], int | None]
"""The fencing check of a lease held for this ingest: its token while it is still held, else None."""


def fenced(fence: Fence | None, before: str) -> int | None:
    """The fencing token of `fence` (None without one); IngestLocked when the lease was lost."""
    if fence is None:
        return None
    token = fence()
    if token is None:
        raise IngestLocked(f"the reindex lease was lost before {before}; another replica may be indexing")
    return token


@contextlib.contextmanager
def ingest_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock on `path`; IngestLocked when another process holds it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise StorageError(f"cannot open the ingest lock {path}: {error.strerror or error}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise IngestLocked(
                f"another ingest is running (pid {holder}); try again when it finishes",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
