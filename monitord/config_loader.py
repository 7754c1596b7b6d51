"""Read monitord.yaml and report every problem with file, line, key path, found and expected.

The YAML is composed into nodes first so that each key path knows its line; pydantic validates
the plain data; its errors and our cross-reference checks are then mapped back to lines.
"""

from __future__ import annotations

import difflib
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from monitord.config import Config
from monitord.i18n import SUPPORTED, _, set_language

Path_ = tuple[str | int, ...]
_URL_PASSWORD = re.compile(r"://([^:/@\s]*):[^@/\s]*@")
_SECRET_WORDS = ("community", "password", "secret", "token", "key")


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    file: str
    line: int
    path: str
    found: str
    expected: str

    def __str__(self) -> str:
        return _("{file}:{line}: {path}: found {found}; expected {expected}").format(
            file=self.file, line=self.line, path=self.path or _("(top level)"),
            found=self.found, expected=self.expected,
        )


class ConfigError(Exception):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def format_path(path: Path_) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _LineMap:
    """Key path -> line number, built from the composed YAML node tree."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.lines: dict[Path_, int] = {}
        self.nodes: dict[Path_, yaml.Node] = {}
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, path: Path_) -> None:
        self.nodes[path] = node
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                self._walk(value_node, path + (key,))
                self.lines[path + (key,)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self._walk(item, path + (index,))

    def resolve(self, loc: tuple[Any, ...]) -> tuple[Path_, int]:
        """Follow a pydantic location through the YAML, skipping union tags it adds."""
        path: Path_ = ()
        for part in loc:
            candidate = path + (part,)
            if candidate in self.lines:
                path = candidate
        return path, self.lines.get(path, 1)


def _duplicate_key_problems(file: str, root: yaml.Node | None) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []

    def walk(node: yaml.Node, path: Path_) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value
                line = key_node.start_mark.line + 1
                if key in seen:
                    problems.append(ConfigProblem(
                        file, line, format_path(path + (key,)),
                        _("a second '{key}' (first on line {first})").format(key=key, first=seen[key]),
                        _("each key once"),
                    ))
                seen[key] = line
                walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, path + (index,))

    if root is not None:
        walk(root, ())
    return problems


def _is_secret_path(path: Path_) -> bool:
    """A value under a key named like a secret is never echoed back, even when misplaced."""
    keys = [p for p in path if isinstance(p, str)]
    return any(w in keys[-1].lower() for w in _SECRET_WORDS) if keys else False


def _show(value: Any, path: Path_) -> str:
    if _is_secret_path(path) and not isinstance(value, (dict, list, type(None))):
        return _("an inline value (hidden)")
    if isinstance(value, dict):
        return _("a mapping")
    if isinstance(value, list):
        return _("a list") if value else _("an empty list")
    if value is None:
        return _("nothing")
    if isinstance(value, str):
        value = _URL_PASSWORD.sub(r"://\1:***@", value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the last key of `loc` (for "did you mean")."""
    candidates: list[Any] = [root]
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        tagged = [m for m in candidates if _type_tag(m) == part]
        if tagged:  # a discriminated union adds the tag to the location
            candidates = tagged
            continue
        owners = [m for m in candidates if part in m.model_fields]
        if not owners:
            return None
        candidates = _models_in(owners[0].model_fields[part].annotation)
        if not candidates:
            return None
    return candidates[0] if len(candidates) == 1 else None


def _type_tag(model: Any) -> str | None:
    field = model.model_fields.get("type")
    args = typing.get_args(field.annotation) if field else ()
    return args[0] if len(args) == 1 else None


