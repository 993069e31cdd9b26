"""Rendering is pure: tables of answers and the messages they become."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from pathlib import Path

import pytest

from bot.chat import TITLE_CHARS, Answer, AnswerItem, BrowsePage, to_item
from bot.i18n import Locale, texts_for
from bot.latex import readable_math
from bot.render import (
    DISCORD_LIMIT,
    SLACK_BLOCK_LIMIT,
    SLACK_SECTION_LIMIT,
    defuse_mentions,
    escape_discord,
    escape_mrkdwn,
    render_browse_slack,
    render_discord,
    render_slack,
    render_text,
    slack_fallback_text,
    split,
)
from knowledge import Entry, Link, Section, SourceRef
from knowledge.normalize import has_han
from knowledge.parse import parse_sources
from knowledge.settings import BUNDLED_SOURCES

ADAMW = AnswerItem(
    entry_id="e1",
    title="Fixing Weight Decay Regularization in Adam",
    summary="Adam 中 L2 正则与权重衰减不等价。",
    url="https://arxiv.org/abs/1711.05101",
    code_url="https://github.com/loshchil/AdamW-and-SGDW",
    section=("ICLR 2018", "优化"),
)
HEADLINE = AnswerItem(
    "e2", "10亿照片训练，Facebook半弱监督训练方法刷新ResNet-50 ImageNet基准测试", "", None, None, ("CV",)
)


def answer(*items: AnswerItem, question: str = "weight decay", page: int = 1, pages: int = 1) -> Answer:
    return Answer("a1b2", question, tuple(items), page=page, pages=pages)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("", 10, [""]),
        ("short", 10, ["short"]),
        ("line one\nline two", 10, ["line one", "line two"]),
        ("line one\nline two", 17, ["line one\nline two"]),
        ("x" * 25, 10, ["x" * 10, "x" * 10, "x" * 5]),
        ("ab\n" + "中" * 12, 5, ["ab", "中" * 5, "中" * 5, "中" * 2]),
        # never inside an entity (Slack showed "R&" then "amp;D") nor after an escaping backslash (Discord)
        ("R&amp;D R&amp;D", 6, ["R&amp;", "D R", "&amp;D"]),
        ("abcd&lt;x", 6, ["abcd", "&lt;x"]),
        ("&amp;&amp;", 5, ["&amp;", "&amp;"]),
        ("a & b & c", 3, ["a &", " b ", "& c"]),  # a bare & is no entity
        ("abc\\_de", 4, ["abc", "\\_de"]),
        ("ab\\\\cd", 4, ["ab\\\\", "cd"]),  # an escaped backslash is whole
        ("\\" * 5, 1, ["\\"] * 5),  # always past the start
    ],
)
def test_split(text: str, limit: int, expected: list[str]) -> None:
    pieces = split(text, limit)
    assert pieces == expected
    assert all(len(piece) <= limit for piece in pieces)
    assert "".join(pieces).replace("\n", "") == text.replace("\n", "")  # nothing lost


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@everyone look", "@\u200beveryone look"),
        ("@HERE", "@\u200bHERE"),
        ("<@&123> and <@456> <#789>", "<\u200b@&123> and <\u200b@456> <\u200b#789>"),
        ("plain 中文", "plain 中文"),
    ],
)
def test_defuse_mentions(text: str, expected: str) -> None:
    assert defuse_mentions(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("**bold** _it_ `code`", "\\*\\*bold\\*\\* \\_it\\_ \\`code\\`"),
        ("[x](http://evil)", "\\[x\\](http://evil)"),
        ("> quote # head", "\\> quote # head"),
        ("# head\n- item (a)", "\\# head\n\\- item (a)"),
    ],
)
def test_escape_discord(text: str, expected: str) -> None:
    assert escape_discord(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<!channel> & <!here> <!everyone>", "&lt;!channel&gt; &amp; &lt;!here&gt; &lt;!everyone&gt;"),
        ("<https://x|click>", "&lt;https://x|click&gt;"),
        ("a > b", "a &gt; b"),
    ],
)
def test_escape_mrkdwn(text: str, expected: str) -> None:
    assert escape_mrkdwn(text) == expected


def test_a_long_discord_refusal_is_split_below_the_limit() -> None:
    """The refusal repeats the question with each markdown character escaped (doubled): with a raised
    KB_MAX_QUESTION_CHARS a pasted snippet made one message over 2,000 characters, which Discord refuses."""
    snippet = ("foo_bar = qux_quux(zap_zip, y_pred) * zot_zed_factor; " * 40)[:1900]
    messages = render_discord(Answer("id", snippet, (), refused=True))
    assert len(messages) == 2 and all(len(m.content) <= DISCORD_LIMIT for m in messages)
    assert all(m.suppress_embeds for m in messages)
    joined = "".join(m.content for m in messages).replace("\n", "")
    assert snippet.replace("_", "\\_").replace("*", "\\*") in joined


def test_discord_answer_shows_title_link_code_and_section_without_previews() -> None:
    (message,) = render_discord(answer(ADAMW, HEADLINE))
    assert message.suppress_embeds
    assert "**1. [Fixing Weight Decay Regularization in Adam](<https://arxiv.org/abs/1711.05101>)**" in message.content
    assert "[code](<https://github.com/loshchil/AdamW-and-SGDW>)" in message.content
    assert "📂 ICLR 2018 › 优化" in message.content
    assert "**2. 10亿照片训练，Facebook半弱监督训练方法刷新ResNet-50 ImageNet基准测试**" in message.content


def test_discord_long_answers_split_below_the_limit_and_keep_everything() -> None:
    long_items = [
        AnswerItem(f"e{i}", f"标题 {i} " + "长" * 300, "摘要" * 400, f"https://x.example/{i}", None, ("节",))
        for i in range(5)
    ]
    messages = render_discord(answer(*long_items))
    assert len(messages) > 1
    assert all(len(m.content) <= DISCORD_LIMIT for m in messages)
    joined = "".join(m.content for m in messages)
    assert all(f"https://x.example/{i}" in joined for i in range(5))


def test_discord_refusal_and_paging() -> None:
    (refusal,) = render_discord(Answer("id", "sourdough @everyone", (), refused=True))
    assert "found nothing" in refusal.content and "@\u200beveryone" in refusal.content
    (paged,) = render_discord(answer(ADAMW, page=2, pages=3), page_size=5)
    assert "(page 2/3)" in paged.content and "**6. [" in paged.content


def test_slack_blocks() -> None:
    blocks = render_slack(answer(ADAMW, HEADLINE, pages=2))
    sections = [b for b in blocks if b["type"] == "section"]
    contexts = [b for b in blocks if b["type"] == "context"]
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    assert (
        "*1. <https://arxiv.org/abs/1711.05101|Fixing Weight Decay Regularization in Adam>*"
        in sections[1]["text"]["text"]
    )
    assert (
        contexts[0]["elements"][0]["text"] == "📂 ICLR 2018 › 优化 · <https://github.com/loshchil/AdamW-and-SGDW|code>"
    )
    more, up, down, similar = actions["elements"]
    assert [e["action_id"] for e in actions["elements"]] == ["kb_more", "kb_vote_up", "kb_vote_down", "kb_similar"]
    assert {e["value"] for e in (up, down)} == {"a1b2"} and more["value"] == "a1b2:2"  # the page it shows
    assert similar["type"] == "static_select" and similar["placeholder"]["text"] == "Similar to…"
    assert [(o["text"]["text"], o["value"]) for o in similar["options"]] == [
        ("Similar to #1 · Fixing Weight Decay Regularization in Adam", "a1b2:e1"),
        ("Similar to #2 · 10亿照片训练，Facebook半弱监督训练方法刷新ResNet-50 ImageNet基准测试", "a1b2:e2"),
    ]
    assert all(len(b["text"]["text"]) <= SLACK_SECTION_LIMIT for b in sections)


def test_slack_escapes_user_text_and_stays_within_limits() -> None:
    hostile = AnswerItem("e3", "<!channel> & <@U123>", "x" * 5000, "https://x.example/a b", None, ())
    blocks = render_slack(answer(hostile, question="<!here> please"))
    text = str(blocks)
    for ping in ("<!channel>", "<!here>", "<!everyone>", "<@U123>"):
        assert ping not in text
    assert all(len(b["text"]["text"]) <= SLACK_SECTION_LIMIT for b in blocks if b["type"] == "section")
    assert "https://x.example/a%20b" in text
    assert "kb_more" not in text  # one page only
    assert "<!here>" not in slack_fallback_text(answer(hostile, question="<!here> please"))


def test_text_rendering() -> None:
    text = render_text(answer(ADAMW))
    assert text.splitlines()[:3] == [
        "Results for “weight decay”:",
        "1. Fixing Weight Decay Regularization in Adam",
        "   Adam 中 L2 正则与权重衰减不等价。",
    ]
    assert "code: https://github.com/loshchil/AdamW-and-SGDW" in text
    assert "Try the other language" in render_text(Answer("i", "天气", (), refused=True))


def test_a_cut_question_is_told_in_answers_and_refusals() -> None:
    cut = Answer("i", "weight decay", (ADAMW,), truncated=True)
    refusal = Answer("i", "天气", (), truncated=True, refused=True)
    for text in (render_text(cut), render_discord(cut)[0].content, str(render_slack(cut)), render_text(refusal)):
        assert "(your question was long, so I used its beginning)" in text
    assert "used its beginning" not in render_text(answer(ADAMW))


BOTH_TITLES = AnswerItem(
    "e3",
    "权重无关神经网络",
    "不训练权重，只搜索结构。",
    "https://arxiv.org/abs/1906.04358",
    None,
    ("DL",),
    other_title="Weight Agnostic Neural Networks",
)


def test_an_item_shows_its_title_in_the_other_language() -> None:
    text = render_text(answer(BOTH_TITLES))
    assert "1. 权重无关神经网络\n   Weight Agnostic Neural Networks\n" in text
    (message,) = render_discord(answer(BOTH_TITLES))
    assert "**1. [权重无关神经网络](<https://arxiv.org/abs/1906.04358>)**\n*Weight Agnostic Neural Networks*" in (
        message.content
    )
    blocks = render_slack(answer(BOTH_TITLES))
    assert blocks[1]["text"]["text"].startswith(
        "*1. <https://arxiv.org/abs/1906.04358|权重无关神经网络>*\n_Weight Agnostic Neural Networks_"
    )


def test_weak_matches_are_marked_and_an_all_weak_answer_says_so_once() -> None:
    weak = AnswerItem("e4", "Deep learning retrospective", "", None, None, (), weak=True)
    mixed = answer(ADAMW, weak)
    text = render_text(mixed)
    assert text.startswith("Results for “weight decay”:")
    assert text.count("(closest match, may not be exactly what you asked)") == 1
    assert text.index("closest match") > text.index("2. Deep learning retrospective")
    discord = "".join(message.content for message in render_discord(mixed))
    assert discord.count("closest match, may not be exactly what you asked") == 1
    slack = render_slack(mixed)
    contexts = [block for block in slack if block["type"] == "context"]
    assert sum("closest match" in block["elements"][0]["text"] for block in contexts) == 1

    all_weak = answer(weak)
    for rendered in (
        render_text(all_weak),
        render_discord(all_weak)[0].content,
        render_slack(all_weak)[0]["text"]["text"],
    ):
        assert "Closest matches for “weight decay”; they may not be exactly what you asked:" in rendered
        assert "(closest match" not in rendered


PAPER = AnswerItem(
    "e5",
    "权重无关神经网络",
    "不训练权重，只搜索结构。",
    "https://weightagnostic.github.io/",
    None,
    ("3 DL 基础研究", "3.40 权重无关"),
    other_title="Weight Agnostic Neural Networks",
    arxiv_id="1906.04358",
)


@pytest.mark.parametrize(
    ("title", "section", "shown"),
    [
        ("beta作用", ("4.llm_note", "DPO", "beta作用"), "DPO › beta作用"),  # was "beta作用": a part of what?
        ("FRN", ("3 DL 基础研究", "3.33 FRN"), "DL 基础研究 › FRN"),  # numbered headings without their numbers
        ("Filter Response Normalization", ("3 DL 基础研究", "3.33 FRN"), "Filter Response Normalization"),
        ("小结", ("小结",), "小结"),  # nothing above it
    ],
)
def test_an_entry_titled_by_its_section_s_heading_is_named_with_the_section_above(
    title: str, section: tuple[str, ...], shown: str
) -> None:
    entry = Entry(
        id="h",
        title=title,
        section_path=section,
        lang="zh-Hans",
        source=SourceRef(file="notes.md", line_start=1, line_end=2, format="markdown"),
    )
    assert to_item(entry).title == shown
    assert to_item(entry, under_section=True).title == title  # a browse page or /new names the section already


def test_an_item_shows_both_titles_and_its_arxiv_id() -> None:
    text = render_text(answer(PAPER))
    assert "1. 权重无关神经网络\n   Weight Agnostic Neural Networks\n   arXiv:1906.04358\n" in text
    (message,) = render_discord(answer(PAPER))
    assert "**1. [权重无关神经网络](<https://weightagnostic.github.io/>)**\n*Weight Agnostic Neural Networks*\n" in (
        message.content
    )
    assert (
        "-# [arXiv:1906.04358](<https://arxiv.org/abs/1906.04358>) · 📂 3 DL 基础研究 › 3.40 权重无关"
        in message.content
    )
    blocks = render_slack(answer(PAPER))
    assert blocks[1]["text"]["text"].startswith(
        "*1. <https://weightagnostic.github.io/|权重无关神经网络>*\n_Weight Agnostic"
    )
    assert blocks[2]["elements"][0]["text"].startswith("<https://arxiv.org/abs/1906.04358|arXiv:1906.04358> · 📂")
    # a title that links to the paper already: the id is a citation, not a second link to the same paper
    on_arxiv = replace(PAPER, url="https://arxiv.org/pdf/1906.04358v2.pdf")
    (message,) = render_discord(answer(on_arxiv))
    assert "-# arXiv:1906.04358 · 📂" in message.content and "arxiv.org/abs" not in message.content
    assert render_slack(answer(on_arxiv))[2]["elements"][0]["text"].startswith("arXiv:1906.04358 · 📂")


def _huge_entry(number: int) -> Entry:
    return Entry(
        id=f"huge{number}",
        title="超长标题" * 600,
        alt_titles=("An Extremely Long English Paper Title " * 80,),
        summary="摘要" * 150,
        links=(Link(url=f"https://arxiv.org/abs/1906.0435{number}", role="primary"),),
        section_path=("很长的章节名" * 100, "Sub section " * 100),
        source=SourceRef(file="notes.md", line_start=1, line_end=2, format="markdown"),
        lang="zh-Hans",
    )


@pytest.mark.parametrize("locale", ["en", "zh-Hans"])
def test_no_line_grows_past_the_platform_limits(locale: Locale) -> None:
    """Entries with absurd titles, English titles and sections: titles are cut, Discord messages stay within
    2,000 characters, Slack sections within 3,000 and context lines within 2,000, with at most 50 blocks."""
    items = tuple(to_item(_huge_entry(number)) for number in range(5))
    assert all(len(item.title) <= TITLE_CHARS and len(item.other_title or "") <= TITLE_CHARS for item in items)
    long_answer = Answer("a1b2", "问题" * 300, items, page=1, pages=3, locale=locale)
    messages = render_discord(long_answer)
    assert all(0 < len(message.content) <= DISCORD_LIMIT for message in messages)
    joined = "\n".join(message.content for message in messages)
    assert all(f"arXiv:1906.0435{number}" in joined for number in range(5))
    blocks = render_slack(long_answer)
    assert len(blocks) <= SLACK_BLOCK_LIMIT
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= SLACK_SECTION_LIMIT
        if block["type"] == "context":
            assert all(len(element["text"]) <= 2000 for element in block["elements"])
    assert len(slack_fallback_text(long_answer)) <= 300


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (
            'MIND\t2019\t<ul style="list-style-type: none"> 使用胶囊网络来提取用户多兴趣表示。<br/>',
            "MIND 2019 使用胶囊网络来提取用户多兴趣表示。",
        ),
        ("<p>A <b>bold</b> claim</p>", "A bold claim"),
        ("triples <subject, predicate, object> and a < b > c", "triples <subject, predicate, object> and a < b > c"),
    ],
)
def test_a_body_shown_as_the_summary_shows_no_html_tags(body: str, shown: str) -> None:
    """An entry without a summary shows the start of its body; notes copied from web pages carry HTML tags,
    which are markup, not text. Angle brackets that are no known tag stay."""
    entry = Entry(
        id="html",
        title="推荐系统多兴趣召回论文解读",
        body=body,
        lang="zh-Hans",
        source=SourceRef(file="notes.md", line_start=1, line_end=2, format="markdown"),
    )
    assert to_item(entry).summary == shown


@pytest.mark.parametrize(
    ("summary", "body", "shown"),
    [
        ("", "NeurIPS 上关于 NTK 的论文有:", ""),  # only the label the entry's link followed: nothing to show
        (
            "",
            "中文：\n\n从 70 年的人工智能研究中可以得出的最大教训是……",
            "从 70 年的人工智能研究中可以得出的最大教训是……",
        ),
        ("", "代码如下：\n\n```python\nprint(1)\n```\n\n输出 1。", "输出 1。"),  # no code either
        ("", "第一段。\n\n第二段。", "第一段。 第二段。"),
        ("本文提出 FRN。", "NeurIPS 上关于 NTK 的论文有:", "本文提出 FRN。"),  # a summary is shown as it is
        # ... but one that leads on to what the reply does not show (a formula, a list) says so
        ("用 Chinchilla 的数据拟合了如下的扩展法则：", "", "用 Chinchilla 的数据拟合了如下的扩展法则…"),
        ("LoRA已经有广泛的应用，如LLaMA和BLOOM，", "", "LoRA已经有广泛的应用，如LLaMA和BLOOM…"),
    ],
)
def test_an_entry_without_a_summary_shows_what_of_its_body_is_one(summary: str, body: str, shown: str) -> None:
    entry = Entry(
        id="blurb",
        title="Learning and Generalization in Overparameterized Neural Networks",
        summary=summary,
        body=body,
        lang="en",
        source=SourceRef(file="notes.md", line_start=1, line_end=2, format="markdown"),
    )
    assert to_item(entry).summary == shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (r"复杂度从 $O(L^2)$ 变为 $O(L \log L)$ ，此处", "复杂度从 O(L^2) 变为 O(L log L) ，此处"),
        (r"具有 $\Omega(\sqrt{N})$ 隐藏节点", "具有 Ω(√(N)) 隐藏节点"),
        (r"满足 $d(A, C) \leq d(A, B) + d(B, C)$, 其中", "满足 d(A, C) ≤ d(A, B) + d(B, C), 其中"),
        (r"$\text{softmax}(QK^T)$ 是 $[\text{batch}, \text{head_num}]$", "softmax(QK^T) 是 [batch, head_num]"),
        (r"W 都是$$d_v\times d_v$$，对应", "W 都是d_v× d_v，对应"),  # display math, as markdown posts write it
        (r"$$\max_f \log \Pr(N_K(u) \mid f(u))$$ 即", "max_f logPr(N_K(u) | f(u)) 即"),  # \Pr kept
        (r"$\|x\|_2$ 与 $\frac{a}{b}$", "‖x‖_2 与 a/b"),
        (r"下降 $50\%$ 与 $x% y$", "下降 50% 与 x% y"),  # "%" is a percent sign, not a comment
        ("$K*N$ 召回", "K*N 召回"),
        # what is no math stays as written: prices, a lone dollar, an escaped one, a span with no Latin in it
        ("价格 $5 到 $10 之间", "价格 $5 到 $10 之间"),
        ("价格$5到$10之间", "价格$5到$10之间"),
        ("$ 5 $ and a$b", "$ 5 $ and a$b"),
        (r"\$x$ escaped", r"\$x$ escaped"),
        ("$中文$", "$中文$"),
        ("no math at all", "no math at all"),
    ],
)
def test_latex_math_is_shown_as_text(text: str, shown: str) -> None:
    """Discord and Slack render no LaTeX: a summary's math spans read as Unicode text, and only those."""
    assert readable_math(text) == shown


