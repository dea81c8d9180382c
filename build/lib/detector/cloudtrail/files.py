"""Raw CloudTrail records out of log files and directories (pure: reads files, no Elasticsearch).

Accepted, gzip-compressed or not (by content, whatever the name): a log file as CloudTrail
writes it to S3 (`{"Records": [...]}`), a JSON array of records, one record as a JSON object,
and newline-delimited records (one per line). Directories are walked recursively for `*.json`,
`*.ndjson`, `*.jsonl` and their `.gz`; files named explicitly are read whatever their name.

Each record comes with its file and position (`record N` of a Records array, `line N` of a
newline-delimited file), and so does each bad one: a line that is not JSON, a file that cannot
be read or decompressed. A bad record never stops the rest. CloudTrail digest files (no events,
only hashes of the log files) are skipped and reported as such.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The namespace of `logs-aws.cloudtrail-<namespace>` an import writes to unless told.
DEFAULT_NAMESPACE = "imported"

SUFFIXES = (".json", ".ndjson", ".jsonl")
GZIP_MAGIC = b"\x1f\x8b"
# Keys of a CloudTrail digest file (CloudTrail-Digest/ in the bucket), never of a log file.
DIGEST_KEYS = frozenset({"digestStartTime", "digestEndTime", "logFiles"})


@dataclass(frozen=True)
class Position:
    """Where a record is: its file, and `record N` or `line N` in it (N from 1)."""

    file: Path
    unit: str
    number: int

    def __str__(self) -> str:
        if self.unit == "line":
            return f"{self.file}:{self.number}"
        return f"{self.file} {self.unit} {self.number}"


@dataclass(frozen=True)
class RawRecord:
    """One parsed record and its raw text (its line; None when it came out of an array)."""

    where: Position
    record: Any
    text: str | None = None


@dataclass(frozen=True)
class BadRecord:
    """A record (or a whole file) that could not be read or mapped, and why."""

    where: Position
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class SkippedFile:
    """A file read but holding no events (a digest file)."""

    file: Path
    reason: str


Item = RawRecord | BadRecord | SkippedFile


def is_log_file(path: Path) -> bool:
    """A name a directory walk picks up: `*.json`, `*.ndjson`, `*.jsonl`, and the same `.gz`."""
    name = path.name.lower()
    name = name.removesuffix(".gz")
    return name.endswith(SUFFIXES)


def missing(paths: Iterable[Path]) -> list[Path]:
    """The paths that name neither a file nor a directory."""
    return [path for path in paths if not path.exists()]


def log_files(paths: Iterable[Path]) -> list[Path]:
    """The files to read: named files as they are, directories walked (sorted, recursively)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_log_file(p)))
        else:
            found.append(path)
    return list(dict.fromkeys(found))


def read_text(path: Path) -> str:
    """The file's text, gunzipped when it is gzip data; raises `OSError`/`ValueError`."""
    data = path.read_bytes()
    if data[:2] == GZIP_MAGIC:
        data = gzip.decompress(data)
    return data.decode("utf-8-sig")


def read_records(path: Path) -> Iterator[Item]:
    """Every record of one file, with its position; bad ones as `BadRecord`s."""
    try:
        text = read_text(path)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        yield BadRecord(Position(path, "file", 1), f"cannot read the file: {exc}")
        return
    try:
        whole = json.loads(text)
    except ValueError:
        yield from _lines(path, text)
        return
    yield from _document(path, whole, text)


def _document(path: Path, whole: Any, text: str) -> Iterator[Item]:
    if isinstance(whole, dict) and "Records" in whole:
        records = whole["Records"]
        if not isinstance(records, list):
            yield BadRecord(Position(path, "file", 1), "`Records` is not a list")
            return
        for number, record in enumerate(records, 1):
            yield RawRecord(Position(path, "record", number), record)
    elif isinstance(whole, list):
        for number, record in enumerate(whole, 1):
            yield RawRecord(Position(path, "record", number), record)
    elif isinstance(whole, dict) and whole.keys() >= DIGEST_KEYS:
        yield SkippedFile(path, "a CloudTrail digest file (no events)")
    else:  # one record alone, or a one-line newline-delimited file
        yield RawRecord(Position(path, "line", 1), whole, text.strip())


def _lines(path: Path, text: str) -> Iterator[Item]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            yield BadRecord(Position(path, "line", number), f"not JSON: {exc}")
            continue
        if isinstance(record, dict) and isinstance(record.get("Records"), list):
            # A Records document per line (log files concatenated into one).
            for index, item in enumerate(record["Records"], 1):
                yield RawRecord(Position(path, f"line {number} record", index), item)
            continue
        yield RawRecord(Position(path, "line", number), record, line)


def read_all(paths: Iterable[Path]) -> Iterator[tuple[Path, Item]]:
    """Every item of every file of `paths`, file by file."""
    for path in log_files(paths):
        for item in read_records(path):
            yield path, item
