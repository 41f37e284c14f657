"""Write layer/requirements.txt from requirements.lock: the Lambda layer's pins come from the lock.

    python layer/generate.py          # rewrite layer/requirements.txt (`make lock` runs this)
    python layer/generate.py --check  # exit 1 when it is not what the lock gives

The layer holds pyproject's [project] dependencies (the core) less what the python3.12 Lambda
runtime ships (boto3 and what only it pulls in), plus everything they pull in, each pinned to
the lock's version. The closure comes from the lock's `# via` lines, so no resolver runs here.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
LAYER_REQUIREMENTS = ROOT / "layer" / "requirements.txt"
# The runtime's own boto3/botocore must win: a copy in /opt/python would shadow it.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer"})

HEADER = """\
# Generated from requirements.lock by `make lock` (layer/generate.py): do not edit by hand.
# What the Lambda functions need beyond the python3.12 runtime (which ships boto3): the
# [project] dependencies of pyproject.toml and everything they pull in, pinned as in the lock.
# Installed with --no-deps by `make build-CovidlakeLayer` (SAM) as manylinux2014_x86_64 wheels
# for CPython 3.12; covidlake itself (symlinked here) is copied beside them.
# Never add pyspark, pandas, pyarrow or duckdb: the Lambdas don't import them and they
# would blow the 250 MB unzipped limit.
"""


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> dict[str, tuple[str, set[str]]]:
    """{name: (version, names of the packages that pull it in)} from uv's annotated output."""
    packages: dict[str, tuple[str, set[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("#"):
            name, _, version = line.partition("==")
            if not version:
                raise ValueError(f"unpinned line in the lock: {raw!r}")
            current = normalize(name.split("[")[0])
            packages[current] = (version.strip(), set())
        elif current is not None:
            via = line.lstrip("#").strip()
            via = via.removeprefix("via").strip()
            if via and not via.startswith("-c"):
                packages[current][1].add(normalize(via.split(" ")[0]))
    return packages


def core_requirements(pyproject_text: str) -> dict[str, str]:
    """{name: extras suffix such as '[parser,tracer]'} of the core, less the runtime's packages."""
    core = {}
    for spec in tomllib.loads(pyproject_text)["project"]["dependencies"]:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(\[[^\]]*\])?", spec)
        name = normalize(match.group(1))
        if name not in RUNTIME_PROVIDED:
            core[name] = (match.group(2) or "").replace(" ", "")
    return core


def layer_requirements(lock_text: str, pyproject_text: str) -> str:
    packages = parse_lock(lock_text)
    core = core_requirements(pyproject_text)
    missing = sorted(set(core) - set(packages))
    if missing:
        raise ValueError(f"not in requirements.lock (run `make lock`): {', '.join(missing)}")
    children: dict[str, set[str]] = {}
    for name, (_version, parents) in packages.items():
        for parent in parents:
            children.setdefault(parent, set()).add(name)
    layer, todo = set(), list(core)
    while todo:
        name = todo.pop()
        if name in layer or name in RUNTIME_PROVIDED:
            continue
        layer.add(name)
        todo.extend(children.get(name, ()))
    lines = [f"{name}{core.get(name, '')}=={packages[name][0]}" for name in sorted(layer)]
    return HEADER + "\n".join(lines) + "\n"


def expected() -> str:
    return layer_requirements(LOCK.read_text(), PYPROJECT.read_text())


def main(argv: list[str]) -> int:
    text = expected()
    if "--check" in argv:
        if LAYER_REQUIREMENTS.read_text() != text:
            print("layer/requirements.txt differs from what requirements.lock gives: run `make lock`")
            return 1
        return 0
    LAYER_REQUIREMENTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
