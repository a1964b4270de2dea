"""Reason texts shared by the providers: one bounded, secret-free line per failure.

Both providers (``litellm_provider.py`` and ``http_provider.py``) build their
``ProviderError`` messages with these helpers, so a fault reads the same
whichever path served the model. This module imports no provider or HTTP library.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from llm_router_server.errors import (
    ProviderAuthenticationError,
    ProviderContextWindowError,
    ProviderOverloadedError,
    ProviderRateLimitError,
    ProviderRefusalError,
    ProviderStatusError,
    ProviderTimeoutError,
)
from llm_router_server.safe_text import escape, redact, shorten, without_credentials

MAX_REASON = 300
MAX_SCAN = 20_000
"""Of a longer text (a whole HTML error page) only the start is read for the reason."""

_TRACEBACK = "Traceback (most recent call last):"
_SCRUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r'File "[^"]*"(?:, line \d+)?(?:, in \S+)?'), ""),
    (re.compile(r"(?<![\w:/.])/(?:[\w.\-]+/)+[\w.\-]+"), "<path>"),
    (re.compile(r"\s*ssl:<[^>]*>"), ""),
    (re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>"), "<object>"),
)


def clean(text: str) -> str:
    """One bounded line: no traceback, file path, secret (``safe_text.redact``: by pattern
    and by every configured value) or control character."""
    if _TRACEBACK in text:
        head, _, tail = text.partition(_TRACEBACK)
        lines = [line for line in tail.splitlines() if line.strip()]
        text = head if head.strip() else (lines[-1] if lines else "")
    text = redact(text[:MAX_SCAN].replace("\\n", " "))
    for pattern, replacement in _SCRUBS:
        text = pattern.sub(replacement, text)
    text = escape(" ".join(text.split()).rstrip(" :-"))
    return shorten(text, MAX_REASON)


def origin(api_base: str | None) -> str:
    """`` (scheme://host:port)`` of an API base for reasons, or "" when there is none."""
    if not api_base:
        return ""
    parts = urlsplit(without_credentials(api_base))
    return f" ({parts.scheme}://{parts.netloc})"


def connection_reason(api_base: str | None, refused: bool, error: object) -> str:
    """``connection refused (origin)`` or ``connection error (origin): error``."""
    if refused:
        return clean(f"connection refused{origin(api_base)}")
    return clean(f"connection error{origin(api_base)}: {error}")


def timeout_error(timeout: float) -> ProviderTimeoutError:
    """The error for a call that outlived its timeout."""
    return ProviderTimeoutError(f"no answer from provider within {timeout:.3g}s")


def status_reason(status: int, detail: str) -> str:
    """``HTTP <status> from provider: <detail>``."""
    return clean(f"HTTP {status} from provider: {clean(detail)}")


def error_detail(body: str) -> str:
    """The message of a provider's error body (Anthropic, OpenAI or Ollama shape)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict):
        return body
    error = data.get("error", data)
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        message, kind = error.get("message"), error.get("type")
        if isinstance(message, str):
            return f"{message} ({kind})" if isinstance(kind, str) and kind else message
    return body


# -- HTTP error statuses: the error class the chain and the breaker act on ---------------

_CONTEXT_WINDOW = re.compile(
    r"(?i)context[_ ]length|context window|prompt is too long|maximum context|too many tokens"
)
_CONTENT_POLICY = re.compile(r"(?i)content[_ ]policy|content[_ ]filter|content management policy")


def status_error(
    status: int,
    reason: str,
    text: str,
    *,
    retry_after: float | None = None,
    context_window: bool = False,
    content_policy: bool = False,
) -> ProviderStatusError | ProviderRefusalError:
    """The ``ProviderError`` for an HTTP error status, the same on both provider paths.

    ``text`` is the response body (and any detail) searched for context-window and
    content-policy wording; the flags say the provider library already recognised them.
    """
    if status == 429:
        return ProviderRateLimitError(reason, status_code=status, retry_after=retry_after)
    if status in (401, 403):
        return ProviderAuthenticationError(reason, status_code=status)
    if status >= 500:
        return ProviderOverloadedError(reason, status_code=status)
    if context_window or (status in (400, 413) and _CONTEXT_WINDOW.search(text)):
        return ProviderContextWindowError(reason, status_code=status)
    if content_policy or (status == 400 and _CONTENT_POLICY.search(text)):
        return ProviderRefusalError(clean(f"the provider refused (content policy): {reason}"))
    return ProviderStatusError(reason, status_code=status)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    try:
        if "retry-after-ms" in headers:
            return max(float(headers["retry-after-ms"]) / 1000, 0.0)
        if "retry-after" in headers:
            value = headers["retry-after"].strip()
            if re.fullmatch(r"\d+(?:\.\d+)?", value):
                return float(value)
            when = email.utils.parsedate_to_datetime(value)
            return max(when.timestamp() - time.time(), 0.0)
    except (ValueError, TypeError, OverflowError):
        return None
    return None
