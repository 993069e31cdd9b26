"""The Slack front-end: slash commands, mentions, direct messages and buttons on slack_bolt's `AsyncApp`.

Where replies go:
- Slash commands and buttons reply through the request's `response_url`, which works in any channel the
  command was typed in, even one the bot has not joined. Answers are `in_channel`; errors, help, stats
  and reindex notices are ephemeral (only the asker sees them).
- Mentions and direct messages reply with `chat.postMessage`: a mention in its thread, a DM in the DM.

Every text sent is escaped for mrkdwn once, here or in `bot.render`, so nothing a user typed can become
`<!channel>`, `<!here>`, `<!everyone>` or a user mention.

The same app serves HTTP (`slack_http_handler`, mounted by the service at `POST /slack/events`) and
Socket Mode (`start_socket_mode`).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler, AsyncServerErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot import texts
from bot.chat import NEW_DAYS, TOP, Answer, ChatCore, Commands, NewList, Vote, stats_text
from bot.errors import BadDays, BotError, NotAdmin, NotHere, user_message_for
from bot.i18n import Locale, Texts, texts_for
from bot.render import (
    browse_fallback_text,
    escape_mrkdwn,
    new_fallback_text,
    render_browse_slack,
    render_new_slack,
    render_slack,
    slack_fallback_text,
)
from bot.request import number_in, read_request
from bot.settings import BotSettings
from knowledge import RateLimitedLog

_log = logging.getLogger(__name__)

T = TypeVar("T")

MANIFEST = "slack-manifest.yaml"  # package data of `bot`: the Slack app to create for this bot

_USER_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
COMMANDS = Commands(
    ask="/ask",
    more="/more",
    similar="/kb-similar",
    browse="/kb-browse",
    new="/kb-new",
    stats="/kb-stats",
    reindex="/kb-reindex",
    help="/kb-help",
)


def slack_manifest() -> str:
    """The Slack app manifest (YAML) declaring the commands, events and scopes this front-end handles."""
    return resources.files("bot").joinpath(MANIFEST).read_text(encoding="utf-8")


def conversation_key(channel: str) -> str:
    """The core's conversation for a Slack channel (or DM): `/more` there pages its last answer."""
    return f"slack:{channel}"


def user_key(user: str) -> str:
    """The core's user for a Slack user id (for cooldowns, feedback and the reindex audit)."""
    return f"slack:{user}"


def message_key(event: dict[str, Any]) -> str | None:
    """What identifies a Slack message across deliveries: its channel and timestamp.

    A retried event shares them with the first delivery, and so does the same message delivered as both
    `app_mention` and `message` (two different `event_id`s); `client_msg_id` is missing from some messages.
    """
    channel, ts = event.get("channel"), event.get("ts")
    return f"{channel}:{ts}" if channel and ts else None


