"""Run every standalone reproduction here and print one line each: confirmed or not, and seconds.

Each script exits 1 when the library misbehaves as described (like a failing test), 0 when
it did not reproduce, anything else when it could not run (no root, no strace).
Run with an interpreter that has queuelib, dirq, huey and femtoqueue installed:
    python examples/repro/run_all.py
"""

import subprocess
import sys
import time
from pathlib import Path

here = Path(__file__).resolve().parent
failed_to_run = 0
for script in sorted(here.glob("*.py")):
    if script.name.startswith("_") or script.name == Path(__file__).name:
        continue
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    took = time.perf_counter() - started
    verdict = {1: "CONFIRMED", 0: "not reproduced"}.get(done.returncode, "could not run")
    if script.name == "syscalls.py":
        verdict = "trace" if done.returncode == 0 else "could not run"
    failed_to_run += verdict == "could not run"
    last = (done.stdout.strip().splitlines() or done.stderr.strip().splitlines() or [""])[-1]
    print(f"{verdict:15} {took:5.1f}s  {script.name}: {last[:110]}")
sys.exit(1 if failed_to_run else 0)
