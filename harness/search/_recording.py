"""One fault-free recording run of explore's single-processor workload, with a hook at every op.

The workload is a seeded program of queue calls on one processor whose queue depth
stays between 0 and `MAX_DEPTH` (an enqueue, or a claim followed by its ack), so what
the final drain has to deliver, and so the cost of one explored state, does not grow
with the workload. `Recording` runs it under the shim with itself as the plan: its
``decide`` sees every intercepted call before it happens, brings the `Ledger` (and, for
crash faults, the `Camera`) up to date and asks the hook whether to act; it never
injects anything on its own. After the workload the run is drained and checked like
any other: that is the run that injects nothing, where an exhaustive search stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from harness.check.history import DRAIN, History
from harness.check.ledger import Ledger
from harness.faults.durability import DurabilityModel
from harness.intercept.shim import installed
from harness.run.client import Client
from harness.run.runner import drain_queue
from harness.run.schedule import Step
from harness.search._snapshot import Camera

__all__ = ["MAX_DEPTH", "Recording", "StopWorkload", "Steps", "quiet_logs", "scratch_root",
           "workload"]

MAX_DEPTH = 3
"""Most entries ever waiting in explore's queue."""

QUEUE_DIR = "q"


def workload(calls: int, rng: random.Random, payload_max: int = 48) -> list[Step]:
    """A single processor's program of about ``calls`` queue calls (enqueue, claim, ack)."""
    steps: list[Step] = []
    made = depth = n = 0
    while made < calls:
        if depth == 0 or (depth < MAX_DEPTH and rng.random() < 0.5) or made + 1 >= calls:
            n += 1
            key = f"e{n}"
            body = rng.randbytes(rng.randint(0, payload_max))
            steps.append(Step("enqueue", key, key.encode("ascii") + b"|" + body))
            depth, made = depth + 1, made + 1
        else:
            steps += [Step("claim"), Step("ack")]
            depth, made = depth - 1, made + 2
    return steps


def scratch_root() -> tuple[str, str]:
    """Where explore keeps sandboxes: tmpfs (fsync costs nothing) when there is one."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return shm, "tmpfs /dev/shm"
    return tempfile.gettempdir(), f"{tempfile.gettempdir()} (no writable /dev/shm)"


@contextlib.contextmanager
def quiet_logs() -> Iterator[list[str]]:
    """Keep the target's warnings off the terminal (thousands of states each log them)."""
    seen: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if len(seen) < 3:
                seen.append(f"{record.levelname.lower()} from {record.name}: "
                            f"{record.getMessage()[:120]}")

    root = logging.getLogger()
    handler = _Keep(level=logging.WARNING)
    root.addHandler(handler)
    try:
        yield seen
    finally:
        root.removeHandler(handler)


class StopWorkload(BaseException):  # noqa: N818 - a signal to the driver, not an error
    """The call that saw the injected error is over: explore stops the workload here."""


class Steps:
    """Stands in for the baton with one processor: it only says when to stop (once
    ``stop`` is set, after ``more`` further steps)."""

    def __init__(self) -> None:
        self.stop = False
        self.more = 0

    def begin_call(self, p: int) -> None:
        pass

    def end_call(self, p: int) -> None:
        pass

    def idle_point(self, p: int) -> None:
        if self.stop and self.more > 0:
            self.more -= 1
        elif self.stop:
            raise StopWorkload

    @contextlib.contextmanager
    def exclusive(self, p: int) -> Iterator[None]:
        yield


Hook = Callable[["Recording", Any], Any]


class Recording:
    """The recording run; also the shim's plan, so it sees each call before it happens."""

    def __init__(self, *, target: str, factory: Callable[[str], Any], program: list[Step],
                 root: str, hook: Hook, camera: bool = False, model: bool = False) -> None:
        self.target, self.factory, self.program = target, factory, program
        self.history = History()
        self.ledger = Ledger(self.history)
        self.hook = hook
        self.want_camera = camera
        self.want_model = model or camera  # the camera pictures the model's durable image
        self.camera: Camera | None = None
        self.sandbox = tempfile.mkdtemp(prefix="harness-explore-", dir=root)
        self.queue_dir = os.path.join(self.sandbox, QUEUE_DIR)
        self.steps = Steps()
        self.shim: Any = None
        self.previous: Any = None
        self.fired = 0
        self.ops = 0
        self.drain_problem: str | None = None
        self.stopped = False
        self.done: Callable[[Recording], None] | None = None
        self.before_drain: Callable[[Any], None] | None = None  # given the shim

    # -- the plan protocol (the shim calls decide before every call of processor 0)

    def decide(self, call: Any) -> Any:
        if self.camera is not None:
            self.camera.before(self.previous)
        self.previous = call
        return self.hook(self, call)

    def heal(self) -> None:
        pass

    # -- the run

    def run(self) -> None:
        """Workload, then drain; the sandbox is removed whatever happens."""
        model = None
        try:
            with installed(sandbox=self.sandbox, history=self.history, plan=self,
                           rng=random.Random(0), scheduler=None) as shim:
                self.shim = shim
                if self.want_model:
                    model = DurabilityModel(self.sandbox, shim.real)
                    model.snapshot_all()
                    shim.model = model
                if self.want_camera:
                    self.camera = Camera(self.sandbox, shim.real, model)
                client = Client(process=0, factory=self.factory, target=self.target,
                                directory=self.queue_dir, history=self.history, shim=shim,
                                baton=self.steps)
                try:
                    with shim.processor(0):
                        client.run(self.program)
                except StopWorkload:
                    self.stopped = True
                if self.camera is not None:
                    self.camera.after_last(self.previous)
                self.ops = shim.ops
                self.finish(shim)
                if self.done is not None:
                    self.done(self)  # a forked state reports and exits here
        finally:
            if model is not None:
                model.close()
            shutil.rmtree(self.sandbox, ignore_errors=True)

    def finish(self, shim: Any) -> None:
        """Every processor stops, then the final drain, as the runner does it."""
        plan = shim.plan
        if plan is not self and plan is not None:
            plan.heal()
        if self.before_drain is not None:
            self.before_drain(shim)
        shim.kill_all("every processor stops before the final drain")
        drain = Client(process=DRAIN, factory=self.factory, target=self.target,
                       directory=self.queue_dir, history=self.history, shim=shim, baton=None)
        shim.revive(DRAIN)
        with shim.processor(DRAIN):
            self.drain_problem = drain_queue(drain, self.history, bound=4 * len(self.program) + 10)
