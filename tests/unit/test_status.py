"""`detector status` output: one row per rule, an expired lease shown as such, JSON as is."""

from __future__ import annotations

import dataclasses

from detector.execution_log.status import RuleStatus, table


def status(holder: str | None, live: bool) -> RuleStatus:
    return RuleStatus(
        "rule-1",
        "Rule one",
        holder,
        "2025-01-15T12:01:00.000Z" if holder else None,
        live,
        "2025-01-15T12:00:00.000Z",
        "succeeded",
        "host-a:1",
        "2025-01-15T12:00:00.000Z",
    )


def test_the_table_has_a_header_and_a_row_per_rule() -> None:
    lines = table([status("host-a:1", True), status(None, False)]).splitlines()
    assert lines[0].split()[:3] == ["rule", "holder", "lease"]
    assert lines[1].split()[:2] == ["rule-1", "host-a:1"]
    assert "no lease yet" in lines[2]
    assert lines[2].split()[4] == "-"  # lease until: after "no lease yet"


def test_an_expired_lease_names_its_last_holder() -> None:
    assert status("host-b:2", False).row()[1] == "(host-b:2, expired)"


def test_json_has_every_field() -> None:
    assert status("host-a:1", True).to_json()["holder"] == "host-a:1"
    assert set(status(None, False).to_json()) >= {"rule_id", "lease_expires", "checkpoint"}


def test_the_baseline_column_shows_the_coverage_until_it_is_mature() -> None:
    young = dataclasses.replace(
        status("host-a:1", True), baseline_coverage=0.2857, baseline_since="2025-01-13T12:00:00Z"
    )
    assert young.row()[-1] == "29% since 2025-01-13T12:00:00Z"
    assert dataclasses.replace(young, baseline_coverage=1.0).row()[-1] == "mature"
    assert status("host-a:1", True).row()[-1] == "-"
    assert young.to_json()["baseline_coverage"] == 0.2857


def test_a_rule_never_leased_says_so_rather_than_expired() -> None:
    assert status(None, False).row()[1] == "no lease yet"
    assert "expired" not in table([status(None, False)])


def test_a_baseline_without_data_says_no_data() -> None:
    empty = dataclasses.replace(status("host-a:1", True), baseline_coverage=0.0)
    assert empty.row()[-1] == "0%, no data"
