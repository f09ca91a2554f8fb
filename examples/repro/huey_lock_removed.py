"""huey 3.5.4 FileStorage: once its lock file is removed, two enqueues can write one file.

Every operation flocks ``<dir>/.lock``, opened with O_CREAT each time. If something
removes ``.lock`` (a tmp cleaner, an operator) while a process holds it, the next process
creates a new ``.lock`` inode and gets its flock at once: no exclusion. ``enqueue`` names
its file by the millisecond and checks ``exists()`` before ``open(..., "wb")``, so two
enqueues in the same millisecond pick the same name and one task overwrites (or
interleaves with) the other, while both calls return ok. Here two producers enqueue
numbered tasks for 3 s while a third process unlinks ``.lock`` in a loop; then every
task is dequeued and compared with what was enqueued. ``--control`` runs the same
without removing ``.lock`` (nothing is lost then). Run:
python examples/repro/huey_lock_removed.py [--control]
"""

import os
import shutil
import sys
import tempfile
import time

from huey.storage import FileStorage

SECONDS = 0.4  # a few thousand tasks: dequeue lists the directory each time
CONTROL = "--control" in sys.argv  # the same run without removing .lock
root = tempfile.mkdtemp(prefix="repro-huey-lock-")
path = os.path.join(root, "s")
FileStorage("repro", path)  # make the directory first: no constructor race here
r, w = os.pipe()
producers = []
for who in (b"a", b"b"):
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        s, n, end = FileStorage("repro", path), 0, time.monotonic() + SECONDS
        while time.monotonic() < end:
            s.enqueue(b"%s-%08d" % (who, n))
            n += 1
        os._exit(0)  # what it enqueued is read back from the numbers
    producers.append((who, pid))
remover = os.fork()
if remover == 0:
    os.close(w)
    os.read(r, 1)
    end = time.monotonic() + SECONDS
    while time.monotonic() < end and not CONTROL:
        try:
            os.unlink(os.path.join(path, ".lock"))
        except FileNotFoundError:
            pass
    os._exit(0)
os.close(r)
os.close(w)
for _, pid in producers:
    os.waitpid(pid, 0)
os.waitpid(remover, 0)
s = FileStorage("repro", path)
got = []
while (task := s.dequeue()) is not None:
    got.append(task)
shutil.rmtree(root, ignore_errors=True)
bad = [t for t in got if len(t) != 10]
per = {who: sorted(int(t[2:]) for t in got if len(t) == 10 and t[:1] == who)
       for who, _ in producers}
# each producer enqueued 0..last with every call returning ok: a gap is a lost task
lost = sum((max(v) + 1 - len(set(v))) if v else 0 for v in per.values())
print(f"dequeued {len(got)} tasks; {len(bad)} malformed; {lost} missing from the sequences")
if bad or lost:
    print(f"CONFIRMED: with .lock removed, {lost} acknowledged enqueues lost and {len(bad)} "
          "tasks malformed")
    sys.exit(1)
print("not reproduced")
