"""Secrets stay masked everywhere a person or a log can see them; logs are journald-friendly."""

from __future__ import annotations

import json
import logging
import pickle

import pytest

from monitord.logs import JsonFormatter, KeyValueFormatter
from monitord.secrets import Secret, SecretSourceError, resolve_secret


def _format(formatter: logging.Formatter, message: str, *args, exc: BaseException | None = None):
    record = logging.LogRecord("monitord.test", logging.WARNING, __file__, 1, message, args,
                               (type(exc), exc, exc.__traceback__) if exc else None)
    return formatter.format(record)


def test_secret_never_shows_its_value():
    secret = Secret("canary-4f1e-value")
    assert "canary" not in repr(secret) and "canary" not in str(secret)
    assert "canary" not in f"{secret} {secret!r} {[secret]} {({'k': secret})}"
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert secret.reveal() == "canary-4f1e-value"


def test_resolved_values_are_redacted_from_log_lines_and_tracebacks():
    secret = Secret("canary-9d2c-community")
    try:
        raise ConnectionError(f"agent refused community {secret.reveal()}")
    except ConnectionError as exc:
        line = _format(KeyValueFormatter(journald=False), "poll failed community=%s",
                       secret.reveal(), exc=exc)
    assert "canary-9d2c-community" not in line
    assert "***" in line and "ConnectionError" in line
    as_json = _format(JsonFormatter(), "value %s", secret.reveal())
    assert "canary-9d2c-community" not in as_json
    assert json.loads(as_json)["msg"] == "value ***"


def test_key_value_lines_and_the_journald_priority_prefix():
    line = _format(KeyValueFormatter(journald=False), 'device said "hi there"\nnext')
    assert line == r'level=warning logger=monitord.test msg="device said \"hi there\"\nnext"'
    assert _format(KeyValueFormatter(journald=True), "x").startswith("<4>level=warning")


def test_secret_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("MONITORD_TEST_SECRET", "from-env-123")
    assert resolve_secret("MONITORD_TEST_SECRET", None, None).reveal() == "from-env-123"
    (tmp_path / "s").write_text("from-file-456\n")
    assert resolve_secret(None, str(tmp_path / "s"), None).reveal() == "from-file-456"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    (tmp_path / "snmp").write_text("from-systemd-789")
    assert resolve_secret(None, None, "snmp").reveal() == "from-systemd-789"
    with pytest.raises(SecretSourceError, match="MONITORD_ABSENT is not set"):
        resolve_secret("MONITORD_ABSENT", None, None)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(SecretSourceError, match="LoadCredential"):
        resolve_secret(None, None, "snmp")


def test_setup_logging_writes_to_stderr(monkeypatch, capsys):
    from monitord.logs import setup_logging
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    setup_logging("debug", "json")
    logging.getLogger("monitord.x").debug("hello %s", "world")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert json.loads(err)["msg"] == "hello world"
    setup_logging("info", "text")
