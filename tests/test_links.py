"""Every entry links somewhere: its own page, or its place in the collection; never an invented URL."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import MakeKb
from gitrepo import Repo, bare_remote, line_of

from bot.chat import Answer, to_item
from bot.render import render_text
from knowledge.entry import Entry, Link, SourceRef
from knowledge.locations import Locator, remote_template
from knowledge.parse import parse_sources
from knowledge.settings import BUNDLED_SOURCES, Settings
from knowledge.source_spec import SourceSpec
from knowledge.sync import SourceSet
from knowledge.urls import without_tracking

PDF = "https://github.com/daiwk/collections/blob/master/pdfs/collections.pdf"

NOTES = """\
# 优化

- [Fixing Weight Decay Regularization in Adam](https://arxiv.org/abs/1711.05101) 提出 AdamW。

## 学习率综述

自适应学习率方法的一段笔记，没有链接。

# 自监督

- [Momentum Contrast for Unsupervised Visual Representation Learning](https://arxiv.org/abs/1911.05722) MoCo。
"""


@pytest.mark.parametrize(
    ("remote", "template"),
    [
        (
            "https://github.com/daiwk/collections.git",
            "https://github.com/daiwk/collections/blob/{commit}/{path}{plain}#L{line}",
        ),
        (
            "https://github.com/daiwk/collections",
            "https://github.com/daiwk/collections/blob/{commit}/{path}{plain}#L{line}",
        ),
        (
            "git@github.com:daiwk/collections.git",
            "https://github.com/daiwk/collections/blob/{commit}/{path}{plain}#L{line}",
        ),
        (
            "ssh://git@github.com/daiwk/collections.git",
            "https://github.com/daiwk/collections/blob/{commit}/{path}{plain}#L{line}",
        ),
        ("https://token:x-oauth@github.com/o/r.git", "https://github.com/o/r/blob/{commit}/{path}{plain}#L{line}"),
        (
            "https://gitlab.com/group/sub/notes.git",
            "https://gitlab.com/group/sub/notes/-/blob/{commit}/{path}{plain}#L{line}",
        ),
        (
            "git@gitlab.example.org:team/notes.git",
            "https://gitlab.example.org/team/notes/-/blob/{commit}/{path}{plain}#L{line}",
        ),
        ("https://gitee.com/o/notes.git", "https://gitee.com/o/notes/blob/{commit}/{path}#L{line}"),
        ("https://bitbucket.org/o/notes.git", None),
        ("https://github.com/only-owner", None),
        ("file:///srv/notes.git", None),
        ("/srv/notes", None),
        (None, None),
    ],
)
def test_blob_templates_come_from_github_gitlab_and_gitee_remotes(remote: str | None, template: str | None) -> None:
    assert remote_template(remote) == template


def located(sources: list[Path | SourceSpec], data_dir: Path) -> list[Entry]:
    """The sources' entries as an ingest stores them: parsed, then located."""
    source_set = SourceSet(sources, data_dir)
    roots = source_set.roots(source_set.specs)
    return Locator(roots).locate(parse_sources([root.path for root in roots]).entries)


def test_every_bundled_entry_links_somewhere_or_says_where_it_sits(tmp_path: Path) -> None:
    # A copy: in a clone of this project from GitHub, the bundled files would link to their blobs there.
    bundled = shutil.copytree(BUNDLED_SOURCES, tmp_path / "bundled")
    entries = located([bundled], tmp_path / "data")
    assert len(entries) > 500
    pdf_text = "001_2b8a6d15944fc521.txt"
    toc = {
        row.group(1): int(row.group(2))
        for row in re.finditer(
            r"^(\d+(?:\.\d+)*)\s*[^\t\n]*\t(\d+)$", (BUNDLED_SOURCES / pdf_text).read_text("utf-8"), re.M
        )
    }
    for entry in entries:
        if entry.source.file == pdf_text:
            # the PDF the text names, at the page its table of contents gives the entry's section
            assert entry.location is not None and entry.location.role == "location"
            number = entry.section_path[-1].split()[0]
            assert entry.location.url == f"{PDF}#page={toc[number]}"
            assert entry.location.text == f"§{entry.section_path[-1]}"
    # The markdown post's entries are in the PDF too: their place is the PDF's page of that section.
    post = [entry for entry in entries if entry.source.file.startswith("000_")]
    assert post and all(entry.location and entry.location.url.startswith(f"{PDF}#page=") for entry in post)
    nalu = next(entry for entry in post if entry.section_path[-1] == "NALU")
    assert nalu.location is not None and (nalu.location.text, nalu.location.url) == ("§3.39 NALU", f"{PDF}#page=15")
    # The Q&A post names no location of its own: entries without a link of their own say where they sit.
    unlinked = [entry for entry in entries if entry.main_link is None]
    assert {entry.source.file for entry in unlinked} == {"004_cf75ade830ab4aef.txt"}
    assert len(unlinked) == 3
    for entry in unlinked:
        assert entry.location is None
        assert entry.place == "004_cf75ade830ab4aef.txt › ICLR 2018 有什麼值得關注的亮點?"
    linked = len(entries) - len(unlinked)
    assert linked / len(entries) > 0.99


@pytest.fixture
def github_checkout(tmp_path: Path) -> tuple[Repo, str]:
    """A checkout whose `origin` is on GitHub (it pushes to a local bare repository instead), with one
    pushed commit of `posts/notes.md`; returns the repository and that commit."""
    repo = Repo(tmp_path / "checkout")
    repo.write("posts/notes.md", NOTES)
    repo.write("README.md", "# notes\n")
    pushed = repo.commit("the first notes")
    repo.git("remote", "add", "origin", "git@github.com:curator/notes.git")
    repo.git("config", "remote.origin.pushurl", str(bare_remote(tmp_path / "remote.git")))
    repo.git("push", "--quiet", "--set-upstream", "origin", "main")
    return repo, pushed


def test_a_github_checkout_links_each_entry_to_its_blob_and_line(
    github_checkout: tuple[Repo, str], tmp_path: Path
) -> None:
    repo, pushed = github_checkout
    # A later commit that does not touch the notes leaves their links at the commit that last changed them.
    repo.write("README.md", "# notes, read me\n")
    repo.commit("readme")
    repo.git("push", "--quiet")
    entries = located([repo.path / "posts"], tmp_path / "data")
    notes = repo.path / "posts" / "notes.md"
    adamw = next(entry for entry in entries if entry.title.startswith("Fixing Weight Decay"))
    line = line_of(notes, "Fixing Weight Decay")
    assert adamw.location is not None
    assert adamw.location.url == f"https://github.com/curator/notes/blob/{pushed}/posts/notes.md?plain=1#L{line}"
    assert adamw.location.text == "优化"
    assert adamw.main_link is not None and adamw.main_link.url == "https://arxiv.org/abs/1711.05101"
    plain = next(entry for entry in entries if entry.title == "学习率综述")
    assert plain.primary_link is None and plain.main_link == plain.location
    assert plain.location is not None and plain.location.url.endswith(f"#L{line_of(notes, '自适应学习率方法')}")
    assert plain.location.text == "优化 › 学习率综述"


def test_no_link_to_lines_that_are_not_on_the_remote(github_checkout: tuple[Repo, str], tmp_path: Path) -> None:
    repo, pushed = github_checkout
    repo.write("posts/local.md", "# 本地\n\n- [Only Committed Here](https://example.com/local) 未推送。\n")
    repo.commit("not pushed")
    notes = repo.write("posts/notes.md", NOTES.replace("提出 AdamW", "提出 AdamW（已改，未提交）"))
    entries = {entry.title: entry for entry in located([repo.path / "posts"], tmp_path / "data")}
    assert entries["Only Committed Here"].location is None  # its commit is not on the remote
    assert entries["Fixing Weight Decay Regularization in Adam"].location is None  # changed since its commit
    assert entries["Only Committed Here"].main_link is not None  # its own link remains
    assert entries["Only Committed Here"].place == "local.md › 本地"
    notes.write_text(NOTES, encoding="utf-8")
    entries = {entry.title: entry for entry in located([repo.path / "posts"], tmp_path / "data")}
    location = entries["Fixing Weight Decay Regularization in Adam"].location
    assert location is not None and f"/blob/{pushed}/posts/notes.md" in location.url


def test_configured_templates_win_and_need_every_value(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.md").write_text(NOTES, encoding="utf-8")
    (folder / "other.md").write_text("# 其他\n\n- [Another Paper Title](https://example.com/p) 摘要。\n", "utf-8")
    spec = SourceSpec(
        path=folder,
        url="https://notes.example.com/{file}#L{line}-L{end_line}",
        files={"other.*": "https://example.com/src/{commit}/{path}"},  # no commit: not a checkout
    )
    entries = {entry.title: entry for entry in located([spec], tmp_path / "data")}
    adamw = entries["Fixing Weight Decay Regularization in Adam"]
    line = line_of(folder / "notes.md", "Fixing Weight Decay")
    assert (
        adamw.location is not None
        and adamw.location.url == f"https://notes.example.com/notes.md#L{line}-L{adamw.source.line_end}"
    )
    other = entries["Another Paper Title"].location
    assert other is not None and other.url.startswith("https://notes.example.com/other.md#L3-L")


def test_locations_are_stored_and_moving_lines_embeds_nothing(
    github_checkout: tuple[Repo, str], make_kb: MakeKb, tmp_path: Path
) -> None:
    repo, pushed = github_checkout
    kb = make_kb([repo.path / "posts"], tmp_path / "data", settings_cls=Settings)
    first = kb.ingest().summary
    assert (first.embedded, first.added) == (3, 3)
    hit = kb.search("momentum contrast unsupervised visual representation").hits[0]
    assert hit.entry.title.startswith("Momentum Contrast")
    assert hit.entry.location is not None and hit.entry.location.url.startswith(
        f"https://github.com/curator/notes/blob/{pushed}/posts/notes.md?plain=1#L"
    )
    # New lines above every entry: each entry's lines and link change, not what is embedded for it.
    repo.write("posts/notes.md", "<!-- 目录 -->\n\n" + NOTES)
    moved = repo.commit("a comment on top")
    repo.git("push", "--quiet")
    again = kb.ingest().summary
    assert (again.embedded, again.updated, again.unchanged, again.added) == (0, 3, 0, 0)
    hit = kb.search("momentum contrast unsupervised visual representation").hits[0]
    line = line_of(repo.path / "posts" / "notes.md", "Momentum Contrast")
    assert hit.entry.location is not None
    assert hit.entry.location.url == f"https://github.com/curator/notes/blob/{moved}/posts/notes.md?plain=1#L{line}"


WECHAT_SHARED = (
    "https://mp.weixin.qq.com/s?__biz=MzA3MzI4MjgzMw==&mid=2650740395&idx=1&sn=a1d2f1d9b9d5&chksm=871ad2d4b06d"
    "&scene=21&pass_ticket=Ab%2Fcd#wechat_redirect"
)
XHS_SHARED = (
    "https://www.xiaohongshu.com/explore/683b343f0000000022006648?app_platform=ios&app_version=8.87"
    "&share_from_user_hidden=true&xsec_source=app_share&type=normal&xsec_token=CBjpclu-c=&author_share=1"
    "&xhsshare=WeixinSession&shareRedId=ODY2NUg4&apptime=1750064425&share_id=c4b8d3de"
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # a WeChat article needs its four ids, and its short form none; the share's parameters go
        (WECHAT_SHARED, "https://mp.weixin.qq.com/s?__biz=MzA3MzI4MjgzMw==&mid=2650740395&idx=1&sn=a1d2f1d9b9d5"),
        (
            "https://mp.weixin.qq.com/s/t1Js479ZRDAw1XzPdx_nQA?scene=25&poc_token=HG1#rd",
            "https://mp.weixin.qq.com/s/t1Js479ZRDAw1XzPdx_nQA",
        ),
        # elsewhere on WeChat only the share's names go (an album needs its id)
        (
            "https://mp.weixin.qq.com/mp/appmsgalbum?__biz=MzA3&action=getalbum&album_id=17&scene=173#wechat_redirect",
            "https://mp.weixin.qq.com/mp/appmsgalbum?__biz=MzA3&action=getalbum&album_id=17",
        ),
        # Xiaohongshu opens a note only with its xsec_token
        (
            XHS_SHARED,
            "https://www.xiaohongshu.com/explore/683b343f0000000022006648?xsec_source=app_share&type=normal"
            "&xsec_token=CBjpclu-c=",
        ),
        ("https://zhuanlan.zhihu.com/p/144563199?utm_id=0", "https://zhuanlan.zhihu.com/p/144563199"),
        (
            "https://www.zhihu.com/question/310/answer/595?hb_wx_block=0&utm_source=wechat_session&utm_oi=6325866",
            "https://www.zhihu.com/question/310/answer/595?hb_wx_block=0",
        ),
        (
            "https://www.bilibili.com/video/BV1rH4y1N7BW/?spm_id_from=333.788&vd_source=1ae2&p=3",
            "https://www.bilibili.com/video/BV1rH4y1N7BW/?p=3",
        ),
        ("https://baijiahao.baidu.com/s?id=1627&wfr=spider&for=pc", "https://baijiahao.baidu.com/s?id=1627"),
        # names that only some hosts use for tracking stay elsewhere; so do encodings and fragments
        ("https://example.com/search?for=pc&scene=2&key=v", "https://example.com/search?for=pc&scene=2&key=v"),
        ("https://example.com/a?q=a%20b&x=1+2&utm_source=x", "https://example.com/a?q=a%20b&x=1+2"),
        ("https://openreview.net/forum?id=abc#discussion", "https://openreview.net/forum?id=abc#discussion"),
        ("https://example.com/a#rd", "https://example.com/a#rd"),
        ("https://arxiv.org/abs/1711.05101", "https://arxiv.org/abs/1711.05101"),
        ("http://[::1/x?utm_a=1", "http://[::1/x?utm_a=1"),  # does not parse: as written
    ],
)
def test_links_are_shown_without_share_and_tracking_parameters(url: str, shown: str) -> None:
    assert without_tracking(url) == shown


def test_an_answer_links_to_the_article_without_the_sharers_parameters() -> None:
    entry = Entry(
        id="wechat",
        title="一文读懂 AdamW",
        links=(Link(url=WECHAT_SHARED, role="primary"), Link(url=XHS_SHARED, role="code")),
        lang="zh-Hans",
        source=SourceRef(file="notes.md", line_start=1, line_end=1, format="markdown"),
    )
    item = to_item(entry)
    assert item.url == "https://mp.weixin.qq.com/s?__biz=MzA3MzI4MjgzMw==&mid=2650740395&idx=1&sn=a1d2f1d9b9d5"
    assert item.code_url is not None and "shareRedId" not in item.code_url and "xsec_token=CBjpclu-c=" in item.code_url
    shown = render_text(Answer("a1", "AdamW", (item,)))
    assert item.url in shown and "pass_ticket" not in shown and "chksm" not in shown
