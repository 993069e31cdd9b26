"""The knowledge core's sections, neighbours and language groups: the section tree with its counts and its
matching in either language (tables), "more like this" by stored vectors on both vector paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MakeKb

from knowledge import Entry, KnowledgeBase, SourceRef, Where
from knowledge.browse import SectionTree, section_id
from knowledge.parse import parse_sources
from knowledge.settings import BUNDLED_SOURCES


def _entry(number: int, *section: str, lang: str = "zh-Hans") -> Entry:
    source = SourceRef(file="notes.md", line_start=number, line_end=number, format="markdown")
    return Entry(id=f"e{number:02d}", title=f"entry {number}", section_path=section, source=source, lang=lang)  # type: ignore[arg-type]


TREE = SectionTree(
    [
        _entry(5, "10 图神经网络", "10.2 GNN 综述"),
        _entry(1, "9 推荐系统"),
        _entry(2, "9 推荐系统", "9.10 召回"),
        _entry(3, "9 推荐系统", "9.2 排序"),
        _entry(4, "9 推荐系统", "9.2 排序"),
        _entry(6, "附录"),
        _entry(7),
    ]
)


def test_sections_are_in_the_collection_s_order_with_their_counts() -> None:
    assert [(s.name, s.count, s.direct) for s in TREE.roots] == [
        ("9 推荐系统", 4, 1),
        ("10 图神经网络", 1, 0),
        ("附录", 1, 1),
    ]
    recommendation = TREE.roots[0]
    assert [(s.name, s.count) for s in recommendation.children] == [("9.2 排序", 2), ("9.10 召回", 1)]
    assert TREE.total == 7 and len(TREE) == 6
    assert [e.id for e in TREE.entries_in(("9 推荐系统",))] == ["e01"]
    assert [e.id for e in TREE.entries_in(())] == ["e07"]  # in no section
    assert TREE.by_id(section_id(("9 推荐系统", "9.2 排序"))) is recommendation.children[0]


@pytest.mark.parametrize(
    ("typed", "keys"),
    [
        ("推荐", ["9 推荐系统"]),
        ("推薦", ["9 推荐系统"]),  # Traditional
        ("recommend", ["9 推荐系统"]),  # through the glossary
        ("Recommendation", ["9 推荐系统"]),
        ("9", ["9 推荐系统"]),  # the curator's number, not 19 nor 9.2
        ("9.2", ["9 推荐系统 / 9.2 排序"]),
        ("9 推荐系统 / 9.10 召回", ["9 推荐系统 / 9.10 召回"]),
        ("召回", ["9 推荐系统 / 9.10 召回"]),
        ("graph", ["10 图神经网络", "10 图神经网络 / 10.2 GNN 综述"]),
        ("gnn", ["10 图神经网络", "10 图神经网络 / 10.2 GNN 综述"]),
        ("", ["9 推荐系统", "10 图神经网络", "附录"]),
        ("astronomy", []),
    ],
)
def test_a_section_is_named_in_either_language(typed: str, keys: list[str]) -> None:
    assert [section.key for section in TREE.find(typed)] == keys
    resolved = TREE.resolve(typed)
    assert (resolved.key if resolved else None) == (keys[0] if keys and typed else None)


def test_find_returns_at_most_the_limit_and_a_section_id_resolves() -> None:
    tree = SectionTree(parse_sources([BUNDLED_SOURCES]).entries)
    assert len(tree.find("", 25)) == 25 and len(tree.find("a", 25)) == 25
    deep = max((s for s in tree.find("", 400)), key=lambda s: len(s.key))
    assert tree.resolve(deep.id) is deep


def test_a_language_group_lets_either_chinese_script_through() -> None:
    simplified, traditional, english = _entry(1, lang="zh-Hans"), _entry(2, lang="zh-Hant"), _entry(3, lang="en")
    assert [Where(lang="zh").allows(e) for e in (simplified, traditional, english)] == [True, True, False]
    assert [Where(lang="zh-Hant").allows(e) for e in (simplified, traditional, english)] == [False, True, False]
    assert Where(lang="zh").langs == ("zh-Hans", "zh-Hant") and Where().langs == ()


@pytest.mark.parametrize("memory_vectors", [20_000, 0], ids=["in-memory", "chroma"])
def test_similar_uses_the_stored_vector_and_never_returns_the_entry(
    make_kb: MakeKb, small_notes: Path, tmp_path: Path, memory_vectors: int
) -> None:
    kb: KnowledgeBase = make_kb([small_notes], tmp_path, memory_vectors=memory_vectors)
    kb.ingest()
    assert (kb.index.snapshot.vectors is None) == (memory_vectors == 0)
    calls: list[object] = []
    original = kb.embedder.embed_queries
    kb.embedder.embed_queries = lambda texts: calls.append(texts) or original(texts)  # type: ignore[method-assign]
    try:
        moco = next(e for e in kb.index.snapshot.entries if e.title.startswith("Momentum Contrast"))
        near = kb.similar(moco.id, 3)
        chinese = kb.similar(moco.id, 9, lang="zh-Hant")
        in_section = kb.similar(moco.id, 9, section=("深度学习",))
    finally:
        kb.embedder.embed_queries = original  # type: ignore[method-assign]
    assert calls == []  # nothing was embedded
    assert near is not None and len(near) == 3 and moco.id not in {n.entry.id for n in near}
    assert near[0].entry.title.startswith("A Simple Framework for Contrastive Learning")  # SimCLR, its neighbour
    assert [n.score for n in near] == sorted((n.score for n in near), reverse=True)
    assert chinese is not None and {n.entry.lang for n in chinese} == {"zh-Hant"}
    assert in_section is not None and len(in_section) == 3  # the four of 深度学习 but MoCo
    assert all(n.entry.section_path[0] == "深度学习" for n in in_section)
    assert kb.similar("no-such-entry") is None
