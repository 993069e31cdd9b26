"""Pure rendering: an `Answer` becomes Discord messages, Slack blocks or plain text. Tested by tables."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot import texts
from bot.chat import Answer, AnswerItem, BrowsePage, NewList
from bot.i18n import Texts, texts_for
from knowledge import Section, section_key

DISCORD_LIMIT = 2000
SLACK_SECTION_LIMIT = 3000
SLACK_BLOCK_LIMIT = 50
SLACK_OPTION_LIMIT = 75  # the text of a static_select option
SLACK_FALLBACK_CHARS = 300  # the notification text beside blocks
PATH_CHARS = 200  # a section path in a Slack context line keeps its end: the links after it stay whole
SECTION_SEPARATOR = " › "
ZWSP = "\u200b"

_DISCORD_SPECIAL = re.compile(r"([\\*_~`|\[\]])")
_DISCORD_LINE_START = re.compile(r"^(\s*)([>#-])", re.M)  # quotes, headings, lists and subtext
_MENTION = re.compile(r"@(everyone|here)", re.I)
_DISCORD_TAG = re.compile(r"<([@#][!&]?|a?:)")


def split(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` characters, cut at line ends where possible, never losing text. A line
    longer than `limit` is never cut inside an escape: an HTML entity (`&amp;`, Slack's) or after a
    backslash (Discord's), which would show `amp;` or lose the escape."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    chunks = []
    for line in text.split("\n"):
        start = 0
        while True:
            end = _cut(line, start, limit)
            chunks.append(line[start:end])
            if end >= len(line):
                break
            start = end
    return _pack(chunks, limit, "\n")


_ENTITY = re.compile(r"&#?\w{1,8};")


def _cut(line: str, start: int, limit: int) -> int:
    """Where the piece of `line` from `start` ends: at most `limit` characters on, earlier when that would
    cut an entity or separate a backslash from what it escapes; always past `start`."""
    end = start + limit
    if end >= len(line):
        return len(line)
    amp = line.rfind("&", max(start + 1, end - 9), end)
    entity = _ENTITY.match(line, amp) if amp != -1 else None
    if entity is not None and entity.end() > end:
        end = amp
    backslashes = len(line[start:end]) - len(line[start:end].rstrip("\\"))
    if backslashes % 2 and end - 1 > start:
        end -= 1
    return end


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


def keep_end(text: str, limit: int) -> str:
    """`text` within `limit` characters, cut at its start: a section's own name is at the end of its path."""
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


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


def _text_item(number: int, item: AnswerItem, mark: str | None, t: Texts) -> list[str]:
    lines = [f"{number}. {item.title}"]
    if item.other_title:
        lines.append(f"   {item.other_title}")
    if item.arxiv_id:
        lines.append(f"   {arxiv_label(item.arxiv_id)}")
    if mark:
        lines.append(f"   ({mark})")
    if item.summary:
        lines.append(f"   {item.summary}")
    if item.url:
        lines.append(f"   {item.url}")
    if item.code_url:
        lines.append(f"   {t(texts.CODE_LINK)}: {item.code_url}")
    if item.location_url:
        lines.append(f"   {t(texts.IN_COLLECTION, place=item.location_text)} {item.location_url}")
    elif item.place:
        lines.append("   " + t(texts.IN_COLLECTION, place=item.place))
    if item.section and not item.place:  # a place names the section already
        lines.append("   " + t(texts.IN_SECTION, section=SECTION_SEPARATOR.join(item.section)))
    return lines


def _place_discord(item: AnswerItem, t: Texts) -> str | None:
    """An item's place in the collection, for an item without a link of its own: linked, or as text."""
    if item.location_url:
        return (
            f"📍 [{escape_discord(t(texts.IN_COLLECTION, place=item.location_text))}](<{_safe_url(item.location_url)}>)"
        )
    if item.place:
        return "📍 " + escape_discord(t(texts.IN_COLLECTION, place=item.place))
    return None


def _place_slack(item: AnswerItem, t: Texts) -> str | None:
    if item.location_url:
        return f"📍 <{_safe_url(item.location_url)}|{escape_mrkdwn(t(texts.IN_COLLECTION, place=item.location_text))}>"
    if item.place:
        return "📍 " + escape_mrkdwn(t(texts.IN_COLLECTION, place=item.place))
    return None


