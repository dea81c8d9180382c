"""The reports of `detector rules test`: text lines, one JSON object, JUnit XML. Pure.

Text: one line per case (`PASS`, `FAIL` or `ERROR`, the fixture and the case); under a failure
each missing or unexpected term with the events that hold it (line, time, index); a summary
line. JUnit XML as CI systems read it (one `testsuite` per fixture, one `testcase` per case).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from detector.ruletest.fixture import Event, Term
from detector.ruletest.verdict import ERROR, FAIL, PASS, CaseResult, Difference, Suite
from detector.times import iso

EVENTS_SHOWN = 5


def text_lines(suite: Suite) -> list[str]:
    """The text report: problems, one line per case (details under failures), a summary."""
    lines = [f"error: {problem}" for problem in suite.problems]
    for result in suite.results:
        lines.append(f"{result.status:<5} {result.fixture}: {result.case.name}")
        lines += [f"      {line}" for line in details(result)]
    lines.append(summary(suite))
    return lines


def summary(suite: Suite) -> str:
    """`N passed, N failed, N error(s), N fixture(s) not loaded, in S s`."""
    counts = {status: 0 for status in (PASS, FAIL, ERROR)}
    for result in suite.results:
        counts[result.status] += 1
    seconds = suite.seconds or sum(result.seconds for result in suite.results)
    return (
        f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[ERROR]} error(s), "
        f"{len(suite.problems)} fixture(s) not loaded, in {seconds:.1f} s"
    )


def details(result: CaseResult) -> list[str]:
    """Why a case did not pass: its error, or each difference with the events behind it."""
    if result.error is not None:
        return [result.error]
    return [_difference_line(difference) for difference in result.differences]


def _difference_line(difference: Difference) -> str:
    when = "over all runs" if difference.run is None else f"run at {iso(difference.run)}"
    verb = "expected to alert, did not" if difference.kind == "missing" else "alerted, unexpected"
    events = ", ".join(_event_text(event) for event in difference.events[:EVENTS_SHOWN])
    more = len(difference.events) - EVENTS_SHOWN
    held = f"; events: {events}" + (f" and {more} more" if more > 0 else "") if events else ""
    return f"{difference.kind} {_term_text(difference.term)} ({verb}, {when}){held}"


def _event_text(event: Event) -> str:
    where = f"line {event.line}" if event.line else "event"
    index = f", {event.index}" if event.index else ""
    return f"{where} (time {event.time}{index})"


def _term_text(term: Term) -> str:
    return str(term[0]) if len(term) == 1 else "[" + ", ".join(str(v) for v in term) + "]"


def to_json(suite: Suite) -> dict[str, Any]:
    """The whole report as one JSON-ready object."""
    return {
        "passed": suite.passed,
        "failed": sum(result.status == FAIL for result in suite.results),
        "errors": sum(result.status == ERROR for result in suite.results),
        "problems": list(suite.problems),
        "cases": [_case_json(result) for result in suite.results],
    }


def _case_json(result: CaseResult) -> dict[str, Any]:
    return {
        "fixture": str(result.fixture),
        "rule_id": result.rule_id,
        "case": result.case.name,
        "line": result.case.line,
        "status": result.status,
        "error": result.error,
        "seconds": result.seconds,
        "runs": [
            {
                "at": iso(run.at),
                "status": run.status,
                "alerted": [list(term) for term in run.alerted],
                "error": run.error,
            }
            for run in result.runs
        ],
        "differences": [
            {
                "kind": difference.kind,
                "term": list(difference.term),
                "run": None if difference.run is None else iso(difference.run),
                "events": [
                    {"line": event.line, "time": event.time, "index": event.index}
                    for event in difference.events
                ],
            }
            for difference in result.differences
        ],
    }


def junit_xml(suite: Suite) -> str:
    """JUnit XML: a `testsuite` per fixture, a `testcase` per case, problems as errors."""
    root = ET.Element("testsuites", name="detector rules test")
    by_fixture: dict[str, list[CaseResult]] = {}
    for result in suite.results:
        by_fixture.setdefault(str(result.fixture), []).append(result)
    for fixture, results in by_fixture.items():
        _suite_element(root, fixture, results)
    if suite.problems:
        problems = ET.SubElement(
            root,
            "testsuite",
            name="fixtures",
            tests=str(len(suite.problems)),
            failures="0",
            errors=str(len(suite.problems)),
        )
        for number, problem in enumerate(suite.problems, 1):
            case = ET.SubElement(problems, "testcase", classname="fixtures", name=f"load {number}")
            ET.SubElement(case, "error", message=problem.splitlines()[0]).text = problem
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _suite_element(root: ET.Element, fixture: str, results: Sequence[CaseResult]) -> None:
    element = ET.SubElement(
        root,
        "testsuite",
        name=fixture,
        tests=str(len(results)),
        failures=str(sum(result.status == FAIL for result in results)),
        errors=str(sum(result.status == ERROR for result in results)),
        time=f"{sum(result.seconds for result in results):.3f}",
    )
    for result in results:
        case = ET.SubElement(
            element,
            "testcase",
            classname=fixture,
            name=result.case.name,
            time=f"{result.seconds:.3f}",
        )
        if result.status != PASS:
            tag = "failure" if result.status == FAIL else "error"
            lines = details(result)
            ET.SubElement(case, tag, message=lines[0] if lines else tag).text = "\n".join(lines)
