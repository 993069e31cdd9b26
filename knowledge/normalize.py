"""Text keys shared by the parser, dedupe and search: Simplified Chinese, title keys, URL keys, language."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from urllib.parse import urlsplit

from knowledge.entry import Lang
from knowledge.urls import without_tracking

MIN_TITLE_KEY = 6

# Terminal escape sequences (colours, window titles, hyperlinks): text pasted from a terminal carries them, and
# removing only their ESC would leave "[31m" behind.
ESCAPE_SEQUENCES = (
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?"  # OSC, ended by BEL or ST
    r"|\x1b[PX^_][^\x1b\n]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[ -/]*[0-~]"  # other escape sequences
    r"|\x9b[0-?]*[ -/]*[@-~]"  # the one-byte CSI
)
_ESCAPES = re.compile(ESCAPE_SEQUENCES)


def without_escapes(text: str) -> str:
    """`text` without terminal escape sequences (whole: `\x1b[31mbert\x1b[0m` is `bert`)."""
    return _ESCAPES.sub("", text) if "\x1b" in text or "\x9b" in text else text


# C0 and C1 controls (ESC, BEL, CR, backspace, CSI …) and DEL, and bidi marks, embeddings, overrides and isolates
# (U+202E would show the rest of a line reversed); newline and tab stay.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` without escape sequences and control characters, except newline and tab: safe to print on a
    terminal (a question echoed by the console, an entry's title printed by `kb search`)."""
    return _CONTROLS.sub("", without_escapes(text))


_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_ARXIV = re.compile(
    r"arxiv\.org/(?:abs|pdf)/([0-9]{4}\.[0-9]{4,5}|[a-z\-]+/[0-9]{7})(?:v[0-9]+)?(?:\.pdf)?$", re.IGNORECASE
)


@lru_cache(maxsize=2)
def _converter(config: str = "t2s"):  # type: ignore[no-untyped-def]
    import opencc

    return opencc.OpenCC(config)


def to_simplified(text: str) -> str:
    """Traditional → Simplified Chinese; other text is unchanged."""
    if not _HAN.search(text):
        return text
    return str(_converter().convert(text))


def _changed(han: str, config: str) -> int:
    """How many of the characters of `han` OpenCC's `config` (t2s, s2t) changes."""
    return sum(a != b for a, b in zip(han, str(_converter(config).convert(han)), strict=False))


def title_key(title: str) -> str | None:
    """NFKC, Simplified, lower case, no whitespace or punctuation; None when under 6 characters."""
    text = to_simplified(unicodedata.normalize("NFKC", title)).lower()
    key = "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")
    return key if len(key) >= MIN_TITLE_KEY else None


def letters_and_digits(text: str) -> str:
    """NFKC, lower case, letters and digits only: what two renderings of the same text share
    (PDF text adds spaces around Latin words and turns full-width punctuation half-width)."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def url_key(url: str) -> str | None:
    """`arxiv:<id>` for arXiv papers, else host (lower, no www.) + path + query (without share and tracking
    parameters: `without_tracking`), no trailing slash."""
    try:
        parts = urlsplit(without_tracking(url.strip()))
    except ValueError:
        return None
    host = (parts.hostname or "").lower().removeprefix("www.")
    if not host:
        return None
    path = parts.path.rstrip("/")
    arxiv = _ARXIV.search(host + path)
    if arxiv:
        return f"arxiv:{arxiv.group(1).lower()}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{host}{path}{query}"


def detect_lang(title: str, text: str = "") -> Lang:
    """zh-Hans, zh-Hant or en: Chinese when the title has Han characters or the text is mostly Han;
    Traditional when enough of its Han characters change under t2s."""
    han = _HAN.findall(f"{title} {text}")
    latin = len(_LATIN.findall(f"{title} {text}"))
    chinese_title = len(_HAN.findall(title)) >= 2
    if not han or (not chinese_title and len(han) * 4 < latin):
        return "en"
    return "zh-Hant" if _changed("".join(han), "t2s") >= max(2, len(han) // 20) else "zh-Hans"


def question_lang(text: str) -> Lang:
    """The language of a question, as `detect_lang` says, but Traditional whenever it has more characters only
    Traditional Chinese writes (擴, 機, 論) than ones only Simplified Chinese writes: a question is short, and
    "擴散模型" or "哪篇論文" has one such character (an entry's text needs more, as `detect_lang` asks)."""
    lang = detect_lang(text)
    if lang == "en":
        return lang
    han = "".join(_HAN.findall(text))
    return "zh-Hant" if _changed(han, "t2s") > _changed(han, "s2t") else "zh-Hans"


def has_han(text: str) -> bool:
    return bool(_HAN.search(text))
