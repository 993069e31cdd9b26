"""Git, through its command line: the mirror a git source is read from, and what a checkout tells about its files.

A `GitMirror` is a clone of one branch under `KB_DATA_DIR/git/`, kept at the remote's tip: a fetch
then a hard reset, so a rewritten history (a force-push) is followed like any other. It survives
being killed at any point: a clone is made in a temporary folder and renamed into place, lock files
that a killed git left behind are removed before the next command (only the holder of the sync lock
runs git in a mirror), and a mirror that git cannot use any more is cloned again.

A `Checkout` describes the git working tree a source's files are in (a mirror, or a folder source that
happens to be a checkout): its remote, and for each file the commit that last changed it, which is
what a link to the file's lines must name.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from knowledge.source_spec import SourceSpec, public_url

_log = logging.getLogger(__name__)

FETCH_TIMEOUT = 600.0  # a clone or fetch of a large repository over a slow link
LOCAL_TIMEOUT = 120.0  # commands that read the local repository only

# No prompt can block a sync: git fails instead of asking for a password or a host key.
_ENV_OVERRIDES = {
    "GIT_TERMINAL_PROMPT": "0",
    "GCM_INTERACTIVE": "never",
    "LC_ALL": "C",
    "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
}


class GitError(Exception):
    """A git command failed; the message is one line, without credentials."""


def git(
    args: Sequence[str], cwd: Path | None = None, *, timeout: float = LOCAL_TIMEOUT, secret: str | None = None
) -> str:
    """Run `git args` in `cwd` and return its standard output; GitError (one line) when it fails.

    `secret`: a URL whose credentials must not appear in the message (its public form replaces it).
    """
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env={**os.environ, **_ENV_OVERRIDES},
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {timeout:.0f} s") from None
    except OSError as error:
        if isinstance(error, FileNotFoundError) and (cwd is None or cwd.is_dir()):
            raise GitError("git is not installed (no `git` command on PATH)") from None
        # the folder to run in cannot be entered (permission denied), or is gone
        raise GitError(f"git {args[0]}: {error.strerror or error}") from None
    if done.returncode != 0:
        raise GitError(_one_line(done.stderr, args[0], secret))
    return done.stdout


def _one_line(stderr: str, command: str, secret: str | None) -> str:
    """The line of git's error output that says what went wrong (`fatal: …`), credentials removed."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    line = (fatal or lines or [f"git {command} failed"])[0]
    if secret and secret != public_url(secret):
        line = line.replace(secret, public_url(secret))
    return line if len(line) <= 300 else line[:299] + "…"


def commit_date(repository: Path, commit: str) -> datetime:
    """The committer date of `commit`, in UTC."""
    stamp = git(["show", "-s", "--format=%ct", commit], repository).strip()
    return datetime.fromtimestamp(int(stamp), UTC)


@dataclass(frozen=True)
class Checkout:
    """A git working tree that a source's files are in, as far as links need it."""

    root: Path  # the working tree's top folder
    remote_url: str | None  # the remote its branch follows (else `origin`, else the first one)
    head: str
    mirror: bool  # a mirror this process keeps: every commit of it is on the remote, nothing is modified

    def file_commits(self, paths: Collection[str]) -> dict[str, str]:
        """For each of `paths` (relative to `root`) that is committed and unmodified, the commit that last
        changed it on the first-parent line of HEAD (the file is the same there as in the working tree),
        when that commit is on the remote. Others are left out: a link to them would be invented."""
        wanted = set(paths)
        if not wanted:
            return {}
        if not self.mirror:
            wanted -= self._modified()
        found: dict[str, str] = {}
        common = os.path.commonpath(["/" + path for path in wanted]).strip("/") if len(wanted) > 1 else ""
        # One walk of the history: each file's first appearance is its last change. Merges are compared
        # with their first parent, so a change that came with a merge is dated by the merge.
        log = git(
            ["log", "--first-parent", "--diff-merges=first-parent", "--format=%x01%H", "--name-only", "-z", "HEAD"]
            + (["--", common] if common else []),
            self.root,
        )
        commit = ""
        for field in log.split("\x00"):
            field = field.lstrip("\n")
            if field.startswith("\x01"):
                commit = field[1:]
            elif field in wanted and field not in found and commit:
                found[field] = commit
                if len(found) == len(wanted):
                    break
        if self.mirror:
            return found
        published = self._published(set(found.values()))
        return {path: commit for path, commit in found.items() if commit in published}

    def _modified(self) -> set[str]:
        """Files that differ from HEAD in the working tree (modified, added, deleted or untracked)."""
        out = git(["status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames"], self.root)
        return {item[3:] for item in out.split("\x00") if len(item) > 3}

    def _published(self, commits: set[str]) -> set[str]:
        """The `commits` that a remote-tracking branch contains (a commit only made here has no public page)."""
        if not commits:
            return set()
        out = git(["rev-list", "--remotes"], self.root, timeout=LOCAL_TIMEOUT)
        return commits & set(out.split())


