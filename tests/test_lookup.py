"""Identifiers of papers and code: what a question names, normalised to the keys entries are found by."""

from __future__ import annotations

import pytest

from knowledge import Entry, Link, SourceRef
from knowledge.lookup import IdentifierIndex, arxiv_id, entry_identifiers, identifiers_in, without_identifiers


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("1711.05101", ["arxiv:1711.05101"]),
        ("arXiv:1711.05101v3", ["arxiv:1711.05101"]),
        ("arxiv 1711.05101", ["arxiv:1711.05101"]),
        ("https://arxiv.org/abs/1711.05101", ["arxiv:1711.05101"]),
        ("http://www.arxiv.org/abs/1711.05101v2/", ["arxiv:1711.05101"]),
        ("https://arxiv.org/pdf/1711.05101v2.pdf", ["arxiv:1711.05101"]),
        ("https://arxiv.org/pdf/1711.05101", ["arxiv:1711.05101"]),
        ("arxiv.org/abs/2007.12865 自监督推荐", ["arxiv:2007.12865"]),
        ("https://arxiv.org/abs/hep-th/9901001v1", ["arxiv:hep-th/9901001"]),
        ("有没有 2106.09685 这篇？", ["arxiv:2106.09685"]),
        ("https://github.com/Luolc/AdaBound", ["github:luolc/adabound"]),
        ("http://www.github.com/Luolc/AdaBound/", ["github:luolc/adabound"]),
        ("github.com/luolc/adabound.git", ["github:luolc/adabound"]),
        ("https://github.com/Luolc/AdaBound/blob/master/README.md", ["github:luolc/adabound"]),
        ("https://openreview.net/forum?id=ry_WPG-A-", ["openreview:ry_WPG-A-"]),
        ("https://openreview.net/pdf?id=ry_WPG-A-", ["openreview:ry_WPG-A-"]),
        ("http://www.example.com/post/", ["url:example.com/post"]),
        ("AdamW vs 1711.05101 vs https://arxiv.org/abs/1711.05101", ["arxiv:1711.05101"]),
        ("version 3.40 and 2019.1234, 10.5 GB", []),  # decimals are no arXiv ids
        ("Which paper fixes weight decay in Adam?", []),
        ("https://github.com/topics/transformers", ["url:github.com/topics/transformers"]),
        # a link pasted from a share carries the sharer's parameters, which say nothing of the page
        (
            "https://mp.weixin.qq.com/s?__biz=MzA3&mid=26&idx=1&sn=a1d2&chksm=871a&scene=21#wechat_redirect",
            ["url:mp.weixin.qq.com/s?__biz=MzA3&mid=26&idx=1&sn=a1d2"],
        ),
        ("https://mp.weixin.qq.com/s/t1Js479ZRDAw?scene=25&poc_token=HG1", ["url:mp.weixin.qq.com/s/t1Js479ZRDAw"]),
        ("https://zhuanlan.zhihu.com/p/144563199?utm_psn=17845", ["url:zhuanlan.zhihu.com/p/144563199"]),
    ],
)
def test_identifiers_in_a_question(text: str, keys: list[str]) -> None:
    assert [identifier.key for identifier in identifiers_in(text)] == keys


def test_labels_name_the_identifier_and_the_rest_is_left_to_search() -> None:
    (paper, code) = identifiers_in("LoRA arXiv:2106.09685v2 低秩适配, code at https://github.com/microsoft/LoRA")
    assert (paper.label, code.label) == ("arXiv:2106.09685", "github.com/microsoft/LoRA")
    assert without_identifiers("LoRA arXiv:2106.09685v2 低秩适配, code at https://github.com/microsoft/LoRA") == (
        "LoRA 低秩适配, code at"
    )


def _entry(entry_id: str, *urls: str, body: str = "") -> Entry:
    links = tuple(Link(url=url, role="primary" if n == 0 else "code") for n, url in enumerate(urls))
    source = SourceRef(file="notes.md", line_start=1, line_end=1, format="markdown")
    return Entry(id=entry_id, title=f"entry {entry_id}", body=body, links=links, source=source, lang="en")


def test_entries_are_found_by_any_of_their_identifiers() -> None:
    adamw = _entry("a", "https://arxiv.org/abs/1711.05101", "https://github.com/loshchil/AdamW-and-SGDW")
    qa = _entry("b", body="[1810.04805] BERT: Pre-training of Deep Bidirectional Transformers")
    blog = _entry("c", "https://www.example.com/post/")
    index = IdentifierIndex([adamw, qa, blog])

    assert index.find(identifiers_in("https://arxiv.org/pdf/1711.05101v3.pdf")) == [adamw]
    assert index.find(identifiers_in("https://github.com/LOSHCHIL/adamw-and-sgdw/")) == [adamw]
    assert index.find(identifiers_in("arXiv:1810.04805")) == [qa]
    assert index.find(identifiers_in("http://example.com/post")) == [blog]
    assert index.find(identifiers_in("2106.09685")) == []
    # the same article shared again, by someone else
    wechat = _entry("f", "https://mp.weixin.qq.com/s?__biz=MzA3&mid=26&idx=1&sn=a1d2&chksm=871a&scene=21#rd")
    shared = "https://mp.weixin.qq.com/s?__biz=MzA3&mid=26&idx=1&sn=a1d2&chksm=99ff&scene=126&pass_ticket=Zx"
    assert IdentifierIndex([wechat, blog]).find(identifiers_in(shared)) == [wechat]
    assert arxiv_id(adamw) == "1711.05101" and arxiv_id(qa) == "1810.04805" and arxiv_id(blog) is None
    # a note that cites a paper is not that paper: its arXiv id was shown as the note's (Longformer's on a
    # RecurrentGemma note); a Chinese headline's paper, linked by its title, is the headline's
    citing = _entry("d", "https://github.com/google/recurrentgemma", body="见 https://arxiv.org/abs/2004.05150")
    headline = Entry(
        id="e",
        title="二阶梯度优化新崛起",
        alt_titles=("Second Order Optimization Made Practical",),
        links=(
            Link(url="https://mp.weixin.qq.com/s/x", role="primary"),
            Link(url="https://arxiv.org/abs/2002.09018", text="Second Order Optimization Made Practical", role="extra"),
            Link(url="https://arxiv.org/abs/1412.6980", text="Adam", role="extra"),
        ),
        source=SourceRef(file="notes.md", line_start=1, line_end=1, format="markdown"),
        lang="zh-Hans",
    )
    assert arxiv_id(citing) is None and arxiv_id(headline) == "2002.09018"
    assert [i.kind for i in entry_identifiers(adamw)] == ["arxiv", "github"]