def render_text(answer: Answer, page_size: int = 5, *, more: str = "/more") -> str:
    """Plain text for the console and logs; `more` is the command that shows the next page."""
    t = texts_for(answer.locale)
    if (empty := _refusal(answer, t)) is not None:
        return empty
    lines = [_header(answer, t)]
    for number, item in enumerate(answer.items, first_number(answer, page_size)):
        lines += _text_item(number, item, _mark(answer, item, t), t)
    if answer.has_more:
        lines.append(t(texts.MORE_HINT, more=more))
    return "\n".join(lines)


# -- Discord -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscordMessage:
    """One message to send: content within 2,000 characters; previews suppressed when links abound."""

    content: str
    suppress_embeds: bool


def _title_links_to_arxiv(item: AnswerItem) -> bool:
    """Whether the item's title links to its arXiv paper already (abs, pdf or html, any version)."""
    return bool(item.url and item.arxiv_id and "arxiv.org/" in item.url and item.arxiv_id in item.url)


def _discord_item(number: int, item: AnswerItem, mark: str | None, t: Texts) -> str:
    title = escape_discord(item.title)
    head = f"**{number}. [{title}](<{_safe_url(item.url)}>)**" if item.url else f"**{number}. {title}**"
    lines = [head]
    if item.other_title:
        lines.append(f"*{escape_discord(item.other_title)}*")
    if item.summary:
        lines.append(escape_discord(item.summary))
    extra = [mark] if mark else []
    if item.arxiv_id:  # a citation; a link unless the title already links to the paper
        label = arxiv_label(item.arxiv_id)
        extra.append(label if _title_links_to_arxiv(item) else f"[{label}](<{arxiv_url(item.arxiv_id)}>)")
    if item.code_url:
        extra.append(f"[{t(texts.CODE_LINK)}](<{_safe_url(item.code_url)}>)")
    if place := _place_discord(item, t):
        extra.append(place)
    if item.section and not item.place:
        extra.append("📂 " + escape_discord(SECTION_SEPARATOR.join(item.section)))
    if extra:
        lines.append("-# " + " · ".join(extra))
    return "\n".join(lines)


def render_discord(answer: Answer, page_size: int = 5) -> list[DiscordMessage]:
    """Messages for Discord, split at its 2,000-character limit; links never unfurl."""
    t = texts_for(answer.locale)
    if (empty := _refusal(answer, t)) is not None:  # it repeats the question, with its escapes: may be long
        return [DiscordMessage(content, True) for content in split(escape_discord(empty), DISCORD_LIMIT)]
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


def _slack_item(
    number: int, item: AnswerItem, mark: str | None, t: Texts, *, compact: bool = False
) -> list[dict[str, Any]]:
    """A section with the entry's titles and summary, and a context line with what else there is to say
    (`compact`: that line in the section, so that a long page fits Slack's 50 blocks)."""
    title = escape_mrkdwn(item.title)
    head = f"*{number}. <{_safe_url(item.url)}|{title}>*" if item.url else f"*{number}. {title}*"
    if item.other_title:
        head += f"\n_{escape_mrkdwn(item.other_title)}_"
    text = f"{head}\n{escape_mrkdwn(item.summary)}" if item.summary else head
    context = [escape_mrkdwn(mark)] if mark else []
    if item.arxiv_id:  # a citation; a link unless the title already links to the paper
        label = arxiv_label(item.arxiv_id)
        context.append(label if _title_links_to_arxiv(item) else f"<{arxiv_url(item.arxiv_id)}|{label}>")
    if place := _place_slack(item, t):
        context.append(place)
    if item.section and not item.place:
        context.append("📂 " + escape_mrkdwn(keep_end(SECTION_SEPARATOR.join(item.section), PATH_CHARS)))
    if item.code_url:
        context.append(f"<{_safe_url(item.code_url)}|{t(texts.CODE_LINK)}>")
    if compact:
        return _section("\n".join([text, " · ".join(context)] if context else [text]))
    blocks = _section(text)
    line = " · ".join(context)
    if len(line) > SLACK_SECTION_LIMIT:  # a place and a code link that are both very long: a section of its own
        blocks += _section(line)
    elif line:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
    return blocks


def _slack_items(numbered: Sequence[tuple[int, AnswerItem, str | None]], t: Texts, room: int) -> list[dict[str, Any]]:
    """The blocks of a page's items (number, item, mark): compact when the usual ones would take more than
    `room` blocks (a page of 25 entries, `KB_ANSWER_SIZE`'s most), so that none is dropped."""
    blocks = [block for number, item, mark in numbered for block in _slack_item(number, item, mark, t)]
    if len(blocks) <= room:
        return blocks
    return [block for number, item, mark in numbered for block in _slack_item(number, item, mark, t, compact=True)]


