"""Log lines for long-running commands (``reversa worker``): text or JSON, one per event.

Records from ``reversa.worker`` carry ``event``, ``saga`` and ``fields``
attributes (see :mod:`reversa.core.worker`); other records (a library's
warning) are rendered the same way with ``event`` set to ``log``. Every line is
scrubbed of passwords and never spans more than one line, so a JSON consumer
can read the stream line by line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ..core.redact import scrub

__all__ = ["JsonFormatter", "LogFormat", "TextFormatter", "configure_logging"]

# Attributes every LogRecord has; anything else came in through ``extra=``.
_RESERVED = {"ts", "level", "event", "saga", "logger", "message"}


class LogFormat(StrEnum):
    """``--log-format`` choices."""

    TEXT = "text"
    JSON = "json"


def _ts(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _message(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        text = f"{text}: {type(exc).__name__}: {exc}"
    return scrub(" ".join(text.split()))


class TextFormatter(logging.Formatter):
    """``2026-11-30T12:00:00.123Z info    saga 3f2a… finished: ended compensated``."""

    def format(self, record: logging.LogRecord) -> str:
        """One human-readable line."""
        return f"{_ts(record.created)} {record.levelname.lower():<7} {_message(record)}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``event``, ``saga``, ``message``, fields."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object, without line breaks."""
        data: dict[str, Any] = {
            "ts": _ts(record.created),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "log"),
            "saga": getattr(record, "saga", None),
            "logger": record.name,
            "message": _message(record),
        }
        fields = getattr(record, "fields", None) or {}
        data.update({k: _clean(v) for k, v in fields.items() if k not in _RESERVED})
        return json.dumps(data, default=str)


def configure_logging(fmt: LogFormat, *, level: int = logging.INFO) -> None:
    """Send every log record of this process to stderr, one line each, in ``fmt``.

    The root logger gets the handler so a library's warning is a line of the same
    format too (a stray plain-text line would break a JSON reader); Reversa's own
    loggers log from ``level`` up, third-party ones from WARNING.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt is LogFormat.JSON else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("reversa").setLevel(level)
    logging.captureWarnings(True)
