"""Table tests per format on the hard cases of the collection, and the ordinary-markdown features."""

from __future__ import annotations

import re
import textwrap

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from knowledge.entry import Entry
from knowledge.parse import detect_format, parse_file
from knowledge.parse.markdown import parse_markdown, pieces
from knowledge.parse.summary import clean_summary


def parse(text: str, name: str = "note.md") -> list[Entry]:
    return parse_file(textwrap.dedent(text).lstrip("\n"), name)[1]


def titles(text: str) -> list[str]:
    return [entry.title for entry in parse(text)]


def by_title(entries: list[Entry], title: str) -> Entry:
    return next(entry for entry in entries if entry.title == title)


TOC = "\n".join(
    [
        "Contents",
        "",
        "1\t基础\t1",
        "1.1\t优化\t1",
        "1.2\tcross-entropy vs nllloss\t2",
        "1.3\t彩票假设\t2",
        "2\t推荐\t3",
        "2.1plato\t3",
        "2.2\tctr 特征\t3",
        "2.2.1\t位置偏置\t3",
        "",
        "下载本文 pdf: <https://example.com/book.pdf>",
        "",
    ]
)


def pdf(body: str) -> str:
    return TOC + "\n" + textwrap.dedent(body).lstrip("\n")


# -- format detection -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (pdf("1 基础\n\n1.1 优化\n\n某个标题\n"), "pdf_text"),
        ("---\nlayout: post\n---\n\n## 标题\n\n[A](https://a.example/x)\n", "markdown"),
        ("# Notes\n\nplain prose\n", "markdown"),
        ("some title?\n- https://a.example/p.pdf A paper title\n正文一行。\n", "qa"),
        ("just one paragraph of prose.\n\nand another one.\n", "markdown"),
    ],
)
def test_detect_format_from_content(text: str, expected: str) -> None:
    assert detect_format(text) == expected


# -- PDF text ---------------------------------------------------------------------------------


def test_pdf_headings_follow_the_toc_and_not_every_numbered_line() -> None:
    entries = parse(
        pdf(
            """
            1 基础

            1.1 优化

            2019 NLP 大全: 论文、博客、教程、工程进展全梳理 (长文预警)

            2.3 Subsampling of Frequent Words

            1.2 cross-entropy vs nllloss

            https://blog.csdn.net/geter_CS/article/details/84857220

            CrossEntropyLoss 就是把 Softmax-Log-NLLLoss 合并成一步。

            $$loss = -1 * x[0] = 1.3447$$
            """
        ),
        "book.txt",
    )
    first = by_title(entries, "2019 NLP 大全: 论文、博客、教程、工程进展全梳理 (长文预警)")
    assert first.section_path == ("1 基础", "1.1 优化")
    assert "2.3 Subsampling of Frequent Words" in first.body  # a numbered line that is not a heading
    section = by_title(entries, "cross-entropy vs nllloss")  # content with no titled item: a section entry
    assert section.section_path == ("1 基础", "1.2 cross-entropy vs nllloss")
    assert section.links[0].url == "https://blog.csdn.net/geter_CS/article/details/84857220"
    assert "$$loss = -1 * x[0] = 1.3447$$" in section.body
    assert all(entry.source.format == "pdf_text" for entry in entries)


def test_pdf_toc_rows_download_line_and_noise_are_never_titles() -> None:
    got = titles(pdf("1 基础\n\n====here\n\n1.1 优化\n\n一个真正的标题\n"))
    assert got == ["一个真正的标题"]


def test_pdf_heading_without_separator_and_toc_disagreement() -> None:
    entries = parse(pdf("2 推荐\n\n2.1plato\n\nplato 图计算框架\n\n2.2 ctr 特徵\n\n2.2.1 位置偏置\n\n消除位置偏置\n"))
    assert by_title(entries, "plato 图计算框架").section_path == ("2 推荐", "2.1plato")
    assert by_title(entries, "消除位置偏置").section_path == ("2 推荐", "2.2 ctr 特徵", "2.2.1 位置偏置")


def test_pdf_chinese_headline_followed_by_paper_title_is_one_entry() -> None:
    entries = parse(
        pdf(
            """
            1 基础

            1.1 优化

            二阶梯度优化新崛起, 超越 Adam, Transformer 只需一半迭代量

            Second Order Optimization Made Practical

            摘要: 目前机器学习中的优化都是以随机梯度下降等一阶梯度方法为主。

            推荐: 本文的亮点在于研究者提出了真正应用的二阶梯度最优化器。

            梯度会泄露训练数据? MIT 新方法从梯度窃取训练数据只需几步

            [Deep Leakage from Gradients](#)
            """
        )
    )
    assert [e.title for e in entries] == [
        "二阶梯度优化新崛起, 超越 Adam, Transformer 只需一半迭代量",
        "梯度会泄露训练数据? MIT 新方法从梯度窃取训练数据只需几步",
    ]
    shampoo = entries[0]
    assert shampoo.alt_titles == ("Second Order Optimization Made Practical",)
    assert shampoo.summary.startswith("目前机器学习中的优化")
    assert "推荐: 本文的亮点" in shampoo.body
    assert entries[1].alt_titles == ("Deep Leakage from Gradients",)
    assert entries[1].links == ()  # `(#)` is no URL