def render_slack(answer: Answer, page_size: int = 5) -> list[dict[str, Any]]:
    """Block Kit blocks: a section per entry, a context with its section path, then buttons."""
    t = texts_for(answer.locale)
    if (empty := _refusal(answer, t)) is not None:
        return _section(escape_mrkdwn(empty))
    blocks: list[dict[str, Any]] = _section(escape_mrkdwn(_header(answer, t)))
    numbered = [
        (n, item, _mark(answer, item, t)) for n, item in enumerate(answer.items, first_number(answer, page_size))
    ]
    blocks += _slack_items(numbered, t, SLACK_BLOCK_LIMIT - 1 - len(blocks))
    buttons: list[dict[str, Any]] = []
    if answer.has_more:
        buttons.append(_button(t(texts.MORE_BUTTON), "kb_more", f"{answer.id}:{answer.page + 1}"))
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
        return escape_mrkdwn(empty[:SLACK_FALLBACK_CHARS])
    if answer.kind != "search":
        return escape_mrkdwn(_header(answer, t)[:SLACK_FALLBACK_CHARS])
    count = t(texts.RESULT_COUNT, count=len(answer.items), question=answer.question)
    return escape_mrkdwn(count[:SLACK_FALLBACK_CHARS])


# -- browsing ------------------------------------------------------------------------------------------


def _browse_header(page: BrowsePage, t: Texts) -> str:
    pages = t(texts.PAGE_OF, page=page.page, pages=page.pages) if page.pages > 1 else ""
    if not page.path:
        return t.count(texts.BROWSE_TOP, page.count, count=page.count, pages=pages)
    return t.count(
        texts.BROWSE_SECTION, page.count, section=SECTION_SEPARATOR.join(page.path), count=page.count, pages=pages
    )


def child_label(section: Section, t: Texts, limit: int | None = None) -> str:
    """A subsection as a list or menu shows it: `9.29 CTR 预估 (22)`, cut at its start to fit `limit`."""
    label = t(texts.BROWSE_CHILD, name=section.name, count=section.count)
    return label if limit is None else keep_end(label, limit)


def browse_command(page: BrowsePage, number: int, browse: str = "/browse") -> str:
    """The console command that shows page `number` of the same section."""
    where = f" {section_key(page.path)}" if page.path else ""
    return f"{browse}{where} page:{number}"


def render_browse_text(page: BrowsePage, *, browse: str = "/browse") -> str:
    """A browse page as plain text: the header, the subsections with their counts, the entries, and the
    commands that go on."""
    t = texts_for(page.locale)
    lines = [_browse_header(page, t)]
    if page.children:
        lines.append(t(texts.BROWSE_SUBSECTIONS))
        lines += [f"  • {child_label(child, t)}" for child in page.children]
    if page.items:
        lines.append(t(texts.BROWSE_ENTRIES))
        for number, item in enumerate(page.items, page.first):
            lines += _text_item(number, item, None, t)
    if page.children:
        lines.append(t(texts.BROWSE_OPEN_HINT, browse=browse))
    if page.has_more:
        lines.append(t(texts.BROWSE_NEXT_HINT, command=browse_command(page, page.page + 1, browse)))
    return "\n".join(lines)


def render_browse_discord(page: BrowsePage) -> list[DiscordMessage]:
    """A browse page as Discord messages within 2,000 characters (the menu and buttons are the front-end's)."""
    t = texts_for(page.locale)
    blocks = [escape_discord(_browse_header(page, t))]
    if page.children:
        children = "\n".join(f"• {escape_discord(child_label(child, t))}" for child in page.children)
        blocks.append(f"**{escape_discord(t(texts.BROWSE_SUBSECTIONS))}**\n{children}")
    if page.items:
        blocks.append(f"**{escape_discord(t(texts.BROWSE_ENTRIES))}**")
        blocks += [_discord_item(number, item, None, t) for number, item in enumerate(page.items, page.first)]
    pieces = [piece for block in blocks for piece in split(block, DISCORD_LIMIT)]
    return [DiscordMessage(content, True) for content in _pack(pieces, DISCORD_LIMIT, "\n\n") if content]


