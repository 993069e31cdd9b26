"""Ingest loses nothing without evidence: sources that cannot be read keep their entries, and a run that
would empty the index refuses. Each case runs `python -m knowledge ingest` as an operator would."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MakeKb

from knowledge.cli import main
from knowledge.entry import Entry, SourceRef
from knowledge.parse import FileReport, ParseResult, Skipped, parse_sources
from knowledge.settings import Settings

NOTES = """\
# 优化

- [Fixing Weight Decay Regularization in Adam](https://arxiv.org/abs/1711.05101) 指出 Adam 中 L2 正则与权重衰减不等价，提出 AdamW。
- [Adam: A Method for Stochastic Optimization](https://arxiv.org/abs/1412.6980) 自适应学习率的一阶优化方法。
- [Lookahead Optimizer: k steps forward, 1 step back](https://arxiv.org/abs/1907.08610) 快慢两套权重。
"""
MORE = """\
# 自监督

- [Momentum Contrast for Unsupervised Visual Representation Learning](https://arxiv.org/abs/1911.05722) MoCo。
- [A Simple Framework for Contrastive Learning of Visual Representations](https://arxiv.org/abs/2002.05709) SimCLR。
- [Bootstrap Your Own Latent](https://arxiv.org/abs/2006.07733) BYOL：没有负样本的自监督学习。
- [Barlow Twins: Self-Supervised Learning via Redundancy Reduction](https://arxiv.org/abs/2103.03230) 冗余消减。
- [Emerging Properties in Self-Supervised Vision Transformers](https://arxiv.org/abs/2104.14294) DINO。
- [Masked Autoencoders Are Scalable Vision Learners](https://arxiv.org/abs/2111.06377) MAE。
- [Exploring Simple Siamese Representation Learning](https://arxiv.org/abs/2011.10566) SimSiam。
"""
ALL = 10
ASK = {
    "notes.md": ("Which paper fixes weight decay in Adam?", "1711.05101"),
    "more.md": ("momentum contrast unsupervised visual representation", "1911.05722"),
}


@pytest.fixture
def collection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Two files (3 + 7 entries) ingested once; the environment points `python -m knowledge` at them."""
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.md").write_text(NOTES, encoding="utf-8")
    (folder / "more.md").write_text(MORE, encoding="utf-8")
    for key in [key for key in os.environ if key.startswith("KB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("KB_CONFIG_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("KB_SOURCES", str(folder))
    monkeypatch.setenv("KB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KB_EMBED_THREADS", "2")
    assert main(["ingest"]) == 0
    yield folder


def answerable(make_kb: MakeKb, data: Path, files: tuple[str, ...] = ("notes.md", "more.md")) -> int:
    """How many entries the index holds, after checking that each file's known entry is still found."""
    kb = make_kb([data.parent / "notes"], data, settings_cls=Settings)
    try:
        for file in files:
            question, url = ASK[file]
            hits = kb.search(question).hits
            assert hits and url in (hits[0].entry.primary_link.url if hits[0].entry.primary_link else ""), file
        return kb.stats().entries
    finally:
        kb.close()


def test_a_missing_source_is_a_configuration_error(
    collection: Path,
    tmp_path: Path,
    make_kb: MakeKb,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KB_SOURCES", str(tmp_path / "nonexistent"))
    assert main(["ingest"]) == 2
    assert capsys.readouterr().err.strip().endswith(f"KB_SOURCES: no such file or folder: {tmp_path / 'nonexistent'}")
    monkeypatch.setenv("KB_SOURCES", str(collection))
    assert main(["ingest", "--source", str(tmp_path / "gone")]) == 2
    assert "--source: no such file or folder" in capsys.readouterr().err
    assert answerable(make_kb, tmp_path / "data") == ALL


def test_a_source_folder_that_vanished_keeps_its_entries(
    collection: Path, tmp_path: Path, make_kb: MakeKb, capsys: pytest.CaptureFixture[str]
) -> None:
    """Settings are checked at start; a folder may still vanish before the ingest reads it."""
    kb = make_kb([collection], tmp_path / "data", settings_cls=Settings)
    report = kb.ingest([tmp_path / "vanished"])
    assert not report.complete and report.parsed.unlisted == [str(tmp_path / "vanished")]
    assert (report.summary.removed, report.summary.kept, report.summary.entries) == (0, ALL, ALL)
    kb.close()
    assert answerable(make_kb, tmp_path / "data") == ALL


def test_an_empty_folder_is_refused_by_the_mass_removal_guard(
    collection: Path,
    tmp_path: Path,
    make_kb: MakeKb,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("KB_SOURCES", str(empty))
    capsys.readouterr()
    assert main(["ingest"]) == 1
    err = capsys.readouterr().err
    assert "would remove 10 of the 10 entries in the index (100%)" in err and "--allow-mass-removal" in err
    assert answerable(make_kb, tmp_path / "data") == ALL
    # told so, it goes ahead
    assert main(["ingest", "--allow-mass-removal"]) == 0
    kb = make_kb([empty], tmp_path / "data", settings_cls=Settings)
    assert kb.stats().entries == 0
    kb.close()


def test_a_file_made_invalid_keeps_its_entries_and_fails_the_run(
    collection: Path, tmp_path: Path, make_kb: MakeKb, capsys: pytest.CaptureFixture[str]
) -> None:
    with (collection / "more.md").open("ab") as file:
        file.write(b"\xff")  # one invalid byte
    capsys.readouterr()
    assert main(["ingest"]) == 1
    captured = capsys.readouterr()
    assert "skipped more.md: not valid UTF-8" in captured.err
    assert "7 entries of theirs were kept as they were" in captured.err
    assert "removed 0" in captured.out
    assert answerable(make_kb, tmp_path / "data") == ALL


def test_a_file_that_cannot_be_read_keeps_its_entries(
    collection: Path, tmp_path: Path, make_kb: MakeKb, capsys: pytest.CaptureFixture[str]
) -> None:
    """A FIFO in the file's place (the test runs as root, so permissions cannot make a file unreadable):
    it is refused at once instead of blocking the ingest, and its entries stay."""
    (collection / "more.md").unlink()
    os.mkfifo(collection / "more.md")
    capsys.readouterr()
    assert main(["ingest", "--json"]) == 1
    captured = capsys.readouterr()
    assert "skipped more.md: not a regular file" in captured.err
    assert '"kept": 7' in captured.out and '"removed": 0' in captured.out
    assert answerable(make_kb, tmp_path / "data") == ALL


def test_a_link_to_a_device_or_a_pipe_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "zero.md").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "pipe.md")  # in the folder: opened without blocking, then refused
    (tmp_path / "ok.md").write_text(NOTES, encoding="utf-8")
    result = parse_sources([tmp_path])
    assert sorted((skip.file, skip.reason) for skip in result.skipped) == [
        ("pipe.md", "not a regular file"),
        ("zero.md", "a link to outside the source folder"),
    ]
    assert len(result.entries) == 3


def test_removing_more_than_the_share_needs_the_flag(
    collection: Path, tmp_path: Path, make_kb: MakeKb, capsys: pytest.CaptureFixture[str]
) -> None:
    (collection / "more.md").unlink()  # 7 of 10 entries: deleted while its folder was listed
    capsys.readouterr()
    assert main(["ingest"]) == 1
    assert "would remove 7 of the 10 entries" in capsys.readouterr().err
    assert answerable(make_kb, tmp_path / "data") == ALL
    assert main(["ingest", "--allow-mass-removal"]) == 0
    assert answerable(make_kb, tmp_path / "data", files=("notes.md",)) == 3


def test_entries_gone_from_a_file_that_was_read_are_removed(
    collection: Path, tmp_path: Path, make_kb: MakeKb, capsys: pytest.CaptureFixture[str]
) -> None:
    """Positive evidence: the file was read and no longer has the entry (1 of 10 is within the share)."""
    text = (collection / "more.md").read_text(encoding="utf-8")
    (collection / "more.md").write_text("\n".join(line for line in text.splitlines() if "SimSiam" not in line) + "\n")
    capsys.readouterr()
    assert main(["ingest", "--json"]) == 0
    assert '"removed": 1' in capsys.readouterr().out
    assert answerable(make_kb, tmp_path / "data") == ALL - 1


def _entry(file: str) -> Entry:
    source = SourceRef(file=file, line_start=1, line_end=1, format="markdown")
    return Entry(id=file, title=file, source=source, lang="en")


@pytest.mark.parametrize(
    ("result", "removable"),
    [
        # read: entries it no longer has are gone
        (ParseResult([], files=[FileReport("a.md", "markdown", 0, 0, {})]), {"a.md": True, "b.md": True}),
        # skipped: unknown
        (ParseResult([], skipped=[Skipped("a.md", "empty file")]), {"a.md": False, "b.md": True}),
        # a folder could not be listed: a file that was not read may still exist
        (
            ParseResult([], files=[FileReport("a.md", "markdown", 0, 0, {})], unlisted=["notes/private"]),
            {"a.md": True, "b.md": False},
        ),
        # two sources hold a notes.md, one read and one not: the unread one's entries are not known gone
        (
            ParseResult([], files=[FileReport("notes.md", "markdown", 0, 0, {})], skipped=[Skipped("notes.md", "x")]),
            {"notes.md": False, "b.md": True},
        ),
    ],
)
def test_what_counts_as_evidence_of_removal(result: ParseResult, removable: dict[str, bool]) -> None:
    assert {file: result.may_remove(_entry(file).source.file) for file in removable} == removable


def test_two_sources_with_an_entry_alike_are_both_indexed(make_kb: MakeKb, tmp_path: Path) -> None:
    """The same file name, heading and short title in two sources gave two entries one id, and every ingest,
    and the bot's start-up, failed on it; a source listed twice did the same."""
    for team, url in (("team-a", "https://a.example/bert"), ("team-b", "https://b.example/bert")):
        (tmp_path / team).mkdir()
        (tmp_path / team / "notes.md").write_text(f"# NLP\n\n- [BERT]({url}) 预训练\n", encoding="utf-8")
    kb = make_kb([tmp_path / "team-a", tmp_path / "team-b", tmp_path / "team-a"], tmp_path / "data")
    report = kb.ingest()
    assert report.summary.entries == 2
    hits = kb.search("BERT", 5).hits
    assert {link.url for hit in hits for link in hit.entry.links} == {
        "https://a.example/bert",
        "https://b.example/bert",
    }