def _models_in(annotation: Any) -> list[Any]:
    """Every pydantic model inside Optional/tuple/dict/Annotated/Union."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[Any] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return _("; did you mean '{word}'?").format(word=close[0]) if close else ""


_EXPECTED_BY_TYPE = {
    "int_type": "a whole number", "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a text string", "list_type": "a list", "tuple_type": "a list",
    "dict_type": "a mapping (key: value)", "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)", "missing": "this key to be present",
    "timedelta_type": "a duration such as 30s, 5m, 1h or 2d",
}


def _expected(error: dict[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _EXPECTED_BY_TYPE:
        return _(_EXPECTED_BY_TYPE[kind])
    if kind in ("literal_error", "enum"):
        return _("one of {choices}").format(choices=ctx.get("expected", ""))
    if kind == "string_pattern_mismatch":
        return _("a name of letters, digits, '.', '_' or '-' (matching {pattern})").format(
            pattern=ctx.get("pattern", ""))
    for bound, text in (("gt", "a number greater than {v}"), ("ge", "a number of at least {v}"),
                        ("lt", "a number less than {v}"), ("le", "a number of at most {v}")):
        if bound in ctx and kind.startswith(("greater", "less")):
            return _(text).format(v=ctx[bound])
    if kind in ("too_short", "too_long"):
        return _("a list of at least {n} item(s)").format(n=ctx.get("min_length", 1))
    if kind == "union_tag_invalid":
        return _("type to be one of {choices}").format(choices=ctx.get("expected_tags", ""))
    if kind == "union_tag_not_found":
        return _("a 'type' key, one of {choices}").format(choices=ctx.get("discriminator", ""))
    if kind == "value_error":
        return str(ctx.get("error", error.get("msg", "")))
    return error.get("msg", kind)


def _validation_problems(file: str, lines: _LineMap, root: type[BaseModel],
                         exc: ValidationError) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        path, line = lines.resolve(loc)
        if error["type"] == "extra_forbidden":
            key = str(loc[-1])
            model = _model_at(root, loc)
            choices = sorted(model.model_fields) if model else []
            expected = _("one of the keys {keys}").format(keys=", ".join(choices)) + \
                _did_you_mean(key, choices)
            problems.append(ConfigProblem(file, lines.lines.get(path, line),
                                          format_path(path), _("unknown key '{key}'").format(key=key),
                                          expected))
            continue
        if error["type"] == "missing":
            shown_path = format_path(path + (loc[-1],)) if loc else ""
            problems.append(ConfigProblem(file, line, shown_path, _("nothing"),
                                          _("this key to be present")))
            continue
        if error["type"] in ("union_tag_invalid", "union_tag_not_found") and path + ("type",) in lines.lines:
            path = path + ("type",)
            line = lines.lines[path]
            error = {**error, "input": getattr(lines.nodes.get(path), "value", None)}
        found_value = lines.nodes.get(path)
        problems.append(ConfigProblem(
            file, line, format_path(path),
            _show(error.get("input"), path) if found_value is not None or "input" in error else _("nothing"),
            _expected(error),
        ))
    return problems


def _named(data: dict[str, Any], section: str) -> list[tuple[int, dict[str, Any]]]:
    items = data.get(section)
    if section == "notifications":
        items = (data.get("notifications") or {}).get("channels") if isinstance(
            data.get("notifications"), dict) else None
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def _reference_problems(file: str, lines: _LineMap, data: dict[str, Any]) -> list[ConfigProblem]:
    """Cross-references (site, credential, parent) checked on the raw data, so that they are
    reported together with type errors in one run."""
    problems: list[ConfigProblem] = []
    credentials_data = data.get("credentials") if isinstance(data.get("credentials"), dict) else {}
    sites = [str(s.get("name")) for _i, s in _named(data, "sites")]
    credentials = [str(name) for name in credentials_data]
    devices = [str(d.get("name")) for _i, d in _named(data, "devices")]

    def problem(path: Path_, found: str, expected: str) -> None:
        problems.append(ConfigProblem(file, lines.lines.get(path, 1), format_path(path),
                                      found, expected))

    def check(path: Path_, value: Any, known: list[str], what: str) -> None:
        if value is None or not isinstance(value, str) or value in known:
            return
        listed = ", ".join(known) if known else _("none are defined")
        problem(path, repr(value), _("the name of {what} ({listed})").format(
            what=what, listed=listed) + _did_you_mean(value, known))

    for section in ("sites", "devices", "people", "notifications"):
        seen: set[Any] = set()
        for index, item in _named(data, section):
            name = item.get("name")
            path: Path_ = (section, index, "name") if section != "notifications" else \
                ("notifications", "channels", index, "name")
            if name in seen:
                problem(path, repr(name), _("a name not used before in {section}")
                        .format(section=section))
            seen.add(name)

    for index, device in _named(data, "devices"):
        base: Path_ = ("devices", index)
        check(base + ("site",), device.get("site"), sites, _("a site defined under sites"))
        for key in ("credential", "ssh_credential"):
            check(base + (key,), device.get(key), credentials,
                  _("a credential defined under credentials"))
        check(base + ("parent",), device.get("parent"),
              [d for d in devices if d != device.get("name")],
              _("another device defined under devices"))
        snmp = credentials_data.get(device.get("credential"))
        if isinstance(snmp, dict) and snmp.get("type") == "ssh":
            problem(base + ("credential",), repr(device.get("credential")),
                    _("an SNMP credential (snmp_v1, snmp_v2c or snmp_v3); "
                      "put SSH logins under ssh_credential"))
    traps = data.get("traps") if isinstance(data.get("traps"), dict) else {}
    trap_credentials = traps.get("credentials") if isinstance(traps.get("credentials"), list) \
        else []
    snmp_credentials = [name for name in credentials if isinstance(credentials_data.get(name),
                        dict) and credentials_data[name].get("type") != "ssh"]
    for index, name in enumerate(trap_credentials):
        check(("traps", "credentials", index), name, snmp_credentials,
              _("an SNMP credential defined under credentials"))
    # netconfig (issue 7): each entry names a device that has an SSH login
    ssh_devices = [str(d.get("name")) for _i, d in _named(data, "devices")
                   if isinstance(credentials_data.get(d.get("ssh_credential")), dict)
                   and credentials_data[d.get("ssh_credential")].get("type") == "ssh"]
    for index, entry in _named(data, "netconfig"):
        name = entry.get("device")
        if isinstance(name, str) and name in devices and name not in ssh_devices:
            problem(("netconfig", index, "device"), repr(name),
                    _("a device with an ssh_credential of type ssh"))
        else:
            check(("netconfig", index, "device"), name, devices,
                  _("a device defined under devices"))
    problems.extend(_parent_cycles(file, lines, data))
    return problems


def _parent_cycles(file: str, lines: _LineMap, data: dict[str, Any]) -> list[ConfigProblem]:
    devices = _named(data, "devices")
    parents = {d.get("name"): d.get("parent") for _i, d in devices}
    problems = []
    for index, device in devices:
        seen, current = {device.get("name")}, device.get("parent")
        while current is not None and current in parents:
            if current in seen:
                path: Path_ = ("devices", index, "parent")
                problems.append(ConfigProblem(file, lines.lines.get(path, 1), format_path(path),
                                              repr(device.get("parent")),
                                              _("a parent chain without a loop")))
                break
            seen.add(current)
            current = parents[current]
    return problems


def _speak_the_files_language(root: yaml.Node | None) -> None:
    """The problems are read by the people who chose this file's `language:`."""
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "language" and getattr(value, "value", None) in SUPPORTED:
                set_language(value.value)


