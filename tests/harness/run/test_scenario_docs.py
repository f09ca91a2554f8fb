"""docs/scenarios.md cannot drift from the loader: keys, fault parameters, defaults, examples.

The page is written by hand (the meanings need words); these tests read it back and
compare it with the code a user's scenario file goes through: every key the loader
accepts and every parameter of every fault has a row, with the default the dataclass
has; no row names a key the loader would refuse; every TOML example loads through
`harness.run.scenarios.load`.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.faults import FAULTS, MATCH_KINDS
from harness.faults._filefaults import DAMAGES
from harness.run import scenarios
from harness.run.scenarios import CHECKS, MODES, PLATFORMS, Scenario, Workload
from harness.run.shapes import ROLES

PAGE = Path(__file__).resolve().parents[3] / "docs" / "scenarios.md"
TEXT = PAGE.read_text(encoding="utf-8")
REQUIRED = ("description", "fault", "faults")


def _section(heading: str) -> str:
    """The page from ``heading`` (a whole line) to the next ``##`` or ``###`` heading."""
    start = TEXT.index(f"\n{heading}\n") + 1
    following = re.search(r"^#{2,3} ", TEXT[start + len(heading):], re.M)
    end = start + len(heading) + following.start() if following else len(TEXT)
    return TEXT[start:end]


def _cells(section: str) -> list[list[str]]:
    """The cells of every table row whose first cell is a `name`."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| `")]


def _rows(section: str) -> dict[str, str]:
    """First column (a `name`) -> third column (the default), of a key table."""
    return {cells[0].strip("`"): cells[2].replace("`", "") for cells in _cells(section)
            if len(cells) == 4}


def _toml(value: Any, name: str = "") -> str:
    """A default as the page writes it: TOML, or "not set" for None."""
    if value is None:
        return "not set"
    if name == "errno":
        return json.dumps(errno.errorcode[value])
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _defaults(cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING}


def test_every_top_level_key_has_its_row_and_default():
    rows = _rows(_section("## Top-level keys"))
    assert set(rows) == set(scenarios._TOP_KEYS)
    defaults = _defaults(Scenario)
    for key, shown in rows.items():
        if key in REQUIRED:
            assert shown == "required", key
        elif key != "workload":
            assert shown == _toml(defaults[key]), f"{key}: the page says {shown}"
    for field in dataclasses.fields(Scenario):  # the loaded scenario's attributes
        assert f"`{field.name}`" in TEXT, f"Scenario.{field.name} is not on the page"


def test_every_workload_key_has_its_row_and_default():
    rows = _rows(_section("## `[workload]`"))
    assert set(rows) == set(scenarios._WORKLOAD_KEYS)
    defaults = _defaults(Workload)
    defaults["payload_bytes"] = [defaults.pop("payload_min"), defaults.pop("payload_max")]
    for key, shown in rows.items():
        assert shown == _toml(defaults[key]), f"workload.{key}: the page says {shown}"


@pytest.mark.parametrize("kind", list(FAULTS))
def test_every_fault_has_a_section_with_each_parameter_and_default(kind):
    cls = FAULTS[kind]
    section = _section(f"### `{kind}` (`{cls.__name__}`)")
    rows = _rows(section)
    defaults = _defaults(cls)
    assert set(rows) == set(defaults), f"{kind}: parameters on the page != the class's"
    for name, shown in rows.items():
        assert shown == _toml(defaults[name], name), f"{kind}.{name}: the page says {shown}"


@pytest.mark.parametrize("kind", list(FAULTS))
def test_every_fault_section_has_an_example_of_it_that_loads(kind, tmp_path):
    section = _section(f"### `{kind}` (`{FAULTS[kind].__name__}`)")
    blocks = re.findall(r"```toml\n(.*?)```", section, re.S)
    assert blocks, f"no example for {kind}"
    for n, block in enumerate(blocks):
        path = tmp_path / f"{kind}-{n}.toml"
        path.write_text(block, encoding="utf-8")
        loaded = scenarios.load(path)
        assert loaded.fault == kind and kind in loaded.plan.kinds


def test_every_example_on_the_page_loads(tmp_path):
    blocks = re.findall(r"```toml\n(.*?)```", TEXT, re.S)
    assert len(blocks) >= len(FAULTS) + 2
    for n, block in enumerate(blocks):
        path = tmp_path / f"example-{n}.toml"
        path.write_text(block, encoding="utf-8")
        scenarios.load(path)  # a ScenarioError names the example's key


def test_every_value_a_key_takes_is_named():
    calls = {cells[0].strip("`") for cells in _cells(_section("## `[[faults]]`: the fault plan"))}
    assert calls == set(MATCH_KINDS), "the call-kind table != MATCH_KINDS"
    for value in (*CHECKS, *MODES, *PLATFORMS, *ROLES, *DAMAGES):
        assert f'"{value}"' in TEXT or f"`{value}`" in TEXT, f"{value!r} is not on the page"
