"""Where an entry sits on the web: a link to its place in the collection, made at ingest from its source.

Every entry gets `Entry.location` when its source's public location is known, so that an answer can
always link somewhere: the entry's own primary link, or else its place in the collection
(`Entry.main_link`). The location comes from, in this order, the first that yields a URL:

1. the source's `files` templates whose pattern matches the file;
2. for PDF text that names its published PDF (the `下载本文 pdf: <…>` line), that PDF, with `#page=N`
   from the page the table of contents gives the entry's section;
3. the source's `url` template;
4. for a file in a git checkout (a git source's mirror, or a folder that is a checkout) whose remote is on
   GitHub, GitLab or Gitee: the file's blob URL at the commit that last changed it, with a line anchor.

Links are never invented: a template is used only when every value it needs is known (no commit for a
file with local changes or a commit that is not on the remote, no page outside the table of contents),
and an entry with none has no location; `Entry.place` still says where it sits.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit

from knowledge.entry import Entry, Link, SourceRef
from knowledge.gitsource import Checkout, GitError
from knowledge.parse import find_files, read_text
from knowledge.parse.pdf_text import TOC_ROW, _Headings, parse_toc
from knowledge.source_spec import SourceSpec

_log = logging.getLogger(__name__)

RENDERED_SUFFIXES = (".md", ".markdown", ".mdown", ".mkd", ".rst", ".org", ".adoc", ".asciidoc", ".textile")
"""Files that GitHub and GitLab show rendered: a line anchor needs their source view (`?plain=1`)."""

_NAMED_PDF = re.compile(r"^下载本文\s*pdf\s*[:：]?\s*<?(https?://[^\s<>]+?\.pdf)>?\s*$", re.IGNORECASE | re.MULTILINE)
_SECTION_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)")


def remote_template(remote_url: str | None) -> str | None:
    """The blob-URL template of a GitHub, GitLab or Gitee repository, from any form of its remote URL
    (`https://github.com/o/r.git`, `git@github.com:o/r.git`, `ssh://git@gitlab.com/g/s/r`); None for
    other hosts and for local repositories."""
    if not remote_url:
        return None
    text = remote_url.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("https", "http", "ssh", "git"):
            return None
        host, path = (parts.hostname or "").lower(), parts.path
    else:
        scp = re.match(r"^[^@/]+@([^:/]+):(.+)$", text)
        if not scp:
            return None
        host, path = scp.group(1).lower(), scp.group(2)
    host = host.removeprefix("www.")
    path = path.strip("/").removesuffix(".git")
    segments = [segment for segment in path.split("/") if segment]
    if len(segments) < 2 or any(not re.fullmatch(r"[A-Za-z0-9._-]+", segment) for segment in segments):
        return None
    repository = "/".join(segments)
    if host == "github.com" and len(segments) == 2:
        return f"https://github.com/{repository}/blob/{{commit}}/{{path}}{{plain}}#L{{line}}"
    if host == "gitlab.com" or host.startswith("gitlab."):
        return f"https://{host}/{repository}/-/blob/{{commit}}/{{path}}{{plain}}#L{{line}}"
    if host == "gitee.com" and len(segments) == 2:
        return f"https://gitee.com/{repository}/blob/{{commit}}/{{path}}#L{{line}}"
    return None


def place_text(section_path: Sequence[str], file: str) -> str:
    """What a location link says: `§3.24 cross-entropy vs nllloss` for a numbered section, else the
    section path (`推荐 › 召回`), else the file's name."""
    if section_path:
        inner = section_path[-1]
        return f"§{inner}" if _SECTION_NUMBER.match(inner) else " › ".join(section_path)
    return PurePosixPath(file).name


@dataclass(frozen=True)
class SourceRoot:
    """One source as an ingest reads it: where its files are on this machine, and how their public
    locations are made."""

    spec: SourceSpec
    path: Path  # the file or folder parse_sources reads (for a git source, in its mirror)
    checkout: Checkout | None = None  # the git working tree `path` is in, when it is in one
    name: str = ""  # how stats name the source (default: the spec's display name)

    @property
    def label(self) -> str:
        return self.name or self.spec.display_name

    @property
    def template(self) -> str | None:
        """The source's own template, else the one its checkout's remote gives."""
        if self.spec.url:
            return self.spec.url
        return remote_template(self.checkout.remote_url) if self.checkout is not None else None

    def repository_path(self, file: str) -> str:
        """`file` (as the parser names it) as a path inside the checkout, or under the source otherwise."""
        if self.checkout is None:
            return file
        try:
            base = self.path.resolve().relative_to(self.checkout.root.resolve())
        except ValueError:
            return file
        if self.path.is_file():
            return base.as_posix()
        return (base / file).as_posix() if base.parts else file


@dataclass
class _File:
    root: SourceRoot
    disk: Path
    name: str  # as the parser names it: relative to the source folder
    pdf: str | None = None
    pages: dict[str, int] = field(default_factory=dict)  # section number -> page
    headings: list[tuple[int, str]] = field(default_factory=list)  # (line, heading) in the body
    read: bool = False


