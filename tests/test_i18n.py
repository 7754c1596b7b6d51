"""Every string people read has an Indonesian translation, and the translation is really used.

The msgids are found by reading the source with `ast` (not grep, not by importing it): each
`_("literal")` / `N_("literal")` call, the values of `_EXPECTED_BY_TYPE` and loop tables whose
second item goes through `_()`, plus the values that are translated dynamically (`_(r.status)`
and friends). A new string without a translation in config/locale/id.po fails
`test_every_msgid_has_an_indonesian_translation` with a list of what to add.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import string
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from monitord.i18n import POTranslations, active_language, load_catalog, parse_po, set_language
from monitord.records import Category, Level, Severity

ROOT = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("monitord", "collectors", "detectors", "incidents")
PO_FILE = ROOT / "config" / "locale" / "id.po"
DESCRIPTION = "Network and security monitoring whose incidents follow the office's SOP."

# Values shown through _(<variable>) in monitord/render.py. The enums are read as well, so a new
# severity or category is required automatically; statuses exist only as plain strings.
DYNAMIC_VALUES = {
    "incident status (_(row.status))": ("open", "resolved", "closed"),
    "severity (_(row.severity))": ("info", "low", "medium", "high", "critical",
                                   *(s.value for s in Severity)),
    "impact / urgency level (_(row.impact), _(row.urgency))": ("low", "medium", "high",
                                                                *(v.value for v in Level)),
    "category (_(row.category))": ("application", "operating_system", "database", "network",
                                   "network_security", "malware", "server", "pc_client",
                                   *(c.value for c in Category)),
    "outbox status (_(o.status))": ("pending", "sent", "failed"),
}

# _() calls whose argument is not a literal, and where the values they can take come from.
# For an attribute (row.status, r.status, ...) only the attribute name counts.
KNOWN_DYNAMIC_CALLS = {
    "status": "DYNAMIC_VALUES (incident and outbox statuses)",
    "severity": "DYNAMIC_VALUES (records.Severity)",
    "impact": "DYNAMIC_VALUES (records.Level)",
    "urgency": "DYNAMIC_VALUES (records.Level)",
    "category": "DYNAMIC_VALUES (records.Category)",
    "summary": "N_() literals in detectors (Rule.summary)",
    "TIMELINE_WORDS.get(t.action, t.action)": "N_() literals in TIMELINE_WORDS",
    "_EXPECTED_BY_TYPE[kind]": "the _EXPECTED_BY_TYPE values",
    "text": "loop tables in config_loader._expected (extracted below)",
    "WEEKDAYS[local.weekday()]": "N_() literals in render.WEEKDAYS",
    "TARGET_WORDS[kind]": "N_() literals in workflow.engine.TARGET_WORDS",
    "what": "N_() flood names in detectors/flood.py",
    "FIELD_LABELS[key]": "N_() literals in web/pages.py FIELD_LABELS",
    "message": "the desk's templates call _() (their msgids: tests/test_web_pages.py)",
}


# -- extraction ---------------------------------------------------------------------------------

def _source_files() -> list[Path]:
    files = [p for d in SOURCE_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
    assert files, f"no Python sources under {ROOT}"
    return files


def _is_translate_call(node: ast.AST, names: tuple[str, ...] = ("_", "N_")) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in names)


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _loop_table_msgids(loop: ast.For) -> list[str]:
    """`for bound, text in (("gt", "a number greater than {v}"), ...): ... _(text)`"""
    if not (isinstance(loop.target, ast.Tuple) and isinstance(loop.iter, (ast.Tuple, ast.List))):
        return []
    names = [t.id if isinstance(t, ast.Name) else None for t in loop.target.elts]
    translated = {n.args[0].id for stmt in loop.body for n in ast.walk(stmt)
                  if _is_translate_call(n, ("_",)) and len(n.args) == 1
                  and isinstance(n.args[0], ast.Name)}
    found = []
    for index, name in enumerate(names):
        if name is None or name not in translated:
            continue
        for row in loop.iter.elts:
            if isinstance(row, (ast.Tuple, ast.List)) and index < len(row.elts):
                value = _literal(row.elts[index])
                if value is not None:
                    found.append(value)
    return found


def extract() -> tuple[dict[str, list[str]], list[tuple[str, ast.Call]]]:
    """msgid -> where it is used; and the `_()` calls whose argument is not a literal."""
    msgids: dict[str, list[str]] = {}
    dynamic_calls: list[tuple[str, ast.Call]] = []
    expected_by_type_seen = False

    def add(text: str, where: str) -> None:
        places = msgids.setdefault(text, [])
        if where not in places:
            places.append(where)

    for path in _source_files():
        rel = path.relative_to(ROOT)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', '?')}"
            if _is_translate_call(node):
                value = _literal(node.args[0]) if len(node.args) == 1 else None
                if value is not None:
                    add(value, where)
                else:
                    dynamic_calls.append((where, node))
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == "_EXPECTED_BY_TYPE" for t in targets):
                    assert isinstance(node.value, ast.Dict), f"{where}: _EXPECTED_BY_TYPE"
                    expected_by_type_seen = True
                    for value_node in node.value.values:
                        value = _literal(value_node)
                        assert value is not None, f"{where}: non-literal _EXPECTED_BY_TYPE value"
                        add(value, f"{where} (_EXPECTED_BY_TYPE)")
            elif isinstance(node, ast.For):
                for value in _loop_table_msgids(node):
                    add(value, f"{where} (loop table)")
    assert expected_by_type_seen, "_EXPECTED_BY_TYPE not found; update tests/test_i18n.py"
    for what, values in DYNAMIC_VALUES.items():
        for value in values:
            add(value, f"dynamic: {what}")
    return msgids, dynamic_calls


def catalogue() -> dict[str, str]:
    return parse_po(PO_FILE.read_text(encoding="utf-8"))


def placeholders(text: str) -> Counter:
    """{name} and {name:spec} (and !conversions) of a str.format string, as a multiset."""
    return Counter((field, spec, conversion)
                   for _literal_text, field, spec, conversion in string.Formatter().parse(text)
                   if field is not None)


@pytest.fixture
def restore_language():
    before = active_language()
    yield
    set_language(before)


# -- the catalogue --------------------------------------------------------------------------------

def test_extraction_finds_the_known_kinds_of_msgid():
    msgids, _calls = extract()
    for sample in (DESCRIPTION,                                      # _() in cli.py
                   "CPU at {value:.0f}% on {device} (threshold {threshold:g}%)",  # N_()
                   "fired again",                                    # N_() in TIMELINE_WORDS
                   "a whole number",                                 # _EXPECTED_BY_TYPE
                   "a number greater than {v}",                      # loop table
                   "Status",                                         # _() inside an f-string
                   "network_security", "pending", "closed"):         # dynamic values
        assert sample in msgids, sample


def test_every_msgid_has_an_indonesian_translation():
    msgids, _calls = extract()
    catalog = catalogue()
    missing = [f"  {text!r}  ({', '.join(where[:3])})" for text, where in msgids.items()
               if not catalog.get(text)]
    if missing:
        pytest.fail(f"{len(missing)} msgid(s) missing from {PO_FILE.relative_to(ROOT)} or with "
                    "an empty msgstr:\n" + "\n".join(missing), pytrace=False)


def test_every_dynamic_translate_call_is_known():
    """`_(something)` with a non-literal argument needs its possible values in the catalogue:
    add them to DYNAMIC_VALUES (or mark them with N_()) and the call to KNOWN_DYNAMIC_CALLS."""
    _msgids, calls = extract()
    unknown = []
    for where, call in calls:
        argument = call.args[0] if len(call.args) == 1 else None
        key = argument.attr if isinstance(argument, ast.Attribute) else \
            ast.unparse(argument) if argument is not None else None
        if key not in KNOWN_DYNAMIC_CALLS:
            unknown.append(f"  {where}: {ast.unparse(call)}")
    assert not unknown, "translated values nobody lists:\n" + "\n".join(unknown)


def test_every_timeline_action_has_a_translated_word():
    from monitord.incidents.manager import TIMELINE_WORDS
    actions = []
    for path in _source_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and len(node.args) >= 4 and (
                    getattr(node.func, "attr", None) == "append_timeline"
                    or getattr(node.func, "id", None) == "append_timeline"):
                action = _literal(node.args[3])
                if action is not None:
                    actions.append((action, f"{path.relative_to(ROOT)}:{node.lineno}"))
    assert actions
    assert [a for a in actions if a[0] not in TIMELINE_WORDS] == []


def test_placeholders_and_edge_whitespace_are_kept():
    bad = []
    for msgid, msgstr in catalogue().items():
        if not msgstr:
            continue
        try:
            same = placeholders(msgid) == placeholders(msgstr)
        except ValueError as exc:  # an unbalanced brace
            same, msgstr = False, f"{msgstr}  [{exc}]"
        if not same:
            bad.append(f"  {msgid!r}\n    -> {msgstr!r}")
        lead, trail = (len(msgid) - len(msgid.lstrip()), len(msgid) - len(msgid.rstrip()))
        if msgstr[:lead] != msgid[:lead] or len(msgstr) - len(msgstr.rstrip()) != trail:
            bad.append(f"  {msgid!r}\n    -> {msgstr!r} (leading/trailing spaces differ)")
    assert not bad, "placeholders differ between msgid and msgstr:\n" + "\n".join(bad)


def test_po_file_header_and_no_duplicates():
    text = PO_FILE.read_text(encoding="utf-8")
    assert re.search(r'^msgid ""\nmsgstr ""\n', text, flags=re.MULTILINE), "no header entry"
    assert '"Content-Type: text/plain; charset=UTF-8\\n"' in text
    assert '"Language: id\\n"' in text
    entries = re.findall(r'^msgid ', text, flags=re.MULTILINE)
    assert len(entries) == len(catalogue()) + 1, "a msgid appears twice (the last one wins)"


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="GNU gettext msgfmt not installed")
def test_po_file_passes_msgfmt_check():
    result = subprocess.run(["msgfmt", "--check", "-o", os.devnull, str(PO_FILE)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_installed_package_loads_this_catalogue():
    translations = load_catalog("id")
    assert translations.gettext(DESCRIPTION) == catalogue()[DESCRIPTION] != DESCRIPTION


def test_every_help_text_formats_in_indonesian(restore_language):
    """argparse %-formats help strings: a stray '%' in a translation would crash --help."""
    from monitord.cli import build_parser
    set_language("id")
    parsers, seen = [build_parser()], 0
    while parsers:
        parser = parsers.pop()
        parser.format_help()
        seen += 1
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    assert seen >= 10


# -- parse_po -------------------------------------------------------------------------------------

PO_SAMPLE = r'''# translator comment
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Language: id\n"

#: somewhere.py:1
#, python-brace-format
msgid ""
"a long message "
"over {count} lines"
msgstr ""
"pesan panjang "
"dalam {count} baris"

msgid "say \"hi\"\tor C:\\path\n"
msgstr "ucapkan \"hai\"\tatau C:\\path\n"

msgid "not translated yet"
msgstr ""

msgid "the last entry"
msgstr "entri terakhir"
'''


def test_parse_po_handles_multiline_entries_and_escapes():
    catalog = parse_po(PO_SAMPLE)
    assert catalog["a long message over {count} lines"] == "pesan panjang dalam {count} baris"
    assert catalog['say "hi"\tor C:\\path\n'] == 'ucapkan "hai"\tatau C:\\path\n'
    assert catalog["the last entry"] == "entri terakhir"
    assert catalog["not translated yet"] == ""
    assert "" not in catalog  # the header is not a message
    translations = POTranslations(PO_SAMPLE)
    assert translations.gettext("not translated yet") == "not translated yet"
    assert translations.gettext("unknown") == "unknown"


def test_parse_po_handles_crlf_line_ends():
    assert parse_po(PO_SAMPLE.replace("\n", "\r\n")) == parse_po(PO_SAMPLE)


# -- the real command line ------------------------------------------------------------------------

def run_monitord(*args: str, lang: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "MONITORD_CONFIG")}
    env.update(LANG=lang, COLUMNS="200", PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "monitord", *args], capture_output=True,
                          text=True, encoding="utf-8", env=env, cwd=cwd, timeout=60)


def test_help_is_indonesian_under_an_indonesian_locale(tmp_path):
    indonesian = catalogue()[DESCRIPTION]
    result = run_monitord("--help", lang="id_ID.UTF-8", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert indonesian in result.stdout
    assert DESCRIPTION not in result.stdout
    assert catalogue()["run the daemon"] in result.stdout


def test_help_is_english_under_the_c_locale(tmp_path):
    result = run_monitord("--help", lang="C.UTF-8", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert DESCRIPTION in result.stdout
    assert catalogue()[DESCRIPTION] not in result.stdout


def unknown_key_config(tmp_path: Path, language: str | None = "id") -> Path:
    path = tmp_path / "kantor-dinas.yaml"
    path.write_text((f"language: {language}\n" if language else "") + "storag: {}\n",
                    encoding="utf-8")
    return path


def assert_indonesian_unknown_key(result: subprocess.CompletedProcess, path: Path,
                                  line: int) -> None:
    catalog = catalogue()
    assert result.returncode == 2, result.stderr
    first = result.stderr.splitlines()[0]
    assert path.name in first and f":{line}:" in first and "storag" in first, first
    assert catalog["unknown key '{key}'"].format(key="storag") in first, first
    assert catalog["; did you mean '{word}'?"].format(word="storage") in first, first
    assert "unknown key" not in first and "did you mean" not in first, first
    assert catalog["{count} problem(s) found in {file}"].format(count=1, file=path) \
        in result.stderr


def test_check_config_reports_an_unknown_key_in_indonesian(tmp_path):
    path = unknown_key_config(tmp_path)
    result = run_monitord("check-config", str(path), lang="id_ID.UTF-8", cwd=tmp_path)
    assert_indonesian_unknown_key(result, path, line=2)


def test_check_config_language_key_wins_over_an_english_locale(tmp_path):
    """The problems of an invalid file are read by the people who chose `language: id`."""
    path = unknown_key_config(tmp_path)
    result = run_monitord("check-config", str(path), lang="C.UTF-8", cwd=tmp_path)
    assert_indonesian_unknown_key(result, path, line=2)


def test_check_config_is_english_without_language_key_under_c_locale(tmp_path):
    path = unknown_key_config(tmp_path, language=None)
    result = run_monitord("check-config", str(path), lang="C.UTF-8", cwd=tmp_path)
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert f"{path.name}:1:" in first and "unknown key 'storag'" in first
    assert "did you mean 'storage'?" in first


def test_check_config_duplicate_key_problem_follows_the_language_key(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("language: id\nsites:\n  - name: hq\n    name: hq2\n", encoding="utf-8")
    result = run_monitord("check-config", str(path), lang="C.UTF-8", cwd=tmp_path)
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert f"{path.name}:4:" in first
    assert catalogue()["each key once"] in first, first
