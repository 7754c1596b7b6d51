"""Every user-facing string goes through gettext (`_`). English is the source language; the
Indonesian catalogue ships as a plain `.po` file (config/locale/id.po) that is parsed at start,
so there is no compile step between editing a translation and running it."""

from __future__ import annotations

import ast
import functools
import gettext
import logging
import os
from importlib import resources

SUPPORTED = ("en", "id")
_active: gettext.NullTranslations = gettext.NullTranslations()
_active_language = "en"


class POTranslations(gettext.NullTranslations):
    """A gettext catalogue read straight from a .po file (msgid/msgstr pairs, no plurals)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.catalog = parse_po(text)

    def gettext(self, message: str) -> str:
        return self.catalog.get(message) or message


def parse_po(text: str) -> dict[str, str]:
    catalog: dict[str, str] = {}
    msgid: list[str] | None = None
    msgstr: list[str] | None = None
    current: list[str] | None = None

    def flush() -> None:
        if msgid is not None and msgstr is not None:
            key = "".join(msgid)
            if key:
                catalog[key] = "".join(msgstr)

    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("msgid "):
            flush()
            msgid, msgstr = [ast.literal_eval(line[6:])], None
            current = msgid
        elif line.startswith("msgstr "):
            msgstr = [ast.literal_eval(line[7:])]
            current = msgstr
        elif line.startswith('"') and current is not None:
            current.append(ast.literal_eval(line))
    flush()
    return catalog


@functools.lru_cache(maxsize=None)
def load_catalog(language: str) -> gettext.NullTranslations:
    if language == "en":
        return gettext.NullTranslations()
    try:
        text = resources.files("monitord.bundled").joinpath(f"locale/{language}.po").read_text(
            "utf-8")
    except OSError as exc:  # a broken install speaks English rather than not at all
        logging.getLogger("monitord.i18n").warning("catalogue missing language=%s error=%s",
                                                   language, exc)
        return gettext.NullTranslations()
    return POTranslations(text)


def normalise_language(value: str | None) -> str:
    """'id_ID.UTF-8' -> 'id'; anything unsupported -> 'en'."""
    if not value:
        return "en"
    code = value.split(".")[0].split("_")[0].lower()
    return code if code in SUPPORTED else "en"


def set_language(language: str | None = None) -> str:
    """Activate `language`, or the LANG/LANGUAGE environment as a fallback."""
    global _active, _active_language
    chosen = normalise_language(
        language or os.environ.get("LANGUAGE", "").split(":")[0] or os.environ.get("LANG")
    )
    _active = load_catalog(chosen)
    _active_language = chosen
    return chosen


def active_language() -> str:
    return _active_language


def _(message: str) -> str:
    return _active.gettext(message)


def N_(message: str) -> str:
    """Mark a string for translation where it is defined; translate it where it is shown."""
    return message