def test_pdf_headline_ending_in_an_exclamation_opens_an_entry() -> None:
    entries = parse(
        pdf(
            """
            1 基础

            1.1 FRN

            超越 BN 和 GN! 谷歌提出新的归一化层: FRN

            谷歌力作: 神经网络训练中的 Batch 依赖性很烦? 那就消了它!

            Filter Response Normalization Layer: Eliminating Batch Dependence

            什么是 padding mask 呢? 每个批次输入序列长度是不一样的! 也就是说, 要对齐!
            """
        )
    )
    # it was the summary of the headline above it; prose with two exclamations still is text
    assert [(e.title, e.alt_titles, e.summary) for e in entries] == [
        ("超越 BN 和 GN! 谷歌提出新的归一化层: FRN", (), ""),
        (
            "谷歌力作: 神经网络训练中的 Batch 依赖性很烦? 那就消了它!",
            ("Filter Response Normalization Layer: Eliminating Batch Dependence",),
            "什么是 padding mask 呢? 每个批次输入序列长度是不一样的! 也就是说, 要对齐!",
        ),
    ]


def test_pdf_links_autolinks_labels_and_roles() -> None:
    entries = parse(
        pdf(
            """
            1 基础

            1.3 彩票假设

            原始论文: [The lottery ticket hypothesis: Finding sparse, trainable neural networks](#)

            田渊栋从数学上证明 ICLR 最佳论文“彩票假设”, 强化学习和 NLP 也适用

            fb 的博客: <https://ai.facebook.com/blog/understanding-the-generalization-of-lottery-tickets>

            <https://github.com/facebookresearch/open_lth>

            参考https://zhuanlan.zhihu.com/p/88623159的代码，能画出下面的图
            """
        )
    )
    assert entries[0].title == "The lottery ticket hypothesis: Finding sparse, trainable neural networks"
    tian = entries[1]
    roles = {link.url: link.role for link in tian.links}
    assert roles == {
        "https://ai.facebook.com/blog/understanding-the-generalization-of-lottery-tickets": "primary",
        "https://github.com/facebookresearch/open_lth": "code",
        "https://zhuanlan.zhihu.com/p/88623159": "extra",
    }
    assert tian.links[0].text == "fb 的博客"


def test_pdf_line_ending_in_colon_introduces_next_entry_or_attaches_content() -> None:
    entries = parse(
        pdf(
            """
            1 基础

            1.1 优化

            NeurIPS 上关于 NTK 的论文有:

            [On the Inductive Bias of Neural Tangent Kernels](#)

            可以看出nn.LogSoftmax()的对输入的操作就是:

            ```
            def f(x):
                # not a heading
                return x
            ```
            """
        )
    )
    assert [e.title for e in entries] == ["On the Inductive Bias of Neural Tangent Kernels"]
    body = entries[0].body
    assert body.startswith("NeurIPS 上关于 NTK 的论文有:")
    assert "可以看出nn.LogSoftmax()的对输入的操作就是:" in body
    assert "    # not a heading" in body  # code kept verbatim
    assert "NeurIPS" not in entries[0].summary


def test_pdf_long_body_splits_into_chunks_sharing_the_id() -> None:
    long_paragraphs = "\n\n".join("这是一段很长的说明文字，用来测试切分。" * 20 for _ in range(6))
    entries = parse(pdf(f"1 基础\n\n1.1 优化\n\n一篇很长的文章\n\n{long_paragraphs}\n"))
    entry = entries[0]
    chunks = entry.chunks()
    assert len(entry.body) > 1500
    assert len(chunks) > 1
    assert all(len(chunk) <= 1500 for chunk in chunks)
    assert "".join(chunks).replace("\n", "") == entry.body.replace("\n", "")


WANN = """
    1 基础

    1.3 彩票假设

    <https://weightagnostic.github.io/>

    Weight Agnostic Neural Networks

    探索权重无关神经网络

    2 推荐
    """


def test_pdf_paper_title_under_a_heading_and_its_url_titles_the_entry() -> None:
    entries = parse(pdf(WANN), "book.txt")
    assert len(entries) == 1
    (wann,) = entries
    assert wann.title == "Weight Agnostic Neural Networks"
    assert wann.alt_titles == ("彩票假设",)  # the heading: still found by who searches its words
    assert wann.section_path == ("1 基础", "1.3 彩票假设")
    assert [link.url for link in wann.links] == ["https://weightagnostic.github.io/"]
    assert wann.summary == "探索权重无关神经网络"  # the one line after the title, the last of its section
    assert (wann.source.line_start, wann.source.line_end) == (18, 22)  # the URL to the description


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # a Chinese line after the title that does not end the section: another article's headline
        (
            WANN.replace("2 推荐", "更多的说明文字。\n\n2 推荐"),
            [("Weight Agnostic Neural Networks", ("彩票假设",)), ("探索权重无关神经网络", ())],
        ),
        # the end of the file ends the section too
        (WANN.replace("2 推荐", ""), [("Weight Agnostic Neural Networks", ("彩票假设",))]),
        # "Name: subtitle" titles count, and an English title after the promoted one opens its own entry
        (
            WANN.replace(
                "Weight Agnostic Neural Networks", "TADAM: Task dependent adaptive metric for few-shot"
            ).replace("探索权重无关神经网络", "Graph Neural Networks for Recommender Systems: A Survey"),
            [
                ("TADAM: Task dependent adaptive metric for few-shot", ("彩票假设",)),
                ("Graph Neural Networks for Recommender Systems: A Survey", ()),
            ],
        ),
        # an ordinary sentence after the URL: the heading keeps naming the entry of the URL, as before
        (
            WANN.replace("Weight Agnostic Neural Networks", "this page has the code and the paper"),
            [("彩票假设", ()), ("this page has the code and the paper", ()), ("探索权重无关神经网络", ())],
        ),
        # a Chinese headline after the URL is another article's: nothing changes
        (WANN.replace("Weight Agnostic Neural Networks\n", ""), [("彩票假设", ()), ("探索权重无关神经网络", ())]),
        # a link label, not a title
        (
            WANN.replace("Weight Agnostic Neural Networks", "Official PyTorch Implementation"),
            [("彩票假设", ()), ("Official PyTorch Implementation", ()), ("探索权重无关神经网络", ())],
        ),
        # prose between the heading and the title: the title is an entry of its own, as before
        (
            WANN.replace("<https://weightagnostic.github.io/>", "一段说明。\n\n<https://weightagnostic.github.io/>"),
            [("彩票假设", ()), ("Weight Agnostic Neural Networks", ()), ("探索权重无关神经网络", ())],
        ),
    ],
)
def test_pdf_heading_url_then_title_is_promoted_only_for_paper_titles(
    body: str, expected: list[tuple[str, tuple[str, ...]]]
) -> None:
    entries = parse(pdf(body), "book.txt")
    assert [(e.title, e.alt_titles) for e in entries] == expected


