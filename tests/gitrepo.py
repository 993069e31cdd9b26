"""Real git repositories for tests, made with the git CLI: a working repository and a bare "remote"."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# A fixed identity, and no user or system configuration that could change what git does in a test.
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Curator",
    "GIT_AUTHOR_EMAIL": "curator@example.com",
    "GIT_COMMITTER_NAME": "Curator",
    "GIT_COMMITTER_EMAIL": "curator@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd`; its output, stripped (CalledProcessError with git's message when it fails)."""
    done = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, ["git", *args], done.stdout, done.stderr)
    return done.stdout.strip()


class Repo:
    """A working repository on branch `main`."""

    def __init__(self, path: Path, *, branch: str = "main") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        git(path, "init", "--quiet", "--initial-branch", branch)

    def write(self, name: str, text: str) -> Path:
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return target

    def remove(self, name: str) -> None:
        (self.path / name).unlink()

    def commit(self, message: str = "update the notes") -> str:
        """Commit everything in the working tree; the new commit's hash."""
        git(self.path, "add", "--all")
        git(self.path, "commit", "--quiet", "--message", message)
        return self.head()

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD")

    def git(self, *args: str) -> str:
        return git(self.path, *args)


def bare_remote(path: Path) -> Path:
    """An empty bare repository, to push to as a remote."""
    path.mkdir(parents=True)
    git(path, "init", "--quiet", "--bare", "--initial-branch", "main")
    return path


def line_of(path: Path, text: str) -> int:
    """The 1-based number of the first line of `path` that contains `text`."""
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} is not in {path}")
