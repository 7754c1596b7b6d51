"""Secrets are typed: `Secret` never shows its value in repr/str, and every value that was ever
resolved is registered with the log redactor so that even a library's error message cannot carry
it into a log line or a traceback."""

from __future__ import annotations

import os
import threading
from pathlib import Path

MASK = "***"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if value:
            REDACTOR.register(value)

    def reveal(self) -> str:
        """Unwrap at the socket, nowhere else."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):  # never pickled into a file or another process by accident
        raise TypeError("Secret values are not picklable")


class Redactor:
    """Knows every secret value resolved in this process and masks it in any text."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        if len(value) >= 3:
            with self._lock:
                self._values.add(value)

    def redact(self, text: str) -> str:
        if not self._values:
            return text
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return text


REDACTOR = Redactor()


class SecretSourceError(Exception):
    """A secret reference that cannot be resolved (missing variable, file or credential)."""


def resolve_secret(env: str | None, file: str | None, credential: str | None) -> Secret:
    """Resolve one of the three allowed sources; never an inline value."""
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise SecretSourceError(f"environment variable {env} is not set")
        return Secret(value)
    if file is not None:
        return Secret(_read_secret_file(Path(file)))
    if credential is not None:
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise SecretSourceError(
                f"credential {credential}: $CREDENTIALS_DIRECTORY is not set "
                "(add LoadCredential= to the unit)"
            )
        return Secret(_read_secret_file(Path(directory) / credential))
    raise SecretSourceError("no source given (env, file or credential)")


def _read_secret_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SecretSourceError(f"cannot read {path}: {exc.strerror}") from None
