"""`detector import cloudtrail`: usage mistakes never reach Elasticsearch, and the suggested
backfill range covers every imported event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from detector.cli import main
from detector.cli.investigation import _summary, backfill_range
from detector.cloudtrail.files import BadRecord, Position
from detector.cloudtrail.importer import ImportReport


def test_a_missing_path_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["import", "cloudtrail", str(tmp_path / "nope")]) == 2
    assert f"no such file or directory: {tmp_path / 'nope'}" in capsys.readouterr().err


def test_a_directory_without_log_files_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "readme.txt").write_text("x")
    assert main(["import", "cloudtrail", str(tmp_path)]) == 2
    assert "no CloudTrail log file" in capsys.readouterr().err


@pytest.mark.parametrize("namespace", ["Default", "-x", "a b", "x" * 101])
def test_a_bad_namespace_is_a_usage_error(namespace: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["import", "cloudtrail", str(tmp_path), "--namespace", namespace])
    assert exited.value.code == 2


def test_the_backfill_range_puts_an_execution_at_or_after_every_event() -> None:
    first = datetime(2023, 7, 10, 11, 42, 18, tzinfo=UTC)
    last = datetime(2023, 7, 10, 12, 37, 50, tzinfo=UTC)
    start, end = backfill_range(first, last)
    assert (start, end) == (first.replace(minute=40, second=0), last.replace(minute=40, second=0))
    assert end - last < timedelta(minutes=5)


def test_the_backfill_range_never_ends_in_the_future() -> None:
    now = datetime.now(UTC)
    _, end = backfill_range(now - timedelta(minutes=1), now)
    assert end <= datetime.now(UTC)


def test_the_summary_names_the_bad_records_and_the_backfill_to_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    where = [Position(tmp_path / "a.json", "record", n) for n in range(1, 13)]
    report = ImportReport(
        index="logs-aws.cloudtrail-imported",
        index_created=True,
        files=2,
        records=20,
        created=8,
        bad=[
            BadRecord(position, "no eventID (the document id comes from it)") for position in where
        ],
        first=datetime(2023, 7, 10, 11, 42, 18, tzinfo=UTC),
        last=datetime(2023, 7, 10, 12, 37, 50, tzinfo=UTC),
    )
    _summary(report)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(
        "imported 2 file(s) into logs-aws.cloudtrail-imported (created): 20 record(s), 8 created, "
        "0 already there, 12 bad"
    )
    assert out[1] == "bad records (first 10 of 12):"
    assert out[2] == f"  {tmp_path / 'a.json'} record 1: no eventID (the document id comes from it)"
    assert out[-1] == "  detector backfill --start 2023-07-10T11:40:00Z --end 2023-07-10T12:40:00Z"
    assert report.to_json()["bad"] == 12
