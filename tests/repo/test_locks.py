"""The locks agree with pyproject.toml and with each other, and layer/requirements.txt is what
requirements.lock gives (layer/generate.py): editing one without `make lock` fails here."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"
TEST_LOCK = ROOT / "requirements-test.lock"
LAYER = ROOT / "layer" / "requirements.txt"


def load_generator():
    spec = importlib.util.spec_from_file_location("layer_generate", ROOT / "layer" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pins(text: str) -> dict[str, str]:
    gen = load_generator()
    return {name: version for name, (version, _parents) in gen.parse_lock(text).items()}


def project() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def test_layer_requirements_are_generated_from_the_lock():
    assert LAYER.read_text() == load_generator().expected(), "layer/requirements.txt is stale: run `make lock`"


def test_an_edited_layer_pin_or_lock_pin_is_caught():
    gen = load_generator()
    lock = LOCK.read_text()
    version = pins(lock)["pydantic"]
    bumped = lock.replace(f"\npydantic=={version}\n", "\npydantic==0.0.1\n")
    assert bumped != lock
    assert gen.layer_requirements(bumped, PYPROJECT.read_text()) != LAYER.read_text()


def test_a_core_dependency_missing_from_the_lock_is_caught():
    gen = load_generator()
    pyproject = PYPROJECT.read_text().replace('  "boto3>=1.34",\n', '  "boto3>=1.34",\n  "not-locked-yet>=1",\n', 1)
    with pytest.raises(ValueError, match="not-locked-yet"):
        gen.layer_requirements(LOCK.read_text(), pyproject)


def test_the_layer_is_the_core_less_the_runtimes_boto3():
    gen = load_generator()
    core = set(gen.core_requirements(PYPROJECT.read_text()))
    layer_names = {re.split(r"[\[=]", line)[0] for line in LAYER.read_text().splitlines() if line[:1].isalnum()}
    assert core <= layer_names
    assert {gen.normalize(Requirement(r).name) for r in project()["dependencies"]} - core == {"boto3"}
    assert not layer_names & {"boto3", "botocore", "pyspark", "pandas", "pyarrow", "duckdb", "matplotlib"}


@pytest.mark.parametrize(("lock", "extras"), [(LOCK, ("local",)), (TEST_LOCK, ("local", "test"))])
def test_each_lock_satisfies_what_pyproject_asks(lock, extras):
    """A requirement added or narrowed in pyproject.toml without `make lock` fails here."""
    locked = pins(lock.read_text())
    wanted = list(project()["dependencies"])
    for extra in extras:
        wanted += project()["optional-dependencies"][extra]
    for spec in wanted:
        req = Requirement(spec)
        name = load_generator().normalize(req.name)
        assert name in locked, f"{name} is not in {lock.name}: run `make lock`"
        assert req.specifier.contains(locked[name], prereleases=True), f"{lock.name}: {name}=={locked[name]} vs {spec}"


def test_both_locks_pin_the_same_versions():
    app, full = pins(LOCK.read_text()), pins(TEST_LOCK.read_text())
    assert set(app) <= set(full)
    assert {n: v for n, v in app.items() if full[n] != v} == {}