def open_checkout(path: Path) -> Checkout | None:
    """The git working tree `path` (a file or folder) is in, or None (none, no commit yet, or no git)."""
    folder = path if path.is_dir() else path.parent
    try:
        root = Path(git(["rev-parse", "--show-toplevel"], folder).strip())
        head = git(["rev-parse", "--verify", "HEAD^{commit}"], root).strip()
    except GitError:
        return None
    return Checkout(root, _remote_url(root), head, mirror=False)


def _remote_url(root: Path) -> str | None:
    try:
        remotes = git(["remote"], root).split()
    except GitError:
        return None
    if not remotes:
        return None
    try:
        upstream = git(["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}"], root).strip()
        remote = upstream.split("/", 1)[0]
    except GitError:
        remote = ""
    remote = remote if remote in remotes else "origin" if "origin" in remotes else remotes[0]
    try:
        return git(["remote", "get-url", remote], root).strip() or None
    except GitError:
        return None


@dataclass(frozen=True)
class MirrorUpdate:
    """What one update of a mirror did: the commit before (None: cloned now) and after, and whether
    the new tip rewrote the history (the old commit is not in the new history: a force-push)."""

    before: str | None
    after: str
    rewritten: bool

    @property
    def moved(self) -> bool:
        return self.before != self.after