def test_on_the_bundled_collection_no_summary_shows_latex_source() -> None:
    """Summaries that carry math (9 bundled entries; 87 of 2,300 with the 39 upstream posts, which write
    $$…$$ inline) show it as text: no dollar-delimited span and no control word is left in what a reply shows."""
    entries = parse_sources([BUNDLED_SOURCES]).entries
    with_math = [entry for entry in entries if "$" in (entry.summary or entry.body[:400])]
    assert len(with_math) >= 9
    for entry in with_math:
        summary = to_item(entry).summary
        assert not re.search(r"\\[A-Za-z]+|\$[^$\s][^$]*\$", summary), (entry.id, summary)


def test_on_the_bundled_collection_entries_with_an_english_and_a_chinese_title_show_both() -> None:
    entries = parse_sources([BUNDLED_SOURCES]).entries
    bilingual = [e for e in entries if any(has_han(alt) != has_han(e.title) for alt in e.alt_titles)]
    assert len(bilingual) >= 80
    for entry in bilingual:
        item = to_item(entry)
        assert item.other_title and has_han(item.other_title) != has_han(item.title), entry.id
        (message,) = render_discord(answer(item))
        assert escape_discord(item.title) in message.content and escape_discord(item.other_title) in message.content
        text = render_text(answer(item))
        assert f"1. {item.title}\n   {item.other_title}\n" in text
    with_arxiv = [to_item(e) for e in entries if to_item(e).arxiv_id]
    assert {item.arxiv_id for item in with_arxiv} >= {"1711.05101", "1910.05446", "2007.12865"}


