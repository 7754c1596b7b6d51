"""An SOP as data: roles, tiers, steps with their acting role and time standard, and where each
action or outcome leads. One YAML file per SOP under config/workflows/; an office can load its
own. `load_workflow` gives the same clear errors as the main configuration (file, line, key)
and rejects unknown roles, unknown steps, unreachable steps and steps with no way out."""

from __future__ import annotations

from collections import deque
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from monitord.config import Duration, Model, Name
from monitord.config_loader import (
    ConfigError,
    ConfigProblem,
    _LineMap,
    format_path,
    parse_yaml_model,
    read_text_file,
)
from monitord.i18n import _

# e.g. HD, PO, KD, KS, KB: defined by each workflow's `roles`; the same pattern as
# Person.roles in the main configuration, so every role can be held by someone.
RoleCode = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]{0,15}$")]
Outcome = Literal["resolved", "not_resolved"]

# Actions any actor of the current step may take at any open step; they never move the step.
UNIVERSAL_ACTIONS = ("note", "assign", "involve", "set_priority")


class Text(Model):
    """A label in both languages monitord speaks."""

    en: str
    id: str

    def get(self, language: str) -> str:
        return self.id if language == "id" else self.en


class Transition(Model):
    """Where an action leads: one `next` step, or one step per outcome (a check step)."""

    next: Name | None = None
    outcomes: dict[Outcome, Name] | None = None
    needs_note: bool = False  # e.g. Katingan: the solution must be recorded

    @model_validator(mode="after")
    def _one_target(self) -> "Transition":
        if (self.next is None) == (self.outcomes is None):
            raise ValueError(_("exactly one of next (a step) or outcomes "
                               "(resolved and not_resolved, each a step)"))
        if self.outcomes is not None and set(self.outcomes) != {"resolved", "not_resolved"}:
            raise ValueError(_("outcomes for both resolved and not_resolved"))
        return self

    def targets(self) -> list[str]:
        return [self.next] if self.next else list((self.outcomes or {}).values())


class Timeout(Model):
    """What happens when a step outlives its time standard. Always recorded as an SLA breach."""

    action: Literal["escalate", "notify"]
    next: Name | None = None  # the step an escalation moves to
    notify: tuple[RoleCode, ...] = ()  # roles told of the breach (besides the step's role)

    @model_validator(mode="after")
    def _escalation_has_a_target(self) -> "Timeout":
        if self.action == "escalate" and self.next is None:
            raise ValueError(_("next (the step to escalate to) when action is escalate"))
        return self


class Step(Model):
    title: Text
    role: RoleCode | None = None  # None only on terminal steps
    sop_step: str = ""  # where this is in the SOP text, e.g. "9-11"
    action_needed: Text | None = None  # what the ticket asks the recipient to do
    time: Duration | None = None  # the SOP's time standard ("mutu baku")
    working_time: bool = True  # counted on the office calendar, not the wall clock
    actions: dict[Name, Transition] = {}
    on_timeout: Timeout | None = None
    notify: tuple[RoleCode, ...] | None = None  # who gets the ticket; default: `role`
    system: bool = False  # done by monitord itself for incidents it opens (HD recording)
    status: Literal["open", "resolved", "closed"] = "open"  # the incident's status here

    @property
    def terminal(self) -> bool:
        return self.status == "closed"

    def recipients(self) -> tuple[RoleCode, ...]:
        if self.notify is not None:
            return self.notify
        return (self.role,) if self.role else ()


class Workflow(Model):
    name: Name
    title: Text
    source: str = ""  # the SOP document it follows
    roles: dict[RoleCode, Text] = Field(min_length=1)
    tiers: tuple[RoleCode, ...] = ()  # lowest to highest: a higher tier may act on a lower step
    start: Name  # where a person's report enters (the help desk's recording)
    auto_start: Name | None = None  # where an incident monitord opened enters
    reopen_to: Name | None = None  # where `reopen` of a closed incident leads
    steps: dict[Name, Step] = Field(min_length=2)

    def step(self, name: str) -> Step:
        return self.steps[name]

    def tier(self, role: str) -> int:
        """Position on the escalation ladder; roles off the ladder (HD) rank below it."""
        return self.tiers.index(role) if role in self.tiers else -1

    def entry(self, source: str) -> str:
        return self.auto_start if source == "monitor" and self.auto_start else self.start

    @property
    def total_time(self) -> timedelta:
        return sum((s.time for s in self.steps.values() if s.time), timedelta())


