"""How a target's calls are seen: the Python shim, its patches, descriptors and file objects.

Role (Jepsen's nemesis, the hands half; SQLite's test VFS): `shim` intercepts the file
calls a target makes through Python (``os``, ``open``, ``shutil``, ``fcntl.flock``,
``time.sleep``) inside a sandbox, records each one in the history, asks the armed fault
plan what to do and carries it out (on the disk through `harness.faults`' durability
model and damage helpers). `_patches` and `_callpatches` are the patch table,
`_shimfds` the descriptor table and flock emulation, `_shimfile` the file objects,
`_shimacts` what a fired fault does, `shimerrors` the exceptions every layer raises
(``ProcessorKilled``, ``RunStopped``, ``HarnessError``, ``OpBudgetExceeded``), and
`inject` the same shim around any block of code (the pytest plugin's).

The second interception layer sits here beside the shim: `fusefs` is a FUSE filesystem
(a passthrough to a backing directory, for ``--layer fuse``) and `fusegate` its judgement
of each call of every process: whose it is, its number, the same `harness.faults` plan's
answer carried out, and the same records for the `harness.check` history. Its server
process and mount are started by `harness.run._fusemount`.

May import: `harness.check`, `harness.faults`.
"""

from harness.intercept.inject import Injection, injected, plan_of
from harness.intercept.shim import (
    DeadlockError,
    HarnessError,
    ProcessorKilled,
    RunStopped,
    Shim,
    ShimError,
    installed,
)

__all__ = ["DeadlockError", "HarnessError", "Injection", "ProcessorKilled", "RunStopped",
           "Shim", "ShimError", "injected", "installed", "plan_of"]
