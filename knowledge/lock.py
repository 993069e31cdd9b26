"""The writer's lock: one ingest at a time per data directory (flock, released by the kernel if we die).

The lock is local to one machine: with a Chroma server shared by several machines, run ingests
from a single indexer.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from knowledge.errors import IngestLocked, StorageError


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
