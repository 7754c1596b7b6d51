"""Masking of secrets in device configurations, before anything is stored, diffed or shown.

A line that sets a password, secret, key, community or similar keeps its keyword (so a diff
still says *that* the community changed) and loses everything after it:
`snmp-server community s3cret RO` -> `snmp-server community ***`. Values of every secret this
process resolved (the SSH password itself, SNMP communities) are masked wherever they appear,
whatever the line. Masking is deliberately coarse: a line with `key` in it loses its tail even
when that tail was harmless, because a missed secret cannot be taken back out of the store."""

from __future__ import annotations

import re
from typing import Iterable

from monitord.secrets import MASK, REDACTOR

KEYWORDS = ("password", "passwd", "secret", "pre-shared-key", "key-string", "key",
            "community", "passphrase", "psk", "authentication-key", "auth-key", "priv-key",
            "token", "credential", "md5", "sha", "wpa-passphrase", "encrypted-password",
            "hash", "pwd")


def _pattern(extra: Iterable[str] = ()) -> re.Pattern[str]:
    words = sorted({*KEYWORDS, *(w.lower() for w in extra)}, key=len, reverse=True)
    alternatives = "|".join(re.escape(w) for w in words)
    # the keyword as a word of its own (hyphens and underscores count as separators, so
    # `message-digest-key` and `snmp_community` match, `keepalive` and `password-encryption`
    # do not), then a separator, then a value
    return re.compile(rf"(?i)(?<![A-Za-z0-9])({alternatives})(?![A-Za-z0-9-])([\s=:\"']+)(?=\S)")


_DEFAULT = _pattern()


def mask_line(line: str, pattern: re.Pattern[str] = _DEFAULT) -> str:
    match = pattern.search(line)
    if match:
        line = line[:match.end(2)] + MASK
    return line


def mask_config(text: str, extra_keywords: Iterable[str] = ()) -> str:
    """The text with every secret-bearing line masked and every known secret value replaced."""
    extra = tuple(extra_keywords)
    pattern = _pattern(extra) if extra else _DEFAULT
    text = REDACTOR.redact(text)
    return "\n".join(mask_line(line, pattern) for line in text.splitlines())
