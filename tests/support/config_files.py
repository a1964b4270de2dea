"""Configuration files written by a test and loaded the way the server loads them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from llm_router_server import config


def config_file(tmp_path: Path, text: str) -> Path:
    """``text`` written to ``tmp_path/llm-router.toml``."""
    path = tmp_path / "llm-router.toml"
    path.write_text(text)
    return path


def load_text(tmp_path: Path, text: str, env: Mapping[str, str] | None = None) -> config.Config:
    """The configuration ``text`` loaded with ``env`` as the environment (none by default)."""
    return config.load(config_file(tmp_path, text), env=dict(env or {}))
