"""Logging to stderr, journald-friendly: `level=... logger=... msg="..." key=value`, or JSON.

Under systemd (JOURNAL_STREAM set) each line starts with a syslog priority `<N>` so journald
records the level. Every line, traceback included, passes through the secret redactor."""

from __future__ import annotations

import json
import logging
import os
import sys

from monitord.secrets import REDACTOR

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


class KeyValueFormatter(logging.Formatter):
    def __init__(self, journald: bool) -> None:
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line = f"level={record.levelname.lower()} logger={record.name} msg={_quote(message)}"
        if record.exc_info:
            line += " exc=" + _quote(self.formatException(record.exc_info))
        line = REDACTOR.redact(line)
        if self.journald:
            line = f"<{_PRIORITY.get(record.levelno, 6)}>{line}"
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
                "level": record.levelname.lower(), "logger": record.name,
                "msg": record.getMessage()}
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return REDACTOR.redact(json.dumps(data, ensure_ascii=False))


def _quote(text: str) -> str:
    if text and not any(c in text for c in ' "=\n\t'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    journald = bool(os.environ.get("JOURNAL_STREAM"))
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter(journald))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Third-party chatter stays at INFO even when monitord debugs.
    # netmiko and paramiko debug-log what devices send (a configuration with its secrets).
    for noisy in ("apscheduler", "uvicorn.access", "uvicorn.error", "alembic", "mail.log",
                  "netmiko", "paramiko"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

    def excepthook(kind, value, tb):  # uncaught errors go through the redactor too
        logging.getLogger("monitord").critical("uncaught exception", exc_info=(kind, value, tb))

    sys.excepthook = excepthook
