"""The unit tier holds to its word: a test here that starts a server or QEMU fails, in its own
process and in any Python process it starts (tier/sitecustomize.py)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from unit.tier import sitecustomize as guard

GUARD = Path(guard.__file__).parent


@pytest.fixture(autouse=True)
def unit_tier(monkeypatch):
    guard.install(monkeypatch.setattr)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (str(GUARD), os.environ.get("PYTHONPATH")))))
