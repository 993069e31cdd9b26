"""No content line lost: every prose line, list item and table row of a source reaches an entry,
on the bundled sources and on a generated markdown collection whose papers repeat across files."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from knowledge.entry import Entry
from knowledge.parse import ParseResult, parse_file, parse_sources
from knowledge.parse.coverage import REQUIRED, Coverage, check, check_sources, classify, pieces
from knowledge.parse.markdown import parse_markdown
from knowledge.settings import BUNDLED_SOURCES

_SENTENCE = re.compile(r"(?<=[。！？；.!?;])\s*")


def _report(coverages: list[Coverage], label: str) -> Coverage:
    total = Coverage(label)
    for coverage in coverages:
        total.add(coverage)
        print(coverage.report())
    print(total.report())
    return total


def test_bundled_sources_lose_no_content_line() -> None:
    result = parse_sources([BUNDLED_SOURCES])
    coverages = check_sources([BUNDLED_SOURCES], result)
    assert [c.file for c in coverages] == sorted(path.name for path in BUNDLED_SOURCES.iterdir())
    total = _report(coverages, "bundled")
    kept, lines = total.figures()
    assert lines > 1000
    assert total.lost_required() == [], "\n".join(map(str, total.lost_required()))
    assert kept == lines
    assert total.figures(("code", "math")) == (total.total["code"] + total.total["math"],) * 2


# -- a generated collection with duplicates across and within files ------------------------------


def _sentences(entries: list[Entry]) -> list[str]:
    """Distinct sentences of the bundled bodies, to write prose that no other line repeats."""
    seen: dict[str, None] = {}
    for entry in entries:
        for paragraph in entry.body.split("\n\n"):
            if paragraph.lstrip().startswith(("```", "$$", "|", "-")) or "\t" in paragraph or "http" in paragraph:
                continue
            for sentence in _SENTENCE.split(paragraph):
                sentence = " ".join(sentence.split())
                if 12 <= len(sentence) <= 200 and not sentence.endswith((":", "：")):
                    seen[sentence] = None
    return list(seen)


def write_duplicated_collection(entries: list[Entry], folder: Path, papers: int = 240, files: int = 5) -> int:
    """Markdown notes where each paper is written in detail once (a paragraph, list items, a table)
    and mentioned in one line (a list item, a table row, a labelled link, a headline with the same
    URL) in another file or the same one, before or after the detailed copy. Returns the papers."""
    rng = random.Random(12)
    chosen = rng.sample([e for e in entries if e.lang != "zh-Hant"], papers)
    words = iter(_sentences(entries) * 3)
    notes: list[list[str]] = [[f"这是第 {i} 份笔记的开头，介绍这份合辑的来历。", ""] for i in range(files)]
    mentions: list[list[str]] = [[] for _ in range(files)]
    for number, entry in enumerate(chosen):
        title = entry.title.replace("[", "(").replace("]", ")")
        url = entry.primary_link.url if entry.primary_link else f"https://papers.example/{number}"
        home = number % files
        lines = notes[home]
        lines += [f"## 第 {number} 节", ""]
        if number % 7 == 0:
            lines += [f"原始论文: [{title}]({url})", ""]
        else:
            lines += [f"[{title}]({url})", ""]
        lines += [f"摘要：{next(words)}{next(words)}", ""]
        lines += [f"- {next(words)}", f"- **{next(words)}**", f"  - {next(words)}", ""]
        if number % 3 == 0:
            lines += ["| 方面 | 说明 |", "|---|---|", f"| 方法 | {next(words)} |", f"| 结果 | {next(words)} |", ""]
        if number % 4 == 0:
            lines += ["```python", f"model_{number} = build()  # 代码", "```", "", "$$", f"x_{number} = y^2", "$$", ""]
        if number % 3 == 1:
            lines += [f"![图 {number}](https://img.example/{number}.png)", ""]
        lines += [next(words), ""]
        # the one-line mention: elsewhere (often earlier in the order, so it is the copy ranked first)
        other = (home + 1 + number % (files - 1)) % files if number % 6 else home
        note = next(words)
        kind = number % 4
        if kind == 0:
            mentions[other].append(f"- [{title}]({url}) {note}")
        elif kind == 1:
            mentions[other].append(f"- [{title}]({url})\n\n  {note}\n")
        elif kind == 2:
            mentions[other].append(f"| [{title}]({url}) | {note} |")
        else:
            mentions[other].append(f"- [{note}]({url})")  # another headline for the same URL
    for index in range(files):
        rows = [m for m in mentions[index] if m.startswith("|")]
        items = [m for m in mentions[index] if not m.startswith("|")]
        head = ["## 提到的论文", "", *items, ""]
        if rows:
            head += ["| 论文 | 一句话 |", "|---|---|", *rows, ""]
        text = "\n".join(notes[index][:2] + head + notes[index][2:])
        (folder / f"notes-{index:02d}.md").write_text(text + "\n", encoding="utf-8")
    return len(chosen)


@pytest.fixture(scope="module")
def duplicated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ParseResult]:
    folder = tmp_path_factory.mktemp("duplicated")
    papers = write_duplicated_collection(parse_sources([BUNDLED_SOURCES]).entries, folder)
    result = parse_sources([folder])
    assert papers >= 200
    return folder, result


def test_a_generated_collection_with_duplicates_loses_no_content_line(duplicated: tuple[Path, ParseResult]) -> None:
    folder, result = duplicated
    total = _report(check_sources([folder], result), "generated")
    assert result.merged >= 200  # every paper is merged with its mention
    kept, lines = total.figures()
    assert lines > 1900
    assert total.lost_required() == [], "\n".join(map(str, total.lost_required()[:20]))
    assert kept == lines


def test_the_generated_notes_read_in_pieces_as_they_read_whole(duplicated: tuple[Path, ParseResult]) -> None:
    folder, _ = duplicated
    for path in [*sorted(folder.iterdir()), BUNDLED_SOURCES / "000_7e8dfbadf3db4a44.txt"]:
        text = path.read_text(encoding="utf-8")
        assert parse_markdown(text, chunk_lines=1) == parse_markdown(text, split=False), path.name


def _parse_files(folder: Path, files: dict[str, str]) -> ParseResult:
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return parse_sources([folder])


MENTION = "## 其他\n\n- [Megatron-LM: Training Multi-Billion Parameter Language Models](https://arxiv.org/abs/1909.08053) 大模型\n"
DETAILED = (
    "## 并行\n\n[Megatron-LM: Training Multi-Billion Parameter Language Models](https://arxiv.org/abs/1909.08053v2)\n\n"
    "摘要：张量并行把每层的矩阵乘法切到多张卡上。\n\n- 列切分 MLP 的第一个矩阵\n- 行切分第二个矩阵，只需一次 all-reduce\n"
)


def test_a_merged_entry_keeps_every_copy_and_the_richer_copy_leads(tmp_path: Path) -> None:
    (first,) = parse_file(MENTION, "a.md")[1]
    (second,) = parse_file(DETAILED, "b.md")[1]
    (merged,) = _parse_files(tmp_path / "one", {"a.md": MENTION, "b.md": DETAILED}).entries
    assert merged.id == first.id  # the id stays with the copy ranked first (format, then order)
    assert merged.source == first.source and merged.also_in == (second.source,)
    assert merged.summary == "张量并行把每层的矩阵乘法切到多张卡上。"  # the richer copy's
    assert merged.section_path == ("并行",)
    for text in ("大模型", "列切分 MLP", "只需一次 all-reduce"):
        assert text in merged.body and text in merged.search_text()
    assert [link.role for link in merged.links] == ["primary"]  # the same paper: one link


def test_text_in_several_copies_is_kept_once_and_links_are_merged(tmp_path: Path) -> None:
    other = DETAILED.replace("## 并行", "## 复制").replace("arxiv.org/abs/1909.08053v2", "arxiv.org/abs/1909.08053")
    other += "\n<https://github.com/NVIDIA/Megatron-LM>\n"
    (twice,) = _parse_files(tmp_path / "two", {"a.md": DETAILED, "b.md": other}).entries
    assert twice.body.count("张量并行") == 1 and twice.alt_titles == ()
    assert [(link.role, link.url) for link in twice.links] == [
        ("primary", "https://arxiv.org/abs/1909.08053v2"),
        ("code", "https://github.com/NVIDIA/Megatron-LM"),
    ]


# -- the line classifier itself ------------------------------------------------------------------


def test_lines_are_classified_by_kind() -> None:
    text = "\n".join(
        [
            "---",
            "title: x",
            "---",
            "目录",
            "<!-- TOC -->",
            "- [a](#a)",
            "<!-- /TOC -->",
            "## Heading",
            "Prose line.",
            "- item",
            "| a | b |",
            "|---|---|",
            "![img](https://x.example/i.png)",
            "```",
            "code",
            "```",
            "$$",
            "x^2",
            "$$",
            "====here",
            "",
        ]
    )
    kinds = [line.kind for line in classify(text, "markdown")]
    assert kinds == [
        *["front_matter"] * 3,
        "navigation",
        "comment",
        "navigation",
        "comment",
        "heading",
        "prose",
        "list",
        "table",
        "rule",
        "image",
        *["code"] * 3,
        *["math"] * 3,
        "noise",
        "blank",
    ]
    assert set(REQUIRED) == {"prose", "list", "table"}


def test_a_lost_line_is_reported() -> None:
    text = "## S\n\n[Paper](https://p.example/x) kept note\n\nA line no entry has.\n"
    _, entries = parse_file(text, "n.md")
    dropped = [e.model_copy(update={"body": e.body.replace("A line no entry has.", "")}) for e in entries]
    coverage = check(text, "n.md", "markdown", dropped)
    assert coverage.figures() == (1, 2)
    assert [(line.number, line.kind) for line in coverage.lost] == [(5, "prose")]
    assert check(text, "n.md", "markdown", entries).figures() == (2, 2)


def test_pieces_split_links_cells_and_labels() -> None:
    assert pieces("原始论文: [A Paper](https://arxiv.org/abs/1) note") == [
        "apaper",
        "httpsarxivorgabs1",
        "原始论文",
        "note",
    ]
    assert pieces("| [R](https://r.example) | cell two |") == ["r", "httpsrexample", "celltwo"]
    assert pieces("<b>bold</b> &amp; text") == ["bold", "text"]
