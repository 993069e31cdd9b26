"""A candidate summary made clean, or nothing: what a summary may not carry is left to the body.

Summaries are taken from an entry's first lines, and in loosely formatted notes those lines are
not always a summary: the numbered label of the next item of a list ("2. MASS: 预训练"), raw
`<https://…>` markup, or a download link with its share code ("数据集链接: <https://pan.baidu.com/…>
提取码: cy6f"). `clean_summary` removes these from the summary only; the entry's body keeps every
line as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from knowledge.entry import Entry
from knowledge.normalize import url_key
from knowledge.parse.lines import split_blocks

# an item number: "2.", "2)", "2、", "（2）", "二、"; never a decimal ("3.5 亿") or a year ("2019.")
_ITEM_NUMBER = re.compile(
    r"^\s*(?:\d{1,2}(?:[.)]\s+|[．）、]\s*(?!\d))|[(（]\d{1,2}[)）]\s*|[一二三四五六七八九十]{1,3}、\s*)"
)
_BULLET = re.compile(r"^\s*[-*+•]\s+(?=\S)")
_FRAGMENT_LIMIT = 40  # characters after the number: a label, not a sentence
_SENTENCE_PUNCTUATION = re.compile(r"[。！？；!?;]|[.](?:\s|$)|[，,]")
_AUTOLINK = re.compile(r"<(https?://[^\s<>]+)>")
_INLINE_LINK = re.compile(r"\[([^\[\]]+)\]\(([^()\s]*)\)")
_SHARE_CODE = re.compile(
    r"(?:提取码|提取碼|提取密码|提取密碼|访问码|訪問碼|密码|密碼)\s*[:：]?\s*[A-Za-z0-9]{4,8}(?![A-Za-z0-9])"
)
_DANGLING_LABEL = re.compile(r"(?:^|(?<=[。！？；])|(?<=[.!?;]\s))\s*[^。！？；.!?;:：/]{1,20}[:：]\s*$")
# a label that introduces what follows it ("重排：", "25.12综述：", "mu zero:"): short, no sentence in it
_LABEL_ONLY = re.compile(r"(?:[^。！？；.!?;:：]|\.(?=\S)){1,24}[:：]")
_MARKER_ONLY = re.compile(r"[(（\[][^()（）\[\]]{1,12}[)）\]]")  # a note to self: "(toread)", "（待读）"
_LEADING = re.compile(r"^[\s,，、;；:：]+")
_TRAILING = re.compile(r"[\s,，.。;；:：、|()（）\[\]]+")  # what may follow a URL the summary can do without


def is_item_fragment(line: str) -> bool:
    """A line that is only an item's number and short label, such as "2. MASS: 预训练"."""
    number = _ITEM_NUMBER.match(line)
    if number is None:
        return False
    rest = line[number.end() :].strip()
    return 0 < len(rest) <= _FRAGMENT_LIMIT and not _SENTENCE_PUNCTUATION.search(rest)


def clean_summary(text: str, links: Iterable[str] = ()) -> str:
    """`text` as a summary, with its white space collapsed, or "" when nothing of it is one.

    - a paragraph that is only a numbered label of an item ("2. MASS: 预训练") is no summary;
    - the item number or bullet in front of a summary ("1. 本文提出…") is dropped, unless the
      summary is a list;
    - `[text](url)` markup becomes its text, followed by the URL when that is not one of `links`;
    - a `<https://…>` autolink becomes its URL, or goes when the URL is one of `links` (the entry's
      own) and nothing but punctuation follows it (in "参考<https://…>的代码" the URL stays);
    - share codes ("提取码: cy6f", "密码: 1234") go, with a label left dangling by what went
      ("数据集链接:");
    - punctuation in front goes ("，VideoBert模型。", left when the link before it became the title);
    - a summary that is only a bracketed note to self ("(toread)") is none;
    - a summary that is only a short label ending in a colon ("重排：", "贝叶斯公式：") is no summary:
      it introduces the link or the list after it.
    """
    lines = [" ".join(line.split()) for line in text.split("\n")]
    lines = [line for line in lines if line]
    if len(lines) == 1 and is_item_fragment(lines[0]):
        return ""
    known = {key for key in (url_key(url) for url in links) if key}
    cleaned = [_clean_line(line, known) for line in lines]
    summary = " ".join(line for line in cleaned if line)
    numbered = sum(1 for line in cleaned if _ITEM_NUMBER.match(line) or _BULLET.match(line))
    number = _ITEM_NUMBER.match(summary) or _BULLET.match(summary)
    if number and numbered == 1 and summary[number.end() :].strip():
        summary = summary[number.end() :].strip()  # one numbered line, not a list: the number is the list's
    summary = _LEADING.sub("", summary)  # what was left of a sentence whose link became the title
    return "" if _LABEL_ONLY.fullmatch(summary) or _MARKER_ONLY.fullmatch(summary) else summary


def blurb(entry: Entry, limit: int | None = None) -> str:
    """What to show of an entry under its title: its summary, else its body's paragraphs as `clean_summary`
    keeps them, without code or math: a body that is only a label such as "NeurIPS 上关于 NTK 的论文有:"
    shows nothing, and one that starts with such a label shows what follows it. With `limit`, paragraphs stop
    once there are more characters than that (the caller cuts), so a long body is not cleaned whole."""
    if entry.summary:
        return entry.summary
    links = [link.url for link in entry.links]
    kept: list[str] = []
    size = 0
    for block in split_blocks(entry.body.split("\n")):
        text = clean_summary(block.text, links) if block.kind == "text" else ""
        if text:
            kept.append(text)
            size += len(text) + 1
            if limit is not None and size > limit:
                break
    return " ".join(kept)


def _clean_line(line: str, known: set[str]) -> str:
    line = _INLINE_LINK.sub(lambda match: _link_text(match, known), line)
    line, codes = _SHARE_CODE.subn(" ", line)
    removed = codes > 0
    for match in reversed(list(_AUTOLINK.finditer(line))):  # from the right: what follows is settled
        url = match.group(1)
        last = not _TRAILING.sub("", line[match.end() :])
        if last and url_key(url) in known:
            line, removed = line[: match.start()] + " " + line[match.end() :], True
        else:
            line = line[: match.start()] + url + line[match.end() :]
    line = " ".join(line.split())
    if removed:
        line = _DANGLING_LABEL.sub("", line).strip()
    return line


def _link_text(match: re.Match[str], known: set[str]) -> str:
    text, url = match.group(1), match.group(2)
    if not url.startswith(("http://", "https://")) or url_key(url) in known or text == url:
        return text
    return f"{text} {url}"
