"""The console chat, through its real loop with piped input."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fake_retriever import SMALL_COLLECTION, FakeRetriever
from rich.console import Console

from bot.chat import ChatCore
from bot.console import ConsoleChat, printable
from bot.settings import BotSettings
from knowledge import KnowledgeBase


@pytest.fixture(scope="module")
def core(kb: KnowledgeBase, small_notes: Path, tmp_path_factory: pytest.TempPathFactory) -> ChatCore:
    settings = BotSettings(
        _env_file=None, sources=[small_notes], data_dir=tmp_path_factory.mktemp("console"), answer_size=1
    )
    return ChatCore(kb, settings)


TITLE_ESCAPE = "\x1b]0;evil\x07"
RED = "\x1b[31m"


async def run_lines(core: ChatCore, text: str, *, width: int = 200) -> str:
    out = io.StringIO()
    chat = ConsoleChat(core, stdin=io.StringIO(text), console=Console(file=out, width=width, color_system=None))
    await chat.run()
    return out.getvalue()


async def test_commands_and_plain_questions(core: ChatCore) -> None:
    output = await run_lines(
        core,
        "Which paper fixes weight decay in Adam?\n"
        "/ask bert transformers pre-training\n"
        "/more\n"
        "/more\n/more\n/more\n"
        "/stats\n"
        "/help\n"
        "How do I bake sourdough bread at home?\n"
        "/ask\n"
        "/nonsense\n"
        "/reindex\n",
    )
    assert "1. Fixing Weight Decay Regularization in Adam" in output
    assert "https://arxiv.org/abs/1711.05101" in output
    assert "深度学习 › 优化" in output
    assert "(page 2/" in output
    assert "There are no more results" in output
    assert "10 entries; last indexed " in output and "Sources (1):\n• small-notes" in output
    assert "/more: the next results" in output
    assert "I found nothing in the collection about “How do I bake sourdough bread at home?”" in output
    assert "There is no question to answer" in output
    assert "Unknown command /nonsense" in output
    assert "Reindex started" in output and "Reindex done in" in output  # the loop waits for the report


async def test_replies_follow_the_language_of_the_question(core: ChatCore) -> None:
    """A Chinese question gets Chinese fixed texts, and so do the commands after it, until an English
    question comes; a Traditional question gets Traditional texts."""
    output = await run_lines(
        core,
        "召回\n/more\n/stats\n/help\n今天北京的天气怎么样\n/ask\nattention transformer\n/stats\n非自回歸的機器翻譯\n",
    )
    chinese, english = output.split("Results for “attention transformer”", 1)
    english, traditional = english.split("“非自回歸的機器翻譯”", 1)
    assert "“召回”的结果（第 1/" in chinese and "（更多结果：/more）" in chinese
    assert "“召回”的结果（第 2/" in chinese
    assert "位于 推荐 › 召回" in chinese and "共 10 个条目；上次索引时间：" in chinese
    assert "• /more：上一个问题的下一页结果" in chinese
    assert "合集中没有找到关于“今天北京的天气怎么样”的内容" in chinese and "没有可回答的问题" in chinese
    assert "Results for" not in chinese and "entries from" not in chinese
    assert "in NLP" in english and "10 entries; last indexed" in english
    assert "的結果" in traditional and "位於 NLP" in traditional


async def test_hostile_lines_get_clear_replies(core: ChatCore) -> None:
    output = await run_lines(core, "@everyone <@&123> [x](y)\n\u202e\u200b\n" + "长" * 5000 + "\n")
    assert "Traceback" not in output
    replies = ("I found nothing", "Results for", "Closest matches", "合集中没有找到", "的结果")
    assert sum(output.count(reply) for reply in replies) >= 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain 中文 text", "plain 中文 text"),
        ("lines\nand\ttabs", "lines\nand\ttabs"),
        (f"{TITLE_ESCAPE}title {RED}red\x1b[0m", "title red"),  # whole sequences go, not only their ESC
        ("\x9b31m 8-bit CSI \x9d0;t\x9c", " 8-bit CSI 0;t"),
        ("bell\x07 back\x08space del\x7f cr\r", "bell backspace del cr"),
        ("\u202eevil \u2066isolated\u2069 \u200fmark", "evil isolated mark"),  # bidi: never a reversed line
    ],
)
def test_printable_drops_every_control_but_newline_and_tab(text: str, expected: str) -> None:
    assert printable(text) == expected


def assert_no_controls(output: str) -> None:
    assert not any(ch in output for ch in "\x1b\x07\x9b\x9d\r"), repr(output)


async def test_escape_sequences_in_questions_and_commands_are_not_printed(core: ChatCore) -> None:
    output = await run_lines(
        core,
        f"Adam {TITLE_ESCAPE}weight decay {RED}\n"
        f"/ask {TITLE_ESCAPE}{RED}今天北京的天气怎么样\n"
        f"/unknown{RED}\n"
        f"/nonsense{TITLE_ESCAPE} and more\n",
    )
    assert_no_controls(output)
    assert "1. Fixing Weight Decay Regularization in Adam" in output
    assert "合集中没有找到关于" in output  # the Chinese question is answered in Chinese, and so is what follows
    assert "未知命令 /unknown。" in output  # each sequence removed whole, not only its ESC
    assert "未知命令 /nonsense。" in output


async def test_escape_sequences_in_an_entry_are_not_printed(tmp_path: Path) -> None:
    """The core's parser strips controls too, but the console does not rely on it: here they reach it."""
    first = SMALL_COLLECTION[0]
    hostile = first.model_copy(
        update={
            "title": f"{TITLE_ESCAPE}Fixing Weight Decay {RED}Regularization\x1b[0m in Adam",
            "summary": f"指出 Adam {RED}中 L2 正则\x9b2J",
            "section_path": (f"深度{TITLE_ESCAPE}学习", "优化"),
        }
    )
    retriever = FakeRetriever((hostile, *SMALL_COLLECTION[1:]))
    core = ChatCore(retriever, BotSettings(_env_file=None, data_dir=tmp_path, answer_size=1))
    output = await run_lines(core, "Adam weight decay regularization\n/more\n")
    assert_no_controls(output)
    assert "1. Fixing Weight Decay Regularization in Adam" in output
    assert "深度学习 › 优化" in output


