"""The pytest plugin: fault tests in your own suite, the way pyfakefs gives you ``fs``.

Installed with this project (entry point ``pytest11``, name ``harness``; disable with
``-p no:harness``). It adds:

- fixture ``fault_shim``: a function ``fault_shim(*faults, sandbox=None, seed=None)``
  that installs a plan around the rest of the test and returns a
  `harness.intercept.inject.Injection` (``.processor(0)`` to run code as processor 0, ``.run(fn)``,
  ``.history``, ``.faults_fired``, ``.killed``, ``.restart()``, ``.heal()``). With no
  faults it takes those of the ``faults`` marker; the sandbox defaults to ``tmp_path``.
- fixture ``queue_target``: the target of ``--harness-target`` (or the
  ``harness_target`` marker; default ``robust``): a factory, not a queue. Its
  ``.open(directory=None)`` opens a queue (in ``tmp_path/q`` by default) and may be
  called again to reopen after a kill; every queue it opened is closed at teardown. Open
  inside ``shim.processor(p)`` for faults to reach the queue's files: the shim sees only
  files opened while it is installed.
- fixture ``opened_queue``: a queue of that target, opened in ``tmp_path/q`` before the
  test and closed after it; for tests that need a queue and no faults (it is opened
  before any ``fault_shim()`` call, so a fault plan cannot reach its files).
- marker ``@pytest.mark.faults(DiskFull(after_bytes=10), ...)`` (fault objects or
  scenario-style dicts) and marker ``@pytest.mark.harness_target("mymod:open_queue")``.
- option ``--harness-seed N``: the seed of every ``fault_shim`` (default 1); a failing
  test's report names the plan, the seed and what fired.

Thin on purpose: the logic is in `harness.intercept.inject` and `harness.run.targets`. Nothing from
harness is imported until a test asks for a fixture, so the plugin costs other suites
nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

__all__ = ["QueueTarget", "fault_shim", "opened_queue", "queue_target"]

_INJECTION = pytest.StashKey[Any]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "fault injection (queue-chaos harness)")
    group.addoption("--harness-seed", type=int, default=None, metavar="N",
                    help="seed of every fault_shim plan (default: 1)")
    group.addoption("--harness-target", default=None, metavar="SPEC",
                    help="the target of queue_target and opened_queue: robust, legacy or "
                    "MODULE:CALLABLE "
                    "(default: robust, or the harness_target marker)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults(*faults): the fault plan fault_shim() installs "
                            "when called without faults")
    config.addinivalue_line("markers", "harness_target(spec): the target of queue_target and "
                            "opened_queue (MODULE:CALLABLE or a built-in name)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    injection = item.stash.get(_INJECTION, None)
    if injection is not None and report.failed:
        report.sections.append(("harness", injection.summary()))
    return report


@pytest.fixture
def fault_shim(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """Install a fault plan for the rest of the test; returns the `Injection` handle."""
    from harness.intercept.inject import injected

    stack = contextlib.ExitStack()
    seed_option = request.config.getoption("--harness-seed")

    def install(*faults: Any, sandbox: Any = None, seed: int | None = None) -> Any:
        if not faults:
            marker = request.node.get_closest_marker("faults")
            faults = tuple(marker.args) if marker is not None else ()
        chosen = seed if seed is not None else seed_option if seed_option is not None else 1
        injection = stack.enter_context(
            injected(*faults, sandbox=sandbox if sandbox is not None else tmp_path,
                     seed=chosen))
        request.node.stash[_INJECTION] = injection
        return injection

    with stack:
        yield install


_QUEUE_METHODS = frozenset({"enqueue", "claim", "ack", "fail", "recover", "close", "states"})


class QueueTarget:
    """A resolved target, i.e. a queue factory: ``open()`` a queue in the test's directory;
    every queue it opened is closed at teardown."""

    def __init__(self, spec: str, factory: Callable[[str], Any], directory: str) -> None:
        self.spec = spec
        self.factory = factory
        self.directory = directory
        self._opened: list[Any] = []

    def open(self, directory: str | None = None) -> Any:
        """Open the target's queue (on ``directory``, default ``tmp_path/q``)."""
        from harness.run.targets import check_queue

        queue = self.factory(directory or self.directory)
        check_queue(queue, self.spec)
        self._opened.append(queue)
        return queue

    def __getattr__(self, name: str) -> Any:
        # Only reached for a missing attribute: a queue method asked of the factory is the
        # mistake the old documentation invited, so say what to do instead.
        if name in _QUEUE_METHODS:
            raise AttributeError(
                f"queue_target is the target {self.spec!r}, a queue factory, not a queue: "
                f"call queue_target.open() for a queue (inside shim.processor(...) for faults "
                f"to reach it), or ask for the opened_queue fixture ({name!r} is a method of "
                "the queue)", name=name, obj=self)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}",
                             name=name, obj=self)

    def _close_all(self) -> None:
        for queue in reversed(self._opened):
            # a queue a fault already broke may refuse to close; teardown goes on
            with contextlib.suppress(Exception):
                queue.close()


@pytest.fixture
def queue_target(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[QueueTarget]:
    """The target of ``--harness-target`` or the ``harness_target`` marker (default robust):
    a factory; ``queue_target.open()`` opens a queue, closed at teardown."""
    from harness.run.targets import resolve

    marker = request.node.get_closest_marker("harness_target")
    spec = (marker.args[0] if marker is not None and marker.args
            else request.config.getoption("--harness-target") or "robust")
    target = QueueTarget(spec, resolve(spec), str(tmp_path / "q"))
    yield target
    target._close_all()


@pytest.fixture
def opened_queue(queue_target: QueueTarget) -> Any:
    """A queue of the target, opened in ``tmp_path/q`` (no fault plan reaches it); closed
    at teardown by ``queue_target``."""
    return queue_target.open()