# -- Q&A post --------------------------------------------------------------------------------

QA = """\
ICLR 2018 有什麼值得關注的亮點?
ICLR 2018已經結束提交,這次ICLR有什麼值得圈點之處?
- https://einstein.ai/research/non-autoregressive-neural-mt.pdf Non-autoregressive neural machine translation
這篇文章一定是做機器翻譯必看的一篇文章。
介紹一個隔壁組的成果, 應該是重劍無鋒.
[1711.05101] Fixing Weight Decay Regularization in Adam
Adam作為一個非常常用的深度學習優化方法.
關注生活的研究。。。
AirNet: a machine learning dataset for air quality forecasting
Abstract: In the past decade, many urban areas in China have suffered from air pollution.
- mixup: Beyond Empirical Risk Minimization
mixup: Beyond Empirical Risk Minimization
非常非常有意思的一個工作。
nvidia那篇用GAN生成超高解析度圖片的?
傳送門:Progressive Growing of GANs for Improved Quality, Stability, and Variation
有空看完paper之後回來補細節
這篇diss前一段時間大火的用Information Bottleneck來解釋 deep learning generalization的理論的。。。
https://openreview.net/pdf?id=ry_WPG-A-
推薦閱讀:
※如何看待谷歌公開 tensorflow 專用處理器 TPU?
※學好深度學習,python得達到什麼程度?
"""


def test_qa_item_forms() -> None:
    entries = parse(QA, "qa.txt")
    assert [e.title for e in entries] == [
        "Non-autoregressive neural machine translation",
        "Fixing Weight Decay Regularization in Adam",
        "AirNet: a machine learning dataset for air quality forecasting",
        "mixup: Beyond Empirical Risk Minimization",
        "Progressive Growing of GANs for Improved Quality, Stability, and Variation",
        "這篇diss前一段時間大火的用Information Bottleneck來解釋 deep learning generalization的理論的。。。",
    ]
    nat, adamw, airnet, mixup, gans, diss = entries
    assert all(e.section_path == ("ICLR 2018 有什麼值得關注的亮點?",) for e in entries)
    assert nat.links[0].url.endswith("non-autoregressive-neural-mt.pdf")
    assert adamw.links[0].url == "https://arxiv.org/abs/1711.05101"
    assert "介紹一個隔壁組" in adamw.body and adamw.summary.startswith("Adam作為")
    assert airnet.summary.startswith("In the past decade")
    assert mixup.body.count("mixup: Beyond") == 0  # the repeated title is not body text
    assert "nvidia那篇" in gans.body
    assert diss.links[0].url == "https://openreview.net/pdf?id=ry_WPG-A-"
    assert nat.lang == "zh-Hant" and airnet.lang == "en"
    assert not any("推薦閱讀" in e.title or e.title.startswith("※") for e in entries)
    assert not any("TPU" in e.body for e in entries)


# -- markdown -------------------------------------------------------------------------------

POST = """\
---
layout: post
title: "合辑"
---

目录

<!-- TOC -->

- [基础研究](#基础研究)
  - [优化方法](#优化方法)

<!-- /TOC -->

## 基础研究

### 优化方法

[On Empirical Comparisons of Optimizers for Deep Learning](https://arxiv.org/pdf/1910.05446.pdf)

摘要：优化器选择是当前深度学习管道的重要步骤。

推荐：如何选择优化器？

### 新的结构

#### NALU

[Measuring Arithmetic Extrapolation Performance](https://arxiv.org/abs/1910.01888)

## CV

#### 半弱监督

[10亿照片训练，Facebook半弱监督训练方法刷新ResNet-50 ImageNet基准测试](https://mp.weixin.qq.com/s/t1Js479ZRDAw1XzPdx_nQA)

[https://github.com/facebookresearch/semi-supervised-ImageNet1K-models](https://github.com/facebookresearch/semi-supervised-ImageNet1K-models)

[https://ai.facebook.com/blog/billion-scale-semi-supervised-learning](https://ai.facebook.com/blog/billion-scale-semi-supervised-learning)

Facebook将该方法称为“半弱监督”。

====here

## ctr

### 传统ctr

[https://daiwk.github.io/posts/dl-traditional-ctr-models.html](https://daiwk.github.io/posts/dl-traditional-ctr-models.html)
"""


