"""The docs site builds with ``mkdocs build --strict``, and the runnable code blocks run.

Convention for ```` ```python ```` blocks in the pages of ``RUNNABLE_PAGES``:

- a block whose fence is exactly ```` ```python ```` (no attributes) is **runnable**: it must run
  offline, as is, in a fresh interpreter (use the ``fake`` provider), and exit 0;
- a block that needs a model download, a GPU, an API key or a server, or that quotes code which is
  not muse_sdk's (the seed articles' snippets), carries a title that says so, e.g.
  ```` ```python title="needs OPENAI_API_KEY" ````; titled blocks are shown, never run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNNABLE_PAGES = (
    "quickstart.md",
    "from-the-seeds.md",
    "migrating-from-openai.md",
    "providers/writing-a-provider.md",
    "codegen.md",
    "structured.md",
    "tools.md",
    "production.md",
)
RUNNABLE = re.compile(r"^```python\n(.*?)^```$", flags=re.S | re.M)


def _mkdocs() -> list[str]:
    script = Path(sys.executable).parent / "mkdocs"
    if script.exists():
        return [str(script)]
    if shutil.which("mkdocs"):
        return ["mkdocs"]
    pytest.fail("mkdocs is not installed: install the 'docs' extra")


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run(
        [*_mkdocs(), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "site" / "api" / "index.html").is_file()


def _blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in RUNNABLE_PAGES:
        text = (ROOT / "docs" / page).read_text(encoding="utf-8")
        for number, match in enumerate(RUNNABLE.finditer(text), 1):
            found.append((page, number, match.group(1)))
    return found


BLOCKS = _blocks()


def test_each_page_has_runnable_blocks() -> None:
    pages = {page for page, _, _ in BLOCKS}
    assert pages == set(RUNNABLE_PAGES)


@pytest.mark.parametrize(
    "code", [code for _, _, code in BLOCKS], ids=[f"{p}#{n}" for p, n, _ in BLOCKS]
)
def test_runnable_block(code: str, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 0, f"block failed:\n{code}\n{run.stdout}{run.stderr}"
