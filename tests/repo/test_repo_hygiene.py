"""The repository itself: a readable README and no bulk committed by accident."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_LIMIT = 100 * 1024
TRACKED_FILE_LIMIT = 2 * 1024 * 1024
# Bundled data sets may be larger than code; everything else stays small.
BULK_ALLOWED_UNDER = ("data/",)


def _tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    except (FileNotFoundError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [name for name in out.stdout.decode().split("\0") if name]


def test_readme_stays_small():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_LIMIT, f"README.md is {size:,} bytes (limit {README_LIMIT:,})"


def test_readme_has_no_repeated_heading():
    text = (ROOT / "README.md").read_text()
    headings = [line for line in _outside_code_blocks(text) if re.match(r"#{1,6} ", line)]
    repeated = [h for h, n in Counter(headings).items() if n > 1]
    assert headings, "README.md has no headings"
    assert not repeated, f"README.md repeats headings: {repeated}"


def test_readme_gives_the_two_commands():
    text = (ROOT / "README.md").read_text()
    for command in ("make run", "make test"):
        assert re.search(rf"^{command}\b", text, re.MULTILINE), f"README.md lost the command line `{command}`"


def test_no_large_tracked_files_outside_data():
    too_big = []
    for name in _tracked_files():
        path = ROOT / name
        if name.startswith(BULK_ALLOWED_UNDER) or not path.is_file():
            continue
        if path.stat().st_size > TRACKED_FILE_LIMIT:
            too_big.append(f"{name} ({path.stat().st_size:,} bytes)")
    assert not too_big, f"tracked files over {TRACKED_FILE_LIMIT:,} bytes outside data/: {too_big}"


def test_no_wheels_or_archives_tracked():
    bundles = [n for n in _tracked_files() if n.endswith((".whl", ".tar.gz", ".zip"))]
    assert not bundles, f"built artefacts are tracked: {bundles}"


def _outside_code_blocks(text: str) -> list[str]:
    lines, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code:
            lines.append(line)
    return lines