async def test_every_browse_page_of_the_bundled_collection_stays_within_the_limits(tmp_path: Path) -> None:
    """Walk every section of the bundled collection, every page, in English and Chinese: Discord messages
    within 2,000 characters, at most 25 menu options of at most 100 characters, custom ids within 100;
    Slack within 50 blocks, sections within 3,000 characters, option texts within 75."""
    from fake_retriever import FakeRetriever

    from bot.chat import ChatCore
    from bot.render import browse_buttons, child_label, render_browse_discord, render_browse_slack
    from bot.settings import BotSettings

    entries = tuple(parse_sources([BUNDLED_SOURCES]).entries)
    core = ChatCore(FakeRetriever(entries), BotSettings(_env_file=None, data_dir=tmp_path))
    tree = await core.sections()
    pages = 0
    keys: list[str] = []
    stack = list(tree.roots)
    while stack:
        node = stack.pop()
        keys.append(node.key)
        stack += node.children
    assert len(keys) == len(tree)
    for section in [None, *keys]:
        for locale in ("en", "zh-Hans"):
            first = await core.browse(section, 1, locale=locale)
            for number in range(1, first.pages + 1):
                page = await core.browse(section, number, locale=locale)
                pages += 1
                assert len(page.children) <= 25
                assert all(0 < len(m.content) <= DISCORD_LIMIT for m in render_browse_discord(page))
                assert all(len(child_label(c, texts_for(locale), 100)) <= 100 for c in page.children)
                assert all(len(f"kb:browse:{s}:{n}") <= 100 for _, s, n in browse_buttons(page))
                blocks = render_browse_slack(page)
                assert len(blocks) <= SLACK_BLOCK_LIMIT
                for block in blocks:
                    if block["type"] == "section":
                        assert len(block["text"]["text"]) <= SLACK_SECTION_LIMIT
                    for element in block.get("elements", []):
                        assert all(len(o["text"]["text"]) <= 75 for o in element.get("options", []))
    assert pages > 2 * len(tree)
    nlp = await core.browse("5 自然语言处理", 1)
    assert nlp.pages == 2 and len(nlp.children) == 25  # 48 subsections: 25, then 23


