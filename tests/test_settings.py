"""Settings come from the environment, then .env, then config/settings.toml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic_settings import SettingsConfigDict

from knowledge.errors import SettingsError
from knowledge.settings import BUNDLED_SOURCES, Settings, check_sources, load_settings

REPO = Path(__file__).resolve().parent.parent

# A bad value of each kind, and what the one line must say about it.
BAD_SETTINGS = [
    ("KB_EMBEDDER", "foo", "unknown embedder 'foo'"),
    ("KB_EMBEDDER", "sentence-transformers:", "unknown embedder"),
    ("KB_CHROMA_URL", "localhost:8000", "bad Chroma URL 'localhost:8000': expected http://host:port"),
    ("KB_CHROMA_URL", "http://127.0.0.1:abc", "bad Chroma URL"),
    ("KB_DENSE_WEIGHT", "-1", "greater than or equal to 0"),
    ("KB_BM25_WEIGHT", "heavy", "valid number"),
    ("KB_BM25_WEIGHT", "inf", "finite number"),  # was accepted, and search --json wrote Infinity
    ("KB_DENSE_WEIGHT", "nan", "finite number"),
    ("KB_MAX_REMOVAL_SHARE", "nan", "finite number"),
    ("KB_ANSWER_SIZE", "0", "greater than or equal to 1"),
    ("KB_SOURCES", "/nonexistent/notes", "no such file or folder: /nonexistent/notes"),
    ("KB_SOURCES", ",", "names no file, folder or repository"),  # was an ingest refusing to remove everything
    ("KB_SOURCES", "[]", "names no file, folder or repository"),
    ("KB_EMBED_THREADS", "0", "greater than or equal to 1"),
    ("KB_EMBED_THREADS", "99999999999", "less than or equal to 1024"),  # was an OverflowError traceback
    ("KB_SYNC_INTERVAL", "99999999999999999d", "longer than a year"),  # was an OverflowError traceback
]


def test_defaults_point_at_the_bundled_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KB_SOURCES", raising=False)
    monkeypatch.delenv("KB_DATA_DIR", raising=False)
    settings = Settings(_env_file=None)
    assert settings.sources == [BUNDLED_SOURCES]
    assert settings.data_dir == Path("data")
    assert {p.name for p in BUNDLED_SOURCES.iterdir()} >= {"001_2b8a6d15944fc521.txt"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{t}/a/notes,{t}/b/more.md", ["a/notes", "b/more.md"]),
        ('["{t}/a/notes", "{t}/b/x y.md"]', ["a/notes", "b/x y.md"]),
        ("{t}/a/notes:{t}/b/c", ["a/notes", "b/c"]),
    ],
)
def test_sources_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, raw: str, expected: list[str]
) -> None:
    for name in expected:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    monkeypatch.setenv("KB_SOURCES", raw.format(t=tmp_path))
    assert Settings(_env_file=None).sources == [tmp_path / name for name in expected]


def test_precedence_env_over_dotenv_over_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KB_DATA_DIR", raising=False)
    toml = tmp_path / "settings.toml"
    toml.write_text('data_dir = "from-toml"\n', encoding="utf-8")
    dotenv = tmp_path / ".env"
    dotenv.write_text("KB_DATA_DIR=from-dotenv\n", encoding="utf-8")

    class Local(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": toml})

    assert Local(_env_file=None).data_dir == Path("from-toml")
    assert Local(_env_file=dotenv).data_dir == Path("from-dotenv")
    monkeypatch.setenv("KB_DATA_DIR", "from-env")
    assert Local(_env_file=dotenv).data_dir == Path("from-env")


def test_every_setting_is_documented_and_the_example_env_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every field has a row in the README's settings table and a line in config/example.env, and that
    file, with every line uncommented, loads (blank values mean unset)."""
    from bot.settings import BotSettings

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    table = [line for line in readme.splitlines() if line.startswith("| `KB_")]
    example = (root / "config" / "example.env").read_text(encoding="utf-8")
    lines = [line.removeprefix("# ") for line in example.splitlines() if line.startswith(("# KB_", "KB_"))]
    names = {line.split("=", 1)[0] for line in lines}
    for field in BotSettings.model_fields:
        key = f"KB_{field.upper()}"
        assert any(f"`{key}`" in row for row in table), f"{key} has no row in the README's settings table"
        assert key in names, f"{key} is not in config/example.env"
    for key in [*names, "KB_DATA_DIR"]:
        monkeypatch.delenv(key, raising=False)
    # Sources must exist: the example's placeholder paths are made under tmp_path.
    examples = next(line for line in lines if line.startswith("KB_SOURCES=")).split("=", 1)[1].split(",")
    for path in examples:
        (tmp_path / path.lstrip("/")).mkdir(parents=True)
    lines = [
        f"KB_SOURCES={','.join(str(tmp_path / path.lstrip('/')) for path in examples)}"
        if line.startswith("KB_SOURCES=")
        else line
        for line in lines
    ]
    dotenv = tmp_path / ".env"
    dotenv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = BotSettings(_env_file=dotenv)
    assert settings.sources == [tmp_path / path.lstrip("/") for path in examples]
    assert settings.discord_guild_id is None and settings.discord_channels == []  # blank in the example
    assert settings.memory_vectors == 20_000 and settings.http_port == 8080
    assert settings.discord_token is None  # blank
    assert settings.slack_bot_token is not None and settings.slack_bot_token.get_secret_value() == "xoxb-..."
    assert "xoxb" not in repr(settings) and "xapp" not in str(settings)


