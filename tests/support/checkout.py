"""The checkout under test, for tests that read its files or start a child process from it."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root folder."""

FAKE_ANTHROPIC_KEY = "sk-ant-test-key"
"""The Anthropic key a child process has: litellm wants one, no call leaves 127.0.0.1."""


def child_env(
    extra: Mapping[str, str | None] | None = None,
    *,
    folders: Sequence[str] = ("server", "client", "."),
) -> dict[str, str]:
    """The environment of a child process that runs this checkout's code (the server, the
    client, a test helper): this process's environment without its ``LLM_ROUTER_*``
    variables (a child reads only the configuration its test gives it), ``PYTHONPATH`` set to
    ``folders`` of this checkout, litellm offline and a fake Anthropic key; then ``extra``
    on top (a ``None`` value removes that variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_ROUTER_")}
    env["PYTHONPATH"] = os.pathsep.join(str(ROOT / folder) for folder in folders)
    env["LITELLM_OFFLINE_MODE"] = "true"
    env["ANTHROPIC_API_KEY"] = FAKE_ANTHROPIC_KEY
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env
