"""The commands as documented: the README's synopsis equals the parsers, and --help says
every default and the exit codes.

The README's "The harness" section lists every command with every option. These tests
read that list back and compare it, option by option, with `harness.cli.build_parser`,
so a new option fails here until the README names it, and a documented option that
the parser no longer has fails too.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from harness import cli

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _synopsis() -> dict[str, list[str]]:
    """Command -> its synopsis lines, from the first sh block of "## The harness"."""
    section = README[README.index("\n## The harness\n"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    lines: dict[str, list[str]] = {}
    for line in block.splitlines():
        if line.startswith("harness "):
            lines.setdefault(line.split()[1], []).append(line)
    return lines


def _documented(line: str) -> dict[str, tuple[bool, str]]:
    """Option -> (in brackets, the word after it) for one synopsis line."""
    found = {}
    for match in re.finditer(r"(?<![\w-])(--?[a-z][\w-]*)(?: ([^\s\[\]]+))?", line):
        depth = line[:match.start()].count("[") - line[:match.start()].count("]")
        found[match.group(1)] = (depth > 0, match.group(2) or "")
    return found


def test_every_command_is_in_the_synopsis_and_no_other():
    assert set(_synopsis()) == set(_commands())


@pytest.mark.parametrize("name", sorted(_commands()))
def test_the_synopsis_names_exactly_the_options_of_the_parser(name):
    parser = _commands()[name]
    documented: dict[str, tuple[bool, str]] = {}
    for line in _synopsis()[name]:
        documented.update(_documented(line))
    actions = {opt: a for a in parser._actions for opt in a.option_strings
               if not isinstance(a, argparse._HelpAction)}
    # one spelling per option is enough (-j for -j/--jobs)
    named = {a for opt, a in actions.items() if opt in documented}
    missing = sorted(a.option_strings[-1] for a in set(actions.values()) - named)
    unknown = sorted(set(documented) - set(actions))
    assert not missing, f"harness {name}: in --help, not in the README synopsis: {missing}"
    assert not unknown, f"harness {name}: in the README synopsis, not in --help: {unknown}"
    for opt, (optional, word) in documented.items():
        action = actions[opt]
        assert optional != action.required, f"harness {name} {opt}: brackets vs required"
        if action.choices is not None and "|" in word:
            assert set(word.split("|")) == set(action.choices), f"harness {name} {opt}"


def _option_blocks(text: str) -> dict[str, str]:
    """--help text -> option string -> the lines describing it."""
    blocks: dict[str, str] = {}
    current: list[str] = []
    for line in text.splitlines():
        if re.match(r"^  -", line):
            current = [line]
            for opt in re.findall(r"(?<![\w-])--?[a-z][\w-]*", line.split("  ")[1]):
                blocks[opt] = current  # type: ignore[assignment]
        elif line.startswith("      ") and current:
            current.append(line)
        else:
            current = []
    return {opt: " ".join(" ".join(lines).split()) for opt, lines in blocks.items()}


@pytest.mark.parametrize("name", sorted(_commands()))
def test_help_gives_every_default_and_the_exit_codes(name):
    parser = _commands()[name]
    text = parser.format_help()
    assert "exit codes: 0 " in text, f"harness {name} --help has no exit codes"
    blocks = _option_blocks(text)
    for action in parser._actions:
        if (not action.option_strings or isinstance(action, argparse._HelpAction)
                or action.default in (None, False) or action.required):
            continue
        block = blocks[action.option_strings[-1]]
        assert "default" in block, f"harness {name} {action.option_strings[-1]}: {block}"
        if isinstance(action.default, int | float | str):
            assert str(action.default) in block, f"harness {name}: {block}"


@pytest.mark.parametrize("name", ["run", "reproduce", "soak"])
def test_long_commands_accept_progress_as_run_does(name):
    args = {"run": [], "reproduce": ["incident"], "soak": []}[name]
    parsed = cli.build_parser().parse_args([name, *args, "--progress", "off"])
    assert parsed.progress == "off"


def test_reproduce_shows_its_progress_over_the_three_targets(monkeypatch, tmp_path, capsys):
    import harness.run.runner

    def run_suite(target, chosen, *, seed=None, **_):
        status = "fail" if target.startswith("legacy") else "pass"
        violations = [{"kind": "lost", "entry": "e1", "detail": "entry e1: lost", "ops": [3],
                       "faults": []}] if status == "fail" else []
        return {"target": target, "seed": seed, "status": status,
                "violations_total": len(violations),
                "scenarios": [{"name": s.name, "fault": s.fault, "status": status,
                               "faults_fired": 1, "ops": 5, "entries": 1, "seed": 1,
                               "violations": violations, "counts": {"lost": len(violations)},
                               "observations": [], "replay": "r", "duration_s": 0.0}
                              for s in chosen]}

    monkeypatch.setattr(harness.run.runner, "run_suite", run_suite)
    monkeypatch.chdir(tmp_path)
    scenarios = Path(__file__).resolve().parents[2] / "scenarios"
    assert cli.main(["reproduce", "incident", "--scenario-dir", str(scenarios),
                     "--progress", "bar"]) == 0
    captured = capsys.readouterr()
    assert "reproduce incident" in captured.err and "3/3" in captured.err, captured.err
    assert "verdict: REPRODUCED" in captured.out
