"""Every text the bot says to chat users, as the English msgids of its gettext catalogue.

Show one through the reply's `bot.i18n.Texts`: `t(texts.COOLDOWN, seconds=3)` is the template in the
reply's language, formatted with `str.format`. `N_` marks a text for extraction (`make messages`); the
translations are in `bot/locale/*/LC_MESSAGES/messages.po`. Operator-facing texts (logs, command-line
errors) are not here.
"""

from __future__ import annotations

from bot.i18n import N_, NP_

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
RESULTS_HEADER = N_("Results for “{question}”{pages}{cut}:")
WEAK_HEADER = N_("Closest matches for “{question}”{pages}{cut}; they may not be exactly what you asked:")
WEAK_MATCH = N_("closest match, may not be exactly what you asked")
PAGE_OF = N_(" (page {page}/{pages})")
QUESTION_CUT = N_(" (your question was long, so I used its beginning)")
REFUSAL = N_("I found nothing in the collection about “{question}”{cut}. {hint}")
REFUSAL_HINT = N_("Try the other language (中文 / English), or broader words.")
MORE_HINT = N_("(more results: {more})")
MORE_BUTTON = N_("More results")
CODE_LINK = N_("code")
IN_SECTION = N_("in {section}")  # under an entry in plain text
RESULT_COUNT = N_("{count} result(s) for “{question}”")

# -- feedback --------------------------------------------------------------------------------------------
THANKS = N_("Thanks for the feedback!")

# -- stats, help -----------------------------------------------------------------------------------------
STATS = N_(
    "{entries} entries from {source_count} source(s) ({sources}); last indexed {when}; embedder {embedder}.{running}"
)
STATS_NEVER = N_("never")
STATS_NO_SOURCES = N_("none")
STATS_REINDEX_RUNNING = N_(" A reindex is running.")

HELP_INTRO = N_(
    "I answer questions from a curated collection of machine-learning reading notes (paper titles, Chinese\n"
    "article headlines, summaries and links), in Chinese or English."
)
HELP_ASK = N_("• {ask}: {usage}")
HELP_MORE = N_("• {more}: the next results for the last question")
HELP_STATS = N_("• {stats}: what the index holds and when it was built")
HELP_REINDEX = N_("• {reindex}: re-read the collection (admins only); answers keep coming meanwhile")
HELP_HELP = N_("• {help}: this text")
HELP_MENTION = N_("• Or mention me with a question, or send me a direct message.")

# -- reindex ---------------------------------------------------------------------------------------------
NOT_ADMIN = N_("Only the bot's admins can reindex the collection.")
REINDEX_STARTED = N_(
    "Reindex started; answers keep coming from the current index meanwhile, and I'll post the summary when it finishes."
)
FULL_REBUILD_STARTED = N_(
    "A full rebuild started; answers keep coming from the current index meanwhile, "
    "and I'll post the summary when it finishes."
)
ALREADY_RUNNING = N_("A reindex is already running; I'll post its summary when it finishes.")
REINDEX_DONE = N_(
    "Reindex done in {seconds:.1f} s: {entries} entries "
    "({embedded} embedded, {unchanged} unchanged, {removed} removed)."
)
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
FULL_OPTION = NP_("option name", "full")
FULL_DESCRIPTION = NP_("option description", "Rebuild the index from scratch instead of updating what changed")
