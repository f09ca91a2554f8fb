"""femtoqueue 0.4.2: a live node's task is taken as "stale" by its age since enqueue, not claim.

``_release_stale_tasks`` reads a task's age from its file name, which is its enqueue time.
So a task that waited in ``pending/`` longer than ``timeout_stale_ms`` is stale the moment
a node pops it: the next ``pop`` of any other node moves it back to pending and hands it
out again while the first node is still working on it, and the first node's ``done`` then
fails. With the default 30 s timeout that is any backlog older than 30 s. Shown with a
100 ms timeout and a task that waited 200 ms (nodes started on an empty queue, so
their clocks follow the wall clock).
Run: python examples/repro/femtoqueue_stale_from_enqueue_time.py
"""

import subprocess
import sys
import tempfile
import time

from femtoqueue import FemtoQueue

root = tempfile.mkdtemp(prefix="repro-femto-")
producer = FemtoQueue(root, node_id="producer")   # long-lived nodes, started together
a = FemtoQueue(root, node_id="a", timeout_stale_ms=100)
b = FemtoQueue(root, node_id="b", timeout_stale_ms=100)
producer.push(b"a job")
time.sleep(0.2)                                   # a backlog: the task waits in pending/
task_a = a.pop()
print("node a popped", task_a and task_a.data, "and starts working on it (0 ms ago)")
task_b = b.pop()
print("node b popped", task_b and task_b.data)
try:
    a.done(task_a)
    print("node a: done ok")
except Exception as exc:  # femtoqueue raises a bare Exception here
    print("node a: done raised:", exc)
subprocess.run(["rm", "-rf", root], check=False)
if task_a is not None and task_b is not None and task_a.id == task_b.id:
    print("CONFIRMED: the same task was handed to node b while node a held it for 0 ms")
    sys.exit(1)
print("not reproduced")