def _unconstructible(file: str, lines: _LineMap) -> ConfigProblem:
    loader = yaml.SafeLoader("")
    for path, node in lines.nodes.items():
        if isinstance(node, yaml.ScalarNode):
            try:
                loader.construct_object(node, deep=True)
            except Exception:
                found = _("an inline value (hidden)") if _is_secret_path(path) else \
                    _("a value tagged {tag}").format(tag=node.tag)
                return ConfigProblem(file, lines.lines.get(path, 1), format_path(path), found,
                                     _("a plain YAML value (no tag)"))
    return ConfigProblem(file, 1, "", _("a value YAML cannot read"), _("valid YAML"))


M = TypeVar("M", bound=BaseModel)
ReferenceCheck = Callable[[str, "_LineMap", dict[str, Any]], list[ConfigProblem]]


def parse_yaml_model(text: str, file: str, model: type[M],
                     references: ReferenceCheck | None = None) -> M:
    """Validate YAML text into `model`; raise ConfigError listing every problem found, each
    with file, line, key path, what was found and what is expected."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        # Only the problem, never str(exc): that quotes the source line, secrets included.
        problem = getattr(exc, "problem", None) or _("unreadable")
        raise ConfigError([ConfigProblem(file, line, "", _("invalid YAML ({problem})")
                                         .format(problem=problem), _("valid YAML syntax"))]) from None
    _speak_the_files_language(root)
    lines = _LineMap(root)
    problems = _duplicate_key_problems(file, root)
    try:
        data = yaml.safe_load(text) if root is not None else {}
    except Exception:  # a tag YAML cannot build (!!int abc, !secret x): say where, not what
        raise ConfigError([_unconstructible(file, lines)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(file, 1, "", _show(data, ()),
                                         _("a mapping of sections (sites, devices, ...)"))])
    if references is not None:
        problems.extend(references(file, lines, data))
    result = None
    try:
        result = model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_validation_problems(file, lines, model, exc))
    if problems or result is None:
        raise ConfigError(sorted(problems, key=lambda p: p.line))
    return result


def parse_config_text(text: str, file: str = "<config>") -> Config:
    return parse_yaml_model(text, file, Config, _reference_problems)


def read_text_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), 0, "", _("no readable file ({reason})")
                                         .format(reason=exc.strerror), _("a readable YAML file"))]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem(str(path), 0, "", _("bytes that are not UTF-8"),
                                         _("a UTF-8 text file"))]) from None


def load_config(path: str | Path) -> Config:
    path = Path(path)
    return parse_config_text(read_text_file(path), str(path))
