"""Sources in settings: plain paths as before, git repositories in one line, tables with link templates."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic_settings import SettingsConfigDict

from knowledge.errors import SettingsError
from knowledge.settings import Settings, load_settings
from knowledge.source_spec import SourceSpec


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    for name in ("notes", "more", "checkout"):
        (tmp_path / name).mkdir()
    return tmp_path


def sources_from(monkeypatch: pytest.MonkeyPatch, value: str) -> list[Path | SourceSpec]:
    monkeypatch.setenv("KB_SOURCES", value)
    return load_settings(Settings, _env_file=None).sources


def test_paths_in_one_line_are_read_as_before(monkeypatch: pytest.MonkeyPatch, folders: Path) -> None:
    assert sources_from(monkeypatch, f"{folders}/notes,{folders}/more") == [folders / "notes", folders / "more"]
    assert sources_from(monkeypatch, f"{folders}/notes:{folders}/more") == [folders / "notes", folders / "more"]


@pytest.mark.parametrize(
    ("value", "git", "branch", "folder", "name"),
    [
        (
            "https://github.com/daiwk/collections.git",
            "https://github.com/daiwk/collections.git",
            None,
            "",
            "https://github.com/daiwk/collections.git",
        ),
        (
            "https://github.com/daiwk/collections.git#master:posts",
            "https://github.com/daiwk/collections.git",
            "master",
            "posts",
            "https://github.com/daiwk/collections.git#master:posts",
        ),
        (
            "git@github.com:daiwk/collections.git#:posts/",
            "git@github.com:daiwk/collections.git",
            None,
            "posts",
            "git@github.com:daiwk/collections.git#:posts",
        ),
        ("ssh://git@gitlab.com/g/notes#dev", "ssh://git@gitlab.com/g/notes", "dev", "", "ssh://gitlab.com/g/notes"),
        (
            "https://user:token@example.com/notes.git",
            "https://user:token@example.com/notes.git",
            None,
            "",
            "https://example.com/notes.git",
        ),
    ],
)
def test_a_git_source_in_one_line(
    monkeypatch: pytest.MonkeyPatch, value: str, git: str, branch: str | None, folder: str, name: str
) -> None:
    [source] = sources_from(monkeypatch, value)
    assert isinstance(source, SourceSpec)
    assert (source.git, source.branch, source.folder, source.display_name) == (git, branch, folder, name)
    assert "token" not in repr(source) and "token" not in str(source) and "token" not in source.key


def test_a_local_repository_followed_by_a_branch_is_a_git_source(
    monkeypatch: pytest.MonkeyPatch, folders: Path
) -> None:
    sources = sources_from(monkeypatch, f"{folders}/notes, {folders}/checkout#main:posts")
    assert sources[0] == folders / "notes"
    spec = sources[1]
    assert isinstance(spec, SourceSpec) and spec.local_repository == folders / "checkout"
    assert (spec.branch, spec.folder) == ("main", "posts")
    assert spec.display_name == "checkout#main:posts"  # never the path on the server
    with pytest.raises(TypeError, match="no path of its own"):
        Path(spec)
    [url] = sources_from(monkeypatch, f"file://{folders}/checkout#main")
    assert isinstance(url, SourceSpec) and url.local_repository == folders / "checkout"
    assert url.display_name == "checkout"


def test_tables_in_json_and_toml(monkeypatch: pytest.MonkeyPatch, folders: Path, tmp_path: Path) -> None:
    sources = sources_from(
        monkeypatch,
        f'[{{"path": "{folders}/notes", "url": "https://notes.example.com/{{path}}#L{{line}}"}}, "{folders}/more"]',
    )
    assert sources[0] == SourceSpec(path=folders / "notes", url="https://notes.example.com/{path}#L{line}")
    assert Path(sources[0]) == folders / "notes"  # a path source is path-like
    assert sources[1] == folders / "more"
    monkeypatch.delenv("KB_SOURCES")
    toml = tmp_path / "settings.toml"
    toml.write_text(
        f"""
[[sources]]
git = "https://github.com/daiwk/collections.git"
branch = "master"
folder = "posts"
name = "daiwk/collections"

[[sources]]
path = "{folders}/more"
files = {{ "*.txt" = "https://example.com/notes.pdf#page={{page}}" }}
""",
        encoding="utf-8",
    )

    class Local(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": toml})

    git, more = load_settings(Local, _env_file=None).sources
    assert isinstance(git, SourceSpec) and (git.git, git.branch, git.folder) == (
        "https://github.com/daiwk/collections.git",
        "master",
        "posts",
    )
    assert git.display_name == "daiwk/collections"
    assert isinstance(more, SourceSpec) and more.files == {"*.txt": "https://example.com/notes.pdf#page={page}"}


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("KB_SOURCES", '[{"git": "https://x.example/r.git", "url": "https://x.example/{nope}"}]', "uses nope"),
        ("KB_SOURCES", '[{"git": "https://x.example/r.git", "url": "ftp://x.example/{path}"}]', "not a web URL"),
        ("KB_SOURCES", '[{"git": "https://x.example/r.git", "folder": "../etc"}]', "inside the repository"),
        ("KB_SOURCES", '[{"path": "/tmp", "git": "https://x.example/r.git"}]', "exactly one of"),
        ("KB_SOURCES", "https://x.example/r.git#bad branch", "not a branch name"),
        ("KB_SOURCES", '[{"git": "https://x.example/r.git", "colour": "blue"}]', "colour"),
        ("KB_SOURCES", "file:///nonexistent/repo.git", "no such file or folder: /nonexistent/repo.git"),
        # Path("") is the working folder: these followed whatever repository the bot was started in
        ("KB_SOURCES", '[{"git": ""}]', "git: an empty git URL"),
        ("KB_SOURCES", '[{"path": ""}]', "path: an empty path"),
        ("KB_SOURCES", "https://", "'https://' names no repository"),
        ("KB_SOURCES", "https://#main", "'https://' names no repository"),
        ("KB_SOURCES", "file://", "'file://' names no repository"),
        ("KB_SOURCES", "https://s3cret@:443/r.git", "'https://:443/r.git' names no repository"),
        ("KB_SYNC_INTERVAL", "soon", "'soon' is not an interval such as 30m, 1h or 1d"),
        ("KB_SYNC_INTERVAL", "5s", "at least 10 seconds"),
        ("KB_SYNC_INTERVAL", "-1h", "not an interval"),
    ],
)
def test_a_bad_source_or_interval_is_one_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(Settings, _env_file=None)
    message = str(raised.value)
    assert message.startswith(f"invalid setting {name}: ") and says in message
    assert "\n" not in message and "s3cret" not in message


@pytest.mark.parametrize(
    ("value", "interval"),
    [("1h", timedelta(hours=1)), ("30m", timedelta(minutes=30)), ("90", timedelta(seconds=90)), ("1d", timedelta(days=1)),
     ("2.5h", timedelta(hours=2.5)), ("off", None), ("0", None)],
)  # fmt: skip
def test_sync_intervals(monkeypatch: pytest.MonkeyPatch, value: str, interval: timedelta | None) -> None:
    monkeypatch.setenv("KB_SYNC_INTERVAL", value)
    assert load_settings(Settings, _env_file=None).sync_interval == interval


def test_syncing_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KB_SYNC_INTERVAL", raising=False)
    assert Settings(_env_file=None).sync_interval is None
