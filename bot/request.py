"""What a chat message asks for: its question, and the options written inline with it.

Slack and the console have no option fields, so a question carries its options as words (Discord's
`/ask` has real options and passes them the same way):

- `in:推荐` or `in:"9 推荐系统"`: only entries under that section (its name, or part of it, in either
  language; see `ChatCore.find_section`);
- `lang:en`, `lang:zh` (both Chinese scripts), `lang:zh-Hans`, `lang:zh-Hant`, or `lang:中文`, `lang:英文`:
  only entries in that language;
- `-p` or `--private` (`--私密`): answer only the asker (Slack: an ephemeral reply).

A full-width colon (`in：推荐`) works too. Words that only look like options (`within:` or `lang:klingon`)
are left in the question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LANGS = {
    "en": "en",
    "english": "en",
    "英文": "en",
    "英语": "en",
    "英語": "en",
    "zh": "zh",
    "chinese": "zh",
    "中文": "zh",
    "zh-hans": "zh-Hans",
    "zh-cn": "zh-Hans",
    "简体": "zh-Hans",
    "簡體": "zh-Hans",
    "zh-hant": "zh-Hant",
    "zh-tw": "zh-Hant",
    "繁体": "zh-Hant",
    "繁體": "zh-Hant",
}
"""What `lang:` accepts, and the entry language filter each spelling means (`zh`: either script)."""

QUOTED_MAX = 200  # characters a quoted option value may have: no section is named by more
# Bounded, so that reading a line of unclosed quotes (`in:“a in:“a …`) takes time in proportion to it, not to its
# square: each quote looks at most QUOTED_MAX characters ahead for its end.
_OPTION = re.compile(
    rf"(?<!\S)(?:(?P<key>in|lang)[:：](?:\"(?P<quoted>[^\"\n]{{1,{QUOTED_MAX}}})\"|“(?P<curly>[^”\n]{{1,{QUOTED_MAX}}})”"
    r"|(?P<word>\S+))|(?P<flag>--private|-p|--私密))(?!\S)",
    re.I,
)


@dataclass(frozen=True)
class Request:
    """A question and its inline options."""

    text: str  # the question, without its options
    section: str | None = None  # what `in:` names, as written
    lang: str | None = None  # en, zh, zh-Hans or zh-Hant
    private: bool = False


def read_request(text: str) -> Request:
    """The question `text` asks and the options it carries (see the module's docstring)."""
    section: str | None = None
    lang: str | None = None
    private = False
    kept: list[str] = []
    last = 0
    for match in _OPTION.finditer(text):
        key = (match["key"] or "").lower()
        value = (match["quoted"] or match["curly"] or match["word"] or "").strip()
        if key == "lang" and value.lower() not in LANGS:
            continue  # not an option after all: it stays in the question
        kept.append(text[last : match.start()])
        last = match.end()
        if match["flag"]:
            private = True
        elif key == "in" and value:
            section = value
        elif key == "lang":
            lang = LANGS[value.lower()]
    kept.append(text[last:])
    return Request(" ".join("".join(kept).split()), section, lang, private)


def number_in(text: str, digits: int = 6) -> int | None:
    """`text` as a whole number when it is one (ASCII, full-width or other decimal digits, at most `digits` of
    them), else None. Not `str.isdigit`: "①" and "²" are digits to it, and `int` refuses them."""
    text = text.strip()
    return int(text) if text.isdecimal() and len(text) <= digits else None