# -- a link for every item: its own, or its place in the collection -----------------------------------------

LOCATED = AnswerItem(
    "e3",
    "Focal Loss 的笔记",
    "",
    None,
    None,
    ("3 机器学习", "3.24 cross-entropy vs nllloss"),
    location_url="https://github.com/daiwk/collections/blob/master/pdfs/collections.pdf#page=15",
    location_text="§3.24 cross-entropy vs nllloss",
)
PLACED = AnswerItem(
    "e4", "ICLR 2018 的亮点", "", None, None, ("ICLR 2018",), place="004_qa.txt › ICLR 2018 有什麼值得關注的亮點?"
)


@pytest.mark.parametrize("locale", ["en", "zh-Hans"])
def test_an_item_without_a_link_of_its_own_links_its_place_in_the_collection_or_names_it(locale: Locale) -> None:
    shown = Answer("a1b2", "focal loss", (ADAMW, LOCATED, PLACED), locale=locale)
    where = texts_for(locale)("in the collection: {place}", place="§3.24 cross-entropy vs nllloss")
    placed = texts_for(locale)("in the collection: {place}", place="004_qa.txt › ICLR 2018 有什麼值得關注的亮點?")
    (message,) = render_discord(shown)
    first, second, third = message.content.split("\n\n")[1:]
    assert "📍" not in first  # its own link is enough
    assert f"📍 [{escape_discord(where)}](<{LOCATED.location_url}>)" in second and "📂 3 机器学习" in second
    assert f"📍 {escape_discord(placed)}" in third and "📂" not in third and "](<" not in third
    slack = "\n".join(
        element["text"] for block in render_slack(shown) if block["type"] == "context" for element in block["elements"]
    )
    assert f"📍 <{LOCATED.location_url}|{escape_mrkdwn(where)}>" in slack and f"📍 {escape_mrkdwn(placed)}" in slack
    text = render_text(shown)
    assert f"   {where} {LOCATED.location_url}\n" in text and f"   {placed}" in text


