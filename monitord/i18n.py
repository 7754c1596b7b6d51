"""Every user-facing string goes through gettext (`_`). English is the source language; the
Indonesian catalogue ships as a plain `.po` file (config/locale/id.po) that is parsed at start,
so there is no compile step between editing a translation and running it."""

from __future__ import annotations

import ast
import contextlib
import contextvars
import functools
import gettext
import logging
import os
import re
from importlib import resources

SUPPORTED = ("en", "id")
_active: gettext.NullTranslations = gettext.NullTranslations()
_active_language = "en"
# A per-request language (the web desk serves people in English and Indonesian at once); it
# follows the request into threads started with asyncio.to_thread, and is unset elsewhere.
_context_language: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "monitord_language", default=None)


class POTranslations(gettext.NullTranslations):
    """A gettext catalogue read straight from a .po file (msgid/msgstr pairs, no plurals)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.catalog = parse_po(text)

    def gettext(self, message: str) -> str:
        return self.catalog.get(message) or message


def parse_po(text: str) -> dict[str, str]:
    """msgid -> msgstr from .po text. Entries are blank-line separated, as GNU tools write
    them; fuzzy entries and entries with a msgctxt are skipped (monitord uses neither)."""
    catalog: dict[str, str] = {}
    for block in re.split(r"\n[ \t]*\n", text.lstrip("\ufeff").replace("\r\n", "\n")):
        fields: dict[str, list[str]] = {}
        field: list[str] | None = None
        fuzzy = False
        for line in (raw.strip() for raw in block.splitlines()):
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            elif line.startswith("#") or not line:
                continue
            elif line.startswith('"') and field is not None:
                field.append(ast.literal_eval(line))
            else:
                keyword, _sep, rest = line.partition(" ")
                field = fields.setdefault(keyword, [])
                field.append(ast.literal_eval(rest))
        msgid = "".join(fields.get("msgid", []))
        if msgid and "msgctxt" not in fields and not fuzzy:
            catalog[msgid] = "".join(fields.get("msgstr", []))
    return catalog


@functools.lru_cache(maxsize=None)
def load_catalog(language: str) -> gettext.NullTranslations:
    if language == "en":
        return gettext.NullTranslations()
    try:
        text = resources.files("monitord.bundled").joinpath(f"locale/{language}.po").read_text(
            "utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:  # a broken install speaks English
        logging.getLogger("monitord.i18n").warning("catalogue missing language=%s error=%s",
                                                   language, exc)
        return gettext.NullTranslations()
    try:
        return POTranslations(text)
    except (SyntaxError, ValueError) as exc:  # a typo in a translation must not stop monitord
        logging.getLogger("monitord.i18n").warning("catalogue unreadable language=%s error=%s",
                                                   language, type(exc).__name__)
        return gettext.NullTranslations()


def normalise_language(value: str | None) -> str:
    """'id_ID.UTF-8' -> 'id'; anything unsupported -> 'en'."""
    if not value:
        return "en"
    code = value.split(".")[0].split("_")[0].lower()
    return code if code in SUPPORTED else "en"


def set_language(language: str | None = None) -> str:
    """Activate `language`, or the LANG/LANGUAGE environment as a fallback."""
    global _active, _active_language
    chosen = normalise_language(language or next(
        (value for value in (os.environ.get("LANGUAGE", "").split(":")[0],
                             os.environ.get("LC_ALL"), os.environ.get("LC_MESSAGES"),
                             os.environ.get("LANG")) if value), None))
    _active = load_catalog(chosen)
    _active_language = chosen
    return chosen


def active_language() -> str:
    return _context_language.get() or _active_language


@contextlib.contextmanager
def language_for(language: str | None):
    """Speak `language` in this context only (one web request), not process-wide."""
    token = _context_language.set(normalise_language(language) if language else None)
    try:
        yield
    finally:
        _context_language.reset(token)


def _(message: str) -> str:
    override = _context_language.get()
    if override is not None:
        return load_catalog(override).gettext(message)
    return _active.gettext(message)


def N_(message: str) -> str:
    """Mark a string for translation where it is defined; translate it where it is shown."""
    return message
