"""Every bundled source parses, with the counts and spot checks the collection must meet;
bad files are reported and skipped without losing the others; fuzzed input never crashes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knowledge.cli import main, run_parse
from knowledge.normalize import title_key, to_simplified
from knowledge.parse import ParseResult, parse_file, parse_sources
from knowledge.parse.summary import is_item_fragment
from knowledge.settings import BUNDLED_SOURCES, Settings, load_settings
from knowledge.sync import SourceSync

_URL = re.compile(r"https?://")


@pytest.fixture(scope="module")
def bundled() -> ParseResult:
    return parse_sources([BUNDLED_SOURCES])


def test_bundled_counts(bundled: ParseResult) -> None:
    assert [report.format for report in bundled.files] == ["markdown", "pdf_text", "qa"]
    assert 550 <= len(bundled.entries) <= 600
    assert bundled.merged >= 7  # 000 repeats about 7 entries of 001, and 001 repeats itself
    assert bundled.skipped == []
    langs = bundled.summary()["langs"]
    assert isinstance(langs, dict)
    assert langs["zh-Hans"] > 0.75 * len(bundled.entries)
    assert langs["en"] > 0.05 * len(bundled.entries)
    assert 1 <= langs["zh-Hant"] <= 0.03 * len(bundled.entries)
    assert len({entry.id for entry in bundled.entries}) == len(bundled.entries)


def test_every_entry_has_a_title_and_no_title_is_navigation(bundled: ParseResult) -> None:
    toc = re.compile(r"^\d+(\.\d+)*\s*\S.*\t\d+$")
    for entry in bundled.entries:
        assert entry.title.strip()
        assert not toc.match(entry.title)
        assert entry.title not in {"目录", "Contents", "layout: post"}
        assert "====here" not in entry.title
        assert not entry.title.startswith(("推薦閱讀", "推荐阅读", "※", "---", "下载本文"))


def test_entries_carry_the_urls_of_their_source_lines(bundled: ParseResult) -> None:
    lines = {path.name: path.read_text(encoding="utf-8").split("\n") for path in BUNDLED_SOURCES.iterdir()}
    had_url = [
        entry
        for entry in bundled.entries
        if any(
            _URL.search(line) for line in lines[entry.source.file][entry.source.line_start - 1 : entry.source.line_end]
        )
    ]
    carried = [entry for entry in had_url if entry.links]
    assert len(had_url) > 100
    assert len(carried) >= 0.95 * len(had_url)


def _find(result: ParseResult, text: str) -> list[str]:
    key = title_key(text)
    return [e.id for e in result.entries if key in {title_key(t) for t in (e.title, *e.alt_titles)}]


def test_spot_checks(bundled: ParseResult) -> None:
    by_id = {entry.id: entry for entry in bundled.entries}
    (adamw,) = _find(bundled, "Fixing Weight Decay Regularization in Adam")
    assert any("1711.05101" in link.url for link in by_id[adamw].links)

    nll = [e for e in bundled.entries if "3.24 cross-entropy vs nllloss" in e.section_path]
    assert nll and any("CrossEntropyLoss 就是把" in e.search_text() for e in nll)

    (semi,) = _find(bundled, "10亿照片训练，Facebook半弱监督训练方法刷新ResNet-50 ImageNet基准测试")
    entry = by_id[semi]
    assert entry.source.format == "markdown"  # markdown links win over PDF text
    urls = {link.url for link in entry.links}
    assert "https://github.com/facebookresearch/semi-supervised-ImageNet1K-models" in urls
    assert "https://ai.facebook.com/blog/billion-scale-semi-supervised-learning" in urls
    assert any(ref.format == "pdf_text" for ref in entry.also_in)

    (shampoo,) = _find(bundled, "Second Order Optimization Made Practical")
    assert by_id[shampoo].title.startswith("二阶梯度优化新崛起")
    assert by_id[shampoo].summary.startswith("目前")


def test_duplicates_merge_across_sources_with_markdown_first(bundled: ParseResult) -> None:
    for title in ("Measuring Arithmetic Extrapolation Performance", "On Empirical Comparisons of Optimizers"):
        ids = [e for e in bundled.entries if title_key(title) in (title_key(e.title) or "")]
        assert len(ids) == 1
        assert ids[0].source.format == "markdown"
        assert [ref.format for ref in ids[0].also_in] == ["pdf_text"]


def test_summaries_are_short(bundled: ParseResult) -> None:
    assert all(len(entry.summary) <= 400 for entry in bundled.entries)
    assert sum(1 for entry in bundled.entries if entry.summary) > 120


def test_summaries_are_summaries(bundled: ParseResult) -> None:
    for entry in bundled.entries:
        assert not is_item_fragment(entry.summary), entry.title  # "2. MASS: 预训练"
        assert "<http" not in entry.summary and "](" not in entry.summary, entry.title
        assert not re.search("提取码|密码", entry.summary), entry.title


def test_paper_title_under_a_heading_and_its_url_titles_the_entry(bundled: ParseResult) -> None:
    # "3.40 权重无关", its URL, "Weight Agnostic Neural Networks", "探索权重无关神经网络"
    (wann,) = [e for e in bundled.entries if "3.40 权重无关" in e.section_path]
    assert wann.title == "Weight Agnostic Neural Networks"
    assert wann.alt_titles == ("权重无关",)
    assert wann.summary == "探索权重无关神经网络"
    assert [link.url for link in wann.links] == ["https://weightagnostic.github.io/"]
    (tadam,) = [e for e in bundled.entries if e.section_path[-1:] == ("13.5 TADAM",) and e.links]
    assert tadam.title.startswith("TADAM: Task dependent") and tadam.alt_titles == ("TADAM",)


# -- bad input -------------------------------------------------------------------------------


def _parse_as_nobody(folder: Path) -> dict[str, object]:
    """Root reads any file, so the parse runs in a forked child that has dropped to `nobody`."""
    # load everything lazily imported (codecs, the converter) while files under /root are still readable
    to_simplified("預熱")
    parse_sources([folder / "ok.md"])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.setgid(65534)
            os.setuid(65534)
            result = parse_sources([folder])
            payload = {"skipped": [vars(s) for s in result.skipped], "titles": [e.title for e in result.entries]}
            os.write(write, json.dumps(payload).encode())
        except BaseException as error:  # noqa: BLE001 - reported to the parent
            os.write(write, json.dumps({"error": repr(error)}).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return dict(json.loads(data))


def test_unreadable_file_is_skipped() -> None:
    folder = Path(tempfile.mkdtemp(prefix="kb-perm-"))
    try:
        folder.chmod(0o755)
        (folder / "ok.md").write_text("# T\n\n[A paper](https://a.example/p)\n", encoding="utf-8")
        (folder / "ok.md").chmod(0o644)
        locked = folder / "locked.md"
        locked.write_text("# x\n", encoding="utf-8")
        locked.chmod(0)
        if os.geteuid() == 0:
            got = _parse_as_nobody(folder)
        else:
            result = parse_sources([folder])
            got = {"skipped": [vars(s) for s in result.skipped], "titles": [e.title for e in result.entries]}
        assert got == {"skipped": [{"file": "locked.md", "reason": "permission denied"}], "titles": ["A paper"]}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_bad_files_are_reported_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text("# Notes\n\n[Good paper](https://good.example/paper)\n", encoding="utf-8")
    (tmp_path / "binary.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR" * 10)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (tmp_path / "empty.md").write_text("  \n\n", encoding="utf-8")
    (tmp_path / "huge.md").write_text("# Huge\n\n" + "x" * 1_100_000 + "\n", encoding="utf-8")
    (tmp_path / "ignored.pdf").write_bytes(b"%PDF-1.4")
    # a name from an archive made on Chinese Windows (GBK bytes): reading it would fail later, at its link
    (tmp_path / os.fsdecode("\u6d4b\u8bd5".encode("gbk") + b".md")).write_text(
        "# x\n\n- [X](https://x.example)\n", "utf-8"
    )
    outside = tmp_path.parent / f"{tmp_path.name}-outside.md"
    outside.write_text("# Secret\n\n- [Server secret](https://secret.example)\n", encoding="utf-8")
    (tmp_path / "linked.md").symlink_to(outside)  # out of the source folder: never read
    (tmp_path / "same.md").symlink_to("good.md")  # inside it: read
    (tmp_path / ".#good.md").symlink_to("curator@host.1234")  # an Emacs lock: hidden files are not notes
    (tmp_path / "._good.md").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS metadata
    (tmp_path / ".obsidian").mkdir()
    (tmp_path / ".obsidian" / "workspace.md").write_text("# not notes\n\n- [X](https://x.example)\n", "utf-8")
    nested = tmp_path / "sub" / "deeper"
    nested.mkdir(parents=True)
    (nested / "more.markdown").write_text("## Deep\n\n- [Nested paper](https://nested.example/p) why\n", "utf-8")
    result = parse_sources([tmp_path])
    reasons = {skip.file: skip.reason for skip in result.skipped}
    assert reasons == {
        "binary.md": "binary file (contains NUL bytes)",
        "latin1.txt": "not valid UTF-8 (byte 3)",
        "empty.md": "empty file",
        "huge.md": "line 3 is 1,100,000 characters long (limit 100,000)",
        "????.md": "file name is not valid UTF-8",
        "linked.md": "a link to outside the source folder",
    }
    assert sorted(e.title for e in result.entries) == ["Good paper", "Nested paper"]
    assert {e.source.file for e in result.entries} == {"good.md", "sub/deeper/more.markdown"}


def test_missing_source_is_reported(tmp_path: Path) -> None:
    result = parse_sources([tmp_path / "nope.md"])
    assert [(s.file, s.reason) for s in result.skipped] == [("nope.md", "does not exist")]


# -- properties -----------------------------------------------------------------------------

SAMPLES = [path.read_text(encoding="utf-8") for path in sorted(BUNDLED_SOURCES.iterdir())]
FRAGMENTS = st.sampled_from(
    [
        "# ",
        "## 标题\n",
        "[t](https://x.example/a)",
        "[t](#)",
        "<https://a.example>",
        "```\n",
        "$$\n",
        "1.1 ",
        "\t",
        "摘要：",
        "- ",
        "|a|b|\n|-|-|\n",
        "---\n",
        "<!-- TOC -->",
        "\n\n",
        ":",
        "※",
        "\ud800",
        "\u200b",
        "&nbsp;",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=400))
def test_arbitrary_text_never_crashes(text: str) -> None:
    for name in ("a.md", "b.txt"):
        fmt, entries = parse_file(text, name)
        assert fmt in ("markdown", "pdf_text", "qa")
        assert all(entry.title for entry in entries)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sample=st.sampled_from(range(len(SAMPLES))),
    cuts=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 200), FRAGMENTS), max_size=6),
)
def test_mutated_sources_never_crash(sample: int, cuts: list[tuple[float, int, str]]) -> None:
    text = SAMPLES[sample][:20_000] if sample == 1 else SAMPLES[sample]
    for where, drop, fragment in cuts:
        at = int(where * len(text))
        text = text[:at] + fragment + text[at + drop :]
    _, entries = parse_file(text, "mutated.txt")
    assert all(entry.title for entry in entries)


@settings(max_examples=40, deadline=None)
@given(filler=st.lists(st.sampled_from(["随便一段说明文字。", "Some unrelated prose.", "```\ncode\n```"]), max_size=4))
def test_ids_do_not_change_when_unrelated_lines_are_added(filler: list[str]) -> None:
    base = SAMPLES[0]
    marker = "## CV"
    insert = "\n\n".join(filler)
    edited = base.replace(marker, f"{insert}\n\n{marker}" if insert else marker, 1)
    before = {e.title: e.id for e in parse_file(base, "post.txt")[1]}
    after = {e.title: e.id for e in parse_file(edited, "post.txt")[1]}
    assert before == after


# -- CLI ----------------------------------------------------------------------------------


def test_cli_parse_summary_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.md").write_text("# A\n\n[Paper one](https://one.example/p)\n", encoding="utf-8")
    (tmp_path / "bad.md").write_bytes(b"\xff\xfe\xfa")
    # A file that cannot be read: the rest is printed, and the exit says the collection is not whole (was 0).
    assert main(["parse", "--source", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    out = captured.out
    assert "a.md" in out and "entries after dedupe: 1" in out and "skipped bad.md: not valid UTF-8" in out
    assert captured.err == "error: not every source could be read\n"
    assert main(["parse", "--source", str(tmp_path), "--json"]) == 1
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [row["title"] for row in rows] == ["Paper one"]
    assert rows[0]["links"] == [{"url": "https://one.example/p", "text": "Paper one", "role": "primary"}]
    assert captured.err.startswith("skipped bad.md: not valid UTF-8")  # the summary that listed it is not printed
    (tmp_path / "bad.md").unlink()
    assert main(["parse", "--source", str(tmp_path), "--json"]) == 0 and capsys.readouterr().err == ""


def test_cli_parse_of_a_source_that_cannot_be_listed_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked at start, a source folder may still be gone when it is read (here: given past the check)."""
    settings = load_settings(Settings, _env_file=None, sources=[tmp_path])
    assert run_parse(settings, [tmp_path / "vanished"], as_json=False) == 1
    err = capsys.readouterr().err
    assert err == f"could not list {tmp_path / 'vanished'}\nerror: not every source could be read\n"


def test_module_entry_point_runs_on_the_bundled_collection(tmp_path: Path) -> None:
    env = {**os.environ, "KB_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "knowledge", "parse"], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    assert "001_2b8a6d15944fc521.txt" in done.stdout.replace("…", "") or "pdf_text" in done.stdout


@pytest.mark.parametrize(
    ("source", "line"),
    [
        (SourceSync("upstream#main", "a" * 40, "b" * 40), "upstream#main: aaaaaaaaaaaa -> bbbbbbbbbbbb"),
        (SourceSync("upstream#main", None, "b" * 40), "upstream#main: none -> bbbbbbbbbbbb"),
        (SourceSync("upstream#main", "a" * 40, "a" * 40), "upstream#main: unchanged"),
        (
            SourceSync("upstream#main", "a" * 40, "b" * 40, rewritten=True),
            "upstream#main: aaaaaaaaaaaa -> bbbbbbbbbbbb (history rewritten)",
        ),
        (
            SourceSync("upstream#main", "a" * 40, "a" * 40, error="fetch failed: timeout"),
            "upstream#main: fetch failed: timeout",
        ),
    ],
)
def test_a_source_s_sync_is_one_line_for_the_command_lines(source: SourceSync, line: str) -> None:
    assert source.outcome() == line
