"""Tests for harness.report: every format renders the run dict faithfully and safely."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET

from harness import report


def _scenario(name: str, status: str, violations=(), **extra) -> dict:
    d = {
        "name": name, "fault": "disk_full", "faults": ["DiskFull(after_bytes=2048)"],
        "faults_fired": 0 if status == "no_fault_fired" else 3, "ops": 812,
        "history_ops": 1200, "entries": 40, "status": status,
        "violations": list(violations), "counts": {"delivered": 40},
        "observations": [], "seed": 1, "description": f"{name} scenario.",
        "replay": f"harness run --target robust --scenario {name} --seed 1",
        "duration_s": 0.25,
    }
    d.update(extra)
    return d


def _violation(kind: str, entry: str, detail: str) -> dict:
    return {"kind": kind, "entry": entry, "detail": detail, "ops": [41, 44],
            "faults": ["PowerLoss(at_op=44)"]}


NASTY = 'payload b"<x>&\'"\x00\x1b | `tick` **bold**'

RUN = {
    "target": "robust", "seed": 1, "violations_total": 3, "status": "fail",
    "scenarios": [
        _scenario("disk-full", "pass"),
        _scenario("power-loss", "fail", [
            _violation("lost", "e17", "entry 17: enqueue ok at op 41; never came out"),
            _violation("lost", "e18", NASTY),
            _violation("stuck", "e3", "entry 3 still PROCESSING after the drain"),
        ], observations=["2x ENOSPC on write q/queue.json.tmp"]),
        _scenario("permission-denied", "no_fault_fired"),
        _scenario("missing-directory", "error",
                  observations=["processor 0: RuntimeError: boom <here>"]),
    ],
}


def _run(target: str, statuses: list[str]) -> dict:
    scenarios = [_scenario(f"s{i}", st, [_violation("lost", "e1", "gone")] if st == "fail"
                           else []) for i, st in enumerate(statuses)]
    return {"target": target, "seed": 1, "status": "fail" if set(statuses) - {"pass"}
            else "pass", "violations_total": statuses.count("fail"), "scenarios": scenarios}


# -- JSON ---------------------------------------------------------------------------------


def test_json_round_trip(tmp_path):
    path = report.write_json(RUN, tmp_path / "deep" / "run.json")
    assert json.loads(path.read_text(encoding="utf-8")) == RUN


# -- JUnit --------------------------------------------------------------------------------


def test_junit_parses_with_one_testcase_per_scenario():
    root = ET.fromstring(report.junit_xml(RUN))
    assert root.tag == "testsuite" and root.get("name") == "harness:robust"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "2", "1")
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert list(cases) == ["disk-full", "power-loss", "permission-denied", "missing-directory"]
    assert all(c.get("classname") == "harness.robust" for c in cases.values())
    assert cases["disk-full"].find("failure") is None and cases["disk-full"].find("error") is None


def test_junit_failure_carries_violations_and_replay():
    root = ET.fromstring(report.junit_xml(RUN))
    case = next(c for c in root.iter("testcase") if c.get("name") == "power-loss")
    failure = case.find("failure")
    assert failure.get("type") == "violations"
    assert failure.get("message") == "3 violations: lost=2 stuck=1"
    assert "e17" in failure.text and "never came out" in failure.text
    assert "replay: harness run --target robust --scenario power-loss --seed 1" in failure.text
    assert '<x>&\'"' in failure.text  # escaped on the way out, intact on the way back
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["seed"] == "1" and props["faults_fired"] == "3" and props["ops"] == "812"
    assert props["faults"] == "DiskFull(after_bytes=2048)"


def test_junit_no_fault_fired_is_a_failure_and_error_is_an_error():
    root = ET.fromstring(report.junit_xml(RUN))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    nff = cases["permission-denied"].find("failure")
    assert nff is not None and nff.get("type") == "no_fault_fired"
    error = cases["missing-directory"].find("error")
    assert error is not None and "boom <here>" in error.get("message")


def test_junit_several_runs_make_testsuites():
    runs = {"targets": {t: _run(t, ["pass", "fail"]) for t in ("legacy", "robust")}}
    root = ET.fromstring(report.junit_xml(runs))
    assert root.tag == "testsuites" and root.get("tests") == "4"
    assert [s.get("name") for s in root.iter("testsuite")] == ["harness:legacy",
                                                               "harness:robust"]
    assert {c.get("classname") for c in root.iter("testcase")} == {"harness.legacy",
                                                                    "harness.robust"}


def test_junit_survives_odd_names():
    run = copy.deepcopy(RUN)
    run["target"] = 'mod:make<"&>'
    run["scenarios"][0]["name"] = "a]]>b"
    root = ET.fromstring(report.junit_xml(run))
    assert root.get("name") == 'harness:mod:make<"&>'
    assert root.find("testcase").get("name") == "a]]>b"


def test_write_junit(tmp_path):
    path = report.write_junit(RUN, tmp_path / "r.xml")
    assert ET.parse(path).getroot().tag == "testsuite"


# -- Markdown -----------------------------------------------------------------------------


def test_markdown_has_verdict_table_and_replay():
    md = report.markdown(RUN)
    lines = md.splitlines()
    assert any(line.startswith("**FAIL**") and "3 of 4" in line for line in lines)
    assert ("| scenario | fault | status | faults fired | ops | file calls | entries "
            "| violations |") in lines
    assert "| disk-full | disk_full | PASS | 3 | 1200 | 812 | 40 | 0 |" in lines
    assert "| power-loss | disk_full | **FAIL** | 3 | 1200 | 812 | 40 | 3 |" in lines
    assert "```sh\nharness run --target robust --scenario power-loss --seed 1\n```" in md
    assert "harness run --target robust --scenario permission-denied --seed 1" in md
    assert "--scenario disk-full" not in md  # passing scenarios need no replay
    assert "- **lost** `e17`: entry 17" in md


def test_markdown_escapes_html_and_pipes():
    md = report.markdown(RUN)
    assert "<x>" not in md and "&lt;x&gt;" in md
    run = copy.deepcopy(RUN)
    run["scenarios"][0]["name"] = "a|b"
    assert "| a\\|b |" in report.markdown(run)


def test_markdown_shows_control_characters_escaped():
    md = report.markdown(RUN)
    assert "\x00" not in md and "\x1b" not in md and "\\x00\\x1b" in md


def test_markdown_pass_verdict():
    md = report.markdown(_run("robust", ["pass", "pass"]))
    assert md.splitlines()[2].startswith("**PASS**") and "all 2 scenarios" in md


def test_markdown_caps_long_violation_lists():
    many = [_violation("lost", f"e{i}", "gone") for i in range(50)]
    md = report.markdown({"target": "t", "seed": 1, "scenarios": [_scenario("x", "fail",
                                                                            many)]})
    assert "and 30 more" in md and "`e49`" not in md


# -- write_all and explain ----------------------------------------------------------------


def test_write_all_writes_three_files(tmp_path):
    paths = report.write_all(RUN, tmp_path / "reports", "run-robust")
    assert sorted(p.name for p in paths.values()) == ["run-robust.json", "run-robust.md",
                                                      "run-robust.xml"]
    assert all(p.exists() for p in paths.values())


def test_explain_says_what_was_lost_and_how_to_replay():
    text = report.explain(RUN)
    assert "lost 2 entries (e17, e18)" in text
    assert "left 1 entry (e3) stuck" in text
    assert "No fault fired" in text
    assert "replay: harness run --target robust --scenario power-loss --seed 1" in text
    assert "No violation: nothing lost" in text and "delivered=40" in text
    assert "\x00" not in text and "\x1b" not in text and "\\x1b" in text


def test_violation_summary():
    assert report.violation_summary(RUN["scenarios"][1]) == "3 violations: lost=2 stuck=1"
    assert report.violation_summary(RUN["scenarios"][0]) == "0 violations"