@pytest.mark.parametrize(
    ("encoding", "question"),
    [
        ("utf-8", "何恺明 动量对比 无监督"),
        # a terminal that cannot show Chinese (the banner and the answers have it): "?", not a crash
        ("latin-1", "MoCo momentum contrast unsupervised"),
    ],
)
def test_python_m_bot_console_with_piped_stdin(small_notes: Path, tmp_path: Path, encoding: str, question: str) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KB_")},
        "KB_SOURCES": str(small_notes),
        "KB_DATA_DIR": str(tmp_path / "data"),
        "KB_CONFIG_DIR": str(tmp_path / "config"),  # no settings.toml, and no .env in the cwd
        "PYTHONIOENCODING": encoding,
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        input=f"{question}\n/quit\n",
        capture_output=True,
        text=True,
        encoding=encoding,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=True,
    )
    assert "Momentum Contrast for Unsupervised Visual Representation Learning" in done.stdout
    assert "Traceback" not in done.stderr


async def test_filters_written_in_the_question(core: ChatCore) -> None:
    in_section = await run_lines(core, "in:推荐 召回 位置偏置\n/more\n")
    assert "“召回 位置偏置”的结果（§推荐）" in in_section
    sections = [line.strip() for line in in_section.splitlines() if line.strip().startswith("位于 ")]
    assert len(sections) == 2 and all(line.startswith("位于 推荐 › ") for line in sections)  # both pages
    in_english = await run_lines(core, "lang:en attention transformer without recurrence\n")
    assert "Results for “attention transformer without recurrence” (English entries)" in in_english
    assert "1. Attention Is All You Need" in in_english
    unknown = await run_lines(core, "in:天文学 Adam\n")
    assert "No section of the collection matches “天文学”." in unknown  # the question, "Adam", is English


async def test_similar_to_an_item_of_the_last_answer(core: ChatCore) -> None:
    output = await run_lines(
        core, "Which paper proposed MoCo, momentum contrast?\n/similar 1\n/similar 42\n/similar x\n"
    )
    answer, similar = output.split("Entries like #1 ", 1)
    assert "1. Momentum Contrast for Unsupervised Visual Representation Learning" in answer
    header, rest = similar.split("\n", 1)
    assert header.startswith("“Momentum Contrast for Unsupervised Visual Representation Learning”")
    items = [line for line in rest.splitlines() if re.match(r"\d+\. ", line)]
    assert items and not any("Momentum Contrast" in item for item in items)  # never the entry itself
    assert "The last answer here has no entry #42." in output
    assert "Give the number of an entry of the last answer here, e.g. `/similar 2`." in output


