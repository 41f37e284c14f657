"""The code spark-submit loads on EMR runs on EMR 7's Python 3.9, and the library never imports emr/.

EMR 7 (Amazon Linux 2023) runs the jobs with its system Python 3.9, while the rest of the
project needs 3.11. The jobs' import closure is computed from the source (every `covidlake.*`
and `emr.*` import, including those inside functions), checked by vermin for 3.10+ syntax and
library features, and compared with the files pyproject.toml lints as py39 code.
"""

from __future__ import annotations

import ast
import fnmatch
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JOBS = (ROOT / "emr" / "etl.py", ROOT / "emr" / "analytics.py")
EMR_PYTHON = "3.9"
OWN_PACKAGES = ("covidlake", "emr")


def _module_file(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in OWN_PACKAGES}


def import_closure(starts: tuple[Path, ...]) -> list[Path]:
    """Every own module the given files import, transitively (parents' __init__ included)."""
    seen: set[Path] = set()
    todo = list(starts)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for dotted in _imported_modules(path):
            parts = dotted.split(".")
            todo.extend(f for i in range(1, len(parts) + 1) if (f := _module_file(".".join(parts[:i]))))
    return sorted(seen)


def vermin_violations(paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("vermin")),
            f"-t={EMR_PYTHON}-",
            "--violations",
            "--no-tips",
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_jobs_need_at_most_python_3_9():
    closure = import_closure(JOBS)
    assert ROOT / "covidlake" / "trusted" / "build.py" in closure  # the closure really follows imports
    result = vermin_violations(closure)
    assert result.returncode == 0, result.stdout + result.stderr


def test_vermin_catches_a_3_11_feature(tmp_path):
    newer = tmp_path / "newer.py"
    newer.write_text("from datetime import UTC\nfrom enum import StrEnum\n")
    result = vermin_violations([newer])
    assert result.returncode != 0 and "3.11" in result.stdout


def test_ruff_lints_every_job_module_as_python_3_9():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    py39_globs = [glob for glob, version in config["per-file-target-version"].items() if version == "py39"]
    missing = [
        str(path.relative_to(ROOT))
        for path in import_closure(JOBS)
        if not any(fnmatch.fnmatch(str(path.relative_to(ROOT)), glob) for glob in py39_globs)
    ]
    assert not missing, f"add to [tool.ruff.per-file-target-version] as py39: {missing}"


@pytest.mark.parametrize("package", ["covidlake"])
def test_the_library_never_imports_the_emr_entry_points(package):
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / package).rglob("*.py"))
        if any(name.split(".")[0] == "emr" for name in _imported_modules(path))
    ]
    assert not offenders, f"covidlake/ must not import emr/ (the jobs import the library, not back): {offenders}"
