"""Math that notes copy as LaTeX ("复杂度从 $O(L^2)$ 变为 $O(L \\log L)$"), shown as text a chat client can read.

Discord and Slack render no LaTeX, so a summary showed its source: backslashes, braces and dollar signs.
pylatexenc turns each math span into Unicode text ("O(L^2) 变为 O(L log L)", "Ω(√(N))", "d(A, C) ≤ d(A, B)").
Only spans delimited as TeX and Markdown do are touched, by pandoc's rule for `$`: the opening one is
followed by a non-space, the closing one preceded by a non-space and not followed by a digit, so prices
("$5 到 $10") and lone dollar signs stay as they are.
"""

from __future__ import annotations

import logging
import re
from functools import cache

from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

_log = logging.getLogger(__name__)

_MATH = re.compile(
    r"\$\$(?P<display>.+?)\$\$"  # display math, possibly over lines
    r"|(?<![\\$])\$(?P<inline>[^\s$](?:[^$\n]*?[^\s$\\])?)\$(?!\d)",  # inline math, pandoc's rule
    re.DOTALL,
)
# "%" starts a comment in TeX, which would drop the rest of the span; notes mean a percent sign by it.
_PERCENT = re.compile(r"(?<!\\)%")
_LATIN = re.compile(r"[A-Za-z\\^_{}=<>+\-*/()|0-9]")


# Operators pylatexenc does not know (it would read "\Pr(x)" as "(x)"), and the norm bars of "\|x\|".
_OPERATORS = ("Pr", "arg", "argmax", "argmin", "det", "dim", "sup", "inf", "lg")


@cache
def _converter() -> LatexNodes2Text:
    context = get_default_latex_context_db()
    macros = [MacroTextSpec(name, name) for name in _OPERATORS] + [MacroTextSpec("|", "‖")]
    context.add_context_category("chat", prepend=True, macros=macros)
    return LatexNodes2Text(latex_context=context, math_mode="text")


def _text_of(source: str) -> str | None:
    """The span's text, or None when it does not read as math (no Latin letter, digit or operator in it)."""
    if not _LATIN.search(source):
        return None
    try:
        escaped = _PERCENT.sub(r"\\%", source)
        text = _converter().latex_to_text(f"${escaped}$")  # as math, so that "L \log L" keeps its spaces
    except Exception:  # noqa: BLE001 - pylatexenc parses tolerantly; anything it still rejects stays as written
        _log.debug("math span left as written: %r", source, exc_info=True)
        return None
    text = " ".join(text.split())
    return text or None


def readable_math(text: str) -> str:
    """`text` with each `$…$` and `$$…$$` span replaced by its Unicode text; everything else unchanged."""
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        source = match.group("display") if match.group("display") is not None else match.group("inline")
        converted = _text_of(source)
        return match.group(0) if converted is None else converted

    return _MATH.sub(replace, text)
