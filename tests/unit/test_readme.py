"""The README's configuration table is the settings class, row for row."""

from __future__ import annotations

import re
from pathlib import Path

from detector.settings import Settings, env_name

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(DETECTOR_[A-Z_]+)` \| (.*?) \| (.*) \|$")


def _default(name: str) -> str:
    value = Settings.model_fields[name].default
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        value = ",".join(str(item) for item in value)
    return f"`{value}`" if value not in (None, "") else ""


def _documented() -> dict[str, tuple[str, str]]:
    rows = (ROW.match(line) for line in README.read_text().splitlines())
    return {m.group(1): (m.group(2).strip(), m.group(3).strip()) for m in rows if m}


def test_every_setting_is_in_the_readme_table_and_nothing_else() -> None:
    expected = {env_name(name) for name in Settings.model_fields}
    assert set(_documented()) == expected


def test_readme_table_gives_each_settings_default_and_description() -> None:
    documented = _documented()
    for name, field in Settings.model_fields.items():
        assert documented[env_name(name)] == (_default(name), field.description), name