def test_markdown_post_navigation_paths_and_bare_links() -> None:
    entries = parse(POST, "post.txt")
    assert [e.title for e in entries] == [
        "On Empirical Comparisons of Optimizers for Deep Learning",
        "Measuring Arithmetic Extrapolation Performance",
        "10亿照片训练，Facebook半弱监督训练方法刷新ResNet-50 ImageNet基准测试",
        "传统ctr",
    ]
    optim, nalu, semi, ctr = entries
    assert optim.section_path == ("基础研究", "优化方法")
    assert optim.summary == "优化器选择是当前深度学习管道的重要步骤。"
    assert nalu.section_path == ("基础研究", "新的结构", "NALU")
    assert [(link.role, link.url) for link in semi.links] == [
        ("primary", "https://mp.weixin.qq.com/s/t1Js479ZRDAw1XzPdx_nQA"),
        ("code", "https://github.com/facebookresearch/semi-supervised-ImageNet1K-models"),
        ("extra", "https://ai.facebook.com/blog/billion-scale-semi-supervised-learning"),
    ]
    assert "====here" not in semi.body
    assert ctr.section_path == ("ctr", "传统ctr")
    assert ctr.links[0].role == "primary"


ORDINARY = """\
# Reading list

Some notes I keep. &nbsp;

&nbsp;

<!-- a comment that is not content -->

## Papers

- [Attention Is All You Need](https://arxiv.org/abs/1706.03762) - the transformer paper
- [BERT](https://arxiv.org/abs/1810.04805): bidirectional pre-training
  - [RoBERTa](https://arxiv.org/abs/1907.11692) a robustly optimised BERT
* plain item without a link

| Paper | Code | Note |
|---|---|---|
| [ResNet](https://arxiv.org/abs/1512.03385) | [code](https://github.com/KaimingHe/resnet) | residual learning |
| row without link | - | - |

![diagram](https://example.com/img.png)

## Code

```python
# not a heading
def f(): pass
```

$$
E = mc^2
$$

### [Deep Learning Book](https://www.deeplearningbook.org/)

A free online book.
"""


def test_ordinary_markdown_collection_features() -> None:
    entries = parse(ORDINARY)
    got = {e.title: e for e in entries}
    assert set(got) == {
        "Reading list",
        "Attention Is All You Need",
        "BERT",
        "RoBERTa",
        "ResNet",
        "Papers",
        "Code",
        "Deep Learning Book",
    }
    assert got["Attention Is All You Need"].summary == "the transformer paper"
    assert got["BERT"].summary == "bidirectional pre-training"
    assert got["RoBERTa"].links[0].url == "https://arxiv.org/abs/1907.11692"
    resnet = got["ResNet"]
    assert [link.role for link in resnet.links] == ["primary", "code"]
    assert "residual learning" in resnet.summary
    assert "plain item without a link" in got["Papers"].body
    assert "row without link" in got["Papers"].body
    code = got["Code"]
    assert "# not a heading" in code.body and "E = mc^2" in code.body
    assert got["Deep Learning Book"].links[0].url == "https://www.deeplearningbook.org/"
    assert got["Deep Learning Book"].summary == "A free online book."
    assert all("img.png" not in link.url for e in entries for link in e.links)
    assert all("comment" not in e.body for e in entries)
    assert "&nbsp;" not in got["Reading list"].body


def test_ids_are_stable_and_unique_per_file() -> None:
    first = parse(ORDINARY)
    again = parse(ORDINARY.replace("Some notes I keep.", "Some notes I keep.\n\nAn added paragraph."))
    assert {e.title: e.id for e in first} == {e.title: e.id for e in again}
    assert len({e.id for e in first}) == len(first)
    assert {e.id for e in parse(ORDINARY, "other.md")}.isdisjoint({e.id for e in first})


def test_lists_nested_past_the_markdown_limit_keep_their_text_and_what_follows() -> None:
    depth = 60
    items = [
        "  " * level
        + (f"- [Paper {level}](https://p.example/{level}) note {level}" if level % 5 == 0 else f"- 条目 {level}")
        for level in range(depth)
    ]
    text = "\n".join(["# Deep", "", *items, "", "after the list", "", "## Next", "", "[Last](https://last.example/x)"])
    entries = parse(text)
    found = "\n".join(entry.search_text() for entry in entries)
    for level in range(depth):
        assert (f"note {level}" if level % 5 == 0 else f"条目 {level}") in found
    assert {e.title for e in entries} >= {f"Paper {level}" for level in range(0, depth, 5)}
    assert "after the list" in found
    assert by_title(entries, "Last").section_path == ("Deep", "Next")  # the structure after the list is read
    assert "条目 9" in by_title(entries, "Paper 5").body  # the first line past the limit joins its item