def browse_buttons(page: BrowsePage) -> list[tuple[str, str, int]]:
    """The moves from a browse page, as (label msgid, section id, page): up, previous, next."""
    moves = []
    if page.parent_id is not None:
        moves.append((texts.BROWSE_UP, page.parent_id, 1))
    if page.page > 1:
        moves.append((texts.BROWSE_PREVIOUS, page.section_id, page.page - 1))
    if page.has_more:
        moves.append((texts.BROWSE_NEXT, page.section_id, page.page + 1))
    return moves


def render_browse_slack(page: BrowsePage) -> list[dict[str, Any]]:
    """A browse page as Block Kit: the header, the subsections, the entries, and an actions block with a
    static_select to open a subsection and up / previous / next buttons (values `<section id>:<page>`)."""
    t = texts_for(page.locale)
    blocks: list[dict[str, Any]] = _section(escape_mrkdwn(_browse_header(page, t)))
    if page.children:
        children = "\n".join(f"• {escape_mrkdwn(child_label(child, t))}" for child in page.children)
        blocks += _section(f"*{escape_mrkdwn(t(texts.BROWSE_SUBSECTIONS))}*\n{children}")
    numbered = [(number, item, None) for number, item in enumerate(page.items, page.first)]
    blocks += _slack_items(numbered, t, SLACK_BLOCK_LIMIT - 1 - len(blocks))
    elements: list[dict[str, Any]] = []
    if page.children:
        options = [
            {
                # cut after `plain`, which lengthens names with "@" or "<"
                "text": {"type": "plain_text", "text": keep_end(plain(child_label(child, t)), SLACK_OPTION_LIMIT)},
                "value": child.id,
            }
            for child in page.children
        ]
        placeholder = {"type": "plain_text", "text": t(texts.BROWSE_PICK)}
        elements.append(
            {"type": "static_select", "action_id": "kb_browse_pick", "placeholder": placeholder, "options": options}
        )
    for label, section, number in browse_buttons(page):
        action = {texts.BROWSE_UP: "up", texts.BROWSE_PREVIOUS: "previous", texts.BROWSE_NEXT: "next"}[label]
        elements.append(_button(t(label), f"kb_browse_{action}", f"{section}:{number}"))
    blocks = blocks[: SLACK_BLOCK_LIMIT - 1]
    if elements:
        blocks.append({"type": "actions", "block_id": f"kb_browse_{page.section_id}_{page.page}", "elements": elements})
    return blocks


def browse_fallback_text(page: BrowsePage) -> str:
    """The notification text beside a browse page's blocks."""
    return escape_mrkdwn(_browse_header(page, texts_for(page.locale))[:SLACK_FALLBACK_CHARS])


# -- what's new: /new pages and digests -----------------------------------------------------------------


def new_header(new: NewList, t: Texts) -> str:
    """`12 new entries in the last 7 days, newest first (page 1/2):`, a digest's `3 new entries in the
    collection:`, or that nothing was added."""
    if new.digest:
        return t.count(texts.DIGEST_HEADER, new.count, count=new.count)
    if not new.count:
        return t.count(texts.NEW_NONE, new.days, days=new.days)
    pages = t(texts.PAGE_OF, page=new.page, pages=new.pages) if new.pages > 1 else ""
    window = t.count(texts.NEW_WINDOW, new.days, days=new.days)
    return t.count(texts.NEW_HEADER, new.count, count=new.count, window=window, pages=pages)


def new_command(new: NewList, page: int, command: str = "/new") -> str:
    """The console command that shows page `page` of the same list."""
    return f"{command} {new.days} page:{page}"


def new_buttons(new: NewList) -> list[tuple[str, int, int]]:
    """The moves from a page of /new, as (label msgid, days, page): previous, next."""
    moves = []
    if new.page > 1 and not new.digest:
        moves.append((texts.BROWSE_PREVIOUS, new.days, new.page - 1))
    if new.has_more and not new.digest:
        moves.append((texts.BROWSE_NEXT, new.days, new.page + 1))
    return moves


def _new_notes(item: AnswerItem, new: NewList, t: Texts) -> list[str]:
    """What follows an item's title in a list of new entries: its other title, then its date (/new)."""
    notes = [item.other_title] if item.other_title else []
    if item.added and not new.digest:
        notes.append(t(texts.NEW_ADDED, date=item.added.strftime("%Y-%m-%d")))
    return notes


