"""Reading raw CloudTrail files: S3 log files, gzip, NDJSON, directories, bad records."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from detector.cloudtrail.files import (
    BadRecord,
    Position,
    RawRecord,
    SkippedFile,
    log_files,
    missing,
    read_all,
    read_records,
)
from tests.support.raw_cloudtrail import INVICTUS_DIR

RECORD = {"eventID": "e1", "eventTime": "2025-01-15T12:00:00Z"}


def _records(path: Path) -> list[object]:
    return list(read_records(path))


def test_an_s3_log_file_gzipped_gives_its_records_in_order(tmp_path: Path) -> None:
    path = tmp_path / "123_CloudTrail_us-east-1_20250115T1200Z_abc.json.gz"
    records = [{**RECORD, "eventID": f"e{n}"} for n in range(3)]
    path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    items = _records(path)
    assert [item.record for item in items if isinstance(item, RawRecord)] == records
    assert [str(item.where) for item in items if isinstance(item, RawRecord)] == [
        f"{path} record {n}" for n in (1, 2, 3)
    ]


def test_gzip_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    path.write_bytes(gzip.compress(json.dumps({"Records": [RECORD]}).encode()))
    assert [item.record for item in _records(path) if isinstance(item, RawRecord)] == [RECORD]


def test_ndjson_keeps_each_line_and_counts_a_bad_line_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    lines = [json.dumps(RECORD), "", "{not json", json.dumps({**RECORD, "eventID": "e2"})]
    path.write_text("\n".join(lines) + "\n")
    items = _records(path)
    assert [type(item) for item in items] == [RawRecord, BadRecord, RawRecord]
    first, bad, last = items
    assert isinstance(first, RawRecord) and first.text == lines[0]
    assert isinstance(bad, BadRecord) and bad.where == Position(path, "line", 3)
    assert str(bad).startswith(f"{path}:3: not JSON")
    assert isinstance(last, RawRecord) and last.where.number == 4


def test_a_single_record_and_a_json_array(tmp_path: Path) -> None:
    one, many = tmp_path / "one.json", tmp_path / "many.json"
    one.write_text(json.dumps(RECORD, indent=2))
    many.write_text(json.dumps([RECORD, RECORD]))
    assert [item.record for item in _records(one) if isinstance(item, RawRecord)] == [RECORD]
    assert len(_records(many)) == 2


def test_a_broken_gzip_is_one_bad_record_and_the_rest_still_reads(tmp_path: Path) -> None:
    broken = tmp_path / "a.json.gz"
    broken.write_bytes(b"\x1f\x8b" + b"garbage")
    good = tmp_path / "b.json"
    good.write_text(json.dumps({"Records": [RECORD]}))
    items = [item for _, item in read_all([tmp_path])]
    assert [type(item) for item in items] == [BadRecord, RawRecord]


def test_digest_files_are_skipped(tmp_path: Path) -> None:
    digest = tmp_path / "digest.json.gz"
    body = {"digestStartTime": "a", "digestEndTime": "b", "logFiles": []}
    digest.write_bytes(gzip.compress(json.dumps(body).encode()))
    assert [type(item) for item in _records(digest)] == [SkippedFile]


def test_directories_are_walked_recursively_for_log_files_only(tmp_path: Path) -> None:
    (tmp_path / "AWSLogs" / "us-east-1").mkdir(parents=True)
    wanted = [
        tmp_path / "AWSLogs" / "us-east-1" / "a.json.gz",
        tmp_path / "AWSLogs" / "b.ndjson",
        tmp_path / "c.JSON",
    ]
    for path in [*wanted, tmp_path / "notes.txt", tmp_path / "x.csv.gz"]:
        path.write_text("{}")
    assert sorted(log_files([tmp_path])) == sorted(wanted)
    assert log_files([wanted[1], wanted[1]]) == [wanted[1]]
    assert missing([tmp_path, tmp_path / "nope"]) == [tmp_path / "nope"]


@pytest.mark.reference_data
def test_the_55_invictus_files_hold_2900_records() -> None:
    files = log_files([INVICTUS_DIR])
    assert len(files) == 55
    items = [item for _, item in read_all([INVICTUS_DIR])]
    assert len(items) == 2900
    assert all(isinstance(item, RawRecord) for item in items)