def test_terminal_escape_sequences_and_control_characters_never_reach_an_entry() -> None:
    text = (
        "# Notes\x1b]0;owned title\x07\n\n"
        "[A \x1b[31mred\x1b[0m paper](https://a.example/p)\x07 with a note\x1b[2J\x9b1m and \x00NUL\x7f\n\n"
        "\x1b]8;;https://evil.example\x1b\\hyperlink\x1b]8;;\x1b\\ text\tkept\n"
    )
    entries = parse(text)
    control = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
    assert entries
    for entry in entries:
        for value in (entry.title, *entry.alt_titles, entry.summary, entry.body, *entry.section_path):
            assert not control.search(value.replace("\n", "").replace("\t", "")), value
        assert all(not control.search(link.url + link.text) for link in entry.links)
    paper = by_title(entries, "A red paper")
    assert paper.section_path == ("Notes",)
    assert paper.body.startswith("with a note and NUL")
    assert "hyperlink text\tkept" in paper.body and "evil.example" not in paper.search_text()


def test_bidi_overrides_never_reach_an_entry() -> None:
    """U+202E in a title would show the rest of the line reversed in a chat reply ('gpj.exe' read as 'exe.jpg')."""
    entries = parse(
        "# Notes \u2067RTL\u2069\n\n"
        "- [Free \u202egpj.exe\u202c weights](https://a.example/\u202dp) a note \u202awith\u202b marks\n"
    )
    bidi = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
    (paper,) = entries
    assert paper.title == "Free gpj.exe weights" and paper.section_path == ("Notes RTL",)
    for value in (
        paper.title,
        paper.summary,
        paper.body,
        *paper.section_path,
        *(link.url + link.text for link in paper.links),
    ):
        assert not bidi.search(value), ascii(value)
    assert [link.url for link in paper.links] == ["https://a.example/p"]


def test_markdown_keeps_the_text_around_entries() -> None:
    entries = parse(
        """
        Notes before any heading.

        ## Papers

        原始论文: [A Paper](https://a.example/p)

        - [B Paper](https://b.example/p)

          A paragraph of the item.

          - a nested point
        - see [the appendix](#appendix) for proofs

        | Paper | Note |
        |---|---|
        | [C Paper](https://c.example/p) | fine | a cell past the header's |
        """
    )
    got = {e.title: e for e in entries}
    assert got["note"].body == "Notes before any heading."  # before any heading: named after the file
    assert got["note"].section_path == ()
    assert got["A Paper"].body == "原始论文:"
    assert "A paragraph of the item." in got["B Paper"].body and "- a nested point" in got["B Paper"].body
    assert "see the appendix for proofs" in got["Papers"].body  # not navigation: it has words of its own
    assert "| Paper | Note |" in got["Papers"].body  # the header row, as a table row
    assert got["Papers"].summary != "Paper | Note"
    assert got["C Paper"].body == "Note: fine | a cell past the header's"  # named by its column's header
    front = parse("---\ntitle: 合辑\n---\n\nIntro prose.\n\n# H\n\n[X](https://x.example/p)\n")
    assert [(e.title, e.body) for e in front] == [("合辑", "Intro prose."), ("X", "")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # heading, a bare URL, the paper's title, its description: the title names the entry
        (
            "## 权重无关\n\n<https://weightagnostic.github.io/>\n\nWeight Agnostic Neural Networks\n\n探索权重无关神经网络\n",
            ("Weight Agnostic Neural Networks", ("权重无关",), "探索权重无关神经网络", 1),
        ),
        # the title right under the heading
        (
            "## NALU\n\nMeasuring Arithmetic Extrapolation Performance\n\n摘要：NALU 的评价。\n",
            ("Measuring Arithmetic Extrapolation Performance", ("NALU",), "NALU 的评价。", 0),
        ),
        # an ordinary sentence under the heading: unchanged
        (
            "## 权重无关\n\n<https://weightagnostic.github.io/>\n\nThis is the project page of the paper\n",
            ("权重无关", (), "This is the project page of the paper", 1),
        ),
        # a Chinese line: unchanged
        ("## 权重无关\n\n探索权重无关神经网络\n", ("权重无关", (), "探索权重无关神经网络", 0)),
        # a title after prose is body text, as before
        (
            "## 权重无关\n\n一段说明文字。\n\nWeight Agnostic Neural Networks\n",
            ("权重无关", (), "一段说明文字。", 0),
        ),
    ],
)
def test_markdown_paper_title_right_under_a_heading_titles_its_entry(
    text: str, expected: tuple[str, tuple[str, ...], str, int]
) -> None:
    (entry,) = parse(text)
    assert (entry.title, entry.alt_titles, entry.summary, len(entry.links)) == expected
    assert entry.section_path == (text.split("\n")[0].removeprefix("## "),)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a link inside a note says where more is, it names nothing: the note is the heading's entry's
        (
            "## rm\n\n* 训练文本：Anthropic 的数据在 [Hub](https://huggingface.co/datasets/Anthropic/hh-rlhf) 上可用\n",
            [("rm", ["https://huggingface.co/datasets/Anthropic/hh-rlhf"])],
        ),
        (
            "## 效果\n\n* cons@64：多次采样投票（在[这里](https://openai.com/index/learning-to-reason)提到了）\n",
            [("效果", ["https://openai.com/index/learning-to-reason"])],
        ),
        # a part of a recipe, labelled: a link of the entry above
        (
            "## lora sft\n\n* 数据：[https://github.com/a/b/data.jsonl](https://github.com/a/b/data.jsonl)\n"
            "* 脚本：[https://github.com/a/b/train.py](https://github.com/a/b/train.py)\n",
            [("lora sft", ["https://github.com/a/b/data.jsonl", "https://github.com/a/b/train.py"])],
        ),
        (
            "## Alignment 综述\n\n[中文版](https://alignmentsurvey.com/cn.pdf)，自己转存了[一份](https://github.com/a/b.pdf)\n",
            [("Alignment 综述", ["https://alignmentsurvey.com/cn.pdf", "https://github.com/a/b.pdf"])],
        ),
        (
            "## 后训练\n\n参考：[xhs](https://www.xiaohongshu.com/explore/1)\n",
            [("后训练", ["https://www.xiaohongshu.com/explore/1"])],
        ),
        # list items that are only URLs, under an entry: its links ("对应代码：" then the repositories)
        (
            "## 开源rlhf库\n\n[RLHF Workflow](https://arxiv.org/pdf/2405.07863)\n\n对应代码：\n\n"
            "* [https://github.com/RLHFlow/A](https://github.com/RLHFlow/A)\n* <https://github.com/RLHFlow/B>\n",
            [
                (
                    "RLHF Workflow",
                    [
                        "https://arxiv.org/pdf/2405.07863",
                        "https://github.com/RLHFlow/A",
                        "https://github.com/RLHFlow/B",
                    ],
                )
            ],
        ),
        # ... with no entry open above them, each is an entry of its own
        (
            "## 代码\n\n* [https://github.com/a/b](https://github.com/a/b)\n* <https://github.com/c/d>\n",
            [
                ("https://github.com/a/b", ["https://github.com/a/b"]),
                ("https://github.com/c/d", ["https://github.com/c/d"]),
            ],
        ),
        # a label that names a thing titles it, without its colon
        (
            "## 工具\n\n* 游戏生成站：[https://latitude.io/](https://latitude.io/)\n",
            [("游戏生成站", ["https://latitude.io/"])],
        ),
        # named links open entries as before, labelled or not
        (
            "## 论文\n\n* [Attention Is All You Need](https://arxiv.org/abs/1706.03762)\n"
            "* 原始论文：[Deep Residual Learning](https://arxiv.org/abs/1512.03385)\n",
            [
                ("Attention Is All You Need", ["https://arxiv.org/abs/1706.03762"]),
                ("Deep Residual Learning", ["https://arxiv.org/abs/1512.03385"]),
            ],
        ),
    ],
)
def test_links_that_only_point_somewhere_do_not_title_entries(text: str, expected: list[tuple[str, list[str]]]) -> None:
    assert [(e.title, [link.url for link in e.links]) for e in parse(text)] == expected


