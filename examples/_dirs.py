"""Create an adapter's queue directory durably, so that a verdict judges the library.

litequeue and huey take a database *file* name and leave its directory to the caller;
the adapters here are that caller. A directory made with ``os.makedirs`` alone is, after
a power loss, only as durable as its parent's directory entries, which nothing fsynced
(the harness's crash model, rule 2: docs/harness-design.md). Losing it would lose every
entry of the queue for a reason that is the adapter's, not the library's; so the adapter
fsyncs the parent of each level it created, as a careful application would.
"""

from __future__ import annotations

import os

__all__ = ["durable_makedirs"]


def durable_makedirs(directory: str) -> None:
    """``os.makedirs(directory, exist_ok=True)``, then each new level's parent fsynced."""
    missing = []
    path = os.path.abspath(directory)
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    for made in reversed(missing):
        fd = os.open(os.path.dirname(made), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
