"""The README's reference tables come from the code; keep them in sync."""

from __future__ import annotations

from advisor import docs
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_reference_tables_are_current():
    for name, table in (("answers", docs.answers_reference()), ("config", docs.config_reference()),
                        ("rules", docs.rules_reference()), ("facts", docs.facts_reference()),
                        ("findings", docs.findings_reference()),
                        ("project", docs.project_reference()), ("formats", docs.formats_reference())):
        assert table in README, f"README's {name} table is stale: regenerate with `python -m advisor.docs`"


def test_setup_commands_come_first():
    setup = README.index("## Set-up")
    assert README.index("make demo", setup) < README.index("## A newcomer") and "make test" in README[setup:setup + 400]
