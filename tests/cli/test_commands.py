"""The ``llm-router`` command: its help, ``route`` and ``watch`` against a real server."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import server_env


@pytest.mark.parametrize("command", [[], ["serve"], ["route"], ["health"]])
def test_cli_help(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llm_router_server", *command, "--help"],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert "usage: llm-router" in result.stdout