@pytest.mark.parametrize(
    ("asked", "title"),
    [
        ("1910.05446", "On Empirical Comparisons of Optimizers for Deep Learning"),
        ("https://arxiv.org/pdf/2007.12865v1.pdf", "Self-supervised Learning for Large-scale Item Recommendations"),
        ("Is http://www.github.com/Luolc/AdaBound/ in there?", "AdaBound: 一种基于 PyTorch 实现的优化器"),
    ],
)
async def test_a_paper_or_repository_of_the_bundled_collection_comes_first(
    bundled_kb: KnowledgeBase, tmp_path: Path, asked: str, title: str
) -> None:
    core = ChatCore(bundled_kb, BotSettings(_env_file=None, data_dir=tmp_path))
    output = await run_lines(core, asked + "\n")
    header, first = [line for line in output.splitlines() if line.startswith(("In the collection", "1. "))][:2]
    assert header.startswith("In the collection: ") and " in §" in header
    assert first.startswith(f"1. {title}")


async def test_a_paper_the_bundled_collection_lacks_gets_related_entries_marked_as_such(
    bundled_kb: KnowledgeBase, tmp_path: Path
) -> None:
    core = ChatCore(bundled_kb, BotSettings(_env_file=None, data_dir=tmp_path))
    # The rest of the question describes what the paper is about, in words the collection uses. (Its title
    # alone, "LoRA: low-rank adaptation of large language models", is refused: LoRA is a name the collection
    # never uses, a near-domain question it cannot answer.)
    asked = "arXiv:2106.09685 low-rank adaptation for fine-tuning pre-trained language models such as BERT"
    output = await run_lines(core, f"{asked}\n2106.09685\n")
    related, bare = output.split("Not in the collection: arXiv:2106.09685", 2)[1:]
    assert related.startswith(". Related entries, not the one you asked for")
    assert re.search(r"^1\. ", related, re.M)  # entries near the rest of the question
    assert bare.startswith(", and I found nothing related.")  # an id alone: nothing to relate it to


async def test_browse_descends_and_pages_in_plain_text(core: ChatCore) -> None:
    output = await run_lines(core, "/browse\n/browse 深度学习\n/browse 自监督\n/browse 自监督 page:2\n/browse 天文学\n")
    assert (
        "The collection's sections, 10 entries in all:\nSubsections:\n  • 深度学习 (4)\n  • 推荐 (3)\n  • NLP (3)"
        in output
    )
    assert "(open one: /browse NAME or NUMBER)" in output
    assert "§深度学习, 4 entries:\nSubsections:\n  • 优化 (2)\n  • 自监督 (2)" in output
    assert "§深度学习 › 自监督, 2 entries (page 1/2):\nEntries:\n1. " in output
    assert "(next page: /browse 深度学习 / 自监督 page:2)" in output
    assert "§深度学习 › 自监督, 2 entries (page 2/2):\nEntries:\n2. " in output
    assert "No section of the collection matches “天文学”." in output


async def test_links_are_printed_whole_on_a_narrow_terminal(core: ChatCore) -> None:
    """Folded by the console at its width, a link ended one line and went on the next: the terminal then
    opened the cut one. The terminal wraps lines itself."""
    output = await run_lines(core, "Which paper fixes weight decay in Adam?\n", width=20)
    assert "https://arxiv.org/abs/1711.05101" in output


def test_a_source_folder_gone_at_start_leaves_its_entries_served(small_notes: Path, tmp_path: Path) -> None:
    """A source folder that is missing when the bot starts (a mount not back yet) is no reason to stop
    serving: its entries stay in the index and are answered from. With no index to serve, the same folder
    is the bad setting it looks like: one line naming it, exit 2."""
    notes = tmp_path / "notes"
    shutil.copytree(small_notes, notes)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KB_")},
        "KB_SOURCES": str(notes),
        "KB_DATA_DIR": str(tmp_path / "data"),
        "KB_CONFIG_DIR": str(tmp_path / "config"),
    }

    def console(**overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "console"],
            input="MoCo momentum contrast unsupervised\n/quit\n",
            capture_output=True,
            text=True,
            env={**env, **overrides},
            cwd=tmp_path,
            timeout=300,
        )

    first = console()
    assert first.returncode == 0 and "Momentum Contrast" in first.stdout
    notes.rename(tmp_path / "unmounted")
    again = console()
    assert again.returncode == 0, again.stderr
    assert "Momentum Contrast for Unsupervised Visual Representation Learning" in again.stdout
    assert f"KB_SOURCES: no such file or folder: {notes}" in again.stderr and "Traceback" not in again.stderr
    fresh = console(KB_DATA_DIR=str(tmp_path / "fresh"))
    assert fresh.returncode == 2 and "Traceback" not in fresh.stderr
    assert (
        fresh.stderr.strip().splitlines()[-1] == f"error: invalid setting KB_SOURCES: no such file or folder: {notes}"
    )
