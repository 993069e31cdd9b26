"""`make lint` runs the import contracts of pyproject.toml (`lint-imports`), and each contract catches a
deliberate violation: the check runs on a copy of both packages, once as they are and once per violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONTRACTS = {
    contract["id"]: contract["name"]
    for contract in tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"][
        "contracts"
    ]
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The Python files of `knowledge/` and `bot/` and pyproject.toml, copied into a fresh folder."""

    def not_python(folder: str, names: list[str]) -> list[str]:
        return [name for name in names if not (name.endswith(".py") or (Path(folder) / name).is_dir())]

    for package in ("knowledge", "bot"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=not_python)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` over the copy: it imports the packages from there (PYTHONPATH), with lines unwrapped."""
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "250"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=tree, env=env, capture_output=True, text=True, timeout=120
    )


def test_make_lint_runs_the_contracts() -> None:
    assert "lint-imports" in (ROOT / "Makefile").read_text(encoding="utf-8")
    assert set(CONTRACTS) == {"core-alone", "discord-adapter", "slack-adapter", "public-api"}


def test_the_packages_keep_every_contract(tree: Path) -> None:
    done = lint_imports(tree)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in CONTRACTS.values():
        assert f"{name} KEPT" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract", "link"),
    [
        ("knowledge/entry.py", "import discord", "core-alone", "knowledge.entry -> discord"),
        ("knowledge/parse/__init__.py", "import bot.render", "core-alone", "knowledge.parse -> bot.render"),
        ("bot/render.py", "import discord", "discord-adapter", "bot.render -> discord"),
        ("bot/render.py", "from slack_sdk import WebClient", "slack-adapter", "bot.render -> slack_sdk"),
        ("bot/render.py", "from knowledge.search import SearchResult", "public-api", "bot.render -> knowledge.search"),
    ],
)
def test_a_deliberate_violation_fails_its_contract(
    tree: Path, module: str, line: str, contract: str, link: str
) -> None:
    path = tree / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # deliberate violation\n", encoding="utf-8")
    done = lint_imports(tree)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{CONTRACTS[contract]} BROKEN" in done.stdout
    assert link in done.stdout
