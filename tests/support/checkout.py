"""The checkout under test, for tests that read its files or start a child Python from it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root folder."""


def child_env(folders: Sequence[str] = ("server", "client")) -> dict[str, str]:
    """This process's environment, with ``PYTHONPATH`` set to ``folders`` of this checkout,
    so that a child Python imports this checkout's code."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / f) for f in folders)}
