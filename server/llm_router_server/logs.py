"""Log set-up of ``llm-router``: text or JSON lines, with the trace id when tracing is on.

``configure("text")`` (the default) writes ``time LEVEL logger: message`` lines;
``configure("json")`` one JSON object per line for log shippers: ``time`` (RFC 3339,
UTC), ``level``, ``logger``, ``message``, and ``exception`` when there is one. When a
trace-id source is set (``set_trace_ids``: the app sets it when tracing is on), every
record emitted inside a span also carries ``trace_id`` and ``span_id`` (text lines end
with `` trace_id=... span_id=...``). Without a source the filter adds empty ids and
costs one ``is None`` test per record.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

from llm_router_server.config.model import LogFormat

TraceIds = Callable[[], "tuple[str, str] | None"]

_trace_ids: TraceIds | None = None
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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


class TextFormatter(logging.Formatter):
    """The classic line, with `` trace_id=... span_id=...`` inside a span."""

    def __init__(self) -> None:
        super().__init__(_TEXT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        trace_id = getattr(record, "trace_id", "")
        if trace_id:
            line += f" trace_id={trace_id} span_id={getattr(record, 'span_id', '')}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, str] = {
            "time": f"{seconds}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace_id = getattr(record, "trace_id", "")
        if trace_id:
            entry["trace_id"] = trace_id
            entry["span_id"] = getattr(record, "span_id", "")
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


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
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return handler
