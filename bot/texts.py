"""Every text the bot says to chat users, as the English msgids of its gettext catalogue.

Show one through the reply's `bot.i18n.Texts`: `t(texts.COOLDOWN, seconds=3)` is the template in the
reply's language, formatted with `str.format`. `N_` marks a text for extraction (`make messages`); the
translations are in `bot/locale/*/LC_MESSAGES/messages.po`. Operator-facing texts (logs, command-line
errors) are not here.
"""

from __future__ import annotations

from bot.i18n import N_, NN_, NP_

# -- asking ----------------------------------------------------------------------------------------------
USAGE = N_(
    "Ask me a question about the collection, e.g. `{ask} contrastive learning papers` "
    "or `{ask} 哪篇论文修正了 Adam 的 weight decay?`"
)
EMPTY_QUESTION = N_("There is no question to answer. {usage}")
COOLDOWN = N_("You're asking quickly: please wait {seconds} s before the next question.")
NOTHING_MORE = N_("There are no more results for that question. Ask another one!")
UNKNOWN_ANSWER = N_("That answer is too old for buttons now; please ask the question again.")

# -- answers (rendering) ---------------------------------------------------------------------------------
RESULTS_HEADER = N_("Results for “{question}”{scope}{pages}{cut}:")
WEAK_HEADER = N_("Closest matches for “{question}”{scope}{pages}{cut}; they may not be exactly what you asked:")
WEAK_MATCH = N_("closest match, may not be exactly what you asked")
PAGE_OF = N_(" (page {page}/{pages})")
QUESTION_CUT = N_(" (your question was long, so I used its beginning)")
REFUSAL = N_("I found nothing in the collection about “{question}”{scope}{cut}. {hint}")
REFUSAL_HINT = N_("Try the other language (中文 / English), or broader words.")
MORE_HINT = N_("(more results: {more})")
MORE_BUTTON = N_("More results")
CODE_LINK = N_("code")
IN_SECTION = N_("in {section}")  # under an entry in plain text
# An entry without a link of its own: its place in the collection, linked ("§3.24 …") or as text (file › section).
IN_COLLECTION = N_("in the collection: {place}")
RESULT_COUNT = N_("{count} result(s) for “{question}”")

# -- filters, lookups and "more like this" --------------------------------------------------------------
SCOPE_SECTION = N_(" in §{section}")
SCOPE_LANG = N_(" ({lang})")
LANG_EN = N_("English entries")
LANG_ZH = N_("Chinese entries")
LANG_ZH_HANS = N_("Simplified Chinese entries")
LANG_ZH_HANT = N_("Traditional Chinese entries")
UNKNOWN_SECTION = N_("No section of the collection matches “{section}”. Try part of its name, in Chinese or English.")
INDEX_EMPTY = N_("The collection is not indexed yet, so I cannot answer. Please try again in a few minutes.")
ENTRY_GONE = N_("That entry is no longer in the collection: it was removed since this answer was shown.")
SECTION_GONE = N_(
    "That section is no longer in the collection: it was renamed or removed since this page was shown. "
    "Browse again from the top."
)
FOUND_HEADER = N_("In the collection: {identifier}{where}{pages}:")
MISSING_HEADER = N_("Not in the collection: {identifier}. Related entries, not the one you asked for{scope}{pages}:")
MISSING_NOTHING = N_("Not in the collection: {identifier}, and I found nothing related{scope}.")
RELATED = N_("related, not the one you asked for")
SIMILAR_HEADER = N_("Entries like #{number} “{title}”{pages}:")
SIMILAR_NONE = N_("I found no entries like #{number} “{title}”.")
SIMILAR_PICK = N_("Similar to…")
SIMILAR_OPTION = N_("Similar to #{number}")
NO_SUCH_ITEM = N_("The last answer here has no entry #{number}.")
USAGE_SIMILAR = N_("Give the number of an entry of the last answer here, e.g. `{similar} 2`.")
NOT_HERE = N_("I don't answer in this channel. Ask me in a channel where I answer, or in a direct message.")
DM_CLOSED = N_(
    "I couldn't send you the answer in a direct message: your DMs may be closed to me. For an answer only you see, "
    "use `{ask}` with `{private}`."
)

# -- browsing ------------------------------------------------------------------------------------------
BROWSE_TOP = NN_(
    "The collection's sections, {count} entry in all{pages}:",
    "The collection's sections, {count} entries in all{pages}:",
)
BROWSE_SECTION = NN_("§{section}, {count} entry{pages}:", "§{section}, {count} entries{pages}:")
BROWSE_SUBSECTIONS = N_("Subsections:")
BROWSE_ENTRIES = N_("Entries:")
BROWSE_CHILD = N_("{name} ({count})")
BROWSE_PICK = N_("Open a section…")
BROWSE_UP = N_("Up")
BROWSE_PREVIOUS = N_("Previous")
BROWSE_NEXT = N_("Next")
BROWSE_OPEN_HINT = N_("(open one: {browse} NAME or NUMBER)")
BROWSE_NEXT_HINT = N_("(next page: {command})")

