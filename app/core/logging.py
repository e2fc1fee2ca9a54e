"""JSON logs: one object per line on stdout, extra fields kept, the request id on every line."""

from __future__ import annotations

import json
import logging
import logging.config
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

from app.core.tracing import log_ids

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is kept.
_RECORD_FIELDS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object with the project's fixed fields and its extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "module": record.module,
            "function": record.funcName,
            "request_id": request_id_var.get(),
        }
        ids = log_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str).decode()
        except TypeError:  # what orjson refuses (an integer over 64 bits): the slow way
            return json.dumps(entry, default=str, ensure_ascii=False)


def logging_config(level: str) -> dict[str, Any]:
    """A `dictConfig` that sends the project's and uvicorn's logs through `JsonFormatter`."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stdout": handler},
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            # uvicorn installs its own handlers; route them to ours instead.
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            # The app logs each request itself, with more fields (app.api.middleware).
            "uvicorn.access": {"handlers": [], "propagate": False},
            # httpx logs each call to a model server at INFO with its URL, which may hold a
            # password (`http://user:pass@host`); the access line says what the call served.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }


def configure_logging(level: str) -> None:
    """Install the JSON handler on the root logger."""
    logging.config.dictConfig(logging_config(level))
