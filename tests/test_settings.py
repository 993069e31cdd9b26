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
