"""The console chat, through its real loop with piped input."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from bot.chat import ChatCore
from bot.console import ConsoleChat
from bot.settings import BotSettings
from knowledge import KnowledgeBase


@pytest.fixture(scope="module")
def core(kb: KnowledgeBase, small_notes: Path, tmp_path_factory: pytest.TempPathFactory) -> ChatCore:
    settings = BotSettings(
        _env_file=None, sources=[small_notes], data_dir=tmp_path_factory.mktemp("console"), answer_size=1
    )
    return ChatCore(kb, settings)


async def run_lines(core: ChatCore, text: str) -> str:
    out = io.StringIO()
    chat = ConsoleChat(core, stdin=io.StringIO(text), console=Console(file=out, width=200, color_system=None))
    await chat.run()
    return out.getvalue()


async def test_commands_and_plain_questions(core: ChatCore) -> None:
    output = await run_lines(
        core,
        "Which paper fixes weight decay in Adam?\n"
        "/ask 召回\n"
        "/more\n"
        "/more\n/more\n/more\n"
        "/stats\n"
        "/help\n"
        "今天北京的天气怎么样\n"
        "/ask\n"
        "/nonsense\n"
        "/reindex\n",
    )
    assert "1. Fixing Weight Decay Regularization in Adam" in output
    assert "https://arxiv.org/abs/1711.05101" in output
    assert "深度学习 › 优化" in output
    assert "(page 2/" in output
    assert "There are no more results" in output
    assert "10 entries from 1 source(s)" in output
    assert "more: the next results" in output
    assert "I found nothing in the collection about “今天北京的天气怎么样”" in output
    assert "There is no question to answer" in output
    assert "Unknown command /nonsense" in output
    assert "Reindex started" in output and "Reindex done in" in output  # the loop waits for the report


async def test_hostile_lines_get_clear_replies(core: ChatCore) -> None:
    output = await run_lines(core, "@everyone <@&123> [x](y)\n\u202e\u200b\n" + "长" * 5000 + "\n")
    assert "Traceback" not in output
    assert output.count("I found nothing") + output.count("Results for") >= 2


def test_python_m_bot_console_with_piped_stdin(small_notes: Path, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KB_")},
        "KB_SOURCES": str(small_notes),
        "KB_DATA_DIR": str(tmp_path / "data"),
        "KB_CONFIG_DIR": str(tmp_path / "config"),  # no settings.toml, and no .env in the cwd
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        input="何恺明 动量对比 无监督\n/quit\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=True,
    )
    assert "Momentum Contrast for Unsupervised Visual Representation Learning" in done.stdout
    assert "Traceback" not in done.stderr
