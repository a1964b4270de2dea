"""Log lines that a caller or a model cannot forge, colour or fill with secrets.

Caller text (the ``context`` label, a method name) and model text (attempt reasons) reach
log messages. Rather than each log call escaping its arguments (a new call would forget),
the handler's formatter does it to every line whoever logged it: ``SafeFormatter`` writes
each record as exactly one line, its control characters escaped (``safe_text.escape``:
a newline is ``\\n``, NUL ``\\x00``, an ANSI escape ``\\x1b``) and its secrets redacted
(``safe_text.redact``); a traceback follows indented, so no line of it can pass for a
record of its own. ``configure`` installs it for the ``llm-router`` command; a program that
runs the ``App`` itself gives its handlers a ``SafeFormatter`` the same way.
"""

from __future__ import annotations

import logging
from typing import TextIO

from llm_router_server.safe_text import escape, escape_block, redact

LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

TRACEBACK_INDENT = "    "


class SafeFormatter(logging.Formatter):
    """One escaped, redacted line per record; tracebacks indented under it."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = redact(escape(self.formatMessage(record)))
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


def configure(level: int, stream: TextIO | None = None) -> None:
    """Log to stderr (or ``stream``) at ``level`` through a ``SafeFormatter``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter(LINE_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
