"""docs/security.md is generated from the tests' attack marks and must be up to date."""

from __future__ import annotations

import importlib.util
import sys

from covidlake.settings import PROJECT_ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("security_table", PROJECT_ROOT / "scripts" / "security_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_security_doc_is_up_to_date():
    script = load_script()
    assert script.main(["--check"]) == 0, "run: python scripts/security_table.py"


def test_every_item_of_issue_11_has_an_attack_test():
    script = load_script()
    covered = {row.item for row in script.collect()}
    assert covered == set(script.ITEMS), sorted(set(script.ITEMS) - covered)


def test_the_table_changes_when_a_test_does(tmp_path):
    """The negative control: a new mark gives a new row, so the page cannot silently drift."""
    script = load_script()
    (tmp_path / "test_x.py").write_text(
        "import pytest\n\n@pytest.mark.attack(2, 'a new attack', 'a result')\ndef test_x():\n    pass\n"
    )
    script.ROOT = tmp_path
    rows = script.collect(tmp_path)
    assert [(r.item, r.attack, r.test) for r in rows] == [(2, "a new attack", "test_x.py::test_x")]
    assert "| a new attack | a result | `test_x.py::test_x` |" in script.render(rows)