class GitMirror:
    """A clone of one branch of a git source under `root` (KB_DATA_DIR/git), read by ingests.

    Only one process at a time may call `ensure` or `update` (the caller holds the sync lock).
    """

    def __init__(self, spec: SourceSpec, root: Path) -> None:
        assert spec.git is not None
        self.spec = spec
        self.url = str(spec.local_repository.resolve()) if spec.local_repository is not None else spec.git
        self.path = root / spec.mirror_name()

    @property
    def folder(self) -> Path:
        """The folder ingests read: the mirror, or its `folder` of the repository. A `folder` that leads out of
        the mirror (a link committed to the repository) is never read: the folder returned does not exist, so
        the source counts as unlisted and its entries are kept."""
        if not self.spec.folder:
            return self.path
        folder = self.path / self.spec.folder
        if not os.path.realpath(folder).startswith(os.path.realpath(self.path) + os.sep):
            _log.warning(
                "%s: the folder %s leads out of the repository; not read", self.spec.display_name, self.spec.folder
            )
            return self.path / ".kb-folder-outside-the-repository"
        return folder

    def head(self) -> str | None:
        """The mirror's commit, or None when it has none (not cloned, or unusable)."""
        if not (self.path / ".git").is_dir():
            return None
        try:
            return git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], self.path).strip() or None
        except GitError:
            return None

    def checkout(self) -> Checkout | None:
        head = self.head()
        return None if head is None else Checkout(self.path, self.spec.git, head, mirror=True)

    def ensure(self) -> MirrorUpdate | None:
        """Make the mirror usable: clean up after a killed git, and clone it when it is missing or broken.
        Returns the clone's update when it cloned, else None. GitError when it cannot clone."""
        self._remove_leftovers()
        if self.path.exists():
            self._remove_stale_locks()
            if self.head() is not None and self._origin_matches() and self._restore():
                return None
            _log.warning("the mirror of %s is unusable; cloning it again", self.spec.display_name)
        return self._clone()

    def update(self) -> MirrorUpdate:
        """Fetch the branch and move the mirror to its tip (following a rewritten history); clone first when
        needed. GitError (one line) when the remote cannot be reached or read: the mirror stays as it was."""
        cloned = self.ensure()
        if cloned is not None:
            return cloned
        before = self.head()
        branch = self.branch()
        refspec = f"+refs/heads/{branch}:refs/remotes/origin/{branch}"
        try:
            git(["fetch", "--quiet", "--no-tags", "origin", refspec], self.path, timeout=FETCH_TIMEOUT, secret=self.url)
        except GitError:
            if self._healthy():
                raise
            _log.warning("the mirror of %s is damaged; cloning it again", self.spec.display_name)
            return self._clone(before)
        after = git(["rev-parse", "--verify", f"refs/remotes/origin/{branch}^{{commit}}"], self.path).strip()
        try:
            git(["reset", "--hard", "--quiet", after], self.path)
            git(["clean", "-fdxq"], self.path)
        except GitError as error:
            _log.warning("the mirror of %s cannot be reset (%s); cloning it again", self.spec.display_name, error)
            return self._clone(before)
        return MirrorUpdate(before, after, self._rewritten(before, after))

    # -- inside -----------------------------------------------------------------------------------
    def _clone(self, before: str | None = None) -> MirrorUpdate:
        """Clone into a temporary folder and rename it into place, so a kill never leaves half a mirror."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        shutil.rmtree(temporary, ignore_errors=True)
        args = ["clone", "--quiet", "--no-tags", "--single-branch"]
        if self.spec.branch:
            args += ["--branch", self.spec.branch]
        try:
            git([*args, "--", self.url, str(temporary)], timeout=FETCH_TIMEOUT, secret=self.url)
        except GitError:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        if self.path.exists():
            old = self.path.with_name(f"{self.path.name}.old-{os.getpid()}")
            self.path.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        temporary.rename(self.path)
        after = self.head()
        if after is None:
            raise GitError(f"the clone of {self.spec.display_name} has no commit")
        return MirrorUpdate(before, after, before is not None and self._rewritten(before, after))

    def _remove_leftovers(self) -> None:
        """Temporary clones and replaced mirrors that a killed process left beside the mirror."""
        if not self.path.parent.is_dir():
            return
        for leftover in self.path.parent.glob(f"{self.path.name}.*-*"):
            _log.info("removing %s, left by an interrupted sync", leftover.name)
            shutil.rmtree(leftover, ignore_errors=True)

    def _remove_stale_locks(self) -> None:
        """Lock files a killed git left (`index.lock`, `refs/…/main.lock`, …): no other git runs here."""
        dot_git = self.path / ".git"
        for lock in [*dot_git.glob("*.lock"), *(dot_git / "refs").rglob("*.lock")]:
            _log.info("removing the stale git lock %s", lock.relative_to(self.path))
            lock.unlink(missing_ok=True)

    def _restore(self) -> bool:
        """Put back the files of the mirror's commit when a killed reset left the working tree between
        two commits; False when git cannot."""
        try:
            if git(["status", "--porcelain", "--untracked-files=all"], self.path).strip():
                _log.info("restoring the files of the mirror of %s", self.spec.display_name)
                git(["reset", "--hard", "--quiet", "HEAD"], self.path)
                git(["clean", "-fdxq"], self.path)
        except GitError:
            return False
        return True

    def _origin_matches(self) -> bool:
        try:
            return git(["remote", "get-url", "origin"], self.path).strip() == self.url
        except GitError:
            return False

    def branch(self) -> str:
        """The branch the mirror follows: the configured one, else the one the clone checked out."""
        if self.spec.branch:
            return self.spec.branch
        return git(["symbolic-ref", "--short", "HEAD"], self.path).strip()

    def _healthy(self) -> bool:
        """Whether the mirror's objects and refs are whole (a failed fetch is then the remote's fault)."""
        try:
            git(["fsck", "--connectivity-only", "--no-progress", "--no-dangling"], self.path)
        except GitError:
            return False
        return self.head() is not None

    def _rewritten(self, before: str | None, after: str) -> bool:
        if before is None or before == after:
            return False
        try:
            git(["merge-base", "--is-ancestor", before, after], self.path)
        except GitError:
            return True
        return False