def test_to_item_takes_the_primary_link_else_the_location_else_the_place() -> None:
    source = SourceRef(file="notes.md", line_start=3, line_end=3, format="markdown")
    location = Link(url="https://example.com/notes.md#L3", text="推荐 › 召回", role="location")
    primary = Link(url="https://arxiv.org/abs/1711.05101", text="AdamW", role="primary")
    code = Link(url="https://github.com/o/r", text="code", role="code")
    base = Entry(id="x", title="t", source=source, lang="en", section_path=("推荐", "召回"))
    own = to_item(base.model_copy(update={"links": (primary,), "location": location}))
    assert (own.url, own.location_url, own.place) == (primary.url, None, "")
    code_only = to_item(base.model_copy(update={"links": (code,), "location": location}))
    assert (code_only.url, code_only.location_url, code_only.location_text) == (code.url, location.url, "推荐 › 召回")
    nowhere = to_item(base)
    assert (nowhere.url, nowhere.location_url, nowhere.place) == (None, None, "notes.md › 推荐 › 召回")
    assert own.links_somewhere and code_only.links_somewhere and not nowhere.links_somewhere


def test_every_answer_item_of_the_bundled_collection_carries_a_url_or_its_place(tmp_path: Path) -> None:
    """The bundled entries as an ingest stores them (parsed, then located: tests/test_links.py), each shown as
    an answer item on every platform: a URL, or (the three the Q&A post names no location for) its place."""
    import shutil

    from test_links import located

    entries = located([shutil.copytree(BUNDLED_SOURCES, tmp_path / "bundled")], tmp_path / "data")
    linked = placed = 0
    for entry in entries:
        item = to_item(entry)
        (message,) = render_discord(answer(item))
        slack = render_slack(answer(item))
        text = render_text(answer(item))
        if item.links_somewhere:
            url = item.url or item.location_url
            assert url and f"(<{url.replace(' ', '%20')}>)" in message.content, entry.id
            assert any(f"<{url.replace(' ', '%20')}|" in str(block) for block in slack), entry.id
            assert url in text
            linked += 1
        else:
            assert item.place and item.place in message.content.replace("\\", "") and item.place in text, entry.id
            placed += 1
    assert len(entries) > 500 and placed == 3 and linked == len(entries) - 3