# -- what's new: /new and digests ----------------------------------------------------------------------
NEW_HEADER = NN_("{count} new entry in {window}{pages}:", "{count} new entries in {window}, newest first{pages}:")
NEW_WINDOW = NN_("the last day", "the last {days} days")
NEW_NONE = NN_(
    "No entries were added to the collection in the last day.",
    "No entries were added to the collection in the last {days} days.",
)
NEW_ADDED = N_("added {date}")
BAD_DAYS = N_("Give a number of days from 1 to 366, e.g. `{new} 7` (got “{days}”).")
DIGEST_HEADER = NN_("{count} new entry in the collection:", "{count} new entries in the collection:")
DIGEST_MORE = N_("…and {more} more: {new} lists them all.")

# -- feedback --------------------------------------------------------------------------------------------
THANKS = N_("Thanks for the feedback!")

# -- stats, help -----------------------------------------------------------------------------------------
STATS = NN_(
    "{entries} entry; last indexed {when}; embedder {embedder}.{running}",
    "{entries} entries; last indexed {when}; embedder {embedder}.{running}",
)
STATS_NEVER = N_("never")
STATS_REINDEX_RUNNING = N_(" A reindex is running.")
STATS_SOURCES = N_("Sources ({count}):")
STATS_GIT_SOURCE = N_("• {name} (git, branch {branch}): commit {commit} of {date}; last synced {synced}")
STATS_GIT_NOT_INDEXED = N_("• {name} (git, branch {branch}): not indexed yet")
STATS_SYNC_FAILED = N_("; the last sync failed at {when}, so answers come from the commit above")
STATS_ACTIVITY = NN_(
    "In the last 7 days: {answered} question answered, {refused} not; 👍 {up}, 👎 {down}.",
    "In the last 7 days: {answered} questions answered, {refused} not; 👍 {up}, 👎 {down}.",
)

HELP_INTRO = N_(
    "I answer questions from a curated collection of machine-learning reading notes (paper titles, Chinese "
    "article headlines, summaries and links), in Chinese or English."
)
HELP_ASK = N_("• {ask}: {usage}")
HELP_MORE = N_("• {more}: the next results for the last question")
HELP_STATS = N_("• {stats}: what the index holds and when it was built")
HELP_REINDEX = N_("• {reindex}: re-read the collection (admins only); answers keep coming meanwhile")
HELP_HELP = N_("• {help}: this text")
HELP_MENTION = N_("• Or mention me with a question, or send me a direct message.")
HELP_BROWSE = N_(
    "• {browse} [SECTION]: the collection's sections with their entry counts, or a section's subsections and "
    "entries, page by page"
)
HELP_NEW = N_("• {new} [DAYS]: the entries added to the collection in the last days (7 by default), by section")
HELP_SIMILAR = N_("• {similar} N: entries like the Nth of the last answer (or pick “Similar to…” under an answer)")
HELP_FILTERS = N_(
    "• In a question: in:SECTION (part of a section's name, in Chinese or English) and lang:en or lang:zh "
    "narrow the search, e.g. `{ask} in:推荐 lang:en 召回`; -p answers only you"
)
HELP_DISCORD_FILTERS = N_(
    "• {ask} has options: section (suggested as you type, in Chinese or English), lang, and private (only you see "
    "the answer)"
)
HELP_LOOKUP = N_(
    "• Paste an arXiv id or link, an OpenReview link or a GitHub repository: I say first whether the collection has it"
)

# -- reindex ---------------------------------------------------------------------------------------------
NOT_ADMIN = N_("Only the bot's admins can reindex the collection.")
STALE_COMMAND = N_(
    "This command is out of date: the bot has changed since Discord last learnt its commands. Ask the bot's admins "
    "to sync them (`python -m bot discord --sync`)."
)
REINDEX_STARTED = N_(
    "Reindex started; answers keep coming from the current index meanwhile, and I'll post the summary when it finishes."
)
FULL_REBUILD_STARTED = N_(
    "A full rebuild started; answers keep coming from the current index meanwhile, "
    "and I'll post the summary when it finishes."
)
ALREADY_RUNNING = N_("A reindex is already running; I'll post its summary when it finishes.")
CANNOT_COORDINATE = N_(
    "I can't reach the state the bot's instances share, so I can't tell whether another one is reindexing; "
    "please try again in a minute."
)
REINDEX_DONE = N_(
    "Reindex done in {seconds:.1f} s: {entries} entries "
    "({embedded} embedded, {unchanged} unchanged, {updated} updated, {removed} removed)."
)
REINDEX_FETCH_FAILED = N_(" Could not fetch {sources}, so it was indexed as last fetched; see the log.")
SYNC_NOTHING_CHANGED = N_("Nothing changed in the collection.")
REINDEX_SKIPPED = N_(" {skipped} file(s) skipped; see the log.")
REINDEX_KEPT = N_(" {kept} entries were kept as they were because their sources could not be read; see the log.")
READ_ONLY_REPLICA = N_(
    "This instance of the bot only answers from the shared index and never reindexes (a read-only replica). "
    "Please ask the bot's operator to reindex on the indexer."
)
REINDEX_FAILED = N_("The reindex failed; the details are in the bot's log. Answers still come from the previous index.")

