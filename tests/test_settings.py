"""Settings come from the environment, then .env, then config/settings.toml."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import SettingsConfigDict

from knowledge.settings import BUNDLED_SOURCES, Settings


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
        ("/a/notes,/b/more.md", [Path("/a/notes"), Path("/b/more.md")]),
        ('["/a/notes", "/b/x y.md"]', [Path("/a/notes"), Path("/b/x y.md")]),
        ("/a/notes:/b/c", [Path("/a/notes"), Path("/b/c")]),
    ],
)
def test_sources_from_the_environment(monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[Path]) -> None:
    monkeypatch.setenv("KB_SOURCES", raw)
    assert Settings(_env_file=None).sources == expected


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
    dotenv = tmp_path / ".env"
    dotenv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = BotSettings(_env_file=dotenv)
    assert settings.discord_guild_id is None and settings.discord_channels == []  # blank in the example
    assert settings.memory_vectors == 20_000 and settings.http_port == 8080
    assert settings.discord_token is None  # blank
    assert settings.slack_bot_token is not None and settings.slack_bot_token.get_secret_value() == "xoxb-..."
    assert "xoxb" not in repr(settings) and "xapp" not in str(settings)
