"""Target resolution: built-in names, MODULE:CALLABLE, and errors that say what to do."""

from __future__ import annotations

import pytest

from harness.run.targets import BUILTIN, TargetError, check_queue, resolve


def test_builtin_names_open_queues(tmp_path):
    for name in BUILTIN:
        q = resolve(name)(str(tmp_path / name))
        check_queue(q, name)
        q.close()


def test_module_callable_is_resolved_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "myqueue_for_test.py").write_text("def open_queue(d):\n    return d\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", ".")])
    assert resolve("myqueue_for_test:open_queue")("x") == "x"


@pytest.mark.parametrize("spec, words", [
    ("nonsense", "MODULE:CALLABLE"),
    ("no_such_module_zz:open", "cannot import"),
    ("json:no_such_attr", "no attribute"),
    ("json:__doc__", "expected a callable"),
])
def test_bad_targets_name_the_value_and_what_to_do(spec, words):
    with pytest.raises(TargetError) as info:
        resolve(spec)
    assert spec in str(info.value) and words in str(info.value)


def test_a_queue_missing_contract_methods_is_refused_by_name():
    class Half:
        def enqueue(self, payload):
            return "1"

    with pytest.raises(TargetError, match="claim, ack, recover, close"):
        check_queue(Half(), "x:y")


def test_the_repair_of_a_target_is_its_modules_repair_or_the_builtin_one(tmp_path, monkeypatch):
    import persistence
    from harness.run.targets import repair_for

    (tmp_path / "withrepair_for_test.py").write_text(
        "def open_queue(d):\n    return d\n\ndef repair(d):\n    return 'fixed ' + d\n")
    (tmp_path / "norepair_for_test.py").write_text("def open_queue(d):\n    return d\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fixable = resolve("withrepair_for_test:open_queue")
    assert repair_for("withrepair_for_test:open_queue", fixable)("q") == "fixed q"
    assert repair_for("norepair_for_test:open_queue",
                      resolve("norepair_for_test:open_queue")) is None
    assert repair_for("legacy", resolve("legacy")) is None
    calls = []
    monkeypatch.setattr(persistence, "salvage", lambda d: calls.append(d) or "report")
    assert repair_for("robust", resolve("robust"))("q") == "report" and calls == ["q"]
