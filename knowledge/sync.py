"""Following the sources: git mirrors kept at their remotes' tips, what each source last did, and sync reports.

`SourceSet` owns the configured sources of one knowledge base: it turns them into the folders an ingest
reads (cloning a git source's mirror when it is missing, repairing one a killed sync left), fetches the
git sources, and records per source (in `KB_DATA_DIR/sources.json`) the commit the index holds, when the
last sync succeeded and why the last one failed. `KnowledgeBase.sync` puts these together.

Only one process syncs or ingests git sources at a time (`KB_DATA_DIR/sync.lock`, released by the kernel
if the process dies), so git never runs twice in a mirror.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from knowledge.gitsource import GitError, GitMirror, commit_date, open_checkout
from knowledge.locations import SourceRoot
from knowledge.lock import ingest_lock
from knowledge.source_spec import Source, SourceSpec, as_specs

if TYPE_CHECKING:
    from knowledge.base import IngestReport

_log = logging.getLogger(__name__)

STATE_FILE = "sources.json"
MIRRORS_FOLDER = "git"
SYNC_LOCK = "sync.lock"


@dataclass(frozen=True)
class SourceStatus:
    """One source as `/stats` and `/healthz` show it; `name` is never a path on the server."""

    name: str
    kind: Literal["git", "folder", "file"]
    branch: str | None = None
    commit: str | None = None  # the commit whose files the index holds (git sources)
    commit_date: datetime | None = None
    synced_at: datetime | None = None  # the last successful sync (git: fetch, and ingest when it moved)
    error: str | None = None  # why the last sync failed, one line; None when it succeeded
    failed_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "branch": self.branch,
            "commit": self.commit,
            "commit_date": _iso(self.commit_date),
            "synced_at": _iso(self.synced_at),
            "error": self.error,
            "failed_at": _iso(self.failed_at),
        }


@dataclass(frozen=True)
class SourceSync:
    """What one sync did to one git source: its commit before and after, and whether it failed."""

    name: str
    before: str | None
    after: str | None
    rewritten: bool = False  # the remote's history was rewritten (a force-push), and followed
    error: str | None = None

    @property
    def moved(self) -> bool:
        return self.error is None and self.before != self.after

    def outcome(self) -> str:
        """One line for a terminal: `name: before -> after` (commits cut to 12), `unchanged`, or the error."""
        moved = f"{(self.before or 'none')[:12]} -> {(self.after or 'none')[:12]}" if self.moved else "unchanged"
        return f"{self.name}: {self.error or moved}{' (history rewritten)' if self.rewritten else ''}"


@dataclass(frozen=True)
class SyncReport:
    """What `KnowledgeBase.sync` did: each git source's fetch, and the ingest when one ran.

    `key` names the state the sync reached (each git source's indexed commit): a digest of the entries
    it added is posted once per key (see `KnowledgeBase.pending_digest`).
    """

    sources: tuple[SourceSync, ...]
    ingest: IngestReport | None  # None: nothing changed, nothing was indexed
    seconds: float
    key: str

    @property
    def failed(self) -> tuple[SourceSync, ...]:
        return tuple(source for source in self.sources if source.error is not None)

    @property
    def embedded(self) -> int:
        return self.ingest.summary.embedded if self.ingest is not None else 0

    @property
    def added(self) -> int:
        return self.ingest.summary.added if self.ingest is not None else 0

    def failure(self) -> str | None:
        """One line naming each source that could not be synced and why; None when all were."""
        failed = self.failed
        return "; ".join(f"{source.name}: {source.error}" for source in failed) if failed else None

    def as_dict(self) -> dict[str, object]:
        return {
            "sources": [vars(source) for source in self.sources],
            "ingest": self.ingest.as_dict() if self.ingest is not None else None,
            "embedded": self.embedded,
            "added": self.added,
            "seconds": self.seconds,
            "key": self.key,
        }


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _when(stamp: object) -> datetime | None:
    return datetime.fromtimestamp(float(stamp), UTC) if isinstance(stamp, int | float) else None


class SourceStates:
    """Per-source records in one JSON file, replaced atomically (a kill leaves the old or the new one)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            _log.warning("cannot read %s (%s); the sources' history starts again", self.path, error)
            return {}
        return data if isinstance(data, dict) else {}

    def update(self, key: str, **fields: object) -> None:
        states = self.load()
        states[key] = {**states.get(key, {}), **fields}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(states, file, ensure_ascii=False, indent=1)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


class SourceSet:
    """The configured sources of one knowledge base, their mirrors and their recorded state."""

    def __init__(self, sources: Sequence[Source], data_dir: Path) -> None:
        self.specs = as_specs(list(sources))
        self.data_dir = data_dir
        self.states = SourceStates(data_dir / STATE_FILE)
        self._mirrors: dict[str, GitMirror] = {}

    @property
    def git_specs(self) -> list[SourceSpec]:
        return [spec for spec in self.specs if spec.is_git]

    def mirror(self, spec: SourceSpec) -> GitMirror:
        if spec.key not in self._mirrors:
            self._mirrors[spec.key] = GitMirror(spec, self.data_dir / MIRRORS_FOLDER)
        return self._mirrors[spec.key]

    @contextlib.contextmanager
    def locked(self, needed: bool = True) -> Iterator[None]:
        """Hold the sync lock (when `needed`: an ingest of git sources, or a sync); IngestLocked when another
        process holds it."""
        if not needed:
            yield
            return
        with ingest_lock(self.data_dir / SYNC_LOCK):
            yield

    # -- for an ingest ------------------------------------------------------------------------------
    def roots(self, specs: Sequence[SourceSpec]) -> list[SourceRoot]:
        """The sources as an ingest reads them. A git source's mirror is repaired, or cloned when it is
        missing; one that cannot be cloned is a missing folder, so its entries stay as they were."""
        roots = []
        for spec in specs:
            if spec.git is None:
                assert spec.path is not None
                wants_checkout = not spec.url or "{commit}" in spec.url + "".join(spec.files.values())
                checkout = open_checkout(spec.path) if wants_checkout and spec.path.exists() else None
                roots.append(SourceRoot(spec, spec.path, checkout, str(spec.path)))
                continue
            mirror = self.mirror(spec)
            try:
                cloned = mirror.ensure()
            except (GitError, OSError) as error:
                self._failed(spec, error)
            else:
                if cloned is not None:
                    self._fetched(spec)
            roots.append(SourceRoot(spec, mirror.folder, mirror.checkout(), spec.display_name))
        return roots

    def indexed(self, roots: Sequence[SourceRoot]) -> None:
        """Record that the index now holds the git sources' files at their mirrors' commits."""
        for root in roots:
            if root.spec.is_git and root.checkout is not None:
                self.states.update(
                    root.spec.key,
                    indexed_commit=root.checkout.head,
                    commit_date=commit_date(root.checkout.root, root.checkout.head).timestamp(),
                    indexed_at=time.time(),
                )

    # -- for a sync ---------------------------------------------------------------------------------
    def fetch(self) -> list[SourceSync]:
        """Bring every git source's mirror to its remote's tip; a failure is recorded and reported, and
        leaves that mirror (and so the index) as it was."""
        results = []
        for spec in self.git_specs:
            mirror = self.mirror(spec)
            before = mirror.head()
            try:
                update = mirror.update()
            except (GitError, OSError) as error:
                self._failed(spec, error)
                results.append(SourceSync(spec.display_name, before, before, error=_line(error)))
                continue
            self._fetched(spec)
            if update.rewritten:
                _log.warning("%s: the history was rewritten; following it to %s", spec.display_name, update.after[:12])
            results.append(SourceSync(spec.display_name, update.before, update.after, update.rewritten))
        return results

    def behind(self) -> bool:
        """Whether a git source's mirror holds a commit the index does not."""
        states = self.states.load()
        for spec in self.git_specs:
            head = self.mirror(spec).head()
            if head is not None and states.get(spec.key, {}).get("indexed_commit") != head:
                return True
        return False

    def failed_ingest(self, moved: Sequence[SourceSync], error: Exception) -> None:
        """An ingest after a fetch failed: the sources that moved are not served at their new commits."""
        names = {source.name for source in moved}
        for spec in self.git_specs:
            if spec.display_name in names:
                self._failed(spec, error, prefix="indexing failed: ")

    def key(self) -> str:
        """The state the index holds: each git source's indexed commit (empty without git sources)."""
        states = self.states.load()
        return ";".join(
            f"{spec.display_name}@{states.get(spec.key, {}).get('indexed_commit') or '-'}" for spec in self.git_specs
        )

    def status(self) -> list[SourceStatus]:
        """Every source as `/stats` shows it."""
        states = self.states.load()
        statuses = []
        for spec in self.specs:
            if spec.git is None:
                kind: Literal["git", "folder", "file"] = "file" if spec.path and spec.path.is_file() else "folder"
                statuses.append(SourceStatus(spec.display_name, kind))
                continue
            state = states.get(spec.key, {})
            statuses.append(
                SourceStatus(
                    name=spec.display_name,
                    kind="git",
                    branch=spec.branch or state.get("branch"),
                    commit=state.get("indexed_commit"),
                    commit_date=_when(state.get("commit_date")),
                    synced_at=_when(state.get("synced_at")),
                    error=state.get("error"),
                    failed_at=_when(state.get("failed_at")),
                )
            )
        return statuses

    # -- records ------------------------------------------------------------------------------------
    def _fetched(self, spec: SourceSpec) -> None:
        branch = spec.branch
        if branch is None:
            with contextlib.suppress(GitError):
                branch = self.mirror(spec).branch()
        self.states.update(spec.key, synced_at=time.time(), error=None, failed_at=None, branch=branch)

    def _failed(self, spec: SourceSpec, error: Exception, prefix: str = "") -> None:
        line = prefix + _line(error)
        _log.warning("sync of %s failed: %s", spec.display_name, line)
        self.states.update(spec.key, error=line, failed_at=time.time())


def _line(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:299] + "…"
