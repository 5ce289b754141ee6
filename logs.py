"""Logging set-up: JSON lines in production, readable text in development.

Every record carries the request id, and the GraphQL operation and user id
once they are known, from context variables the request middleware
(`meihua.web.request_log`) and the operation extension (`meihua.schema.telemetry`)
set. `dict_config` is handed to uvicorn too, so its own lines (and those of
every worker process) come out in the same format.
"""

from __future__ import annotations

import logging
import logging.config
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from meihua.settings import Settings

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
operation: ContextVar[str | None] = ContextVar("operation", default=None)
user_id: ContextVar[int | None] = ContextVar("user_id", default=None)
# How the request's GraphQL operation ended ("ok" or an error code), for the access line.
outcome: ContextVar[str | None] = ContextVar("outcome", default=None)

STAMPED = (("request_id", request_id), ("operation", operation), ("user_id", user_id))
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# Shown after the message in text lines; JSON lines carry them as fields.
TEXT_DETAILS = ("operation", "user_id", "outcome", "duration_ms")
JSON_FIELDS = ["asctime", "levelname", "name", "message", "request_id", "operation", "user_id"]
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}


class RequestContext(logging.Filter):
    """Stamp each record with the request id, operation and user id of its request."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in STAMPED:
            if not hasattr(record, name):  # a line's own `extra=` wins
                setattr(record, name, var.get())
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [request id] message key=value…`, for a terminal."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        request = getattr(record, "request_id", None) or "-"
        line = super().formatMessage(
            logging.makeLogRecord({**record.__dict__, "request_id": request})
        )
        details = [
            f"{name}={value}"
            for name in TEXT_DETAILS
            if (value := getattr(record, name, None)) is not None
        ]
        return " ".join([line, *details])


class JsonLinesFormatter(JsonFormatter):
    """One JSON object per line; fields that are unknown (None) are left out."""

    def __init__(self) -> None:
        super().__init__(
            JSON_FIELDS,
            rename_fields=JSON_NAMES,
            # color_message: uvicorn's coloured copy of the message.
            reserved_attrs=[*RESERVED_ATTRS, "taskName", "color_message"],
            json_ensure_ascii=False,  # customer names stay readable
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in log_data.items() if value is not None}


def dict_config(settings: Settings) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the server (and uvicorn's `log_config`)."""
    formatter = JsonLinesFormatter if settings.log_format == "json" else TextFormatter
    level = settings.log_level
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": RequestContext}},
        "formatters": {"default": {"()": formatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["request"],
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            # Their own handlers go; their records reach the root's.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            # meihua.web.request_log writes one access line per request, with its request id.
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def configure(settings: Settings) -> None:
    logging.config.dictConfig(dict_config(settings))