def test_a_long_body_without_a_summary_is_cleaned_only_as_far_as_it_is_shown() -> None:
    from knowledge import blurb

    entry = Entry(
        id="long",
        title="长笔记",
        body="\n\n".join(f"第 {i} 段。" for i in range(1000)),
        lang="zh-Hans",
        source=SourceRef(file="notes.md", line_start=1, line_end=2000, format="markdown"),
    )
    shown = blurb(entry, 40)
    assert shown.startswith("第 0 段。 第 1 段。") and "第 999 段" not in shown
    assert 40 < len(shown) <= 40 + len("第 999 段。") + 1
    assert blurb(entry).endswith("第 999 段。")  # without a limit, all of it
    assert to_item(entry).summary.startswith("第 0 段。") and to_item(entry).summary.endswith("…")


# -- Slack pages stay whole: every item, every link, within Block Kit's limits -----------------------------


def test_a_slack_page_of_25_entries_shows_all_of_them_within_50_blocks() -> None:
    """KB_ANSWER_SIZE allows 25: a section and a context line each would be 52 blocks, and Slack refuses more
    than 50; the items are then compact (the context line in the section), none dropped."""
    items = tuple(replace(ADAMW, entry_id=f"e{number}") for number in range(25))
    blocks = render_slack(answer(*items, pages=2), page_size=25)
    assert len(blocks) <= SLACK_BLOCK_LIMIT
    text = "\n".join(block["text"]["text"] for block in blocks if block["type"] == "section")
    assert all(f"*{number}. <https://arxiv.org/abs/1711.05101|" in text for number in range(1, 26))
    assert text.count("<https://github.com/loshchil/AdamW-and-SGDW|code>") == 25
    (actions,) = [block for block in blocks if block["type"] == "actions"]
    assert len(actions["elements"][-1]["options"]) == 25
    # five entries keep their context lines
    assert sum(block["type"] == "context" for block in render_slack(answer(*items[:5]))) == 5


