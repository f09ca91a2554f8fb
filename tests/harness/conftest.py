"""Fixtures shared by the shim's tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(params=["real", "pyfakefs"])
def sandbox(request, tmp_path):
    """A sandbox directory on the real disk, then the same tests under pyfakefs."""
    if request.param == "real":
        path = tmp_path / "sandbox"
        path.mkdir()
        return str(path)
    request.getfixturevalue("fs")
    os.makedirs("/sandbox")
    return "/sandbox"
