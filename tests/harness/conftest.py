"""Fixtures shared by the harness tests: a sandbox on both filesystems, and made temp dirs."""

from __future__ import annotations

import tempfile

import pytest


@pytest.fixture(params=["real", "pyfakefs"])
def sandbox(request, tmp_path):
    """A sandbox directory on the real disk, then the same tests under pyfakefs."""
    if request.param == "real":
        path = tmp_path / "sandbox"
        path.mkdir()
        return str(path)
    # Through pyfakefs's own API: this conftest's `os` is not one pyfakefs patches, and
    # os.makedirs here would create a real /sandbox.
    request.getfixturevalue("fs").create_dir("/sandbox")
    return "/sandbox"


@pytest.fixture
def made_dirs(monkeypatch):
    """Every directory tempfile.mkdtemp makes during the test (scratch roots are shared
    with other test workers, so a test follows its own dirs, not the whole folder)."""
    made: list[str] = []
    real_mkdtemp = tempfile.mkdtemp

    def recording_mkdtemp(*args, **kwargs):
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    return made