WX = "https://mp.weixin.qq.com/s/uHrRBS3Ju9MAWbaukiGnOA"
PAPER = "https://arxiv.org/abs/2002.09018"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the collection's rule: a Chinese headline's link, then its English paper's link, are one entry, and
        # the 摘要 after them is its summary (402 pairs of the upstream posts were read as two entries)
        (
            f"## Shampoo\n\n[二阶梯度优化新崛起，超越 Adam]({WX})\n\n"
            f"[Second Order Optimization Made Practical]({PAPER})\n\n摘要：二阶优化终于在实战大模型上展现出优势。\n",
            [
                (
                    "二阶梯度优化新崛起，超越 Adam",
                    ("Second Order Optimization Made Practical",),
                    "二阶优化终于在实战大模型上展现出优势。",
                    [WX, PAPER],
                )
            ],
        ),
        # not after a headline that already has text under it, nor an English headline
        (
            f"## a\n\n[二阶梯度优化新崛起]({WX})\n\n推荐：好文。\n\n[Second Order Optimization]({PAPER})\n",
            [("二阶梯度优化新崛起", (), "好文。", [WX]), ("Second Order Optimization", (), "", [PAPER])],
        ),
        (
            f"## a\n\n[Shampoo explained]({WX})\n\n[Second Order Optimization]({PAPER})\n",
            [("Shampoo explained", (), "", [WX]), ("Second Order Optimization", (), "", [PAPER])],
        ),
        # a second Chinese headline, or a one-word link ("model"), is an entry of its own
        (
            f"## a\n\n[二阶梯度优化新崛起]({WX})\n\n[Llama3 技术报告详解]({PAPER})\n\n[model]({PAPER}2)\n",
            [
                ("二阶梯度优化新崛起", (), "", [WX]),
                ("Llama3 技术报告详解", (), "", [PAPER]),
                ("model", (), "", [PAPER + "2"]),
            ],
        ),
        # a heading between them parts them
        (
            f"## a\n\n[二阶梯度优化新崛起]({WX})\n\n## b\n\n[Second Order Optimization]({PAPER})\n",
            [("二阶梯度优化新崛起", (), "", [WX]), ("Second Order Optimization", (), "", [PAPER])],
        ),
    ],
)
def test_markdown_chinese_headline_then_its_paper_is_one_entry(
    text: str, expected: list[tuple[str, tuple[str, ...], str, list[str]]]
) -> None:
    assert [(e.title, e.alt_titles, e.summary, [link.url for link in e.links]) for e in parse(text)] == expected


def test_a_list_item_that_cites_a_paper_mid_sentence_keeps_the_sentence_whole() -> None:
    (entry,) = parse(
        "## 序列\n\n* 纯attention：可并行，例如SASRec（[Self-attentive sequential recommendation](https://arxiv.org/abs/1808.09781)）。\n"
    )
    assert entry.title == "Self-attentive sequential recommendation"
    assert (
        entry.summary == "纯attention：可并行，例如SASRec（Self-attentive sequential recommendation）。"
    )  # was "…SASRec（ ）。"
    # a label, the link, then more of the sentence: whole too (it was "Alpaca-LoRA： ，通过LoRA…")
    (entry,) = parse(
        "## sft\n\n* Alpaca-LoRA：[Instruct-tune llama](https://github.com/tloen/alpaca-lora)，通过LoRA训练。\n"
    )
    assert (entry.title, entry.summary) == ("Instruct-tune llama", "Alpaca-LoRA：Instruct-tune llama，通过LoRA训练。")


