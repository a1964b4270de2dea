"""Log set-up of ``llm-router``: text or JSON lines that a caller or a model cannot forge,
colour or fill with secrets, with the trace id when tracing is on.

``configure("text")`` (the default) writes ``time LEVEL logger: message`` lines;
``configure("json")`` one JSON object per line for log shippers: ``time`` (RFC 3339,
UTC), ``level``, ``logger``, ``message``, and ``exception`` when there is one. When a
trace-id source is set (``set_trace_ids``: the app sets it when tracing is on), every
record emitted inside a span also carries ``trace_id`` and ``span_id`` (text lines end
with `` trace_id=... span_id=...``). Without a source the filter adds empty ids and
costs one ``is None`` test per record.

Caller text (the ``context`` label, a method name) and model text (attempt reasons) reach
log messages. Rather than each log call escaping its arguments (a new call would forget),
the formatters do it to every record whoever logged it, and redact its secrets
(``safe_text.redact``). ``SafeFormatter`` (text) writes each record as exactly one line,
its control characters escaped (``safe_text.escape``: a newline is ``\\n``, NUL ``\\x00``,
an ANSI escape ``\\x1b``); a traceback follows indented, so no line of it can pass for a
record of its own. ``JsonFormatter`` relies on JSON's escapes, and also writes as ``\\uXXXX``
the characters JSON leaves raw but a terminal or a line reader would act on (C1 controls,
Unicode line separators, bidi overrides). A program that runs the ``App`` itself gives its
handlers one of these formatters the same way.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import TextIO

from llm_router_server.config.model import LogFormat
from llm_router_server.safe_text import escape, escape_block, redact

TraceIds = Callable[[], "tuple[str, str] | None"]

_trace_ids: TraceIds | None = None

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

TRACEBACK_INDENT = "    "

# What json.dumps(ensure_ascii=False) leaves raw and a terminal or line reader acts on.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def set_trace_ids(source: TraceIds | None) -> None:
    """Where log records get the current ``(trace id, span id)``; None: nowhere."""
    global _trace_ids
    _trace_ids = source


class TraceIdFilter(logging.Filter):
    """Puts ``trace_id`` and ``span_id`` (empty outside a span) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _trace_ids() if _trace_ids is not None else None
        record.trace_id, record.span_id = ids if ids is not None else ("", "")
        return True


class SafeFormatter(logging.Formatter):
    """One escaped, redacted line per record, with `` trace_id=... span_id=...`` inside a
    span; tracebacks indented under it."""

    def __init__(self, fmt: str = LINE_FORMAT) -> None:
        super().__init__(fmt)
        self._second: tuple[int, str] = (-1, "")
        """The last whole second formatted, and its text (one ``strftime`` per second)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """``logging.Formatter.formatTime``'s text, its second formatted once per second."""
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached, text = self._second
        if second != cached:
            text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (second, text)
        return self.default_msec_format % (text, record.msecs) if self.default_msec_format else text

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = redact(escape(self.formatMessage(record)))
        trace_id = getattr(record, "trace_id", "")
        if trace_id:
            line += f" trace_id={trace_id} span_id={getattr(record, 'span_id', '')}"
        if record.exc_info:
            line += "\n" + _block(self.formatException(record.exc_info))
        elif record.exc_text:
            line += "\n" + _block(record.exc_text)
        if record.stack_info:
            line += "\n" + _block(self.formatStack(record.stack_info))
        return line


def _block(text: str) -> str:
    lines = redact(escape_block(text)).splitlines()
    return "\n".join(TRACEBACK_INDENT + line for line in lines)


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module's docstring), its secrets redacted."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, str] = {
            "time": f"{seconds}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        trace_id = getattr(record, "trace_id", "")
        if trace_id:
            entry["trace_id"] = trace_id
            entry["span_id"] = getattr(record, "span_id", "")
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        # Outside strings a JSON line is ASCII: these characters can only be in a string,
        # where \uXXXX stands for the same character.
        return _JSON_UNSAFE.sub(_json_escaped, json.dumps(entry, ensure_ascii=False))


def configure(
    log_format: LogFormat = "text", *, verbose: bool = False, stream: TextIO | None = None
) -> logging.Handler:
    """Send the root logger's records to ``stream`` (stderr) in ``log_format``; replaces
    the handler an earlier call installed. Returns the handler."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "llm_router", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.llm_router = True  # type: ignore[attr-defined]  # marks the handler as ours
    handler.addFilter(TraceIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else SafeFormatter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return handler
