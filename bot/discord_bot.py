"""The Discord front-end: slash commands, @mentions and answer buttons over the chat core (discord.py 2.x)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Coroutine, Iterator
from typing import Any, Self, TypeVar

import aiohttp
import discord
import yarl
from discord import app_commands

from bot import texts
from bot.chat import NEW_DAYS, NEW_DAYS_MAX, TOP, Answer, BrowsePage, ChatCore, Commands, NewList, Vote, stats_text
from bot.errors import BadDays, CannotStart, EmptyQuestion, NotAdmin, NotHere, StaleCommand, user_message_for
from bot.i18n import Locale, Texts, locale_of_tag, texts_for
from bot.render import (
    DISCORD_LIMIT,
    DiscordMessage,
    browse_buttons,
    child_label,
    escape_discord,
    new_buttons,
    render_browse_discord,
    render_discord,
    render_new_discord,
    similar_options,
    split,
)
from bot.request import read_request
from bot.settings import BotSettings
from knowledge import KnowledgeError, SyncReport

_log = logging.getLogger(__name__)

_T = TypeVar("_T")
NO_MENTIONS = discord.AllowedMentions.none()
_FOLLOWED_UP = "kb_followed_up"  # in Interaction.extras: a followup has replaced the "thinking…" message
# Discord's own maximum for a string option: the core cuts questions at `max_question_chars` and says so.
OPTION_MAX_CHARS = 6000
# Discord drops an interaction not responded to within 3 s: work done before deferring gets this long, then the
# interaction is deferred and the work goes on (a slow state store, a reindex holding the store).
BEFORE_DEFER_SECONDS = 2.0
UNKNOWN_INTERACTION = 10062  # Discord's error code for an interaction it no longer accepts a response to


def configure_endpoints(settings: BotSettings) -> None:
    """Point discord.py at the configured REST API and gateway (class attributes: process-wide).

    A plain `Client` connects straight to `DiscordWebSocket.DEFAULT_GATEWAY`; only `AutoShardedClient`
    asks `/gateway/bot` first. Routes read `Route.BASE` when they are built, so this must run before
    the first request.
    """
    discord.http.Route.BASE = settings.discord_api_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


def conversation_key(channel_id: int | None) -> str:
    """The core's conversation for a channel: `/more` there pages the channel's last answer."""
    return f"discord:{channel_id or 0}"


def user_key(user: discord.abc.User) -> str:
    """The core's user (for cooldowns and feedback)."""
    return f"discord:{user.id}"


# -- buttons -------------------------------------------------------------------------------------------
#
# The buttons are `DynamicItem`s: the answer id lives in the custom_id (`kb:more:<id>`,
# `kb:vote:up:<id>`), and discord.py matches every clicked custom_id against the templates registered
# with `add_dynamic_items`. No View object has to stay alive (a fully dynamic View with timeout=None
# leaves nothing in the view store), and buttons under messages sent before a restart still work for as
# long as the core remembers the answer; after that the core says UnknownAnswer.


class MoreButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"kb:more:(?P<answer>[0-9a-f]+)(?::(?P<page>[0-9]{1,4}))?",
):
    """ "More results" under an answer that has further pages: it shows `page`, the one after its message's
    (buttons from before pages were named show the answer's next page)."""

    def __init__(self, answer_id: str, page: int | None, label: str = texts.MORE_BUTTON) -> None:
        custom_id = f"kb:more:{answer_id}" + (f":{page}" if page is not None else "")
        super().__init__(discord.ui.Button(label=label, style=discord.ButtonStyle.primary, custom_id=custom_id))
        self.answer_id = answer_id
        self.page = page

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["answer"], int(match["page"]) if match["page"] else None)

    async def callback(self, interaction: discord.Interaction) -> None:
        await _knowledge_bot(interaction).show_more(interaction, self.answer_id, self.page)


class VoteButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"kb:vote:(?P<vote>up|down):(?P<answer>[0-9a-f]+)",
):
    """👍 or 👎 under an answer."""

    def __init__(self, answer_id: str, vote: Vote) -> None:
        super().__init__(
            discord.ui.Button(
                emoji="👍" if vote == "up" else "👎",
                style=discord.ButtonStyle.secondary,
                custom_id=f"kb:vote:{vote}:{answer_id}",
            )
        )
        self.answer_id = answer_id
        self.vote: Vote = vote

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["answer"], "up" if match["vote"] == "up" else "down")

    async def callback(self, interaction: discord.Interaction) -> None:
        await _knowledge_bot(interaction).record_vote(interaction, self.answer_id, self.vote)


class SimilarSelect(
    discord.ui.DynamicItem[discord.ui.Select[discord.ui.View]], template=r"kb:similar:(?P<answer>[0-9a-f]+)"
):
    """ "Similar to…" under an answer: one option per item of the page, its value the entry's id."""

    def __init__(
        self, answer_id: str, options: list[discord.SelectOption] | None = None, placeholder: str = ""
    ) -> None:
        super().__init__(
            discord.ui.Select(
                custom_id=f"kb:similar:{answer_id}",
                placeholder=placeholder or None,
                options=options or [discord.SelectOption(label="-", value="-")],
            )
        )
        self.answer_id = answer_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["answer"])

    async def callback(self, interaction: discord.Interaction) -> None:
        values: list[str] = list(self.item.values)  # what the user picked, read from the interaction
        entry_id = values[0] if values else ""
        await _knowledge_bot(interaction).show_similar(interaction, entry_id, self.answer_id)


class BrowseButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"kb:browse:(?P<section>top|[0-9a-f]{12}):(?P<page>[0-9]{1,4})",
):
    """Up, Previous or Next on a browse page: the section and page to show live in the custom_id."""

    def __init__(self, section: str, page: int, label: str = "") -> None:
        super().__init__(
            discord.ui.Button(
                label=label or None, style=discord.ButtonStyle.secondary, custom_id=f"kb:browse:{section}:{page}"
            )
        )
        self.section = section
        self.page = page

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(match["section"], int(match["page"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _knowledge_bot(interaction).show_browse(interaction, self.section, self.page, by_id=True)


class BrowseSelect(discord.ui.DynamicItem[discord.ui.Select[discord.ui.View]], template=r"kb:browse:open"):
    """ "Open a section…" on a browse page: one option per subsection shown, its value the section's id."""

    def __init__(self, options: list[discord.SelectOption] | None = None, placeholder: str = "") -> None:
        super().__init__(
            discord.ui.Select(
                custom_id="kb:browse:open",
                placeholder=placeholder or None,
                options=options or [discord.SelectOption(label="-", value="-")],
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls()

    async def callback(self, interaction: discord.Interaction) -> None:
        values: list[str] = list(self.item.values)
        await _knowledge_bot(interaction).show_browse(interaction, values[0] if values else TOP, 1, by_id=True)


class NewPageButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"kb:new:(?P<days>[0-9]{1,3}):(?P<page>[0-9]{1,4})",
):
    """Previous or Next on a page of /new: the window and the page to show live in the custom_id."""

    def __init__(self, days: int, page: int, label: str = "") -> None:
        super().__init__(
            discord.ui.Button(
                label=label or None, style=discord.ButtonStyle.secondary, custom_id=f"kb:new:{days}:{page}"
            )
        )
        self.days = days
        self.page = page

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(int(match["days"]), int(match["page"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _knowledge_bot(interaction).show_new(interaction, self.days, self.page)


def new_view(new: NewList) -> discord.ui.View | None:
    """Previous and Next under a page of /new (None when it has one page)."""
    moves = new_buttons(new)
    if not moves:
        return None
    t = texts_for(new.locale)
    view = discord.ui.View(timeout=None)
    for label, days, number in moves:
        view.add_item(NewPageButton(days, number, t(label)))
    return view


def browse_view(page: BrowsePage) -> discord.ui.View:
    """Under a browse page: "Open a section…" with its subsections, then Up, Previous and Next."""
    t = texts_for(page.locale)
    view = discord.ui.View(timeout=None)
    if page.children:
        options = [
            discord.SelectOption(label=child_label(child, t, SELECT_LABEL_LIMIT), value=child.id)
            for child in page.children
        ]
        view.add_item(BrowseSelect(options, t(texts.BROWSE_PICK)))
    for label, section, number in browse_buttons(page):
        view.add_item(BrowseButton(section, number, t(label)))
    return view


SELECT_LABEL_LIMIT = 100  # Discord's limit for a select option's label


def answer_view(answer: Answer, page_size: int = 5) -> discord.ui.View:
    """The buttons under an answer's last message: "More results" when there is a next page, 👍, 👎, and
    "Similar to…" with one option per item."""
    t = texts_for(answer.locale)
    view = discord.ui.View(timeout=None)
    if answer.has_more:
        view.add_item(MoreButton(answer.id, answer.page + 1, t(texts.MORE_BUTTON)))
    view.add_item(VoteButton(answer.id, "up"))
    view.add_item(VoteButton(answer.id, "down"))
    choices = similar_options(answer, t, SELECT_LABEL_LIMIT, page_size)
    if choices:
        options = [discord.SelectOption(label=label, value=entry_id) for label, entry_id in choices]
        view.add_item(SimilarSelect(answer.id, options, t(texts.SIMILAR_PICK)))
    return view


def _knowledge_bot(interaction: discord.Interaction) -> KnowledgeBot:
    client = interaction.client
    if not isinstance(client, KnowledgeBot):
        raise TypeError(f"expected a KnowledgeBot, got {type(client).__name__}")
    return client


# -- slash commands ------------------------------------------------------------------------------------

_CONTEXTS = {
    app_commands.TranslationContextLocation.command_name: texts.COMMAND,
    app_commands.TranslationContextLocation.command_description: texts.DESCRIPTION,
    app_commands.TranslationContextLocation.parameter_name: texts.OPTION,
    app_commands.TranslationContextLocation.parameter_description: texts.OPTION_DESCRIPTION,
    app_commands.TranslationContextLocation.choice_name: texts.CHOICE,
}


class CatalogueTranslator(app_commands.Translator):
    """The slash commands' names, descriptions, options and choices in Discord's Chinese locales (zh-CN,
    zh-TW), from the bot's gettext catalogue; other locales show the English names."""

    async def translate(
        self, string: app_commands.locale_str, locale: discord.Locale, context: app_commands.TranslationContextTypes
    ) -> str | None:
        ours = locale_of_tag(locale.value)
        where = _CONTEXTS.get(context.location)
        if ours is None or ours == "en" or where is None:
            return None
        return texts_for(ours).lookup(string.message, where)


def client_command(client: Texts, name: str) -> str:
    """A slash command as a Discord client of `client`'s language shows it: `/ask`, or `/提问` in Chinese."""
    return "/" + (client.lookup(name, texts.COMMAND) or name)


def command_name(t: Texts, name: str, *, client: Texts | None = None) -> str:
    """A slash command as the user's Discord client shows it: in `client`'s language (`client_texts`: an
    interaction says which); without a client to go by (a reply to a mention, a digest), in `t`'s language
    followed by the English name, which every other client shows: `/提问 (/ask)`."""
    if client is not None:
        return client_command(client, name)
    local, english = client_command(t, name), f"/{name}"
    return local if local == english else f"{local} ({english})"


def client_texts(interaction: discord.Interaction) -> Texts:
    """The texts in the language of the user's Discord client, for naming commands as it shows them: the
    locales `CatalogueTranslator` names them in (zh-CN, zh-TW), else English, whatever the bot answers in."""
    return texts_for(locale_of_tag(interaction.locale.value) or "en")


def discord_commands(client: Texts) -> Commands:
    """The slash commands' names as a client of `client`'s language shows them (`client_texts`), for the help."""
    return Commands(
        ask=client_command(client, texts.ASK),
        more=client_command(client, texts.MORE),
        similar=client_command(client, texts.SIMILAR),
        browse=client_command(client, texts.BROWSE),
        new=client_command(client, texts.NEW),
        stats=client_command(client, texts.STATS_COMMAND),
        reindex=client_command(client, texts.REINDEX),
        help=client_command(client, texts.HELP),
        options=True,
    )


def interaction_locale(interaction: discord.Interaction, text: str = "") -> Locale:
    """The language to answer `interaction` in: the user's Discord language, else the server's, else that
    of `text` (a question), else the channel's last (unless KB_LOCALE fixes it)."""
    bot = _knowledge_bot(interaction)
    guild = interaction.guild_locale.value if interaction.guild_locale else None
    tags = (interaction.locale.value, guild)
    return bot.core.locale_for(conversation_key(interaction.channel_id), tags=tags, text=text)


async def within_deadline(interaction: discord.Interaction, work: Awaitable[_T], *, ephemeral: bool) -> _T:
    """`work`'s result; when it takes longer than BEFORE_DEFER_SECONDS the interaction is deferred first
    (`ephemeral`), so that Discord does not drop it while the work goes on."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=BEFORE_DEFER_SECONDS)
    if not done:
        _log.info("interaction %s: deferred before its work was done", interaction.id)
        await defer_once(interaction, ephemeral=ephemeral)
    return await task


async def defer_once(interaction: discord.Interaction, *, ephemeral: bool) -> None:
    """Show "thinking…", unless the interaction was deferred already."""
    if not interaction.response.is_done():
        await interaction.response.defer(thinking=True, ephemeral=ephemeral)


def message_for(error: BaseException, t: Texts, client: Texts | None = None) -> str:
    """What a Discord user sees for `error`, in `t`'s language: the usage hint names `/ask` as their
    client shows it (`command_name`), and what the user typed (a section, a number of days) is escaped."""
    if isinstance(error, EmptyQuestion):
        error = EmptyQuestion(command_name(t, texts.ASK, client=client))
    return user_message_for(error, t, escape_discord)


CHOICE_LIMIT = 25  # Discord shows at most 25 suggestions
CHOICE_CHARS = 100  # and each one's name and value within 100 characters


async def section_choices(core: ChatCore, typed: str) -> list[app_commands.Choice[str]]:
    """The sections matching what is typed (in either language; the top-level ones when nothing is),
    with their entry counts: at most 25, as Discord allows. A value is the section's path, or its short
    id when the path is longer than Discord allows."""
    try:
        # Suggestions are answered within Discord's 3 s or not at all: while the tree is rebuilt, none.
        tree = await asyncio.wait_for(core.sections(), BEFORE_DEFER_SECONDS)
        found = tree.find(typed, CHOICE_LIMIT)
    except (KnowledgeError, TimeoutError) as error:
        _log.info("no section suggestions: %s", error or "the section tree took too long")
        return []
    choices = []
    for section in found:
        name = f"{section.key} ({section.count})"
        if len(name) > CHOICE_CHARS:  # keep the end: the section's own name and its count
            name = "…" + name[-(CHOICE_CHARS - 1) :]
        value = section.key if len(section.key) <= CHOICE_CHARS else section.id
        choices.append(app_commands.Choice(name=name, value=value))
    return choices


class KnowledgeTree(app_commands.CommandTree["KnowledgeBot"]):
    """The slash-command tree. Every command error ends in `on_error` and becomes a private reply."""

    async def interaction_check(self, interaction: discord.Interaction[KnowledgeBot], /) -> bool:
        """Commands outside the channel allowlist (KB_DISCORD_CHANNELS) get a private "not in this
        channel" and do nothing; their suggestions are empty."""
        if self.client.answers_in(interaction.channel_id, interaction.channel):
            return True
        if interaction.type is discord.InteractionType.autocomplete:
            await interaction.response.autocomplete([])
        else:
            await self.client.reply_privately(
                interaction, NotHere().message_in(texts_for(interaction_locale(interaction)))
            )
        return False

    async def on_error(
        self, interaction: discord.Interaction[KnowledgeBot], error: app_commands.AppCommandError, /
    ) -> None:
        original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        if isinstance(original, discord.NotFound) and original.code == UNKNOWN_INTERACTION:
            # Discord dropped the interaction (not answered within 3 s, or answered elsewhere): no reply can reach it.
            _log.info("interaction %s expired before it was answered", interaction.id)
            return
        stale = isinstance(original, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch)
        if stale:  # registered with Discord by an older version of the bot: not an error of this one
            _log.info("interaction %s: %s", interaction.id, original)
        if interaction.type is discord.InteractionType.autocomplete:
            if not interaction.response.is_done():  # only suggestions can answer it
                await interaction.response.autocomplete([])
            if not stale:
                _log.error("suggestions failed", exc_info=original)
            return
        t = texts_for(interaction_locale(interaction))
        # Only /reindex has checks (admin, in a server), so a failed check means "not an admin here".
        if isinstance(original, app_commands.CheckFailure):
            text = NotAdmin().message_in(t)
        elif stale:
            text = StaleCommand().message_in(t)
        else:
            text = message_for(original, t, client_texts(interaction))
        await self.client.reply_privately(interaction, text)


def _is_admin(interaction: discord.Interaction) -> bool:
    """Whether the user may /reindex: in a server the bot is in (not one where only a user installed the app),
    one of `KB_DISCORD_ADMINS` (a user id or a role's) when set, else a member with Manage Server (of the
    `KB_DISCORD_GUILD_ID` server, when set). The index serves every server, so a manager of any server the
    bot was invited to is not enough when the operator names the admins."""
    bot = interaction.client
    if interaction.guild_id is None or not isinstance(bot, KnowledgeBot) or bot.get_guild(interaction.guild_id) is None:
        return False
    settings = bot.core.settings
    if settings.discord_admins:
        roles = getattr(interaction.user, "roles", ())
        return bool({interaction.user.id, *(role.id for role in roles)} & set(settings.discord_admins))
    if settings.discord_guild_id is not None and interaction.guild_id != settings.discord_guild_id:
        return False
    # Discord hides the command from members without Manage Server (default_permissions), but server
    # admins can override that per role or channel, so the bot checks the member's permissions itself.
    permissions = interaction.permissions
    return permissions.manage_guild or permissions.administrator


def _add_commands(bot: KnowledgeBot) -> None:
    tree = bot.tree

    # Names and descriptions are the catalogue's msgids: CatalogueTranslator gives them in Chinese.
    @tree.command(name=texts.ASK, description=texts.ASK_DESCRIPTION)
    @app_commands.describe(
        question=texts.QUESTION_DESCRIPTION,
        section=texts.SECTION_DESCRIPTION,
        lang=texts.LANG_DESCRIPTION,
        private=texts.PRIVATE_DESCRIPTION,
    )
    @app_commands.choices(
        lang=[
            app_commands.Choice(name=texts.CHOICE_EN, value="en"),
            app_commands.Choice(name=texts.CHOICE_ZH, value="zh"),
            app_commands.Choice(name=texts.CHOICE_ZH_HANS, value="zh-Hans"),
            app_commands.Choice(name=texts.CHOICE_ZH_HANT, value="zh-Hant"),
        ]
    )
    async def ask(
        interaction: discord.Interaction,
        question: app_commands.Range[str, 1, OPTION_MAX_CHARS],
        section: app_commands.Range[str, 1, 100] | None = None,
        lang: str | None = None,
        private: bool = False,
    ) -> None:
        """Ask the collection of ML reading notes a question."""
        locale = interaction_locale(interaction, question)
        # Prepared before deferring: "please wait", the usage hint and an unknown section are then
        # private responses, with no "thinking…" message shown to the channel first.
        asked, scope = await within_deadline(
            interaction,
            bot.core.prepare(user_key(interaction.user), question, section=section, lang=lang, private=private),
            ephemeral=private or read_request(question).private,  # "-p" in the question, read as prepare reads it
        )
        await defer_once(interaction, ephemeral=scope.private)
        answer = await bot.core.answer(conversation_key(interaction.channel_id), asked, locale=locale, scope=scope)
        await bot.send_answer(interaction, answer)

    @ask.autocomplete("section")
    async def suggest_sections(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """The sections whose names match what is typed, in either language, with their entry counts."""
        return await section_choices(bot.core, current)

    @tree.command(name=texts.BROWSE, description=texts.BROWSE_DESCRIPTION)
    @app_commands.describe(section=texts.BROWSE_SECTION_DESCRIPTION)
    async def browse(interaction: discord.Interaction, section: app_commands.Range[str, 1, 100] | None = None) -> None:
        """Walk through the collection's sections, with their entry counts (only the user sees the walk)."""
        await bot.show_browse(interaction, section or TOP, 1)

    @browse.autocomplete("section")
    async def suggest_browse_sections(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """The sections whose names match what is typed, in either language, with their entry counts."""
        return await section_choices(bot.core, current)

    @tree.command(name=texts.NEW, description=texts.NEW_DESCRIPTION)
    @app_commands.describe(days=texts.DAYS_DESCRIPTION)
    async def new(interaction: discord.Interaction, days: app_commands.Range[int, 1, NEW_DAYS_MAX] = NEW_DAYS) -> None:
        """The entries added to the collection in the last days, by section (only the user sees the list)."""
        await bot.show_new(interaction, days, 1)

    @tree.command(name=texts.SIMILAR, description=texts.SIMILAR_DESCRIPTION)
    @app_commands.describe(number=texts.NUMBER_DESCRIPTION)
    async def similar(interaction: discord.Interaction, number: app_commands.Range[int, 1, 100]) -> None:
        """Entries like one of the last answer in this channel."""
        locale = interaction_locale(interaction)
        conversation = conversation_key(interaction.channel_id)
        # Late, the deferral is private: whether the answer is private is not known yet.
        answer = await within_deadline(
            interaction, bot.core.similar(conversation, number, locale=locale), ephemeral=True
        )
        await defer_once(interaction, ephemeral=answer.private)
        await bot.send_answer(interaction, answer)

    @tree.command(name=texts.MORE, description=texts.MORE_DESCRIPTION)
    async def more(interaction: discord.Interaction) -> None:
        """Show the next results for the last question asked in this channel."""
        locale = interaction_locale(interaction)
        await interaction.response.defer(thinking=True)
        answer = await bot.core.more(conversation_key(interaction.channel_id), locale=locale)
        await bot.send_answer(interaction, answer)

    @tree.command(name=texts.STATS_COMMAND, description=texts.STATS_DESCRIPTION)
    async def stats(interaction: discord.Interaction) -> None:
        """What the index holds and when it was built."""
        t = texts_for(interaction_locale(interaction))
        await interaction.response.defer(thinking=True)
        await bot.say(interaction, escape_discord(stats_text(await bot.core.stats(), t)))

    @tree.command(name=texts.HELP, description=texts.HELP_DESCRIPTION)
    async def help_(interaction: discord.Interaction) -> None:
        """How to ask this bot about the reading notes."""
        locale = interaction_locale(interaction)
        await interaction.response.defer(thinking=True)
        await bot.say(interaction, bot.core.help(locale, discord_commands(client_texts(interaction)), mentions=True))

    @tree.command(name=texts.REINDEX, description=texts.REINDEX_DESCRIPTION)
    @app_commands.describe(full=texts.FULL_DESCRIPTION)
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.guild_only()
    @app_commands.allowed_installs(guilds=True, users=False)  # never offered where only a user installed the app
    @app_commands.check(_is_admin)
    async def reindex(interaction: discord.Interaction, full: bool = False) -> None:
        """Re-read the collection (server managers only); answers keep coming meanwhile."""
        locale = interaction_locale(interaction)
        user = interaction.user
        # Starting is quick (taking the lease), so no defer: "already running" can then be a private response;
        # only a slow state store gets the interaction deferred first.
        starting = bot.core.start_reindex(f"{user_key(user)} ({user})", full=full)
        task = await within_deadline(interaction, starting, ephemeral=False)
        try:
            started = bot.core.reindex_started(full=full, locale=locale)
            if interaction.response.is_done():
                await bot.say(interaction, started)
            else:
                await interaction.response.send_message(started, allowed_mentions=NO_MENTIONS)
        finally:
            bot.spawn(bot.post_reindex_result(interaction, task, locale))


# -- the client ----------------------------------------------------------------------------------------


class KnowledgeBot(discord.Client):
    """The Discord client: slash commands, @mentions in server channels and DMs, and answer buttons.

    It needs no privileged intent: Discord sends the text of DMs and of messages that mention the bot
    without Message Content. `KB_DISCORD_MESSAGE_CONTENT=true` asks for that intent too (enable it in the
    developer portal first, or the gateway refuses the connection): a mention of the bot's role carries
    its text only then.
    """

    def __init__(self, core: ChatCore, settings: BotSettings, *, sync_on_start: bool = False, **options: Any) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = True
        intents.message_content = settings.discord_message_content
        super().__init__(intents=intents, allowed_mentions=NO_MENTIONS, **options)
        self.core = core
        self.settings = settings
        self.sync_on_start = sync_on_start
        self.tree = KnowledgeTree(self)
        self._background: set[asyncio.Task[None]] = set()
        _add_commands(self)

    async def setup_hook(self) -> None:
        """Register the button templates and the commands' translator and, when asked, sync the slash
        commands (after login)."""
        self.add_dynamic_items(MoreButton, VoteButton, SimilarSelect, BrowseButton, BrowseSelect, NewPageButton)
        await self.tree.set_translator(CatalogueTranslator())
        if self.sync_on_start:
            try:
                await sync_commands(self)
            except discord.HTTPException:
                _log.exception("could not sync the slash commands; @mentions still work")

    async def on_ready(self) -> None:
        """Log who we are connected as, and post the digests that are due (one may have waited for us)."""
        _log.info("connected to Discord as %s in %d server(s)", self.user, len(self.guilds))
        if self.core.digest_posters:
            self.spawn(self._post_digests())

    async def _post_digests(self) -> None:
        await self.core.post_digests()

    async def close(self) -> None:
        """Stop background posts (a running reindex itself goes on), then disconnect."""
        for task in list(self._background):
            task.cancel()
        await super().close()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` in the background, keeping a reference so it is not garbage-collected."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- replies to interactions -------------------------------------------------------------------

    async def send_answer(self, interaction: discord.Interaction, answer: Answer) -> None:
        """An answer as followups, split at Discord's limit; the buttons go under the last message."""
        size = self.core.settings.answer_size
        messages = render_discord(answer, size)
        view = answer_view(answer, size)
        for index, message in enumerate(messages, 1):
            await self._followup(interaction, message, view if index == len(messages) else None, answer.private)

    async def _followup(
        self,
        interaction: discord.Interaction,
        message: DiscordMessage,
        view: discord.ui.View | None,
        private: bool = False,
    ) -> None:
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        await interaction.followup.send(
            message.content,
            allowed_mentions=NO_MENTIONS,
            suppress_embeds=message.suppress_embeds,
            ephemeral=private,
            **extra,
        )
        interaction.extras[_FOLLOWED_UP] = True

    async def say(self, interaction: discord.Interaction, text: str) -> None:
        """A plain followup to a deferred interaction, in as many messages as Discord's 2,000 characters need
        (`/stats` with many sources whose sync failed is longer)."""
        for piece in split(text, DISCORD_LIMIT):
            await interaction.followup.send(piece, allowed_mentions=NO_MENTIONS, suppress_embeds=True)
            interaction.extras[_FOLLOWED_UP] = True

    async def reply_privately(self, interaction: discord.Interaction, text: str) -> None:
        """An ephemeral reply, as the response or as a followup when the interaction was deferred.

        After a public `defer(thinking=True)` Discord shows the first followup in place of the
        "thinking…" message, visible to the channel whatever its ephemeral flag; so that message is
        deleted first, and the followup becomes a message of its own, seen by the asker only.
        """
        try:
            if not interaction.response.is_done():
                await interaction.response.send_message(
                    text, ephemeral=True, allowed_mentions=NO_MENTIONS, suppress_embeds=True
                )
                return
            if not interaction.extras.get(_FOLLOWED_UP):
                try:
                    await interaction.delete_original_response()
                except discord.HTTPException as error:
                    _log.info("could not delete the thinking message of %s: HTTP %s", interaction.id, error.status)
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS, suppress_embeds=True)
            interaction.extras[_FOLLOWED_UP] = True
        except discord.HTTPException as error:
            _log.warning("could not send a reply to interaction %s: HTTP %s", interaction.id, error.status)

    def answers_in(self, channel_id: int | None, channel: object) -> bool:
        """Whether the bot answers in this channel: a DM with the bot; elsewhere, the channels of the
        allowlist (KB_DISCORD_CHANNELS; empty: all), a thread counting as its channel. A group DM (where a
        user-installed app's commands run) has other people in it: it is a channel like any other, as
        Slack's are (`mpim`)."""
        allowed = self.settings.discord_channels
        if not allowed or isinstance(channel, discord.DMChannel):
            return True
        return channel_id in allowed or getattr(channel, "parent_id", None) in allowed

    async def _allowed(self, interaction: discord.Interaction) -> bool:
        """Whether a button or menu may act here; if not, the user is told privately."""
        if self.answers_in(interaction.channel_id, interaction.channel):
            return True
        await self.reply_privately(interaction, NotHere().message_in(texts_for(interaction_locale(interaction))))
        return False

    async def show_browse(
        self, interaction: discord.Interaction, section: str, page: int, *, by_id: bool = False
    ) -> None:
        """A page of the walk through the sections, seen by the user only: it is their own navigation.
        `by_id`: `section` is a section's id, from a button or menu."""
        if not await self._allowed(interaction):
            return
        locale = interaction_locale(interaction)
        try:
            # The section tree is built anew after a reindex: on a busy host that can near Discord's 3 s.
            browsing = self.core.browse(section, page, locale=locale, by_id=by_id)
            shown = await within_deadline(interaction, browsing, ephemeral=True)
            await defer_once(interaction, ephemeral=True)
            messages = render_browse_discord(shown)
            view = browse_view(shown)
            for index, message in enumerate(messages, 1):
                await self._followup(interaction, message, view if index == len(messages) else None, private=True)
        except Exception as error:  # noqa: BLE001 - user_message_for logs anything unexpected
            await self.reply_privately(interaction, message_for(error, texts_for(locale), client_texts(interaction)))

    async def show_new(self, interaction: discord.Interaction, days: int, page: int) -> None:
        """A page of the entries added in the last `days` days, seen by the user only, with Previous/Next."""
        if not await self._allowed(interaction):
            return
        locale = interaction_locale(interaction)
        t = texts_for(locale)
        try:
            if not 1 <= days <= NEW_DAYS_MAX:
                raise BadDays(days, command_name(t, texts.NEW, client=client_texts(interaction)))
            await interaction.response.defer(thinking=True, ephemeral=True)
            shown = await self.core.new(days, page, locale=locale)
            messages = render_new_discord(shown, command=command_name(t, texts.NEW, client=client_texts(interaction)))
            view = new_view(shown)
            for index, message in enumerate(messages, 1):
                await self._followup(interaction, message, view if index == len(messages) else None, private=True)
        except Exception as error:  # noqa: BLE001 - user_message_for logs anything unexpected
            await self.reply_privately(interaction, message_for(error, t, client_texts(interaction)))

    async def show_similar(self, interaction: discord.Interaction, entry_id: str, answer_id: str) -> None:
        """ "Similar to…": the entries nearest to the one picked, privately when its answer was private."""
        if not await self._allowed(interaction):
            return
        locale = interaction_locale(interaction)
        try:
            private = await within_deadline(interaction, self.core.is_private(answer_id), ephemeral=True)
            await defer_once(interaction, ephemeral=private)
            conversation = conversation_key(interaction.channel_id)
            answer = await self.core.similar(conversation, entry_id, answer_id=answer_id, locale=locale)
            await self.send_answer(interaction, answer)
        except Exception as error:  # noqa: BLE001 - user_message_for logs anything unexpected
            await self.reply_privately(interaction, message_for(error, texts_for(locale), client_texts(interaction)))

    async def show_more(self, interaction: discord.Interaction, answer_id: str, page: int | None = None) -> None:
        """The "More results" button: page `page` of that answer, else its next (privately when it was private)."""
        if not await self._allowed(interaction):
            return
        locale = interaction_locale(interaction)
        try:
            private = await within_deadline(interaction, self.core.is_private(answer_id), ephemeral=True)
            await defer_once(interaction, ephemeral=private)
            conversation = conversation_key(interaction.channel_id)
            answer = await self.core.more(conversation, answer_id, locale=locale, page=page)
            await self.send_answer(interaction, answer)
        except Exception as error:  # noqa: BLE001 - user_message_for logs anything unexpected
            await self.reply_privately(interaction, message_for(error, texts_for(locale), client_texts(interaction)))

    async def record_vote(self, interaction: discord.Interaction, answer_id: str, vote: Vote) -> None:
        """A 👍/👎 button: store the vote for evaluation and thank the user privately."""
        if not await self._allowed(interaction):
            return
        locale = interaction_locale(interaction)
        try:
            user = user_key(interaction.user)
            vote_recorded = self.core.record_vote(answer_id, vote, user, "discord", locale=locale)
            text = await within_deadline(interaction, vote_recorded, ephemeral=True)
        except Exception as error:  # noqa: BLE001 - user_message_for logs anything unexpected
            text = message_for(error, texts_for(locale), client_texts(interaction))
        await self.reply_privately(interaction, text)

    async def post_reindex_result(
        self, interaction: discord.Interaction, task: asyncio.Task[SyncReport], locale: Locale = "en"
    ) -> None:
        """When the reindex finishes, post its summary (or that it failed) to whoever asked for it.

        Cancelling this post (on close) does not cancel the reindex.
        """
        text = await self.core.reindex_outcome(task, locale)
        try:
            # sources named by public URL: no previews of them
            await interaction.followup.send(text, allowed_mentions=NO_MENTIONS, suppress_embeds=True)
        except discord.HTTPException as error:
            # An interaction token lasts 15 minutes, and a full rebuild can take longer.
            _log.info("reindex summary as a followup failed (HTTP %s); posting to the channel", error.status)
            channel = interaction.channel
            if isinstance(channel, discord.abc.Messageable):
                try:
                    await channel.send(text, allowed_mentions=NO_MENTIONS, suppress_embeds=True)
                except discord.HTTPException as again:
                    _log.warning("could not post the reindex summary: HTTP %s", again.status)

    # -- @mentions and DMs -------------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        """Answer @mentions in server channels (those in `discord_channels`, when set) and all DMs."""
        me = self.user
        if me is None or message.author.bot or message.author.id == me.id or message.is_system():
            return  # a system notice (a pin, a thread created with the bot in its name) asks nothing
        if not message.content and message.poll is not None:
            return  # a poll sent to the bot: no question in it
        question = self._question_in(message, me)
        if question is None or not await self._answers_in_channel(message.channel):
            return  # not for the bot, or outside the allowlist: no reply
        if not await self.core.first_delivery(f"discord:{message.id}"):
            return  # every replica's gateway session gets the message: the first to claim it answers
        conversation = conversation_key(message.channel.id)
        locale = self.core.locale_for(conversation, text=read_request(question).text)
        try:
            answer = await self.core.ask(conversation, user_key(message.author), question, locale=locale)
        except Exception as error:  # noqa: BLE001 - user_message_for logs anything unexpected
            text = message_for(error, texts_for(locale))
            await self._reply(message, DiscordMessage(text, True), None, first=True)
            return
        size = self.core.settings.answer_size
        parts = render_discord(answer, size)
        view = answer_view(answer, size)
        private = answer.private and not isinstance(message.channel, discord.DMChannel)
        for index, part in enumerate(parts):
            last = view if index == len(parts) - 1 else None
            # Only an interaction can answer privately in a channel: a private mention is answered in a DM.
            if await self._reply(message, part, last, first=index == 0, direct=private):
                continue
            if private:  # the asker's DMs are closed to the bot: say so where they asked (the answer stays private)
                t = texts_for(locale)
                private_option = t.lookup(texts.PRIVATE_OPTION, texts.OPTION) or texts.PRIVATE_OPTION
                # named in the reply's language, as the option is (a mention does not say what the client shows)
                note = t(texts.DM_CLOSED, ask=client_command(t, texts.ASK), private=f"{private_option}: True")
                await self._reply(message, DiscordMessage(note, True), None, first=True)
            return  # the rest of an answer whose start was refused would be read as the whole answer

    def _question_in(self, message: discord.Message, me: discord.ClientUser) -> str | None:
        """The question a message asks the bot, or None when it is not for the bot."""
        tokens = [rf"<@!?{me.id}>"]
        if not isinstance(message.channel, discord.DMChannel):
            role = message.guild.self_role if message.guild else None
            # Users who pick the bot from the member list mention the bot's own role instead of it.
            if role is not None:
                tokens.append(rf"<@&{role.id}>")
            # The mention must be in the text: `message.mentions` also holds the author of a message
            # replied to (a reply pings them by default), so "thanks!" in reply to an answer is no question.
            if re.search("|".join(tokens), message.content) is None:
                return None
        return re.sub("|".join(tokens), " ", message.content).strip()

    async def _answers_in_channel(self, channel: object) -> bool:
        """`answers_in` for a message's channel. A thread discord.py has not cached (an archived one, a
        private one the bot was just added to) comes as a PartialMessageable without its parent: with an
        allowlist, it is fetched once to learn the channel it belongs to."""
        channel_id = getattr(channel, "id", None)
        if self.answers_in(channel_id, channel):
            return True
        if not isinstance(channel, discord.PartialMessageable) or channel.guild_id is None:
            return False
        try:
            fetched = await self.fetch_channel(channel.id)
        except discord.HTTPException as error:
            _log.info("could not look up channel %s for the allowlist: HTTP %s", channel.id, error.status)
            return False
        return self.answers_in(channel.id, fetched)

    async def _reply(
        self,
        message: discord.Message,
        part: DiscordMessage,
        view: discord.ui.View | None,
        *,
        first: bool,
        direct: bool = False,
    ) -> bool:
        """One message of the answer to `message`: a reply in its channel, or (`direct`) a DM to its author;
        whether it was sent."""
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        if first and not direct:
            # A reply, like message.reply(), but one that still goes out if the question was deleted.
            extra["reference"] = message.to_reference(fail_if_not_exists=False)
            extra["mention_author"] = False
        try:
            channel = await message.author.create_dm() if direct else message.channel
            try:
                await channel.send(
                    part.content, allowed_mentions=NO_MENTIONS, suppress_embeds=part.suppress_embeds, **extra
                )
            except discord.Forbidden:
                if "reference" not in extra:
                    raise
                # A reply needs Read Message History in the channel: without it, a message of its own
                del extra["reference"], extra["mention_author"]
                await channel.send(
                    part.content, allowed_mentions=NO_MENTIONS, suppress_embeds=part.suppress_embeds, **extra
                )
        except discord.HTTPException as error:
            _log.warning("could not answer message %s: HTTP %s", message.id, error.status)
            return False
        return True


# -- digests ------------------------------------------------------------------------------------------


class DiscordDigestPoster:
    """Posts digests to one channel (`KB_DISCORD_DIGEST_CHANNEL`) through the REST API, once the client
    has logged in; `/new` in the hint is named in the digest's language."""

    def __init__(self, client: KnowledgeBot, channel_id: int) -> None:
        self.client = client
        self.channel_id = channel_id

    @property
    def target(self) -> str:
        return conversation_key(self.channel_id)

    @property
    def ready(self) -> bool:
        """Logged in (the REST API answers); until then the digest waits, unclaimed."""
        return self.client.user is not None and not self.client.is_closed()

    async def post(self, digest: NewList) -> None:
        """Send the digest as one or more messages; pings nobody, previews nothing."""
        channel = self.client.get_partial_messageable(self.channel_id)
        command = command_name(texts_for(digest.locale), texts.NEW)
        for message in render_new_discord(digest, command=command):
            await channel.send(message.content, allowed_mentions=NO_MENTIONS, suppress_embeds=message.suppress_embeds)


class ShardedKnowledgeBot(KnowledgeBot, discord.AutoShardedClient):
    """The same bot over several gateway connections, all in this process (`KB_DISCORD_SHARDS`): with no
    `shard_count` it asks `/gateway/bot` for the count Discord recommends. Shards identify a bucket at a
    time (`max_concurrency` of them, from the session start limit), one bucket every 5 s, as Discord
    allows; commands, buttons and the chat core are the same on every shard."""

    max_concurrency = 1

    async def setup_hook(self) -> None:
        await super().setup_hook()
        self.max_concurrency = max(1, (await self.fetch_session_start_limits()).max_concurrency)
        _log.info("Discord: %s shard(s), identifying %d at a time", self.shard_count or "auto", self.max_concurrency)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if not initial and (shard_id or 0) % self.max_concurrency == 0:
            await asyncio.sleep(5.0)


# -- entry points --------------------------------------------------------------------------------------


def create_discord_client(core: ChatCore, settings: BotSettings, *, sync_on_start: bool | None = None) -> KnowledgeBot:
    """A client for `core`, with discord.py pointed at the configured API and gateway; sharded when
    `discord_shards` is set (`ShardedKnowledgeBot`).

    `sync_on_start` syncs the slash commands in `setup_hook` (after login); by default only when
    `discord_guild_id` is set, since a guild sync is instant and a global one is rarely needed.
    """
    configure_endpoints(settings)
    if sync_on_start is None:
        sync_on_start = settings.discord_guild_id is not None
    shards = settings.discord_shards
    if shards is None:
        return KnowledgeBot(core, settings, sync_on_start=sync_on_start)
    count = None if shards == "auto" else shards
    return ShardedKnowledgeBot(core, settings, sync_on_start=sync_on_start, shard_count=count)


async def sync_commands(client: KnowledgeBot) -> list[app_commands.AppCommand]:
    """Register the slash commands with Discord: in `discord_guild_id` when set, else globally.

    The client must be logged in (login gives the application id). Guild commands appear at once;
    with a guild set, commands synced globally earlier also show, so users may see them twice.
    """
    guild_id = client.settings.discord_guild_id
    if guild_id is None:
        synced = await client.tree.sync()
        where = "globally"
    else:
        guild = discord.Object(id=guild_id)
        client.tree.copy_global_to(guild=guild)
        synced = await client.tree.sync(guild=guild)
        where = f"in guild {guild_id}"
    names = ", ".join(sorted(f"/{command.name}" for command in synced))
    _log.info("synced %d slash command(s) %s: %s", len(synced), where, names)
    return synced


def _token(settings: BotSettings) -> str:
    if settings.discord_token is None or not settings.discord_token.get_secret_value():
        raise ValueError("no Discord token: set KB_DISCORD_TOKEN")
    return settings.discord_token.get_secret_value().strip()


@contextlib.contextmanager
def _refusals(settings: BotSettings) -> Iterator[None]:
    """What ends discord.py's `start` or `login` for good, as one line naming the setting (CannotStart): it
    retries a lost connection by itself, so what comes out is a refusal, or no Discord at the address."""
    try:
        yield
    except discord.PrivilegedIntentsRequired:
        raise CannotStart(
            "Discord refused the Message Content intent (KB_DISCORD_MESSAGE_CONTENT): enable it for the bot in "
            "the Developer Portal (Bot, Privileged Gateway Intents), or unset the setting"
        ) from None
    except discord.LoginFailure:
        raise CannotStart(
            "Discord refused the bot token (KB_DISCORD_TOKEN): copy it again from the Developer Portal"
        ) from None
    except discord.ConnectionClosed as error:  # 4004 (a bad token) is refused by the login before the gateway
        raise CannotStart(f"Discord closed the gateway connection with code {error.code}") from None
    except discord.HTTPException as error:
        said = " ".join(str(error.text).split())[:200]
        raise CannotStart(f"Discord answered {error.status} ({said}) at {settings.discord_api_url}") from None
    except (aiohttp.ClientError, OSError) as error:
        raise CannotStart(
            f"cannot reach Discord at {settings.discord_api_url} (KB_DISCORD_API_URL): {type(error).__name__}"
        ) from None


async def run_discord(client: KnowledgeBot, settings: BotSettings, *, sync: bool = False) -> None:
    """Log in, sync the slash commands (when `sync`, or as `create_discord_client` decided), and serve
    until `client.close()` or cancellation; the client is closed on the way out. A refused token or intent,
    or no Discord at `discord_api_url`, raises CannotStart."""
    if sync:
        client.sync_on_start = True
    async with client:
        with _refusals(settings):
            await client.start(_token(settings))


async def sync_only(client: KnowledgeBot, settings: BotSettings) -> None:
    """Log in, sync the slash commands (to `discord_guild_id` when set, else globally), and disconnect."""
    client.sync_on_start = False
    async with client:
        with _refusals(settings):
            await client.login(_token(settings))
        await sync_commands(client)
