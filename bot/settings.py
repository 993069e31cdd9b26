"""The bot's settings: the knowledge core's, plus the chat platforms' (all `KB_*`)."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from bot.i18n import LocaleSetting, locale_of_tag
from knowledge import Settings

DISCORD_API = "https://discord.com/api/v10"
DISCORD_GATEWAY = "wss://gateway.discord.gg"
SLACK_API = "https://slack.com/api/"
MAX_COOLDOWN_SECONDS = 86_400.0
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")  # underscores: container names


def _split_list(value: object) -> object:
    """A JSON list, or items separated by commas."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _check_redis_url(value: SecretStr | None) -> SecretStr | None:
    """A Redis or Valkey URL: redis://, rediss:// (TLS) or unix:// (a socket path)."""
    if value is None:
        return None
    url = value.get_secret_value().strip()
    if not url:
        return None
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - reading it checks it: "host:notaport" fails here, not at the first connection
    except ValueError:
        parts = parts._replace(scheme="")
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise ValueError("expected redis://[:password@]host[:port][/db], rediss://… or unix:///path")
    from redis.asyncio.connection import parse_url

    try:
        parse_url(url)  # as redis-py will read it: "?socket_timeout=abc" fails here, not at the first connection
    except ValueError as error:
        raise ValueError(f"redis-py cannot read it: {error}") from None
    return SecretStr(url)


def _blank_is_none(value: object) -> object:
    """An empty setting (`KB_SLACK_DIGEST_CHANNEL=`) is unset."""
    return None if isinstance(value, str) and not value.strip() else value


def _check_locale(value: object) -> object:
    """`auto`, or a language the bot speaks, in any usual spelling (`zh-Hans`, `zh_CN`, `zh-TW`, `EN`)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in ("", "auto"):
        return "auto"
    locale = locale_of_tag(text)
    if locale is None:
        raise ValueError(f"expected auto, zh-Hans, zh-Hant or en (got {value!r})")
    return locale


def _check_host(value: str) -> str:
    """An IP address, or a host name that could resolve (`256.1.1.1` is neither)."""
    host = value.strip()
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    if (
        not host
        or len(host) > 253
        or not all(_HOST_LABEL.match(label) for label in labels)
        or all(label.isdigit() for label in labels)  # dotted numbers must be an IPv4 address
    ):
        raise ValueError(f"{value!r} is not an IP address or a host name")
    return host


class BotSettings(Settings):
    """Everything the bot can be told. Tokens are secrets: never logged, never shown.

    `max_question_chars` comes from the core's settings: the chat core cuts questions there (and says
    so), and search cuts at the same setting.
    """

    cooldown_seconds: float = Field(
        default=3.0,
        ge=0,
        le=MAX_COOLDOWN_SECONDS,
        allow_inf_nan=False,
        description="Per-user pause between questions, in seconds (at most a day).",
    )
    max_pages: int = Field(default=4, ge=1, le=10, description="Pages `more` can show for one question.")
    session_hours: float = Field(
        default=168.0,
        gt=0,
        le=24 * 366,
        allow_inf_nan=False,
        description="How long an answer's buttons (More results, Similar to…, votes) keep working, in hours.",
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="Redis or Valkey URL of the state replicas share (dedupe, answer sessions, cooldowns, the "
        "reindex lease); unset: KB_DATA_DIR/bot.sqlite, shared by the processes of one machine.",
    )

    discord_token: SecretStr | None = Field(default=None, description="Discord bot token.")
    discord_api_url: str = Field(default=DISCORD_API, description="Discord REST API base (tests point it at a fake).")
    discord_gateway_url: str = Field(default=DISCORD_GATEWAY, description="Discord gateway (tests use a fake).")
    discord_guild_id: int | None = Field(default=None, description="Sync slash commands to this guild only.")
    discord_channels: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="Channel ids the bot answers in (slash commands and mentions); empty means all.",
    )
    discord_admins: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="User or role ids allowed to /reindex, in a server the bot is in; empty: the members with "
        "Manage Server of a server the bot is in (of KB_DISCORD_GUILD_ID's server only, when set).",
    )
    discord_message_content: bool = Field(
        default=False,
        description="Ask for the privileged Message Content intent (enable it in the developer portal first, or the "
        "gateway refuses the connection): only needed to answer mentions of the bot's role; mentions of the bot and "
        "DMs carry their text without it.",
    )
    discord_shards: Literal["auto"] | Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="Shard the Discord connection: auto (the count Discord recommends) or a number of shards, "
        "all run by this process (AutoShardedClient); unset: one connection.",
    )
    discord_digest_channel: int | None = Field(
        default=None,
        description="Channel id to post a digest to after each sync that adds entries (off when unset).",
    )

    slack_bot_token: SecretStr | None = Field(default=None, description="Slack bot token (xoxb-…).")
    slack_signing_secret: SecretStr | None = Field(default=None, description="Slack signing secret (HTTP mode).")
    slack_app_token: SecretStr | None = Field(default=None, description="Slack app token (xapp-…): Socket Mode.")
    slack_admins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Slack user ids allowed to /kb-reindex."
    )
    slack_channels: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Slack channel ids the bot answers in (commands and mentions); empty means all.",
    )
    slack_digest_channel: str | None = Field(
        default=None,
        description="Slack channel id to post a digest to after each sync that adds entries (off when unset); "
        "invite the bot to it.",
    )
    slack_api_url: str = Field(default=SLACK_API, description="Slack Web API base (tests point it at a fake).")

    http_host: str = Field(default="127.0.0.1", description="Host of /healthz, /metrics and /slack/events.")
    http_port: int = Field(default=8080, ge=0, le=65535, description="Port of the HTTP server (0: any free one).")

    locale: LocaleSetting = Field(
        default="auto",
        description="The language of the bot's own texts: auto (each reply: the Discord user's or server's "
        "language, else the question's), or zh-Hans, zh-Hant or en for every reply.",
    )

    ingest_on_start: bool = Field(
        default=True,
        description="Index the sources at start-up. False: a read-only replica that loads the current index "
        "and never ingests (not at start-up, not from chat) nor stores votes; with KB_CHROMA_URL its data dir may be "
        "read-only.",
    )

    _split_channels = field_validator(
        "discord_channels", "discord_admins", "slack_admins", "slack_channels", mode="before"
    )(_split_list)
    _valid_host = field_validator("http_host")(_check_host)
    _valid_locale = field_validator("locale", mode="before")(_check_locale)
    _blank_is_unset = field_validator(
        "discord_digest_channel", "slack_digest_channel", "discord_shards", mode="before"
    )(_blank_is_none)
    _valid_redis_url = field_validator("redis_url")(_check_redis_url)

    @property
    def discord_enabled(self) -> bool:
        return bool(self.discord_token and self.discord_token.get_secret_value())

    @property
    def slack_enabled(self) -> bool:
        token = self.slack_bot_token.get_secret_value() if self.slack_bot_token else ""
        socket = self.slack_app_token.get_secret_value() if self.slack_app_token else ""
        secret = self.slack_signing_secret.get_secret_value() if self.slack_signing_secret else ""
        return bool(token and (socket or secret))