def test_markdown_title_after_an_entry_under_the_same_heading_is_body_text() -> None:
    entries = parse("## 权重无关\n\n- [A paper](https://a.example/p) desc\n\nWeight Agnostic Neural Networks\n")
    assert [(e.title, e.body) for e in entries] == [
        ("A paper", "desc"),
        ("权重无关", "Weight Agnostic Neural Networks"),
    ]


# -- summaries ------------------------------------------------------------------------------

PAN = "https://pan.baidu.com/s/1WNYLcOrd3hOiATu44gotBg"
ZHIHU = "https://zhuanlan.zhihu.com/p/88623159"


@pytest.mark.parametrize(
    ("text", "links", "expected"),
    [
        # the numbered label of the next item is no summary
        ("2. MASS: 预训练", (), ""),
        ("1. Transformer Big + BT: 回译", (), ""),
        ("（2）模型结构: 双塔", (), ""),
        ("三、实验", (), ""),
        # a numbered sentence keeps its words, without the number; a bullet likewise
        (
            "1. 本文提出了一种新的优化器，在多个任务上超过 Adam。",
            (),
            "本文提出了一种新的优化器，在多个任务上超过 Adam。",
        ),
        ("2、研究者提出了 FRN 归一化层，不依赖 batch。", (), "研究者提出了 FRN 归一化层，不依赖 batch。"),
        ("- 内积通常用于衡量两个向量的相似性。", (), "内积通常用于衡量两个向量的相似性。"),
        # a list keeps its numbers
        ("1. 更大的 batch\n2. 去掉 NSP 任务", (), "1. 更大的 batch 2. 去掉 NSP 任务"),
        # a download link of the entry with its share code: nothing left
        (f"数据集链接: <{PAN}> 提取码: cy6f", (PAN,), ""),
        (f"链接：<{PAN}> 密码：1a2b", (f"{PAN}/",), ""),  # the URL compared as a key
        # a URL that is not the entry's stays, as a URL; the share code still goes
        (f"数据集链接: <{PAN}> 提取码: cy6f", (), f"数据集链接: {PAN}"),
        (
            "delay feedback <https://zhuanlan.zhihu.com/p/555950153>",
            ("https://zhuanlan.zhihu.com/p/555950153",),
            "delay feedback",
        ),
        # text written on after the URL: the URL stays
        (f"参考<{ZHIHU}>的代码，能画出下面的图", (ZHIHU,), f"参考{ZHIHU}的代码，能画出下面的图"),
        (
            "代码见 <https://github.com/a/b> 和论文附录。",
            ("https://github.com/a/b",),
            "代码见 https://github.com/a/b 和论文附录。",
        ),
        # link markup becomes its text
        (
            "Hinton 介绍了 [Stacked Capsule Autoencoders](#), 一种无监督的胶囊网络。",
            (),
            "Hinton 介绍了 Stacked Capsule Autoencoders, 一种无监督的胶囊网络。",
        ),
        ("见 [项目主页](https://a.example/p)。", ("https://a.example/p",), "见 项目主页。"),
        ("见 [项目主页](https://a.example/p)。", (), "见 项目主页 https://a.example/p。"),
        # the rest of a sentence whose link became the title: without the punctuation in front
        ("，VideoBert模型。", (), "VideoBert模型。"),
        ("、 ; 和 BERT 比较", (), "和 BERT 比较"),
        # only a note to self: no summary
        ("(toread)", (), ""),
        ("（待读）", (), ""),
        ("(ICLR 2020) 一种新的归一化层", (), "(ICLR 2020) 一种新的归一化层"),
        # only a label that introduces the link or the list after it: no summary
        ("重排：", (), ""),
        ("25.12综述：", (), ""),
        ("spotify 的 paper:", (), ""),
        ("NeurIPS 上关于 NTK 的论文有:", (), ""),
        # unchanged: a colon inside, a sentence before it, a long lead-in
        ("动机：专家不够分化", (), "动机：专家不够分化"),
        ("本文研究了对比学习。主要结论：", (), "本文研究了对比学习。主要结论："),
        (
            "LLM的3种典型涌现能力及其对应代表模型，按出现的先后顺序排列如下：",
            (),
            "LLM的3种典型涌现能力及其对应代表模型，按出现的先后顺序排列如下：",
        ),
        # unchanged: numbers that are no item numbers, words that are no share codes, ordinary summaries
        ("3.5 亿参数的模型在 GLUE 上取得了最好成绩。", (), "3.5 亿参数的模型在 GLUE 上取得了最好成绩。"),
        ("2019 NLP 大全: 论文、博客、教程、工程进展全梳理", (), "2019 NLP 大全: 论文、博客、教程、工程进展全梳理"),
        ("1.x 版本的 API 已经废弃", (), "1.x 版本的 API 已经废弃"),
        ("密码学与机器学习的交叉研究综述", (), "密码学与机器学习的交叉研究综述"),
        ("本文提出了一种新的归一化层 FRN。代码:", (), "本文提出了一种新的归一化层 FRN。代码:"),
        (f"代码: {ZHIHU}", (ZHIHU,), f"代码: {ZHIHU}"),  # a bare URL is no markup
        ("  多个   空格\n换行  ", (), "多个 空格 换行"),
        ("", (), ""),
    ],
)
def test_clean_summary(text: str, links: tuple[str, ...], expected: str) -> None:
    assert clean_summary(text, links) == expected


