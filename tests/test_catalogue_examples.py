"""The finding catalogue is the single source of truth, and its examples run: every bad example triggers exactly
its code (plus what `example_setup.also` lists), every good example does not trigger it."""

from __future__ import annotations

import pytest

from advisor.audit import audit_file
from advisor.audit.catalog import Selection, catalog
from advisor.audit.checks import PAIR_CHECKS, READER_CODES, RECORD_CHECKS
from advisor.audit.dataset_checks import DATASET_CHECKS

CODES = sorted(catalog())


def audit_example(tmp_path, code: str, which: str):
    entry = catalog()[code]
    path = tmp_path / f"{which}{entry.example_setup.suffix}"
    path.write_text(entry.example_data(which), encoding="utf-8")
    ignore = [] if code == "too_few_examples" else ["too_few_examples"]
    return audit_file(path, max_seq_len=entry.example_setup.max_seq_len, selection=Selection(ignore=ignore),
                      workers=1)


@pytest.mark.parametrize("code", CODES)
def test_bad_example_triggers_exactly_its_code(tmp_path, code):
    report = audit_example(tmp_path, code, "example")
    found = {f.code for f in report.findings}
    assert found == {code, *catalog()[code].example_setup.also}, report.model_dump()["findings"]


@pytest.mark.parametrize("code", CODES)
def test_good_example_does_not_trigger_it(tmp_path, code):
    report = audit_example(tmp_path, code, "ok_example")
    assert code not in {f.code for f in report.findings}, report.model_dump()["findings"]


def test_every_code_has_one_check_function_and_one_entry():
    """Adding a finding is one catalogue entry plus one registered check: the two sets are the same."""
    checks = [*READER_CODES, *RECORD_CHECKS, *PAIR_CHECKS, *DATASET_CHECKS]
    assert len(checks) == len(set(checks))
    assert set(checks) == set(CODES)


def test_variants_carry_their_own_severity():
    assert catalog()["too_long"].severity_of(None) == "warning"
    assert catalog()["too_long"].severity_of("nothing_trained") == "error"
    assert catalog()["role_order"].severity_of("last_turn_untrained") == "warning"
    assert catalog()["too_few_examples"].severity_of("below_minimum") == "error"