def slack_question(text: str) -> str:
    """The question in a Slack message's text: user mentions removed, Slack's markup of what was typed read
    back (a link `<http://github.com/a/b|github.com/a/b>` is its URL, `<#C1|general>` is `#general`, a user
    group `<!subteam^S1|@ml>` is `@ml`, `<mailto:a@b.c|a@b.c>` its label), then `&amp;`, `&lt;`, `&gt;` undone
    (what the asker typed as `<` comes as `&lt;`, so markup is read first). Other special mentions
    (`<!channel>`) stay as they came; no reply ever pings with them."""
    text = _USER_MENTION.sub(" ", text)
    text = _LINK_MARKUP.sub(_markup_text, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# Slack's markup in a message's text: <URL>, <URL|label>, <mailto:…|label>, <#C…|name>, <!subteam^S…|@name>
_LINK_MARKUP = re.compile(
    r"<(?:(?P<url>https?://[^|>\s]+)(?:\|[^>]*)?"
    r"|mailto:[^|>\s]+\|(?P<mail>[^>]*)"
    r"|#[A-Z0-9]+\|(?P<channel>[^>]*)"
    r"|!subteam\^[A-Z0-9]+(?:\|(?P<group>[^>]*))?)>"
)


def _markup_text(found: re.Match[str]) -> str:
    if found["url"]:
        return found["url"]
    if found["channel"] is not None:
        return f"#{found['channel']}"
    return found["mail"] or found["group"] or ""


# Messages someone writes: a plain one, a thread reply also sent to the channel, one with a file attached.
# Edits, deletions, joins and bots' messages have other subtypes.
ASKING_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
RATE_LIMIT_RETRIES = 2  # a Web API call Slack refuses with 429 is sent again after its Retry-After, twice
# A call Slack answers with 500 or 503 is sent again once, half a second later: the event was acknowledged, so
# Slack will not deliver it again, and without this the asker gets no answer. (A 500 that did post would
# post twice; Slack's 5xx are rare and mostly 503s, which post nothing.)
SERVER_ERROR_RETRIES = 1


def _from_a_person(event: dict[str, Any], bot_user_id: str | None) -> bool:
    """False for bots (this one included), edits, joins and other messages that are not someone asking."""
    user = event.get("user")
    if event.get("subtype") not in ASKING_SUBTYPES:
        return False
    if event.get("edited"):  # an edited mention comes again as app_mention, with the first one's ts
        return False
    return bool(user) and user != bot_user_id and not event.get("bot_id")


def _action_channel(body: dict[str, Any]) -> str:
    channel = body.get("channel") or {}
    return str(channel.get("id") or body.get("container", {}).get("channel_id") or "")


def _action_thread(body: dict[str, Any]) -> str | None:
    thread = body.get("container", {}).get("thread_ts") or body.get("message", {}).get("thread_ts")
    return str(thread) if thread else None


async def _attempt(work: Awaitable[T], t: Texts) -> T | str:
    """`work`'s result, or what to tell the user when it failed, in `t`'s language."""
    try:
        return await work
    except Exception as error:  # noqa: BLE001 - user_message_for logs unexpected errors with their traceback
        return user_message_for(error, t)


class SlackFrontEnd:
    """Turns Slack requests into calls on the `ChatCore` and its answers into Slack messages."""

    def __init__(self, core: ChatCore, settings: BotSettings) -> None:
        self.core = core
        self.settings = settings

    def register(self, app: AsyncApp) -> None:
        """Attach the listeners to `app`."""
        app.command("/ask")(self.ask)
        app.command("/more")(self.more)
        app.command("/kb-stats")(self.stats)
        app.command("/kb-help")(self.help)
        app.command("/kb-reindex")(self.reindex)
        app.command("/kb-similar")(self.similar)
        app.command("/kb-browse")(self.browse)
        app.command("/kb-new")(self.new)
        app.event("app_mention")(self.on_mention)
        # Registered for every message event so that unwanted ones are acknowledged, not answered 404.
        app.event("message")(self.on_message)
        app.action("kb_more")(self.more_button)
        app.action(re.compile(r"^kb_vote_(up|down)$"))(self.vote_button)
        app.action("kb_similar")(self.similar_menu)
        app.action("kb_browse_pick")(self.browse_pick)
        app.action(re.compile(r"^kb_browse_(up|previous|next)$"))(self.browse_move)
        app.action(re.compile(r"^kb_new_(previous|next)$"))(self.new_move)

    # -- where the bot answers -------------------------------------------------------------------------
    def answers_in(self, channel: str, channel_type: str | None = None) -> bool:
        """Whether the bot answers in `channel`: any DM; elsewhere, the channels of the allowlist
        (KB_SLACK_CHANNELS; empty: all)."""
        allowed = self.settings.slack_channels
        return not allowed or channel in allowed or channel_type == "im" or channel.startswith("D")

    async def _command_here(self, ack: AsyncAck, command: dict[str, Any]) -> bool:
        """Acknowledge a command outside the allowlist with a private "not in this channel"; False then."""
        if self.answers_in(command.get("channel_id", "")):
            return True
        await ack(text=escape_mrkdwn(NotHere().message_in(texts_for(self._locale(command)))))
        return False

    async def _action_here(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> Texts | None:
        """Acknowledge a button or menu action; the texts of its conversation's language, or None (after a private
        "not in this channel") when the channel is outside the allowlist."""
        await ack()
        t = texts_for(self.core.locale_for(conversation_key(_action_channel(body))))
        if not self.answers_in(_action_channel(body)):
            await self._respond(respond, NotHere().message_in(t))
            return None
        return t

    # -- replies ---------------------------------------------------------------------------------------
    def _answer_message(self, answer: Answer) -> dict[str, Any]:
        return {
            "blocks": render_slack(answer, self.settings.answer_size),
            "text": slack_fallback_text(answer),
            "unfurl_links": False,
            "unfurl_media": False,
        }

    async def _respond(self, respond: AsyncRespond, result: Answer | str, *, thread_ts: str | None = None) -> None:
        """An answer for everyone in the channel (only for the asker when private), or a message only the
        asker sees."""
        if isinstance(result, Answer):
            reply = await respond(
                **self._answer_message(result),
                response_type="ephemeral" if result.private else "in_channel",
                replace_original=False,
                thread_ts=thread_ts,
            )
        else:
            reply = await respond(text=escape_mrkdwn(result), response_type="ephemeral", replace_original=False)
        if reply.status_code != 200:
            _log.warning("Slack refused a reply to its response_url: HTTP %s %s", reply.status_code, reply.body)

    async def _post(
        self, client: AsyncWebClient, channel: str, user: str, result: Answer | str, *, thread_ts: str | None
    ) -> None:
        """A reply to a message: an answer in the thread (seen by the asker only when private), or a message
        for the asker (the usage hint, "please wait", an unknown section: seen by them only, but in a DM)."""
        if isinstance(result, str) and not channel.startswith("D"):
            await client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, text=escape_mrkdwn(result))
        elif isinstance(result, Answer) and result.private:
            message = self._answer_message(result)
            await client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts, blocks=message["blocks"], text=message["text"]
            )
        elif isinstance(result, Answer):
            await client.chat_postMessage(channel=channel, thread_ts=thread_ts, **self._answer_message(result))
        else:
            await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=escape_mrkdwn(result))

    # -- slash commands ----------------------------------------------------------------------------------
    def _locale(self, command: dict[str, Any], *, text: str = "") -> Locale:
        """The language of the reply to `command`: that of `text` (the question), else the channel's last."""
        return self.core.locale_for(conversation_key(command["channel_id"]), text=text)

    async def ask(self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        """/ask [in:SECTION] [lang:en|zh] [-p] <question>: search the collection (`bot.request`)."""
        if not await self._command_here(ack, command):
            return
        await ack()
        question = slack_question(command.get("text", ""))
        conversation, user = conversation_key(command["channel_id"]), user_key(command["user_id"])
        locale = self._locale(command, text=read_request(question).text)
        asked = self.core.ask(conversation, user, question, locale=locale)
        await self._respond(respond, await _attempt(asked, texts_for(locale)))

    async def similar(self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        """/kb-similar N: entries like the Nth of the last answer in this channel."""
        if not await self._command_here(ack, command):
            return
        await ack()
        t = texts_for(self._locale(command))
        number = number_in(slack_question(command.get("text", "")).strip().lstrip("#"))
        if number is None:
            await self._respond(respond, t(texts.USAGE_SIMILAR, similar=COMMANDS.similar))
            return
        found = self.core.similar(conversation_key(command["channel_id"]), number)
        await self._respond(respond, await _attempt(found, t))

    async def browse(self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        """/kb-browse [SECTION]: the sections with their entry counts, or one section's subsections and
        entries, paged; only the asker sees the walk."""
        if not await self._command_here(ack, command):
            return
        await ack()
        section = slack_question(command.get("text", "")).strip()
        locale = self._locale(command)  # a section's name does not tell the reader's language
        await self._browse(respond, section or TOP, 1, texts_for(locale), replace_original=False)

    async def _browse(
        self, respond: AsyncRespond, section: str, page: int, t: Texts, *, replace_original: bool
    ) -> None:
        """A browse page; `replace_original` when it comes from a button or menu of a browse page, and then
        `section` is a section's id."""
        try:
            shown = await self.core.browse(section, page, locale=t.locale, by_id=replace_original)
        except Exception as error:  # noqa: BLE001 - user_message_for logs unexpected errors with their traceback
            await self._respond(respond, user_message_for(error, t))
            return
        reply = await respond(
            blocks=render_browse_slack(shown),
            text=browse_fallback_text(shown),
            response_type="ephemeral",
            replace_original=replace_original,
        )
        if reply.status_code != 200:
            _log.warning("Slack refused a browse page: HTTP %s %s", reply.status_code, reply.body)

    async def browse_pick(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """ "Open a section…": that subsection's first page, in place of the page it was picked on."""
        t = await self._action_here(ack, body, respond)
        if t is None:
            return
        section = str((action.get("selected_option") or {}).get("value") or TOP)
        await self._browse(respond, section, 1, t, replace_original=True)

    async def browse_move(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """Up, Previous or Next on a browse page (value `<section id>:<page>`), in place of that page."""
        t = await self._action_here(ack, body, respond)
        if t is None:
            return
        section, _, page = str(action.get("value") or "").partition(":")
        await self._browse(respond, section or TOP, number_in(page) or 1, t, replace_original=True)

    async def new(self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        """/kb-new [DAYS]: the entries added in the last days (7 by default), by section, newest first;
        only the asker sees the list, and Previous/Next replace it."""
        if not await self._command_here(ack, command):
            return
        await ack()
        t = texts_for(self._locale(command))
        text = slack_question(command.get("text", "")).strip()  # echoed in the usage hint: as typed
        days = number_in(text) if text else NEW_DAYS
        if days is None:
            await self._respond(respond, BadDays(text, COMMANDS.new).message_in(t))
            return
        await self._new(respond, days, 1, t, replace_original=False)

    async def new_move(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """Previous or Next on a page of /kb-new (value `<days>:<page>`), in place of that page."""
        t = await self._action_here(ack, body, respond)
        if t is None:
            return
        days, _, page = str(action.get("value") or "").partition(":")
        day_count, page_number = number_in(days), number_in(page)
        if day_count is None or page_number is None:
            await self._respond(respond, BadDays(days, COMMANDS.new).message_in(t))
            return
        await self._new(respond, day_count, page_number, t, replace_original=True)

    async def _new(self, respond: AsyncRespond, days: int, page: int, t: Texts, *, replace_original: bool) -> None:
        try:
            shown = await self.core.new(days, page, locale=t.locale)
        except BadDays:
            await self._respond(respond, BadDays(days, COMMANDS.new).message_in(t))
            return
        except Exception as error:  # noqa: BLE001 - user_message_for logs unexpected errors with their traceback
            await self._respond(respond, user_message_for(error, t))
            return
        reply = await respond(
            blocks=render_new_slack(shown, command=COMMANDS.new),
            text=new_fallback_text(shown),
            response_type="ephemeral",
            replace_original=replace_original,
            unfurl_links=False,
            unfurl_media=False,
        )
        if reply.status_code != 200:
            _log.warning("Slack refused a page of new entries: HTTP %s %s", reply.status_code, reply.body)

    async def more(self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        """/more: the next results for the last question in this channel."""
        if not await self._command_here(ack, command):
            return
        await ack()
        t = texts_for(self._locale(command))
        await self._respond(respond, await _attempt(self.core.more(conversation_key(command["channel_id"])), t))

    async def stats(self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        """/kb-stats: what the index holds and when it was built."""
        if not await self._command_here(ack, command):
            return
        await ack()
        t = texts_for(self._locale(command))

        async def text() -> str:
            return stats_text(await self.core.stats(), t)

        await self._respond(respond, await _attempt(text(), t))

    async def help(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        """/kb-help [中文]: how to use the bot (only the asker sees it), in the language of its text if any."""
        if not await self._command_here(ack, command):
            return
        locale = self._locale(command, text=command.get("text", ""))
        await ack(text=escape_mrkdwn(self.core.help(locale, COMMANDS, mentions=True)))

    async def reindex(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        """/kb-reindex [full]: re-read the collection (admins only); the summary follows when it is done."""
        if not await self._command_here(ack, command):
            return
        await ack()
        locale = self._locale(command)
        t = texts_for(locale)
        user = command["user_id"]
        if user not in self.settings.slack_admins:
            await self._respond(respond, NotAdmin().message_in(t))
            return
        full = "full" in command.get("text", "").lower().split()
        try:
            task = await self.core.start_reindex(user_key(user), full=full)
        except BotError as error:  # already running (here or elsewhere), a read-only replica, no state store
            await self._respond(respond, error.message_in(t))
            return
        await self._respond(respond, self.core.reindex_started(full=full, locale=locale))
        # Should this listener be cancelled (shutdown), the reindex itself carries on.
        await self._tell_later(respond, client, user, await self.core.reindex_outcome(task, locale))

    async def _tell_later(self, respond: AsyncRespond, client: AsyncWebClient, user: str, text: str) -> None:
        """An ephemeral reply through the response_url, or a DM to `user` once that has expired."""
        try:
            reply = await respond(text=escape_mrkdwn(text), response_type="ephemeral", replace_original=False)
            if reply.status_code == 200:
                return
            problem = f"HTTP {reply.status_code} {reply.body}"
        except (aiohttp.ClientError, TimeoutError) as error:
            problem = repr(error)
        # A response_url lasts 30 minutes (and 5 replies); a long rebuild can outlive it.
        _log.info("the response_url refused a late reply (%s); sending it to %s in a DM", problem, user)
        try:
            await client.chat_postMessage(channel=user, text=escape_mrkdwn(text))
        except SlackApiError as error:  # the DM refused too: the log has it, in one line
            _log.warning("could not tell %s the reindex's outcome: Slack said %s", user, error.response.get("error"))
        except (aiohttp.ClientError, TimeoutError) as error:
            _log.warning("could not tell %s the reindex's outcome: %r", user, error)

    # -- events ------------------------------------------------------------------------------------------
    async def on_mention(self, event: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient) -> None:
        """A mention in a channel: answer in its thread."""
        await self._answer_event(event, context, client, thread_ts=event.get("thread_ts") or event.get("ts"))

    async def on_message(self, event: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient) -> None:
        """A direct message: answer in the DM. Messages elsewhere are left to `on_mention`."""
        if event.get("channel_type") == "im":
            await self._answer_event(event, context, client, thread_ts=event.get("thread_ts"))

    async def _answer_event(
        self, event: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient, *, thread_ts: str | None
    ) -> None:
        if not _from_a_person(event, context.bot_user_id):
            return
        if not self.answers_in(event.get("channel", ""), event.get("channel_type")):
            return  # outside the allowlist, a mention gets no reply
        key = message_key(event)
        # Claimed in the state store, first wins: a retry or a second delivery, on this replica or another,
        # is not answered again (unless the store is down: then only this replica's memory decides).
        if key is None or not await self.core.first_delivery(f"slack:{key}"):
            _log.debug("not answering %s again", key)
            return
        channel, user = event["channel"], event["user"]
        question = slack_question(event.get("text") or "")
        locale = self.core.locale_for(conversation_key(channel), text=read_request(question).text)
        asked = self.core.ask(conversation_key(channel), user_key(user), question, locale=locale)
        result = await _attempt(asked, texts_for(locale))
        try:
            await self._post(client, channel, user, result, thread_ts=thread_ts)
        except SlackApiError as error:  # rate limited beyond the retries, removed from the channel, …
            _log.warning("Slack refused the reply to %s: %s", key, error.response.get("error"))

    # -- buttons -----------------------------------------------------------------------------------------
    async def more_button(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """The "More results" button: the next page of the answer the button belongs to, in the same thread."""
        t = await self._action_here(ack, body, respond)
        if t is None:
            return
        conversation = conversation_key(_action_channel(body))
        answer_id, _, page = str(action.get("value") or "").partition(":")  # `<answer id>:<page>`, or an id alone
        more = self.core.more(conversation, answer_id or None, page=number_in(page) if page else None)
        result = await _attempt(more, t)
        await self._respond(respond, result, thread_ts=_action_thread(body))

    async def similar_menu(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """ "Similar to…": the entries nearest to the one picked (value `<answer id>:<entry id>`)."""
        t = await self._action_here(ack, body, respond)
        if t is None:
            return
        conversation = conversation_key(_action_channel(body))
        answer_id, _, entry_id = str((action.get("selected_option") or {}).get("value") or "").partition(":")
        found = self.core.similar(conversation, entry_id, answer_id=answer_id or None)
        await self._respond(respond, await _attempt(found, t), thread_ts=_action_thread(body))

    async def vote_button(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """👍 / 👎: store the vote for later evaluation."""
        await ack()
        vote: Vote = "up" if action["action_id"] == "kb_vote_up" else "down"
        user = user_key(body.get("user", {}).get("id", ""))
        locale = self.core.locale_for(conversation_key(_action_channel(body)))
        if not self.answers_in(_action_channel(body)):
            await self._respond(respond, NotHere().message_in(texts_for(locale)))
            return
        recorded = self.core.record_vote(str(action.get("value") or ""), vote, user, "slack", locale=locale)
        await self._respond(respond, await _attempt(recorded, texts_for(locale)))


class SlackDigestPoster:
    """Posts digests to one channel (`KB_SLACK_DIGEST_CHANNEL`) with `chat.postMessage`; the bot must be a
    member of the channel."""

    ready = True

    def __init__(self, client: AsyncWebClient, channel: str) -> None:
        self.client = client
        self.channel = channel

    @property
    def target(self) -> str:
        return conversation_key(self.channel)

    async def post(self, digest: NewList) -> None:
        """One message with the digest's blocks; links unfurl nothing. Raises SlackApiError when Slack
        refuses it (not in the channel, a bad token)."""
        await self.client.chat_postMessage(
            channel=self.channel,
            blocks=render_new_slack(digest, command=COMMANDS.new),
            text=new_fallback_text(digest),
            unfurl_links=False,
            unfurl_media=False,
        )


def create_slack_app(core: ChatCore, settings: BotSettings, *, client: AsyncWebClient | None = None) -> AsyncApp:
    """The bolt app answering on Slack for `core`; it serves both HTTP and Socket Mode.

    Nothing is sent to Slack here: bolt calls `auth.test` once, on the first request, to learn the
    bot's own ids (so that its own messages are ignored).
    """
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    if not token:
        raise ValueError("Slack needs a bot token (KB_SLACK_BOT_TOKEN)")
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    client = client or AsyncWebClient(token=token, base_url=settings.slack_api_url)
    # Slack allows about one message a second per channel: a burst of questions is answered a little later,
    # not lost; so is one that met a passing server error (slack_sdk retries only connection errors by default).
    if not any(isinstance(handler, AsyncRateLimitErrorRetryHandler) for handler in client.retry_handlers):
        client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES))
    if not any(isinstance(handler, AsyncServerErrorRetryHandler) for handler in client.retry_handlers):
        client.retry_handlers.append(AsyncServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES))
    app = AsyncApp(
        name="collections-bot",
        client=client,
        # Without a signing secret (Socket Mode only) no HTTP request can be signed validly: bolt would
        # otherwise take SLACK_SIGNING_SECRET from the environment, or accept an empty secret.
        signing_secret=secret or secrets.token_hex(32),
        process_before_response=False,
    )
    SlackFrontEnd(core, settings).register(app)
    return app


SSL_CHECK_MAX_BYTES = 4096  # larger bodies are not looked at before the signature is checked


def is_ssl_check(content_type: str, body: bytes) -> bool:
    """Whether a request is Slack's check of the endpoint's certificate (a form with `ssl_check=1` exactly),
    which bolt answers with 200 before verifying any signature (slack_bolt's SslCheck middleware)."""
    if content_type != "application/x-www-form-urlencoded" or len(body) > SSL_CHECK_MAX_BYTES:
        return False
    return parse_qs(body.decode("utf-8", "replace")).get("ssl_check") == ["1"]


def malformed(body: object) -> str | None:
    """Why a signed body is not one Slack sends, or None: what bolt's middleware and the listeners take for
    granted (an event is an object, a click names its action, a command its channel and user); each had been
    a 500 and a traceback, or a KeyError before the acknowledgement."""
    if not isinstance(body, dict):
        return "a body that is not an object"
    if "event" in body and not (isinstance(body["event"], dict) and isinstance(body["event"].get("type"), str)):
        return "an event that is not an object with a type"
    if body.get("type") == "block_actions":
        actions = body.get("actions")
        if not (isinstance(actions, list) and actions and all(isinstance(action, dict) for action in actions)):
            return "a click that names no action"
    if "command" in body and not (body.get("channel_id") and body.get("user_id")):
        return "a command without its channel or user"
    return None


TIMESTAMP_MAX_DIGITS = 12  # Unix seconds have 10 digits until the year 2286


def slack_http_handler(app: AsyncApp, signing_secret: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler for `POST /slack/events` (events, commands, interactivity) dispatching to `app`.

    The signature is verified here, on the raw body, before anything parses it (but Slack's unsigned check
    of the certificate, a small form answered 200 with nothing dispatched: `is_ssl_check`): a forged or unsigned
    request, or a timestamp more than 5 minutes off, gets 401 and a malformed signed body 400, each with
    at most one log line a second, whatever arrives. bolt verifies the signature again, with the same
    `signing_secret` (the app's).
    """
    verifier = SignatureVerifier(signing_secret)
    refused = RateLimitedLog(_log)

    def refuse(request: web.Request, status: int, why: str) -> web.Response:
        refused.warning("refused a request to %s from %s: %s (HTTP %d)", request.path, request.remote, why, status)
        error = "invalid request" if status == 401 else "malformed request"
        return web.json_response({"error": error}, status=status)

    async def handle(request: web.Request) -> web.Response:
        small = request.content_length is not None and request.content_length <= SSL_CHECK_MAX_BYTES
        if small and is_ssl_check(request.content_type, await request.read()):
            return web.Response(status=200)  # Slack checking the certificate, unsigned: nothing is dispatched
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        # digits that int() reads (not 5,000 of them: Python refuses to convert so many)
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= TIMESTAMP_MAX_DIGITS):
            return refuse(request, 401, "no valid timestamp")
        signature = request.headers.get("X-Slack-Signature", "")
        if not signature.isascii():  # hmac.compare_digest refuses to compare other strings
            return refuse(request, 401, "bad signature or stale timestamp")
        body = await request.read()  # kept by aiohttp: to_bolt_request reads it again
        try:
            valid = verifier.is_valid(body, timestamp, signature)
        except UnicodeDecodeError:  # the verifier decodes the body as UTF-8 before hashing it
            return refuse(request, 400, "the body is not UTF-8")
        if not valid:
            return refuse(request, 401, "bad signature or stale timestamp")
        try:
            bolt_request = await to_bolt_request(request)
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError):
            # Signed, yet unreadable (bolt parses the body as it builds the request): e.g. nested too deep.
            return refuse(request, 400, "a body that cannot be parsed")
        if (why := malformed(bolt_request.body)) is not None:
            return refuse(request, 400, why)
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    return handle


async def start_socket_mode(app: AsyncApp, settings: BotSettings) -> AsyncSocketModeHandler:
    """Connect `app` to Slack over Socket Mode; the caller awaits `handler.close_async()` at shutdown.

    Raises `slack_sdk.errors.SlackApiError` when Slack refuses the app token.
    """
    token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else ""
    if not token:
        raise ValueError("Socket Mode needs an app-level token (KB_SLACK_APP_TOKEN)")
    handler = AsyncSocketModeHandler(app, app_token=token)
    try:
        # The client's connect() retries forever, even when Slack rejects the token; asking for the
        # WebSocket URL once first turns a bad token into an error here.
        handler.client.wss_uri = await handler.client.issue_new_wss_url()
        await handler.connect_async()  # type: ignore[no-untyped-call]
    except BaseException:
        await handler.close_async()  # type: ignore[no-untyped-call]
        raise
    _log.info("connected to Slack over Socket Mode")
    return handler