def _structure_problems(file: str, lines: _LineMap, data: dict[str, Any]) -> list[ConfigProblem]:
    """Roles and step names that exist, every step reachable, every open step with a way out."""
    problems: list[ConfigProblem] = []
    roles = set((data.get("roles") or {}).keys()) if isinstance(data.get("roles"), dict) else set()
    steps = data.get("steps") if isinstance(data.get("steps"), dict) else {}

    def problem(path: tuple, found: str, expected: str) -> None:
        problems.append(ConfigProblem(file, lines.lines.get(path, 1), format_path(path),
                                      found, expected))

    def check_role(path: tuple, role: Any) -> None:
        if isinstance(role, str) and role not in roles:
            problem(path, repr(role), _("a role defined under roles ({roles})")
                    .format(roles=", ".join(sorted(roles))))

    def check_step(path: tuple, name: Any) -> None:
        if isinstance(name, str) and name not in steps:
            problem(path, repr(name), _("a step defined under steps ({count} defined)")
                    .format(count=len(steps)))

    declared = data.get("name")
    if file.endswith((".yaml", ".yml")) and isinstance(declared, str) \
            and declared != Path(file).name.rsplit(".", 1)[0]:
        problem(("name",), repr(declared), _("the file name without .yaml ({stem})")
                .format(stem=Path(file).name.rsplit(".", 1)[0]))
    tiers = [r for r in (data.get("tiers") or []) if isinstance(r, str)]
    for index, role in enumerate(data.get("tiers") or []):
        check_role(("tiers", index), role)
        if role in tiers[:index]:
            problem(("tiers", index), repr(role), _("each role once on the ladder"))

    def tier(role: Any) -> int:
        return tiers.index(role) if role in tiers else -1
    for key in ("start", "auto_start", "reopen_to"):
        check_step((key,), data.get(key))
    edges: dict[str, set[str]] = {}
    for name, step in steps.items():
        if not isinstance(step, dict):
            continue
        base = ("steps", name)
        check_role(base + ("role",), step.get("role"))
        for index, role in enumerate(step.get("notify") or []):
            check_role(base + ("notify", index), role)
        targets: set[str] = set()
        for action, transition in (step.get("actions") or {}).items():
            if not isinstance(transition, dict):
                continue
            if "next" in transition:
                check_step(base + ("actions", action, "next"), transition["next"])
                targets.add(transition["next"])
            for outcome, target in (transition.get("outcomes") or {}).items():
                check_step(base + ("actions", action, "outcomes", outcome), target)
                targets.add(target)
        by_people = {t for t in targets if isinstance(t, str)}  # before the timeout's target
        timeout = step.get("on_timeout")
        if isinstance(timeout, dict):
            if step.get("time") is None:
                problem(base + ("on_timeout",), _("a timeout without a time standard"),
                        _("time: on this step (the SOP's mutu baku), or no on_timeout"))
            if timeout.get("next") is not None:
                check_step(base + ("on_timeout", "next"), timeout["next"])
                targets.add(timeout["next"])
                target = steps.get(timeout["next"])
                if timeout.get("action") == "escalate" and isinstance(target, dict) \
                        and target.get("role") in roles and step.get("role") in roles \
                        and tier(target.get("role")) <= tier(step.get("role")):
                    problem(base + ("on_timeout", "next"), repr(timeout["next"]),
                            _("a step of a higher tier than {role} (escalation goes up "
                              "the ladder: {tiers})").format(role=step.get("role"),
                                                              tiers=", ".join(tiers)))
            for index, role in enumerate(timeout.get("notify") or []):
                check_role(base + ("on_timeout", "notify", index), role)
        edges[name] = {t for t in targets if isinstance(t, str)}
        terminal = step.get("status") == "closed"
        if not terminal and not by_people:
            problem(base, _("a step with no way out"),
                    _("at least one action leading to another step, or status: closed"))
        if not terminal and not step.get("role"):
            problem(base + ("role",), _("nothing"), _("the role that acts at this step"))
    entries = [data.get(k) for k in ("start", "auto_start") if data.get(k) in steps]
    reopen = data.get("reopen_to")
    if reopen in steps:
        for name, step in steps.items():
            if isinstance(step, dict) and step.get("status") == "closed":
                edges.setdefault(name, set()).add(reopen)
    seen = set(entries)
    queue = deque(entries)
    while queue:
        for target in edges.get(queue.popleft(), ()):
            if target in steps and target not in seen:
                seen.add(target)
                queue.append(target)
    if entries:
        for name in steps:
            if name not in seen:
                problem(("steps", name), _("a step no path reaches"),
                        _("every step reachable from start or auto_start"))
        if not any(isinstance(steps[n], dict) and steps[n].get("status") == "closed"
                   for n in seen):
            problem(("steps",), _("no closing step"), _("a reachable step with status: closed"))
    return problems


def parse_workflow(text: str, file: str) -> Workflow:
    return parse_yaml_model(text, file, Workflow, _structure_problems)


def load_workflow(path: str | Path) -> Workflow:
    path = Path(path)
    return parse_workflow(read_text_file(path), str(path))


def bundled_workflow_files() -> list[tuple[str, str]]:
    """(name, text) of every workflow file that ships with monitord."""
    folder = resources.files("monitord.bundled").joinpath("workflows")
    return sorted((entry.name, entry.read_text("utf-8")) for entry in folder.iterdir()
                  if entry.name.endswith(".yaml"))


def load_workflows(extra_files: tuple[str, ...] = ()) -> dict[str, Workflow]:
    """The built-in SOPs plus an office's own files; a later file of the same name wins."""
    workflows: dict[str, Workflow] = {}
    problems: list[ConfigProblem] = []
    sources = [(f"workflows/{name}", text) for name, text in bundled_workflow_files()]
    sources += [(str(Path(p)), read_text_file(Path(p))) for p in extra_files]
    for file, text in sources:
        try:
            workflow = parse_workflow(text, file)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        workflows[workflow.name] = workflow
    if problems:
        raise ConfigError(problems)
    return workflows