def render_new_text(new: NewList, *, command: str = "/new") -> str:
    """A page of /new or a digest as plain text: the header, then each section with its entries (title,
    link or place in the collection), then how to go on. `command` is the platform's /new."""
    t = texts_for(new.locale)
    lines = [new_header(new, t)]
    for group in new.groups:
        if group.section:
            lines.append("📂 " + SECTION_SEPARATOR.join(group.section))
        for item in group.items:
            lines.append(f"  • {item.title}")
            lines += [f"    {note}" for note in _new_notes(item, new, t)]
            if item.url:
                lines.append(f"    {item.url}")
            if item.location_url:
                lines.append(f"    {t(texts.IN_COLLECTION, place=item.location_text)} {item.location_url}")
            elif item.place:
                lines.append("    " + t(texts.IN_COLLECTION, place=item.place))
    if new.more:
        lines.append(t(texts.DIGEST_MORE, more=new.more, new=command))
    if new.has_more:
        lines.append(t(texts.BROWSE_NEXT_HINT, command=new_command(new, new.page + 1, command)))
    return "\n".join(lines)


def _new_discord_item(item: AnswerItem, new: NewList, t: Texts) -> str:
    title = escape_discord(item.title)
    lines = [f"• **[{title}](<{_safe_url(item.url)}>)**" if item.url else f"• **{title}**"]
    notes = [
        f"*{escape_discord(note)}*" if note == item.other_title else escape_discord(note)
        for note in _new_notes(item, new, t)
    ]
    if place := _place_discord(item, t):
        notes.append(place)
    if notes:
        lines.append("-# " + " · ".join(notes))
    return "\n".join(lines)


def render_new_discord(new: NewList, *, command: str = "/new") -> list[DiscordMessage]:
    """A page of /new or a digest as Discord messages within 2,000 characters; links never unfurl (the
    Previous/Next buttons are the front-end's). `command`: /new as the reader's client names it."""
    t = texts_for(new.locale)
    blocks = [escape_discord(new_header(new, t))]
    for group in new.groups:
        items = [_new_discord_item(item, new, t) for item in group.items]
        heading = f"**📂 {escape_discord(SECTION_SEPARATOR.join(group.section))}**" if group.section else ""
        blocks.append("\n".join([heading, items[0]] if heading else items[:1]))
        blocks += items[1:]
    if new.more:
        blocks.append(escape_discord(t(texts.DIGEST_MORE, more=new.more, new=command)))
    pieces = [piece for block in blocks for piece in split(block, DISCORD_LIMIT)]
    return [DiscordMessage(content, True) for content in _pack(pieces, DISCORD_LIMIT, "\n") if content]


def _new_slack_item(item: AnswerItem, new: NewList, t: Texts) -> str:
    title = escape_mrkdwn(item.title)
    line = f"• <{_safe_url(item.url)}|{title}>" if item.url else f"• {title}"
    notes = [
        f"_{escape_mrkdwn(note)}_" if note == item.other_title else escape_mrkdwn(note)
        for note in _new_notes(item, new, t)
    ]
    if place := _place_slack(item, t):
        notes.append(place)
    return line + ("\n      " + " · ".join(notes) if notes else "")


def render_new_slack(new: NewList, *, command: str = "/kb-new") -> list[dict[str, Any]]:
    """A page of /new or a digest as Block Kit: the header, a section per group of entries (split within
    3,000 characters), the digest's "and N more", and Previous/Next buttons for /new (values `<days>:<page>`)."""
    t = texts_for(new.locale)
    blocks: list[dict[str, Any]] = _section(f"*{escape_mrkdwn(new_header(new, t))}*")
    for group in new.groups:
        heading = [f"*📂 {escape_mrkdwn(SECTION_SEPARATOR.join(group.section))}*"] if group.section else []
        blocks += _section("\n".join(heading + [_new_slack_item(item, new, t) for item in group.items]))
    if new.more:
        more = escape_mrkdwn(t(texts.DIGEST_MORE, more=new.more, new=command))
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    elements = [
        _button(t(label), f"kb_new_{'previous' if label == texts.BROWSE_PREVIOUS else 'next'}", f"{days}:{page}")
        for label, days, page in new_buttons(new)
    ]
    blocks = blocks[: SLACK_BLOCK_LIMIT - 1]
    if elements:
        blocks.append({"type": "actions", "block_id": f"kb_new_{new.days}_{new.page}", "elements": elements})
    return blocks


def new_fallback_text(new: NewList) -> str:
    """The notification text beside a /new page's or a digest's blocks."""
    return escape_mrkdwn(new_header(new, texts_for(new.locale))[:SLACK_FALLBACK_CHARS])
