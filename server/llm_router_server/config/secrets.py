"""The secrets a configuration holds, for redaction by value (``safe_text.add_secrets``).

Every API key in a model's ``params`` (``api_key`` and any key named like a secret, nested
``extra_headers`` included), the credentials of every URL (a model's ``api_base``, a URL in
its params, ``metrics.redis_url``, ``tracing.endpoint``) and every ``auth.tokens`` entry.
The environment's own secrets are ``safe_text.environment_secrets``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from llm_router_server.config.model import Config
from llm_router_server.safe_text import url_secrets

_SECRET_KEY = re.compile(
    r"(?i)(?:^|_|-)(?:api_?key|key|token|secret|password|passwd|credentials?|authorization)$"
)


def secrets_of(config: Config) -> list[str]:
    """Every secret value ``config`` holds (possibly with repeats)."""
    found = [
        *config.auth.tokens,
        *url_secrets(config.metrics.redis_url),
        *url_secrets(config.tracing.endpoint),
    ]
    for chain in config.chains.values():
        for spec in chain.models:
            found += url_secrets(spec.api_base or "")
            found += list(_in_params(spec.params, secret=False))
    return found


def _in_params(value: Any, *, secret: bool) -> Iterator[str]:
    if isinstance(value, str):
        if secret:
            yield value
        if "://" in value:
            yield from url_secrets(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _in_params(item, secret=secret or bool(_SECRET_KEY.search(str(key))))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _in_params(item, secret=secret)