@pytest.mark.parametrize(("name", "value", "says"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(Settings, _env_file=None)
    message = str(raised.value)
    assert message.startswith(f"invalid setting {name}: ") and says in message
    assert "\n" not in message and "Traceback" not in message


def test_every_bad_setting_is_named_in_the_same_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_DENSE_WEIGHT", "-1")
    monkeypatch.setenv("KB_CHROMA_URL", "nope")
    with pytest.raises(SettingsError) as raised:
        load_settings(Settings, _env_file=None)
    assert "KB_DENSE_WEIGHT" in str(raised.value) and "KB_CHROMA_URL" in str(raised.value)


def test_both_ranking_weights_zero_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no weight on either ranking every entry scores 0 and answers come in an arbitrary order."""
    monkeypatch.setenv("KB_DENSE_WEIGHT", "0")
    assert load_settings(Settings, _env_file=None).bm25_weight == 1.0  # BM25 alone is a ranking
    monkeypatch.setenv("KB_BM25_WEIGHT", "0.0")
    with pytest.raises(SettingsError) as raised:
        load_settings(Settings, _env_file=None)
    assert str(raised.value) == (
        "invalid setting KB_BM25_WEIGHT: and KB_DENSE_WEIGHT are both 0: give one of them a weight"
    )


@pytest.mark.parametrize(("name", "value", "says"), BAD_SETTINGS)
def test_the_knowledge_cli_exits_2_with_one_line(tmp_path: Path, name: str, value: str, says: str) -> None:
    """`python -m knowledge` with a bad setting: one line on stderr naming it, exit 2, no traceback."""
    env = {key: item for key, item in os.environ.items() if not key.startswith("KB_")}
    env |= {name: value, "KB_CONFIG_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "knowledge", "search", "anything"],
        cwd=tmp_path,  # no .env here
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: invalid setting {name}: ") and says in lines[0]
    assert done.stdout == ""


@pytest.mark.parametrize("case", ["settings.toml is a folder", ".env is a folder"])
def test_a_settings_file_that_cannot_be_read_is_one_line_not_skipped(tmp_path: Path, case: str) -> None:
    """Each was skipped without a word, and the bot ran on defaults."""
    config = tmp_path / "config"
    config.mkdir()
    if case == "settings.toml is a folder":
        (config / "settings.toml").mkdir()
    if case == ".env is a folder":
        (tmp_path / ".env").mkdir()
    env = {key: item for key, item in os.environ.items() if not key.startswith("KB_")}
    env |= {"KB_CONFIG_DIR": str(config), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "knowledge", "search", "anything"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    expected = {
        "settings.toml is a folder": f"error: the settings file {config / 'settings.toml'} is not a file",
        ".env is a folder": "error: the settings file .env is not a file",
    }
    assert done.stderr.splitlines() == [expected[case]]


def test_a_malformed_settings_file_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "settings.toml"
    toml.write_text("data_dir = \n", encoding="utf-8")

    class Local(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": toml})

    with pytest.raises(SettingsError) as raised:
        load_settings(Local, _env_file=None)
    assert "settings.toml is not valid TOML" in str(raised.value) and "\n" not in str(raised.value)


def test_a_secret_given_wrong_is_never_repeated_and_a_bad_redis_port_is_a_setting_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.settings import BotSettings

    toml = tmp_path / "settings.toml"
    toml.write_text("discord_token = 123456789\n", encoding="utf-8")  # a number where a string belongs

    class Local(BotSettings):
        model_config = SettingsConfigDict(**{**BotSettings.model_config, "toml_file": toml})

    with pytest.raises(SettingsError) as raised:
        load_settings(Local, _env_file=None)
    assert str(raised.value).startswith("invalid setting KB_DISCORD_TOKEN: ") and "123456789" not in str(raised.value)

    monkeypatch.setenv("KB_REDIS_URL", "redis://:pa55word@cache:notaport/0")  # failed at the first connection
    with pytest.raises(SettingsError) as raised:
        load_settings(BotSettings, _env_file=None)
    assert str(raised.value).startswith("invalid setting KB_REDIS_URL: ") and "pa55word" not in str(raised.value)

    # read as redis-py reads it: a bad query value was a traceback at start
    monkeypatch.setenv("KB_REDIS_URL", "redis://cache:6379/0?password=pa55word&socket_timeout=abc")
    with pytest.raises(SettingsError) as raised:
        load_settings(BotSettings, _env_file=None)
    assert "socket_timeout" in str(raised.value) and "pa55word" not in str(raised.value)


def test_a_settings_file_not_in_utf8_is_one_line_naming_where(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_bytes("KB_ANSWER_SIZE=5  # 每页条目\n".encode("gbk"))
    with pytest.raises(SettingsError) as raised:
        load_settings(Settings, _env_file=dotenv)
    assert "\n" not in str(raised.value) and ".env" in str(raised.value) and "not valid UTF-8" in str(raised.value)


def test_a_missing_source_is_left_to_a_bot_that_sees_the_index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`missing_sources_ok` lets settings load; `check_sources` then raises the same one line only when the index
    holds nothing to serve meanwhile, and asks the index only when a source is missing."""
    monkeypatch.setenv("KB_SOURCES", f"{tmp_path / 'gone'},{tmp_path}")
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SettingsError):
        load_settings(Settings, _env_file=None)
    settings = load_settings(Settings, _env_file=None, missing_sources_ok=True)
    # No on-disk database and no server: no index can exist, refused before anything is loaded or asked.
    with pytest.raises(SettingsError) as raised:
        check_sources(settings, lambda: pytest.fail("no store to ask"))
    assert str(raised.value) == f"invalid setting KB_SOURCES: no such file or folder: {tmp_path / 'gone'}"
    with pytest.raises(SettingsError):
        check_sources(settings)
    (tmp_path / "data" / "chroma").mkdir(parents=True)
    assert check_sources(settings) == [str(tmp_path / "gone")]  # maybe: decided once the index is seen
    with pytest.raises(SettingsError) as raised:
        check_sources(settings, lambda: 0)
    assert str(raised.value) == f"invalid setting KB_SOURCES: no such file or folder: {tmp_path / 'gone'}"
    assert check_sources(settings, lambda: 554) == [str(tmp_path / "gone")]
    served = load_settings(
        Settings, _env_file=None, missing_sources_ok=True, data_dir=tmp_path / "empty", chroma_url="http://127.0.0.1:9"
    )
    assert check_sources(served) == [str(tmp_path / "gone")]  # a server may hold an index
    with pytest.raises(SettingsError):
        check_sources(served, lambda: 0)
    with pytest.raises(SettingsError):  # the allowance lasted only for that call
        load_settings(Settings, _env_file=None)
    monkeypatch.setenv("KB_SOURCES", str(tmp_path))
    present = load_settings(Settings, _env_file=None)
    assert check_sources(present, lambda: pytest.fail("the index is not asked when nothing is missing")) == []
