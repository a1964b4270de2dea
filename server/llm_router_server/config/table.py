"""The fail-fast reader of the TOML file: every error names its dotted key.

``Table`` reads a table key by key, checking each value's type (a float must be finite:
``inf`` and ``nan`` are refused everywhere), its range, or membership of a ``Literal`` type;
whatever is left unread is an unknown key.
``expand_env`` expands ``${VAR}`` and ``${VAR:-default}`` in string values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, TypeVar, cast, get_args

from llm_router_server.errors import ConfigError

T = TypeVar("T")
L = TypeVar("L", bound=str)
N = TypeVar("N", int, float)

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, key: str, env: Mapping[str, str]) -> Any:
    """``value`` with every ``${VAR}`` in its strings replaced; ``key`` names it in errors."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{key}: environment variable {name} is not set")

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v, f"{key}.{k}", env) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{key}[{i}]", env) for i, v in enumerate(value)]
    return value


class Table:
    """A TOML table read key by key; whatever is left unread is an unknown key."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'config'}: expected a table")
        self.data = dict(data)
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def take(self, name: str, kind: type[T], default: T) -> T:
        if name not in self.data:
            return default
        value = self.data.pop(name)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(
                f"{self.key(name)}: expected {kind.__name__}, got {type(value).__name__} {value!r}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{self.key(name)}: must be a finite number, got {value!r}")
        return value

    def positive(self, name: str, kind: type[T], default: T) -> T:
        value = self.take(name, kind, default)
        if not value > 0:  # type: ignore[operator]
            raise ConfigError(f"{self.key(name)}: must be > 0, got {value!r}")
        return value

    def within(
        self, name: str, kind: type[N], default: N, low: float, high: float, *, above: bool = False
    ) -> N:
        """A number from ``low`` (or above it, with ``above``) up to ``high``."""
        value = self.take(name, kind, default)
        if value < low or (above and value == low) or value > high:
            floor = f"> {_shown(low)}" if above else f">= {_shown(low)}"
            raise ConfigError(
                f"{self.key(name)}: must be {floor} and <= {_shown(high)}, got {value!r}"
            )
        return value

    def choice(self, name: str, options: Any, default: L) -> L:
        """A value of the ``Literal`` type ``options``: its members are the valid values."""
        choices: tuple[str, ...] = get_args(options)
        value = self.take(name, str, default)
        if value not in choices:
            listed = ", ".join(repr(c) for c in choices)
            raise ConfigError(f"{self.key(name)}: expected one of {listed}, got {value!r}")
        return cast(L, value)

    def table(self, name: str) -> Table:
        return Table(self.data.pop(name, {}), self.key(name))

    def done(self) -> None:
        if self.data:
            unknown = ", ".join(repr(self.key(k)) for k in sorted(self.data))
            raise ConfigError(f"unknown key(s): {unknown}")


def _shown(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(bound)
