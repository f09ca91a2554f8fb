"""Thread mode: a scenario run in threads of this process, interleaved by the seeded baton.

One run, in order:

1. a fresh sandbox directory; the queue lives at ``<sandbox>/q`` (not created:
   the target creates it);
2. the shim installed with the scenario's armed plan, the durability model
   and the baton; one thread per processor runs its seeded program through a
   `Client`; crashes restart processors as the client describes;
3. every fault healed, every processor closed, then the final drain as
   process ``DRAIN``: open, ``recover()``, claim + ack until the queue is
   empty, ``states()``;
4. the checker's verdict on the history; observations (failed file calls,
   files left behind) for people; the sandbox removed, whatever happened.

All randomness derives from the scenario's seed through named streams
(`harness.run._scenariorun.stream`), so one stream's consumption never shifts another's:
the same seed gives the same history. The one backend with threads; the runner
(`harness.run.runner`) picks it or process mode (`harness.run.processes`).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from harness.check import checker
from harness.check.history import DRAIN
from harness.check.outcome import harness_error, never_ran, refused_open
from harness.check.words import count
from harness.faults import damage as _damage
from harness.faults.durability import DurabilityModel
from harness.intercept.shim import DeadlockError, RunStopped, installed
from harness.run import hung as _hung
from harness.run._observe import LogCapture, leftovers, observe_fs, retention, with_blocked
from harness.run._scenariorun import JOIN_TIMEOUT_S, QUEUE_DIR, ScenarioRun, platform_of, stream
from harness.run.client import Client, DrainProblem
from harness.run.reaper import deferred, interruptible, make_sandbox, remove_sandbox
from harness.run.schedule import Baton, OpBudgetExceeded, workload_programs
from harness.run.targets import TargetError, resolve

__all__ = ["run_scenario"]


def run_scenario(target: str, scenario: Any, *, seed: int | None = None,
                 factory: Callable[[str], Any] | None = None,
                 schedule_rng: random.Random | None = None,
                 platform: str | None = None, timeout: float | None = None) -> ScenarioRun:
    """Run one scenario in threads; never raises for target misbehaviour.

    ``schedule_rng`` replaces the seeded stream the baton draws its interleaving from
    (hypothesis passes one it controls, so a race shrinks to its smallest interleaving).
    ``platform`` (default: the scenario's own) is ``"linux"`` or ``"windows"``.
    ``timeout`` (default: the scenario's own, else `JOIN_TIMEOUT_S`): seconds the
    workload, and again the final drain, may take (`harness.run.hung`).
    """
    timeout = timeout or getattr(scenario, "timeout", None) or JOIN_TIMEOUT_S
    seed = scenario.seed if seed is None else seed
    run = ScenarioRun(target=target, scenario=scenario, seed=seed)
    run.platform = platform_of(scenario, platform)
    factory = factory or resolve(target)
    wl = scenario.workload
    concurrency = scenario.plan.concurrency
    nproc = max(wl.processors, concurrency.processors if concurrency else 1)
    run.processors = nproc
    if not run.adopt_promises(factory):
        return run
    progs = workload_programs(wl, nproc, stream(seed, "workload"))
    baton = Baton(schedule_rng or stream(seed, "schedule"), list(range(nproc)),
                  mid_call=concurrency.switch_probability if concurrency else 0.0,
                  max_ops=wl.max_ops)
    armed = scenario.plan.arm(stream(seed, "faults"))
    sandbox = make_sandbox()
    queue_dir = os.path.join(sandbox, QUEUE_DIR)
    started = time.perf_counter()
    logs = LogCapture()
    root_logger = logging.getLogger()
    root_logger.addHandler(logs)
    errors: list[str] = []
    blocked: list[tuple[str, str]] = []  # (who, why) could never finish
    model: DurabilityModel | None = None
    try:
        # SIGTERM as well as SIGINT unwinds through here: the sandbox goes in `finally`.
        with interruptible(), installed(sandbox=sandbox, history=run.history, plan=armed,
                                        rng=stream(seed, "disk"), scheduler=baton,
                                        platform=run.platform) as shim:
            model = DurabilityModel(sandbox, shim.real)
            model.snapshot_all()
            shim.model = model

            def processor_main(p: int) -> None:
                client = Client(process=p, factory=factory, target=target,
                                directory=queue_dir, history=run.history, shim=shim, baton=baton)
                baton.enter(p)
                try:
                    with shim.processor(p):
                        client.run(progs[p])
                except DeadlockError as exc:
                    blocked.append((f"processor {p}",
                                    f"processor {p} could never finish its call: {exc}"))
                    shim.kill(p, "blocked for good")
                except OpBudgetExceeded as exc:
                    blocked.append((f"processor {p}", _hung.budget_sentence(run.history, exc)))
                    shim.kill(p, "blocked for good")
                except (_hung.Abandoned, RunStopped):
                    pass  # the run is over: its verdict is said already, or it has none
                except BaseException as exc:  # noqa: BLE001 - reported, the run goes on
                    errors.append(f"processor {p}: {type(exc).__name__}: {exc}")
                finally:
                    baton.finish(p)

            threads = [threading.Thread(target=processor_main, args=(p,), daemon=True,
                                        name=f"harness-p{p}") for p in range(nproc)]
            try:
                for t in threads:
                    with deferred():  # a thread started half is one nobody can join
                        t.start()
                deadline = time.monotonic() + timeout
                for t in threads:
                    _hung.join(t, deadline - time.monotonic())
            except BaseException:
                # Interrupted: the processors stop before the shim goes and the sandbox is
                # removed, or one would go on on the real disk and re-create it. Stopped,
                # not killed: a killed processor restarts.
                baton.stop()
                shim.stop("run interrupted")
                _hung.stop_threads(threads)
                raise
            if any(t.is_alive() for t in threads):
                hung, why = _hung.give_up(threads, baton, run.history, timeout)
                blocked += hung
                errors += why
                baton.stop()
                shim.kill_all("run abandoned: a processor hung")
            run.ops = shim.ops
            _damage.at_rest(shim, "drain")  # Corruption(before="drain"): nobody is in a call
            armed.heal()
            shim.kill_all("every processor stops before the final drain")
            if "stale_locks" in scenario.checks:
                stale = leftovers(queue_dir, ("*.lock", "*.lck", "lock"))
                run.observations.append(
                    "lock files present while no processor runs: " + (", ".join(stale) or "none"))
            drain = Client(process=DRAIN, factory=factory, target=target, directory=queue_dir,
                           history=run.history, shim=shim, baton=None)
            shim.revive(DRAIN)
            shim.drain_budget = wl.max_ops

            def drain_main() -> str | None:
                with shim.processor(DRAIN):
                    try:
                        return drain.drain(bound=4 * wl.entries + 10)
                    except OpBudgetExceeded as exc:
                        return DrainProblem(_hung.budget_sentence(run.history, exc, healed=True),
                                            kind="stuck")

            # in a thread of its own, so a drain that never returns cannot hang the harness
            problem, hung = _hung.bounded(drain_main, timeout, run.history, DRAIN,
                                          stop=shim.stop)
            problem = problem or (hung and DrainProblem(hung, kind="stuck"))
            if problem:
                # Every fault is healed: a queue that cannot be drained now never recovers.
                blocked.append(("queue", problem))
        run.faults_fired = armed.fired + (baton.mid_call_switches if concurrency else 0)
        run.count_firings(armed, baton.mid_call_switches)
        run.platform_refusals = shim.platform_refusals
        _platform_notes(run, shim.platform_refusals, shim.windows.copied if shim.windows else 0)
        run.result = with_blocked(checker.check(run.history), blocked,
                                  tuple(repr(f) for f in scenario.plan.faults))
        # not a verdict about the target: the harness broke, or nothing was exercised
        run.error = (harness_error(shim.harness_errors) or refused_open(run.history)
                     or never_ran(run.history, run.result.valid))
        run.observations[:0] = observe_fs(run.history)
        if "retention" in scenario.checks:
            run.observations.append(retention(run.history))
    except TargetError as exc:
        run.error = str(exc)
    finally:
        with deferred():  # an interrupt now waits for the cleanup
            if model is not None:
                model.close()
            root_logger.removeHandler(logs)
            remove_sandbox(sandbox)
            run.duration_s = time.perf_counter() - started
    run.observations.extend(logs.summary())
    if errors and run.error is None:
        run.error = "; ".join(errors)
    if run.unfired:
        run.observations.append("never fired: " + ", ".join(run.unfired))
    return run


def _platform_notes(run: ScenarioRun, refused: int, copied: int) -> None:
    """``--platform windows``: the run says so, and how often Windows said no."""
    if run.platform == "linux":
        return
    run.observations.append(
        f"platform {run.platform}: the shim applied its file semantics; it refused "
        f"{count(refused, 'call')} (not faults of the scenario: see the EACCES/EEXIST lines)"
        + (f"; shutil.move fell back to copy + delete {count(copied, 'time')}" if copied
           else ""))