# -- errors ----------------------------------------------------------------------------------------------
APOLOGY = N_("Sorry, something went wrong on my side. Please try again in a moment.")
# The knowledge core's own user messages (`KnowledgeError.user_message`), translated where they are shown.
# tests/test_i18n.py checks that every one of them is here.
KNOWLEDGE_MESSAGES = (
    N_("Something went wrong with the knowledge base. Please try again later."),
    N_("The knowledge base is unavailable right now; please try again shortly."),
    N_("The knowledge base cannot store its index right now. Please tell the bot's operator."),
    N_("The knowledge base is being updated. Please try again when the update finishes."),
    N_("The knowledge base cannot search right now. Please tell the bot's operator."),
    N_("The bot is misconfigured. Please tell the bot's operator."),
    N_(
        "The update would remove most of the collection, so it was not applied; the current index keeps "
        "answering. Please tell the bot's operator."
    ),
)

# -- the console -----------------------------------------------------------------------------------------
CONSOLE_BANNER = N_("Ask a question (中文 or English), or /help. /quit or Ctrl-D leaves.")
UNKNOWN_COMMAND = N_("Unknown command {command}. Try /help.")

# -- Discord's slash commands: names, descriptions and options (app_commands.Translator) --------------------
# A command's name must be lower case, without spaces, at most 32 characters, in every language. The
# contexts are literal strings for the extractor; these constants name them for the translator.
COMMAND = "command name"
DESCRIPTION = "command description"
OPTION = "option name"
OPTION_DESCRIPTION = "option description"
CHOICE = "option choice"

ASK = NP_("command name", "ask")
ASK_DESCRIPTION = NP_("command description", "Ask the collection of ML reading notes a question.")
QUESTION_OPTION = NP_("option name", "question")
QUESTION_DESCRIPTION = NP_("option description", "What to look for, in Chinese or English")
MORE = NP_("command name", "more")
MORE_DESCRIPTION = NP_("command description", "Show the next results for the last question asked in this channel.")
STATS_COMMAND = NP_("command name", "stats")
STATS_DESCRIPTION = NP_("command description", "What the index holds and when it was built.")
HELP = NP_("command name", "help")
HELP_DESCRIPTION = NP_("command description", "How to ask this bot about the reading notes.")
REINDEX = NP_("command name", "reindex")
REINDEX_DESCRIPTION = NP_(
    "command description", "Re-read the collection (server managers only); answers keep coming meanwhile."
)
SECTION_OPTION = NP_("option name", "section")
SECTION_DESCRIPTION = NP_("option description", "Only entries under this section (type part of its name)")
LANG_OPTION = NP_("option name", "lang")
LANG_DESCRIPTION = NP_("option description", "Only entries in this language")
CHOICE_EN = NP_("option choice", "English")
CHOICE_ZH = NP_("option choice", "Chinese (either script)")
CHOICE_ZH_HANS = NP_("option choice", "Simplified Chinese")
CHOICE_ZH_HANT = NP_("option choice", "Traditional Chinese")
PRIVATE_OPTION = NP_("option name", "private")
PRIVATE_DESCRIPTION = NP_("option description", "Show the answer to you only")
BROWSE = NP_("command name", "browse")
BROWSE_DESCRIPTION = NP_("command description", "Walk through the collection's sections, with their entry counts.")
BROWSE_SECTION_DESCRIPTION = NP_("option description", "The section to open (type part of its name)")
SIMILAR = NP_("command name", "similar")
SIMILAR_DESCRIPTION = NP_("command description", "Entries like one of the last answer in this channel.")
NUMBER_OPTION = NP_("option name", "number")
NUMBER_DESCRIPTION = NP_("option description", "The number of the entry in the last answer")
NEW = NP_("command name", "new")
NEW_DESCRIPTION = NP_("command description", "The entries added to the collection in the last days, by section.")
DAYS_OPTION = NP_("option name", "days")
DAYS_DESCRIPTION = NP_("option description", "How many days back (7 by default)")
FULL_OPTION = NP_("option name", "full")
FULL_DESCRIPTION = NP_("option description", "Rebuild the index from scratch instead of updating what changed")