def test_a_long_section_path_keeps_the_code_link_in_the_context_line() -> None:
    item = replace(ADAMW, section=("很长的章节名" * 300, "优化"))
    context = next(block for block in render_slack(answer(item)) if block["type"] == "context")
    line = context["elements"][0]["text"]
    assert line.endswith("<https://github.com/loshchil/AdamW-and-SGDW|code>") and "很长的章节名 › 优化" in line
    assert len(line) <= 300


@pytest.mark.parametrize("question", ["<" * 400, "&" * 299 + "<>", "a" * 298 + "&b"])
def test_the_slack_notification_text_is_cut_before_it_is_escaped(question: str) -> None:
    """Cut after escaping, the text ended in half an escape ("&l")."""
    shown = slack_fallback_text(answer(ADAMW, question=question))
    whole = f"1 result(s) for “{question}”"
    assert html.unescape(shown) == whole[:300]  # every escape whole: unescaping gives the text back
    assert escape_mrkdwn(html.unescape(shown)) == shown


def test_a_browse_option_whose_name_has_at_signs_stays_within_75_characters() -> None:
    name = "Metrics: Recall@K, NDCG@K, MRR@K and Hit@K for retrieval — offline vs online"
    child = Section(("评估", name), count=1, direct=1)
    page = BrowsePage(("评估",), 1, (child,), ())
    (actions,) = [block for block in render_browse_slack(page) if block["type"] == "actions"]
    (option,) = actions["elements"][0]["options"]
    assert len(option["text"]["text"]) <= 75 and option["text"]["text"].endswith(
        "Hit@\u200bK for retrieval — offline vs online (1)"
    )


def test_a_link_too_long_for_a_message_block_is_not_shown_and_the_title_is() -> None:
    entry = _huge_entry(1).model_copy(
        update={"title": "A title", "links": (Link(url="https://example.com/" + "p" * 3000, role="primary"),)}
    )
    item = to_item(entry)
    assert item.url is None and item.title == "A title"
    assert all("pppp" not in str(block) for block in render_slack(answer(item)))
