"""What a source of the collection is: a file or folder read in place, or a git repository followed in a mirror.

`KB_SOURCES` (or `sources` in `config/settings.toml`) lists the sources. One line in `.env` covers the
simple cases, items separated by commas:

    KB_SOURCES=/srv/notes,/srv/more.md                       files and folders, read where they are
    KB_SOURCES=https://github.com/o/r.git#main:posts         a repository, its branch `main`, folder `posts/`
    KB_SOURCES=git@github.com:o/r.git,file:///srv/r.git#:posts,/srv/checkout#main

A git source is a URL (`https`, `http`, `ssh`, `git` or `file`), an scp-style `user@host:path`, or a path
ending in `.git`; any of these, or a local repository's path, may be followed by `#<branch>` and
`:<folder>` (Docker's syntax for git build contexts; `#:posts` keeps the remote's default branch).
A plain path is read in place even when it is a git checkout (its links then come from its remote).

The structured form, a JSON list in `KB_SOURCES` or tables in TOML, adds a name and link templates:

    [[sources]]
    git = "https://github.com/o/r.git"
    branch = "main"
    folder = "posts"
    name = "reading notes"                            # how /stats names it (default: its public URL)
    url = "https://notes.example.com/{path}#L{line}"  # default: derived from a GitHub, GitLab or Gitee remote
    files = { "collections.txt" = "https://example.com/collections.pdf#page={page}" }

A template may use `{path}` (the file's path in its repository, or under the source's folder), `{file}`
(the file's path under the source's folder), `{line}` and `{end_line}` (the entry's lines), `{commit}`
(the commit that last changed the file), `{page}` (for PDF text: the page of the entry's section in the
table of contents) and `{plain}` (`?plain=1` for files GitHub and GitLab render, so a line anchor works).
`files` maps glob patterns of file paths (under the source's folder) to their own templates.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PLACEHOLDERS = frozenset({"path", "file", "line", "end_line", "commit", "page", "plain"})

_URL_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://")
_SCP = re.compile(r"^[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:(?!//)")
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)(?!.*@\{)[^\s~^:?*\[\\]+(?<![./])$")


def check_template(template: str) -> str:
    """`template` when it is a web URL whose `{placeholders}` are all known; ValueError otherwise."""
    if not template.startswith(("http://", "https://")):
        raise ValueError(f"link template {template!r} is not a web URL")
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise ValueError(f"link template {template!r}: {error}") from None
    unknown = sorted({name for name in fields if name not in PLACEHOLDERS})
    if unknown:
        known = ", ".join(f"{{{name}}}" for name in sorted(PLACEHOLDERS))
        raise ValueError(f"link template {template!r} uses {', '.join(unknown)}; it may use {known}")
    return template


def is_git_url(text: str) -> bool:
    """Whether `text` names a repository by URL (`https://…`, `ssh://…`, `file://…`, `user@host:path`)
    or as a path ending in `.git`."""
    return text.startswith(_URL_SCHEMES) or bool(_SCP.match(text)) or text.rstrip("/").endswith(".git")


def public_url(url: str) -> str:
    """`url` without credentials: `https://token@github.com/o/r.git` -> `https://github.com/o/r.git`."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