def test_summary_skips_what_is_not_one_and_the_body_keeps_it() -> None:
    entries = parse(
        pdf(
            f"""
            1 基础

            1.1 优化

            102 个模型、40 个数据集，这是你需要了解的机器翻译 SOTA 论文

            1. Transformer Big + BT: 回译

            通过单语数据提升 NMT 模型最有效的方法之一是回译。

            [Understanding Back-Translation at Scale](#)

            2. MASS: 预训练

            1.3 彩票假设

            中文歌词生成，缺不缺语料？这里有一个开源项目值得推荐

            数据集链接: <{PAN}> 提取码: cy6f
            """
        ),
        "book.txt",
    )
    got = {e.title: e for e in entries}
    survey = got["102 个模型、40 个数据集，这是你需要了解的机器翻译 SOTA 论文"]
    assert survey.summary == "通过单语数据提升 NMT 模型最有效的方法之一是回译。"  # the next paragraph
    assert survey.body.startswith("1. Transformer Big + BT: 回译")
    back = got["Understanding Back-Translation at Scale"]
    assert (back.summary, back.body) == ("", "2. MASS: 预训练")
    lyrics = got["中文歌词生成，缺不缺语料？这里有一个开源项目值得推荐"]
    assert lyrics.summary == ""
    assert lyrics.body == f"数据集链接: <{PAN}> 提取码: cy6f"
    assert [link.url for link in lyrics.links] == [PAN]


# -- markdown read in pieces -----------------------------------------------------------------


def test_markdown_is_cut_at_headings_and_block_starts_but_never_inside_code_or_html() -> None:
    lines = ["# A", "text", "```", "# a comment", "```", "## B", "", "<!--", "# hidden", "-->", "para", "", "next"]
    assert list(pieces(lines, chunk_lines=1)) == [
        (0, 1, True),
        (1, 5, False),  # the fence holds a line that looks like a heading
        (5, 6, True),
        (6, 7, False),  # a cut comes at column 0 after a blank line
        (7, 12, False),  # the comment holds a line that looks like a heading
        (12, 13, False),
    ]


MARKDOWN_LINES = st.sampled_from(
    [
        "# H1",
        "## H2 [t](https://x.example/a)",
        "# *em* &amp; `code` #",
        "",
        "text line",
        "- item",
        "- [P](https://p.example/1) note",
        "  - nested",
        "  indented",
        "    code",
        "```",
        "  ```",
        "\t```",
        "~~~~",
        "> quote",
        "| a | b |",
        "|---|---|",
        "<!--",
        "-->",
        "<div>",
        "  <div>",
        "<span>x</span>",
        "<pre>",
        "</pre>",
        "[ref]: https://r.example/x",
        "[ref]:",
        "[R][ref]",
        "1. one",
        "---",
        "$$",
        "摘要：中文",
        "<https://auto.example>",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(MARKDOWN_LINES, max_size=40))
# found by a CI run: text no block reads, after a blank line under a list item, was the item's read whole and
# a section's read in pieces (the run of unread lines began at the blank line)
@example(lines=["- [P](https://p.example/1) note", "", "[ref]:", "$$"])
def test_markdown_read_in_pieces_means_what_it_means_whole(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n"
    assert parse_markdown(text, chunk_lines=1) == parse_markdown(text, split=False)


def test_a_table_row_entry_names_its_cells_by_their_column_headers() -> None:
    entries = parse(
        "# 模型\n\n"
        "| ckpt? | 模型 | 发布时间 | 大小 | 硬件 |\n"
        "|---|---|---|---|---|\n"
        "| N | [GShard](https://arxiv.org/pdf/2006.16668.pdf) | 2020.06 | 600B | - |\n"
        "\n"
        "| 模型 | 说明 |\n"
        "|---|---|\n"
        "| [BERT](https://arxiv.org/abs/1810.04805) | 双向编码器 |\n"
    )
    got = {entry.title: entry for entry in entries}
    # the title's own cell is the title; an empty cell ("-") says nothing
    assert got["GShard"].body == "ckpt?: N | 发布时间: 2020.06 | 大小: 600B"
    assert got["GShard"].summary == "ckpt?: N | 发布时间: 2020.06 | 大小: 600B"
    assert got["BERT"].body == "说明: 双向编码器"  # the second table's header, not the first's


def test_a_table_s_header_row_is_no_summary() -> None:
    (entry,) = parse(
        "# RecurrentGemma\n\n"
        "[RecurrentGemma: Moving Past Transformers](https://arxiv.org/abs/2404.07839)\n\n"
        "具体参数：\n\n"
        "| 变量 | 大小 |\n"
        "|---|---|\n"
        "| 总参数量 | 2.7b |\n"
        "| 词表大小 | - |\n"
    )
    assert entry.summary == "总参数量 | 2.7b"  # the label and the header row are no summary
    assert "| 变量 | 大小 |" in entry.body and "词表大小 | -" in entry.body  # rows without a link: as written
