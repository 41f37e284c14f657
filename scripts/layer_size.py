"""Build the Lambda layer the way `sam build` does and check it against Lambda's limits.

    python scripts/layer_size.py [DEST]

Installs layer/requirements.txt for the python3.12 x86_64 runtime (manylinux2014 wheels,
binary only) plus the covidlake package into DEST/python (a temp dir by default), then
prints the unzipped size of the layer and of each function (its code plus the layer)
against the 250 MB unzipped limit of a function with all its layers. Exits 1 over it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # bytes, function code + all layers
FUNCTIONS = ("ingest", "create_emr", "show_results")


class PyPIUnreachable(RuntimeError):
    pass


def tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            p = Path(dirpath) / name
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def pypi_reachable(python: str = sys.executable) -> bool:
    """Can pip fetch anything at all (a tiny wheel)? Distinguishes 'offline' from 'does not resolve'."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = subprocess.run(
            [
                python,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--disable-pip-version-check",
                "--dest",
                tmp,
                "--timeout",
                "15",
                "--retries",
                "1",
                "six",
            ],
            capture_output=True,
            text=True,
        )
    return probe.returncode == 0


def build_layer(dest: Path, python: str = sys.executable) -> Path:
    """Run the layer's own Makefile target (the one `sam build` runs) into dest."""
    dest.mkdir(parents=True, exist_ok=True)
    make = shutil.which("make")
    if make is None:
        raise RuntimeError("make is required to build the layer")
    proc = subprocess.run(
        [
            make,
            "-s",
            "-C",
            str(ROOT / "layer"),
            "build-CovidlakeLayer",
            f"ARTIFACTS_DIR={dest}",
            f"PYTHON={python}",
            # offline: the RDS CA bundle (~170 KB) is fetched by `sam build` only, unless given
            f"RDS_CA_BUNDLE={os.environ.get('RDS_CA_BUNDLE', 'none')}",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        if not pypi_reachable(python):
            raise PyPIUnreachable(proc.stderr[-2000:])
        raise RuntimeError(
            f"layer build failed (PyPI reachable, so the requirements do not resolve):\n{proc.stderr[-4000:]}"
        )
    return dest / "python"


def report(layer_root: Path) -> dict[str, int]:
    layer = tree_size(layer_root)
    sizes = {"layer": layer}
    for fn in FUNCTIONS:
        code = ROOT / "functions" / fn
        sizes[fn] = layer + (tree_size(code) if code.exists() else 0)
    return sizes


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    dest = Path(argv[0]).resolve() if argv else Path(tempfile.mkdtemp(prefix="covidlake-layer-"))
    try:
        layer_root = build_layer(dest)
    except PyPIUnreachable:
        print("PyPI unreachable: layer size not measured", file=sys.stderr)
        return 2
    sizes = report(layer_root)
    worst = 0
    for name, size in sizes.items():
        print(f"{name:>14}: {size / 1024 / 1024:7.1f} MB unzipped (limit {LAMBDA_UNZIPPED_LIMIT / 1024 / 1024:.0f} MB)")
        worst = max(worst, size)
    return 0 if worst < LAMBDA_UNZIPPED_LIMIT else 1


if __name__ == "__main__":
    raise SystemExit(main())