class SourceSpec(BaseModel):
    """One source of the collection: `path` (a file or folder read in place) or `git` (a repository
    followed in a mirror under KB_DATA_DIR), with optional link templates (see the module docstring).

    A path source is path-like (`os.fspath` gives its path); a git source is not, since its files live
    in the mirror.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path | None = None
    git: str | None = None
    branch: str | None = None
    folder: str = ""
    name: str | None = None
    url: str | None = None
    files: dict[str, str] = Field(default_factory=dict)

    @field_validator("path", mode="before")
    @classmethod
    def _path_is_named(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():  # Path("") is the working folder
            raise ValueError("an empty path")
        return value

    @field_validator("git")
    @classmethod
    def _git_names_a_repository(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.strip():  # Path("") is the working folder, and whatever repository it is in
            raise ValueError("an empty git URL")
        if "://" in value:
            parts = urlsplit(value)
            if not (parts.path.strip("/") if parts.scheme == "file" else parts.hostname):
                raise ValueError(f"{public_url(value)!r} names no repository")
        return value

    @field_validator("branch")
    @classmethod
    def _branch_is_a_name(cls, value: str | None) -> str | None:
        if value is not None and not _BRANCH.match(value):
            raise ValueError(f"{value!r} is not a branch name")
        return value or None

    @field_validator("folder")
    @classmethod
    def _folder_is_inside(cls, value: str) -> str:
        folder = value.strip().strip("/")
        if folder.startswith("~") or ".." in folder.split("/") or "\\" in folder:
            raise ValueError(f"folder {value!r} must be a relative path inside the repository")
        return folder

    @field_validator("url")
    @classmethod
    def _url_is_a_template(cls, value: str | None) -> str | None:
        return check_template(value) if value else None

    @field_validator("files")
    @classmethod
    def _files_are_templates(cls, value: dict[str, str]) -> dict[str, str]:
        return {pattern: check_template(template) for pattern, template in value.items()}

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSpec:
        if (self.path is None) == (self.git is None):
            raise ValueError("a source needs exactly one of `path` (a file or folder) and `git` (a repository)")
        if self.path is not None and (self.branch or self.folder):
            raise ValueError(f"{self.path}: `branch` and `folder` are for git sources")
        if self.git is not None and not (is_git_url(self.git) or Path(self.git).is_dir()):
            raise ValueError(f"{self.git!r} is not a git URL or a local repository folder")
        return self

    # -- what the source is -----------------------------------------------------------------------
    @property
    def is_git(self) -> bool:
        return self.git is not None

    @property
    def local_repository(self) -> Path | None:
        """For a git source on this machine (`file://` or a path): the repository's folder."""
        if self.git is None or _SCP.match(self.git):
            return None
        if self.git.startswith("file://"):
            return Path(unquote(urlsplit(self.git).path))
        if "://" in self.git:
            return None
        return Path(self.git)

    @property
    def display_name(self) -> str:
        """How chat users see the source: its `name`, a remote repository's public URL (credentials
        removed), or the name of a local file, folder or repository, never a path on the server."""
        if self.name:
            return self.name
        if self.git is None:
            return (self.path or Path()).name or str(self.path)
        local = self.local_repository
        base = (local.name or str(local)).removesuffix(".git") if local is not None else public_url(self.git)
        return f"{base}#{self.branch or ''}:{self.folder}" if self.folder else base

    @property
    def key(self) -> str:
        """What identifies the source's recorded state: repository (without credentials), branch and folder."""
        if self.git is None:
            return str(self.path)
        return f"{public_url(self.git)}#{self.branch or ''}:{self.folder}"

    def mirror_name(self) -> str:
        """A folder name for the mirror: readable, and unique to the repository and branch."""
        assert self.git is not None
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", self.git.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1])
        digest = hashlib.sha256(f"{self.git}#{self.branch or ''}".encode()).hexdigest()[:10]
        return f"{stem.removesuffix('.git').strip('-.')[:40] or 'repo'}-{digest}"

    def __fspath__(self) -> str:
        if self.path is None:
            raise TypeError(f"the git source {self.display_name} has no path of its own (it is read from its mirror)")
        return os.fspath(self.path)

    def __str__(self) -> str:
        return self.key

    def __repr_args__(self) -> Any:
        """As pydantic shows it, but a URL's credentials hidden (settings are logged)."""
        for name, value in super().__repr_args__():
            yield name, public_url(value) if name == "git" and isinstance(value, str) else value


Source = Path | SourceSpec
"""An item of `Settings.sources`: a plain path (the common case, as before), or a `SourceSpec`."""


def parse_source(value: object) -> Source:
    """One item of KB_SOURCES as a Path or a SourceSpec: a git spec in text, a table or JSON object, or a path."""
    if isinstance(value, Path | SourceSpec):
        return value
    if isinstance(value, dict):
        return _validated(value)
    if not isinstance(value, str):
        raise ValueError(f"not a source: {value!r}")
    text = value.strip()
    if not text:
        raise ValueError("an empty source")
    location, hash_mark, fragment = text.partition("#")
    if not hash_mark and not is_git_url(text):
        return Path(text)
    if hash_mark and not is_git_url(location) and (Path(text).exists() or not Path(location).is_dir()):
        return Path(text)  # a path with a `#` in its name, or nothing a repository could be
    branch, _, folder = fragment.partition(":")
    return _validated({"git": location, "branch": branch or None, "folder": folder})


def _validated(fields: dict[str, Any]) -> SourceSpec:
    """A SourceSpec, or ValueError in one line naming each field that is wrong."""
    try:
        return SourceSpec.model_validate(fields)
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"])
            message = problem["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        raise ValueError("; ".join(problems)) from None


def split_sources(value: object) -> object:
    """KB_SOURCES as a list: a JSON list, or items separated by commas (plain paths also by the OS path
    separator, as before)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            loaded: Any = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not a JSON list of sources ({error.msg} at character {error.pos + 1})") from None
        return loaded
    items: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if "#" in part or is_git_url(part):
            items.append(part)
        else:
            items += [piece.strip() for piece in part.split(os.pathsep) if piece.strip()]
    return items


def missing_sources(sources: list[Source]) -> list[str]:
    """The sources that name a file, folder or local repository that does not exist."""
    missing = []
    for source in sources:
        if isinstance(source, Path):
            path: Path | None = source
        else:
            path = source.path if source.path is not None else source.local_repository
        if path is not None and not path.exists():
            missing.append(str(path))
    return missing


def as_specs(sources: list[Source]) -> list[SourceSpec]:
    """Every source as a SourceSpec (a plain path becomes `SourceSpec(path=…)`)."""
    return [SourceSpec(path=source) if isinstance(source, Path) else source for source in sources]
