"""Fixtures shared by the shim's tests."""

from __future__ import annotations

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
