"""The README's configuration tables are the settings class, section for section, row for row."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from detector.datemath import format_duration
from detector.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SETTINGS = ROOT / "detector" / "settings.py"
ROW = re.compile(r"^\| `(DETECTOR_[A-Z_]+)` \| (.*?) \| (.*) \|$")
# A section of the settings class: a `# --- Name ---` comment before its fields.
SECTION = re.compile(r"^    # --- (.+) ---$")
FIELD = re.compile(r"^    ([a-z_]+): ")


def _default(name: str) -> str:
    value = Settings.model_fields[name].default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, timedelta):
        return f"`{format_duration(value)}`"
    if isinstance(value, list):
        value = ",".join(str(item) for item in value)
    return f"`{value}`" if value not in (None, "") else ""


def _documented() -> dict[str, tuple[str, str]]:
    rows = (ROW.match(line) for line in README.read_text().splitlines())
    return {m.group(1): (m.group(2).strip(), m.group(3).strip()) for m in rows if m}


def _sections(
    lines: list[str], heading: re.Pattern[str], item: re.Pattern[str]
) -> list[tuple[str, list[str]]]:
    """(section title, its variables in order), for each section that has variables."""
    found: list[tuple[str, list[str]]] = []
    for line in lines:
        if match := heading.match(line):
            found.append((match.group(1), []))
        elif (match := item.match(line)) and found:
            found[-1][1].append(match.group(1))
    return [(title, names) for title, names in found if names]


def test_every_setting_is_in_the_readme_table_and_nothing_else() -> None:
    expected = {env_name(name) for name in Settings.model_fields}
    assert set(_documented()) == expected


def test_readme_table_gives_each_settings_default_and_description() -> None:
    documented = _documented()
    for name, field in Settings.model_fields.items():
        assert documented[env_name(name)] == (_default(name), field.description), name


def test_readme_sections_are_the_settings_class_sections_in_order() -> None:
    configuration = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    readme = _sections(configuration.splitlines(), re.compile(r"^### (.+)$"), ROW)
    in_class = _sections(SETTINGS.read_text().splitlines(), SECTION, FIELD)
    assert [(title, [env_name(n) for n in names]) for title, names in in_class] == readme
    assert [name for _, names in in_class for name in names] == list(Settings.model_fields)


def _listed_for(version: str) -> set[str]:
    """The test modules the README's "Development" section lists under "VERSION only"."""
    text = README.read_text()
    start = text.index(f"  - {version} only:")
    ends = (text.find(marker, start + 1) for marker in ("\n  - ", "\n\n"))
    block = text[start : min(end for end in ends if end != -1)]
    return set(re.findall(r"`(test_[a-z_0-9]+)\.py`", block))


def test_the_readme_lists_the_modules_each_version_runs_alone() -> None:
    from tests.integration.conftest import NEWEST, OLDEST, ONE_VERSION

    for version in (NEWEST, OLDEST):
        by_module = {module for module, only in ONE_VERSION.items() if only == version}
        assert by_module <= _listed_for(version), version
