"""What each library asks of the kernel for one enqueue and one dequeue, traced with strace.

Confirms at the syscall level what the power-loss findings rest on (a power cut itself
cannot be reproduced on this machine): which calls fsync a file or a directory, and in
what order relative to the writes and renames. Needs strace. Prints, per library, the
file calls on the queue directory in order, then a one-line verdict.
Run: python examples/repro/syscalls.py
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

PROGRAMS = {
    "queuelib 1.10.0 FifoDiskQueue": (
        "from queuelib import FifoDiskQueue; q = FifoDiskQueue(D); q.push(b'payload'); "
        "q.close(); q = FifoDiskQueue(D); q.pop(); q.push(b'other'); q.close()"),
    "dirq 1.8 QueueSimple": (
        "from dirq.QueueSimple import QueueSimple; q = QueueSimple(D); n = q.add(b'payload'); "
        "q.lock(n); q.get(n); q.remove(n)"),
    "huey 3.5.4 FileStorage": (
        "from huey.storage import FileStorage; s = FileStorage('t', D); s.enqueue(b'payload'); "
        "s.dequeue()"),
    "femtoqueue 0.4.2 (sync_after_write=True)": (
        "from femtoqueue import FemtoQueue; q = FemtoQueue(D, node_id='n', sync_after_write=True); "
        "t = q.push(b'payload'); q.done(q.pop())"),
}
CALLS = "openat,write,fsync,fdatasync,rename,renameat,renameat2,link,linkat,unlink,unlinkat"

if shutil.which("strace") is None:
    sys.exit("needs strace")
for name, program in PROGRAMS.items():
    root = tempfile.mkdtemp(prefix="repro-trace-")
    qdir = os.path.join(root, "q")
    trace = subprocess.run(
        ["strace", "-f", "-y", "-qq", "-e", f"trace={CALLS}", sys.executable, "-c",
         f"D = {qdir!r}; " + program], capture_output=True, text=True)
    lines = [re.sub(r"^\[pid +\d+\] ", "", ln) for ln in trace.stderr.splitlines()
             if qdir in ln and "O_DIRECTORY" not in ln or ln.startswith(("fsync", "fdatasync"))]
    lines = [re.sub(r"AT_FDCWD<[^>]*>, ", "", ln.replace(root, "")) for ln in lines]
    print(f"== {name}")
    for ln in lines:
        print("   ", ln[:150])
    syncs = [ln for ln in lines if ln.startswith(("fsync", "fdatasync"))]
    dir_syncs = [ln for ln in syncs if re.search(r"<[^>]*/q(/[a-z]+)?>", ln)]
    late = [ln for i, ln in enumerate(lines) if ln.startswith("write(") and any(
        s.startswith(("fsync", "fdatasync")) and s.split(">")[0].split("<")[1] in ln
        for s in lines[:i])]
    print(f"   -> {len(syncs)} fsync/fdatasync call(s), {len(dir_syncs)} of a directory"
          + (f"; {len(late)} write(s) issued after the fsync of their file" if late else "")
          + "\n")
    shutil.rmtree(root, ignore_errors=True)
