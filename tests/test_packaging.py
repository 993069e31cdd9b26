"""The package ships what it needs, and the image installs the way CI does."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_collection_and_glossary(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for seed in (ROOT / "knowledge" / "sources").iterdir():
        assert f"knowledge/sources/{seed.name}" in names
    assert {"knowledge/glossary.tsv", "knowledge/py.typed", "bot/__main__.py", "knowledge/__main__.py"} <= names
    assert not any(name.startswith("tests/") for name in names)


def test_image_ci_and_makefile_share_one_install_script() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ".ci/install /opt/venv" in dockerfile and ".ci/install $(VENV) dev" in makefile
    assert "make test" in ci
    stages = dockerfile.count("\nFROM ") + dockerfile.startswith("FROM ")
    assert stages >= 2  # multi-stage
    assert "\nUSER bot" in dockerfile and "useradd" in dockerfile  # not root
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    compose = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    assert "chromadb/chroma" in compose and "KB_CHROMA_URL: http://chroma:8000" in compose and "chroma-data:" in compose
