"""The Lambda layer: what it holds, that the Lambda modules import without the heavy
local-only packages, and that its dependencies resolve for the python3.12 x86_64 runtime
within the 250 MB unzipped limit (built from PyPI; skipped only when PyPI is unreachable)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from .conftest import ROOT

HEAVY = ("pyspark", "pandas", "pyarrow", "duckdb")


def load_layer_tools():
    spec = importlib.util.spec_from_file_location("layer_size", ROOT / "scripts" / "layer_size.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def requirement_names() -> list[str]:
    names = []
    for line in (ROOT / "layer" / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower())
    return names


def test_layer_requirements_are_only_what_the_lambdas_need():
    names = requirement_names()
    assert {"aws-lambda-powertools", "pydantic-settings", "requests", "psycopg2-binary"} <= set(names)
    assert not set(names) & {*HEAVY, "boto3", "botocore"}, "heavy or runtime-provided packages in the layer"


@pytest.mark.parametrize(
    "module",
    [
        "covidlake.emr_cluster",
        "covidlake.athena_ddl",
        "covidlake.schemas",
        "covidlake.settings",
        "covidlake.storage",
        "covidlake.raw.ingest",
        "covidlake.observability",
    ],
)
def test_lambda_modules_import_without_heavy_packages(module):
    code = (
        "import sys\n"
        f"for name in {HEAVY!r}: sys.modules[name] = None  # any import of them now fails\n"
        f"import {module}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr


def test_the_import_guard_does_catch_a_heavy_import(tmp_path):
    (tmp_path / "heavy_mod.py").write_text("import pandas\n")
    code = "import sys\nsys.modules['pandas'] = None\nimport heavy_mod\n"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode != 0


@pytest.fixture(scope="module")
def built_layer(tmp_path_factory):
    tools = load_layer_tools()
    dest = tmp_path_factory.mktemp("layer")
    try:
        root = tools.build_layer(dest)
    except tools.PyPIUnreachable as err:
        pytest.skip(f"PyPI unreachable, layer not built: {str(err)[-300:]}")
    return tools, root


def test_layer_resolves_for_python312_x86_64(built_layer):
    _tools, root = built_layer
    assert (root / "covidlake" / "emr_cluster.py").is_file()
    assert (root / "aws_lambda_powertools").is_dir()
    assert (root / "aws_xray_sdk").is_dir(), "the tracer extra"
    native = [p.name for p in root.rglob("*.so")]
    assert any(n.startswith("_pydantic_core.cpython-312-x86_64-linux-gnu") for n in native), native
    assert any("psycopg" in str(p) for p in root.rglob("_psycopg*.so"))
    assert not [n for n in native if "cpython-3" in n and "cpython-312" not in n], "wheels for another Python"
    for name in (*HEAVY, "botocore", "boto3"):
        assert not (root / name).exists(), f"{name} must not be in the layer"


def test_each_function_stays_under_250_mb_unzipped(built_layer):
    tools, root = built_layer
    sizes = tools.report(root)
    print({k: f"{v / 1024 / 1024:.1f} MB" for k, v in sizes.items()})
    assert sizes["layer"] > 5 * 1024 * 1024, "suspiciously small: did the install run?"
    for name, size in sizes.items():
        assert size < tools.LAMBDA_UNZIPPED_LIMIT, f"{name}: {size / 1024 / 1024:.1f} MB"
