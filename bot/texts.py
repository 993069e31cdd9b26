"""Every text the bot says to chat users, in one place (for consistency now, and translation later).

Templates take their values with `str.format`. Operator-facing texts (logs, command-line errors) are not here.
"""

from __future__ import annotations

# -- asking ----------------------------------------------------------------------------------------------
USAGE = (
    "Ask me a question about the collection, e.g. `/ask contrastive learning papers` "
    "or `/ask 哪篇论文修正了 Adam 的 weight decay?`"
)
EMPTY_QUESTION = f"There is no question to answer. {USAGE}"
COOLDOWN = "You're asking quickly: please wait {seconds} s before the next question."
NOTHING_MORE = "There are no more results for that question. Ask another one!"
UNKNOWN_ANSWER = "That answer is too old for buttons now; please ask the question again."

# -- answers (rendering) ---------------------------------------------------------------------------------
RESULTS_HEADER = "Results for “{question}”{pages}{cut}:"
WEAK_HEADER = "Closest matches for “{question}”{pages}{cut}; they may not be exactly what you asked:"
WEAK_MATCH = "closest match, may not be exactly what you asked"
PAGE_OF = " (page {page}/{pages})"
QUESTION_CUT = " (your question was long, so I used its beginning)"
REFUSAL = "I found nothing in the collection about “{question}”{cut}. {hint}"
REFUSAL_HINT = "Try the other language (中文 / English), or broader words."
MORE_HINT = "(more results: /more)"
MORE_BUTTON = "More results"
CODE_LINK = "code"
IN_SECTION = "in {section}"  # under an entry in plain text
RESULT_COUNT = "{count} result(s) for “{question}”"

# -- feedback --------------------------------------------------------------------------------------------
THANKS = "Thanks for the feedback!"

# -- stats, help -----------------------------------------------------------------------------------------
STATS = (
    "{entries} entries from {source_count} source(s) ({sources}); last indexed {when}; embedder {embedder}.{running}"
)
STATS_NEVER = "never"
STATS_NO_SOURCES = "none"
STATS_REINDEX_RUNNING = " A reindex is running."

HELP = f"""\
I answer questions from a curated collection of machine-learning reading notes (paper titles, Chinese
article headlines, summaries and links), in Chinese or English.

• ask: {USAGE}
• more: the next results for the last question
• stats: what the index holds and when it was built
• reindex: re-read the collection (admins only); answers keep coming meanwhile
• help: this text"""
SLACK_HELP = "On Slack: `/ask`, `/more`, `/kb-stats`, `/kb-help`, `/kb-reindex [full]`; or mention me, or DM me."

# -- reindex ---------------------------------------------------------------------------------------------
NOT_ADMIN = "Only the bot's admins can reindex the collection."
REINDEX_STARTED = (
    "Reindex started; answers keep coming from the current index meanwhile, and I'll post the summary when it finishes."
)
FULL_REBUILD_STARTED = (
    "A full rebuild started; answers keep coming from the current index meanwhile, "
    "and I'll post the summary when it finishes."
)
ALREADY_RUNNING = "A reindex is already running; I'll post its summary when it finishes."
REINDEX_DONE = (
    "Reindex done in {seconds:.1f} s: {entries} entries "
    "({embedded} embedded, {unchanged} unchanged, {removed} removed)."
)
REINDEX_SKIPPED = " {skipped} file(s) skipped; see the log."
REINDEX_KEPT = " {kept} entries were kept as they were because their sources could not be read; see the log."
READ_ONLY_REPLICA = (
    "This instance of the bot only answers from the shared index and never reindexes (a read-only replica). "
    "Please ask the bot's operator to reindex on the indexer."
)
REINDEX_FAILED = "The reindex failed; the details are in the bot's log. Answers still come from the previous index."

# -- errors ----------------------------------------------------------------------------------------------
APOLOGY = "Sorry, something went wrong on my side. Please try again in a moment."

# -- the console -----------------------------------------------------------------------------------------
CONSOLE_BANNER = "Ask a question (中文 or English), or /help. /quit or Ctrl-D leaves."
UNKNOWN_COMMAND = "Unknown command {command}. Try /help."
