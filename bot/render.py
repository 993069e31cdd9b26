"""Pure rendering: an `Answer` becomes Discord messages, Slack blocks or plain text. Tested by tables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot import texts
from bot.chat import Answer, AnswerItem
from bot.i18n import Texts, texts_for

DISCORD_LIMIT = 2000
SLACK_SECTION_LIMIT = 3000
SLACK_BLOCK_LIMIT = 50
SLACK_OPTION_LIMIT = 75  # the text of a static_select option
SECTION_SEPARATOR = " › "
ZWSP = "\u200b"

_DISCORD_SPECIAL = re.compile(r"([\\*_~`|\[\]])")
_DISCORD_LINE_START = re.compile(r"^(\s*)([>#-])", re.M)  # quotes, headings, lists and subtext
_MENTION = re.compile(r"@(everyone|here)", re.I)
_DISCORD_TAG = re.compile(r"<([@#][!&]?|a?:)")


def split(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at line ends where possible, never losing text."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    chunks = [line[start : start + limit] for line in text.split("\n") for start in range(0, max(len(line), 1), limit)]
    return _pack(chunks, limit, "\n")


def _pack(pieces: list[str], limit: int, joiner: str) -> list[str]:
    """Consecutive pieces (each within `limit`) joined by `joiner` into as few strings as fit."""
    packed: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}{joiner}{piece}" if current else piece
        if len(candidate) <= limit:
            current = candidate
        else:
            packed.append(current)
            current = piece
    if current or not packed:
        packed.append(current)
    return packed


def defuse_mentions(text: str) -> str:
    """`@everyone`, `@here`, `<@…>`, `<@&…>` and `<#…>` shown as text that pings nobody."""
    text = _MENTION.sub(lambda m: f"@{ZWSP}{m.group(1)}", text)
    return _DISCORD_TAG.sub(lambda m: f"<{ZWSP}{m.group(1)}", text)


def escape_discord(text: str) -> str:
    """Text shown literally by Discord markdown, with mentions defused."""
    text = _DISCORD_LINE_START.sub(r"\1\\\2", _DISCORD_SPECIAL.sub(r"\\\1", text))
    return defuse_mentions(text)


def escape_mrkdwn(text: str) -> str:
    """Slack mrkdwn escapes: `&`, `<`, `>`; this also defuses `<!channel>`, `<!here>`, `<@U…>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _safe_url(url: str) -> str:
    return url.replace(" ", "%20").replace(">", "%3E").replace("<", "%3C").replace("|", "%7C")


def arxiv_url(paper_id: str) -> str:
    """The arXiv abstract page of a paper id."""
    return f"https://arxiv.org/abs/{paper_id}"


def arxiv_label(paper_id: str) -> str:
    """How replies name an arXiv paper: `arXiv:1711.05101`."""
    return f"arXiv:{paper_id}"


LANG_NAMES = {"en": texts.LANG_EN, "zh": texts.LANG_ZH, "zh-Hans": texts.LANG_ZH_HANS, "zh-Hant": texts.LANG_ZH_HANT}


def _scope(answer: Answer, t: Texts) -> str:
    """What the answer was narrowed to: ` in §9 推荐系统 (English entries)`, or nothing."""
    scope = answer.scope
    note = t(texts.SCOPE_SECTION, section=SECTION_SEPARATOR.join(scope.section)) if scope.section else ""
    if scope.lang:
        note += t(texts.SCOPE_LANG, lang=t(LANG_NAMES.get(scope.lang, scope.lang)))
    return note


def _refusal(answer: Answer, t: Texts) -> str | None:
    """The whole reply when an answer has no items: the refusal, "not in the collection, nothing related",
    or "nothing like it"; None when it has items."""
    if answer.items:
        return None
    cut = t(texts.QUESTION_CUT) if answer.truncated else ""
    if answer.kind == "missing":
        return t(texts.MISSING_NOTHING, identifier=answer.subject, scope=_scope(answer, t))
    if answer.kind == "similar":
        return t(texts.SIMILAR_NONE, number=answer.number, title=answer.subject)
    hint = t(answer.hint) if answer.hint else ""
    return t(texts.REFUSAL, question=answer.question, scope=_scope(answer, t), cut=cut, hint=hint)


def _header(answer: Answer, t: Texts) -> str:
    pages = t(texts.PAGE_OF, page=answer.page, pages=answer.pages) if answer.pages > 1 else ""
    if answer.kind == "found":
        where = t(texts.SCOPE_SECTION, section=SECTION_SEPARATOR.join(answer.subject_section))
        return t(
            texts.FOUND_HEADER, identifier=answer.subject, where=where if answer.subject_section else "", pages=pages
        )
    if answer.kind == "missing":
        return t(texts.MISSING_HEADER, identifier=answer.subject, scope=_scope(answer, t), pages=pages)
    if answer.kind == "similar":
        return t(texts.SIMILAR_HEADER, number=answer.number, title=answer.subject, pages=pages)
    cut = t(texts.QUESTION_CUT) if answer.truncated else ""
    header = texts.WEAK_HEADER if answer.items and all(item.weak for item in answer.items) else texts.RESULTS_HEADER
    return t(header, question=answer.question, scope=_scope(answer, t), pages=pages, cut=cut)


def _mark(answer: Answer, item: AnswerItem, t: Texts) -> str | None:
    """What to mark `item` as, if anything: a closest match when stronger matches stand beside it (when
    every item is weak, the header says so once); a related entry beside the ones a question named."""
    if item.weak and not all(other.weak for other in answer.items):
        return t(texts.WEAK_MATCH)
    if item.related and answer.kind == "found":
        return t(texts.RELATED)
    return None


def first_number(answer: Answer, page_size: int) -> int:
    """The number of the page's first item (items are numbered across pages)."""
    return (answer.page - 1) * page_size + 1


def plain(text: str) -> str:
    """Text for a field shown as it is (a Slack plain_text, a Discord label) that can ping nobody."""
    return text.replace("<", "<\u200b").replace("@", "@\u200b")


def similar_options(answer: Answer, t: Texts, limit: int, page_size: int = 5) -> list[tuple[str, str]]:
    """(label, entry id) of "Similar to #N · title" for each item of the page, labels within `limit`."""
    options = []
    for number, item in enumerate(answer.items, first_number(answer, page_size)):
        label = f"{t(texts.SIMILAR_OPTION, number=number)} · {plain(item.title)}"
        options.append((label if len(label) <= limit else label[: limit - 1] + "…", item.entry_id))
    return options


# -- plain text (console, logs) ---------------------------------------------------------------------


def render_text(answer: Answer, page_size: int = 5, *, more: str = "/more") -> str:
    """Plain text for the console and logs; `more` is the command that shows the next page."""
    t = texts_for(answer.locale)
    if (empty := _refusal(answer, t)) is not None:
        return empty
    lines = [_header(answer, t)]
    for number, item in enumerate(answer.items, first_number(answer, page_size)):
        lines.append(f"{number}. {item.title}")
        if item.other_title:
            lines.append(f"   {item.other_title}")
        if item.arxiv_id:
            lines.append(f"   {arxiv_label(item.arxiv_id)}")
        if mark := _mark(answer, item, t):
            lines.append(f"   ({mark})")
        if item.summary:
            lines.append(f"   {item.summary}")
        if item.url:
            lines.append(f"   {item.url}")
        if item.code_url:
            lines.append(f"   {t(texts.CODE_LINK)}: {item.code_url}")
        if item.section:
            lines.append("   " + t(texts.IN_SECTION, section=SECTION_SEPARATOR.join(item.section)))
    if answer.has_more:
        lines.append(t(texts.MORE_HINT, more=more))
    return "\n".join(lines)


# -- Discord -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscordMessage:
    """One message to send: content within 2,000 characters; previews suppressed when links abound."""

    content: str
    suppress_embeds: bool


def _discord_item(number: int, item: AnswerItem, mark: str | None, t: Texts) -> str:
    title = escape_discord(item.title)
    head = f"**{number}. [{title}](<{_safe_url(item.url)}>)**" if item.url else f"**{number}. {title}**"
    lines = [head]
    if item.other_title:
        lines.append(f"*{escape_discord(item.other_title)}*")
    if item.summary:
        lines.append(escape_discord(item.summary))
    extra = [mark] if mark else []
    if item.arxiv_id:
        extra.append(f"[{arxiv_label(item.arxiv_id)}](<{arxiv_url(item.arxiv_id)}>)")
    if item.code_url:
        extra.append(f"[{t(texts.CODE_LINK)}](<{_safe_url(item.code_url)}>)")
    if item.section:
        extra.append("📂 " + escape_discord(SECTION_SEPARATOR.join(item.section)))
    if extra:
        lines.append("-# " + " · ".join(extra))
    return "\n".join(lines)


def render_discord(answer: Answer, page_size: int = 5) -> list[DiscordMessage]:
    """Messages for Discord, split at its 2,000-character limit; links never unfurl."""
    t = texts_for(answer.locale)
    if (empty := _refusal(answer, t)) is not None:
        return [DiscordMessage(escape_discord(empty), True)]
    blocks = [escape_discord(_header(answer, t))]
    blocks += [
        _discord_item(number, item, _mark(answer, item, t), t)
        for number, item in enumerate(answer.items, first_number(answer, page_size))
    ]
    pieces = [piece for block in blocks for piece in split(block, DISCORD_LIMIT)]
    return [DiscordMessage(content, True) for content in _pack(pieces, DISCORD_LIMIT, "\n\n") if content]


# -- Slack ---------------------------------------------------------------------------------------------


def _section(text: str) -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": piece}} for piece in split(text, SLACK_SECTION_LIMIT)
    ]


def render_slack(answer: Answer, page_size: int = 5) -> list[dict[str, Any]]:
    """Block Kit blocks: a section per entry, a context with its section path, then buttons."""
    t = texts_for(answer.locale)
    if (empty := _refusal(answer, t)) is not None:
        return _section(escape_mrkdwn(empty))
    blocks: list[dict[str, Any]] = _section(escape_mrkdwn(_header(answer, t)))
    for number, item in enumerate(answer.items, first_number(answer, page_size)):
        title = escape_mrkdwn(item.title)
        head = f"*{number}. <{_safe_url(item.url)}|{title}>*" if item.url else f"*{number}. {title}*"
        if item.other_title:
            head += f"\n_{escape_mrkdwn(item.other_title)}_"
        body = f"{head}\n{escape_mrkdwn(item.summary)}" if item.summary else head
        blocks += _section(body)
        mark = _mark(answer, item, t)
        context = [escape_mrkdwn(mark)] if mark else []
        if item.arxiv_id:
            context.append(f"<{arxiv_url(item.arxiv_id)}|{arxiv_label(item.arxiv_id)}>")
        if item.section:
            context.append("📂 " + escape_mrkdwn(SECTION_SEPARATOR.join(item.section)))
        if item.code_url:
            context.append(f"<{_safe_url(item.code_url)}|{t(texts.CODE_LINK)}>")
        if context:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)[:2000]}]})
    buttons: list[dict[str, Any]] = []
    if answer.has_more:
        buttons.append(_button(t(texts.MORE_BUTTON), "kb_more", answer.id))
    buttons.append(_button("👍", "kb_vote_up", answer.id))
    buttons.append(_button("👎", "kb_vote_down", answer.id))
    options = [
        {"text": {"type": "plain_text", "text": label, "emoji": True}, "value": f"{answer.id}:{entry_id}"}
        for label, entry_id in similar_options(answer, t, SLACK_OPTION_LIMIT, page_size)
    ]
    if options:
        placeholder = {"type": "plain_text", "text": t(texts.SIMILAR_PICK), "emoji": True}
        buttons.append(
            {"type": "static_select", "action_id": "kb_similar", "placeholder": placeholder, "options": options}
        )
    blocks = blocks[: SLACK_BLOCK_LIMIT - 1]
    blocks.append({"type": "actions", "block_id": f"kb_actions_{answer.id}", "elements": buttons})
    return blocks


def _button(text: str, action_id: str, value: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }


def slack_fallback_text(answer: Answer) -> str:
    """The notification text Slack shows beside blocks; mentions defused like the blocks."""
    t = texts_for(answer.locale)
    if (empty := _refusal(answer, t)) is not None:
        return escape_mrkdwn(empty)[:300]
    if answer.kind != "search":
        return escape_mrkdwn(_header(answer, t))[:300]
    return escape_mrkdwn(t(texts.RESULT_COUNT, count=len(answer.items), question=answer.question))[:300]