class Locator:
    """Fills in `Entry.location` for the entries of the given sources (see the module docstring)."""

    def __init__(self, roots: Sequence[SourceRoot]) -> None:
        self.roots = list(roots)
        self._files: dict[str, _File] = {}
        for root in self.roots:
            for disk, name in find_files([root.path]):
                self._files.setdefault(name, _File(root, disk, name))
        self._commits: dict[int, dict[str, str]] = {}  # per root (by position): repository path -> commit

    def locate(self, entries: Iterable[Entry]) -> list[Entry]:
        """The entries, each with its location when one is known (and without one otherwise)."""
        located = []
        for entry in entries:
            location = self.location(entry)
            located.append(entry if entry.location == location else entry.model_copy(update={"location": location}))
        return located

    def location(self, entry: Entry) -> Link | None:
        """The link to the entry's place: its own source first, then the other places it appears in."""
        for index, ref in enumerate((entry.source, *entry.also_in)):
            known = self._files.get(ref.file)
            if known is None:
                continue
            section = entry.section_path if index == 0 else self._section_at(known, ref)
            link = self._link(known, ref, section)
            if link is not None:
                return link
        return None

    # -- one place ----------------------------------------------------------------------------------
    def _link(self, known: _File, ref: SourceRef, section: Sequence[str]) -> Link | None:
        root = known.root
        if ref.format == "pdf_text":
            self._read_pdf(known)
        repository_path = root.repository_path(known.name)
        values: dict[str, object | None] = {
            "path": quote(repository_path, safe="/"),
            "file": quote(known.name, safe="/"),
            "line": ref.line_start,
            "end_line": ref.line_end,
            "page": self._page(known, section),
            "plain": "?plain=1" if known.name.lower().endswith(RENDERED_SUFFIXES) else "",
        }
        for template in self._templates(known):
            if "{commit}" in template and "commit" not in values:
                values["commit"] = self._commit(root, repository_path)
            url = _fill(template, values)
            if url is not None:
                return Link(url=url, text=place_text(section, known.name), role="location")
        return None

    def _templates(self, known: _File) -> list[str]:
        spec = known.root.spec
        templates = [template for pattern, template in spec.files.items() if fnmatch.fnmatchcase(known.name, pattern)]
        if known.pdf:
            escaped = known.pdf.replace("{", "{{").replace("}", "}}")
            templates += [f"{escaped}#page={{page}}", escaped]
        template = known.root.template
        return [*templates, template] if template else templates

    def _commit(self, root: SourceRoot, repository_path: str) -> str | None:
        """The commit that last changed the file, computed for every file of the source at once."""
        if root.checkout is None:
            return None
        position = self.roots.index(root)
        if position not in self._commits:
            paths = [root.repository_path(f.name) for f in self._files.values() if f.root is root]
            try:
                self._commits[position] = root.checkout.file_commits(paths)
            except GitError as error:
                _log.warning("no links to lines of %s: %s", root.label, error)
                self._commits[position] = {}
        return self._commits[position].get(repository_path)

    # -- PDF text -----------------------------------------------------------------------------------
    def _read_pdf(self, known: _File) -> None:
        """The PDF a PDF text names as its own, the pages of its sections and where its headings are."""
        if known.read:
            return
        known.read = True
        try:
            text = read_text(known.disk)
        except (OSError, ValueError):
            return
        named = _NAMED_PDF.search(text)
        known.pdf = named.group(1) if named else None
        lines = text.split("\n")
        rows, body_start = parse_toc(lines)
        for line in lines[:body_start]:
            row = TOC_ROW.match(line.strip("\ufeff "))
            if row:
                known.pages.setdefault(row.group(1), int(row.group(3)))
        headings = _Headings(rows)
        for number, line in enumerate(lines[body_start:], body_start + 1):
            stripped = line.strip()
            if stripped and headings.match(stripped) is not None:
                known.headings.append((number, stripped))

    @staticmethod
    def _page(known: _File, section: Sequence[str]) -> int | None:
        """The TOC page of the innermost numbered section that has one."""
        for title in reversed(section):
            number = _SECTION_NUMBER.match(title)
            if number and number.group(1) in known.pages:
                return known.pages[number.group(1)]
        return None

    def _section_at(self, known: _File, ref: SourceRef) -> tuple[str, ...]:
        """For another place an entry appears in: the heading above it (PDF text), else nothing known."""
        if ref.format != "pdf_text":
            return ()
        self._read_pdf(known)
        above = [heading for line, heading in known.headings if line <= ref.line_start]
        return (above[-1],) if above else ()


def _fill(template: str, values: dict[str, object | None]) -> str | None:
    """`template` with its placeholders filled, or None when one of them has no value."""
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    if any(values.get(name) is None for name in fields):
        return None
    url = template.format_map({name: values[name] for name in fields})
    try:
        return Link(url=url).url
    except ValueError:
        return None
