"""Text that leaves the process: bounded, safe for one log line, and without secrets.

Caller and model text reaches error messages, attempt reasons, events, labels and log
lines; so do the configuration's URLs and keys. Each concern has one function here:

- ``shorten(text)``: at most ``limit`` characters, cut with ``...``: what an error echoes
  of the caller's input (a 1 MB chain name must not become 1 MB of trailing metadata).
- ``escape(text)``: control characters (newline, carriage return, NUL, the ESC of ANSI
  sequences, C1 controls) and Unicode line separators and bidi overrides as visible
  escapes (``\\n``, ``\\x1b``, ``\\u2028``), so a string cannot forge a log line or colour a
  terminal. ``logs.SafeFormatter`` applies it to every log line.
- ``without_credentials(url)``: an API base as it may be shown, without ``user:password@``,
  query or fragment: Prometheus labels, circuit keys (Redis key names), CircuitChange events.
- ``redact(text)``: secrets replaced by ``***``, by pattern (``sk-...`` keys, ``Bearer`` and
  ``Basic`` credentials, ``password=``/``api_key:``-style pairs, a URL's ``user:password@``)
  and by value: every key, token and URL credential the configuration and the environment
  hold, added at start-up with ``add_secrets`` (``config.secrets_of``,
  ``environment_secrets``), so a key of no known shape is caught too. Provider reasons,
  attempt reasons and every log line pass through it. Secrets are only ever added: a
  process that served one configuration keeps redacting its secrets.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

ECHO_CHARS = 200
"""What an error message echoes of one caller-given value, at most."""

MIN_SECRET_CHARS = 4
"""Shorter configured values are not redacted by value (they would mangle ordinary text)."""

MIN_ENV_SECRET_CHARS = 8
"""The same for values found in the environment, whose names are only a guess."""

MIN_TOKEN_USER_CHARS = 16
"""A URL's user name without a password is a secret (a token) from this length on."""

REDACTED = "***"

# -- bounding ------------------------------------------------------------------------------


def shorten(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``...`` when cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 3, 0)] + "..."


def echo(value: str, limit: int = ECHO_CHARS) -> str:
    """A caller's value as an error quotes it: shortened first, then ``repr``'d."""
    return repr(shorten(value, limit))


# -- escaping ------------------------------------------------------------------------------

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` on one line: every control character as a visible escape."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escaped, text)


def escape_block(text: str) -> str:
    """A multi-line text (a traceback) with every control character but newlines escaped."""
    if _UNSAFE_BUT_NEWLINE.search(text) is None:
        return text
    return _UNSAFE_BUT_NEWLINE.sub(_escaped, text)


# -- URLs ----------------------------------------------------------------------------------


def without_credentials(url: str) -> str:
    """``url`` as it may be shown: no ``user:password@``, no query, no fragment."""
    if "@" not in url and "?" not in url and "#" not in url:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries ``user[:password]@`` before its host."""
    return "@" in urlsplit(url).netloc


def url_secrets(url: str) -> list[str]:
    """The secret forms of a URL's credentials: the password, ``user:password`` (both as
    written and percent-decoded) and the base64 of ``user:password`` (a Basic header)."""
    userinfo = urlsplit(url).netloc.rpartition("@")[0] if "@" in url else ""
    if not userinfo:
        return []
    found = []
    for form in {userinfo, unquote(userinfo)}:
        user, _, password = form.partition(":")
        found.append(form)
        found.append(base64.b64encode(form.encode()).decode())
        if password:
            found.append(password)
        elif len(user) >= MIN_TOKEN_USER_CHARS:
            found.append(user)  # a token given as the user name (https://TOKEN@host)
    return found


# -- redaction -----------------------------------------------------------------------------

_SECRET_NAMES = (
    r"password|passwd|pwd|secret|client[_-]?secret|private[_-]?key|x-api-key|api[_-]?key"
    r"|access[_-]?key|access[_-]?token|refresh[_-]?token|auth[_-]?token|token|authorization"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A URL's credentials: scheme://user:password@host, scheme://token@host.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/@]+@"), rf"\1{REDACTED}@"),
    (re.compile(r"\bsk-[\w\-*.]{3,}"), "sk-***"),
    # "name: value" pairs; an Authorization value keeps neither its scheme's token nor itself.
    (
        re.compile(
            rf"(?i)\b({_SECRET_NAMES})(['\"]?\s*[:=]\s*['\"]?)"
            r"(?:(?:basic|bearer|digest|token|apikey)\s+)?[^\s'\",}&]+"
        ),
        rf"\1\2{REDACTED}",
    ),
    (re.compile(r"(?i)\bbearer\s+[^\s'\",}]+"), f"Bearer {REDACTED}"),
    # Basic <base64>: a token with an upper-case letter, digit, + / or = after its first
    # character ("Basic authentication" is prose, "Basic dXNlcjpwNHNz" a credential).
    (
        re.compile(r"\b(?i:basic)\s+(?=[A-Za-z0-9+/]+?[A-Z0-9+/=])[A-Za-z0-9+/]{4,}={0,2}"),
        f"Basic {REDACTED}",
    ),
)
_TRIGGER_WORDS = ("sk-", "bearer", "basic", "pass", "pwd", "secret", "token", "key", "auth")
"""Every pattern needs one of these (lower-cased) or a URL with ``@``: text without any is
returned as it is. Substring tests, because one case-insensitive regex of alternatives
costs ~50 us on a log line."""

_values: set[str] = set()
_ordered: tuple[str, ...] = ()
_by_value: re.Pattern[str] | None = None


def add_secrets(values: Iterable[str]) -> None:
    """Redact these values from now on (those shorter than ``MIN_SECRET_CHARS`` are skipped)."""
    global _by_value, _ordered
    new = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_CHARS} - _values
    if not new:
        return
    _values.update(new)
    # Longest first, so a secret that contains another is replaced whole.
    _ordered = tuple(sorted(_values, key=len, reverse=True))
    _by_value = re.compile("|".join(re.escape(v) for v in _ordered))


def _redacted_value(match: re.Match[str]) -> str:
    # An sk- key reads the same whichever net catches it.
    return "sk-***" if match.group().startswith("sk-") else REDACTED


def redact(text: str) -> str:
    """``text`` with every known secret and every credential-shaped string as ``***``."""
    by_value = _by_value
    if by_value is not None and any(value in text for value in _ordered):
        text = by_value.sub(_redacted_value, text)
    lowered = text.lower()
    if not any(word in lowered for word in _TRIGGER_WORDS) and not ("://" in text and "@" in text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_SECRET_VARIABLE = re.compile(
    r"(?i)(?:^|_)(?:api_?keys?|keys?|tokens?|secrets?|password|passwd|credentials?)$"
)


def environment_secrets(env: Mapping[str, str]) -> list[str]:
    """Values in the environment that look secret: variables named ``*_KEY``, ``*_TOKEN(S)``,
    ``*_SECRET``, ``*_PASSWORD`` (comma-separated lists split) and any URL's credentials."""
    found: list[str] = []
    for name, value in env.items():
        if _SECRET_VARIABLE.search(name):
            found += [v.strip() for v in value.split(",") if len(v.strip()) >= MIN_ENV_SECRET_CHARS]
        if "://" in value and "@" in value:
            found += url_secrets(value)
    return found
