"""Shared fixtures: a queue in a private tmp dir, and a spy on the OS calls."""

from __future__ import annotations

import os

import pytest

from persistence import open_queue


@pytest.fixture
def qdir(tmp_path):
    return str(tmp_path / "q")


@pytest.fixture
def queue(qdir):
    q = open_queue(qdir)
    yield q
    q.close()


class Spy:
    """Records (call, path) for file calls, resolving fds to the paths they opened."""

    def __init__(self, monkeypatch):
        self.calls: list[tuple[str, str]] = []
        self.fds: dict[int, str] = {}
        real = {n: getattr(os, n) for n in ("open", "write", "fsync", "replace", "ftruncate",
                                            "unlink", "close")}

        def opened(path, flags, mode=0o777, **kw):
            fd = real["open"](path, flags, mode, **kw)
            self.fds[fd] = os.fsdecode(path)
            self.calls.append(("open", os.fsdecode(path)))
            return fd

        def on_fd(name):
            def call(fd, *args):
                self.calls.append((name, self.fds.get(fd, "?")))
                return real[name](fd, *args)
            return call

        def replace(src, dst):
            self.calls.append(("replace", f"{os.fsdecode(src)} -> {os.fsdecode(dst)}"))
            return real["replace"](src, dst)

        def unlink(path):
            self.calls.append(("unlink", os.fsdecode(path)))
            return real["unlink"](path)

        monkeypatch.setattr(os, "open", opened)
        for name in ("write", "fsync", "ftruncate", "close"):
            monkeypatch.setattr(os, name, on_fd(name))
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "unlink", unlink)

    def names(self):
        """Calls with paths shortened to their basename (directories end in '/')."""
        out = []
        for call, path in self.calls:
            if os.path.isdir(path):
                path = os.path.basename(path) + "/"
            elif " -> " in path:
                src, dst = path.split(" -> ")
                path = f"{os.path.basename(src)} -> {os.path.basename(dst)}"
            else:
                path = os.path.basename(path)
            out.append((call, path))
        return out


@pytest.fixture
def spy(monkeypatch):
    return Spy(monkeypatch)
