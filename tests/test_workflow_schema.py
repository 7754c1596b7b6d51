"""The five bundled SOP workflows load and follow their seed SOPs (shared/seeds/); a broken
workflow file is rejected with the file, the line and the key path of each problem."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from monitord.config_loader import ConfigError
from monitord.i18n import set_language
from monitord.incidents.workflow.schema import (
    UNIVERSAL_ACTIONS,
    Workflow,
    bundled_workflow_files,
    load_workflow,
    load_workflows,
)

EXPECTED = {
    "dki-jakarta-2013",
    "kaltim-keamanan-jaringan",
    "bekasi-gangguan-jaringan",
    "katingan-helpdesk-2024",
    "pengadilan-layanan-ti",
}
# The action vocabulary the CLI and the web desk share.
VOCABULARY = {"forward", "accept", "direct", "report", "verify", "escalate", "resolve",
              "inform", "close", "approve", "classify", "record"}
WORKING_DAY = timedelta(hours=8)  # "1 hari" / "1 hari kerja": one working day of office hours


@pytest.fixture(autouse=True)
def english():
    set_language("en")
    yield
    set_language("en")


@pytest.fixture(scope="module")
def workflows() -> dict[str, Workflow]:
    return load_workflows()


def reachable(workflow: Workflow) -> set[str]:
    """Steps reachable from start and auto_start through actions, outcomes and timeouts."""
    seen: set[str] = set()
    todo = [workflow.start, *([workflow.auto_start] if workflow.auto_start else [])]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        step = workflow.step(name)
        for transition in step.actions.values():
            todo.extend(transition.targets())
        if step.on_timeout and step.on_timeout.next:
            todo.append(step.on_timeout.next)
    return seen


def main_path(workflow: Workflow) -> list[str]:
    """From start, the first action each time (a check's `resolved` outcome) up to closing."""
    path, name = [], workflow.start
    while True:
        assert name not in path, f"{workflow.name}: the main path loops at {name}"
        path.append(name)
        step = workflow.step(name)
        if step.terminal:
            return path
        transition = next(iter(step.actions.values()))
        name = transition.next or transition.outcomes["resolved"]


def sop_numbers(sop_step: str) -> set[int]:
    """'3-4' -> {3, 4}; '17' -> {17}; '' -> set()."""
    numbers: set[int] = set()
    for part in filter(None, (p.strip() for p in sop_step.split(","))):
        low, _, high = part.partition("-")
        numbers.update(range(int(low), int(high or low) + 1))
    return numbers


# -- every bundled workflow -------------------------------------------------------------------


def test_all_five_bundled_workflows_load_with_their_names(workflows):
    assert EXPECTED <= set(workflows)
    for file, text in bundled_workflow_files():
        name = file.removesuffix(".yaml")
        assert re.search(rf"^name: {re.escape(name)}$", text, re.M), \
            f"{file}: name must equal the file name without .yaml"
        assert workflows[name].name == name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_structure(workflows, name):
    workflow = workflows[name]
    assert workflow.start in workflow.steps and workflow.step(workflow.start).role
    assert workflow.auto_start in workflow.steps
    # monitord records the report itself; a monitord-opened incident enters after that step
    assert workflow.step(workflow.start).system
    assert workflow.auto_start in workflow.step(workflow.start).actions["forward"].targets()
    assert reachable(workflow) == set(workflow.steps)
    closing = [n for n, s in workflow.steps.items() if s.status == "closed"]
    assert closing
    assert any(s.status == "resolved" for s in workflow.steps.values())
    assert set(workflow.tiers) <= set(workflow.roles)
    for code in workflow.roles:
        assert re.fullmatch(r"[A-Z]{2,5}", code), f"{name}: role code {code!r}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_steps_speak_the_shared_vocabulary_and_have_timers(workflows, name):
    workflow = workflows[name]
    for step_name, step in workflow.steps.items():
        where = f"{name}.{step_name}"
        assert step.title.en and step.title.id, where
        if step.terminal:
            assert not step.actions and step.time is None, where
            continue
        assert set(step.actions) <= VOCABULARY, where
        assert not set(step.actions) & set(UNIVERSAL_ACTIONS), where
        assert step.action_needed is None or (step.action_needed.en and step.action_needed.id)
        if step.time is not None:
            assert step.on_timeout is not None, f"{where}: a time standard needs on_timeout"
            # On the working calendar 1d is 24 office hours (three working days): the SOPs'
            # "hari" standards are written as 8h per working day.
            assert step.time <= 2 * WORKING_DAY, f"{where}: a working day is 8h"
        if step.on_timeout and step.on_timeout.action == "escalate":
            target = workflow.step(step.on_timeout.next)
            assert workflow.tier(target.role) > workflow.tier(step.role), \
                f"{where}: a timeout escalates up the ladder"
        for action, transition in step.actions.items():
            if transition.outcomes is not None:
                assert set(transition.outcomes) == {"resolved", "not_resolved"}, where


@pytest.mark.parametrize("name", sorted(EXPECTED - {"dki-jakarta-2013"}))
def test_every_step_a_person_acts_on_says_what_to_do_and_by_when(workflows, name):
    for step_name, step in workflows[name].steps.items():
        if not step.terminal:
            assert step.action_needed is not None, f"{name}.{step_name}"
            assert step.time is not None and step.working_time, f"{name}.{step_name}"


# -- each SOP ---------------------------------------------------------------------------------


def test_dki_covers_the_18_sop_steps(workflows):
    dki = workflows["dki-jakarta-2013"]
    covered: set[int] = set()
    for step in dki.steps.values():
        covered |= sop_numbers(step.sop_step)
    assert covered == set(range(1, 19))
    assert dki.tiers == ("PO", "KD", "KS", "KB")


def test_bekasi_follows_the_seven_step_times_along_its_main_path(workflows):
    bekasi = workflows["bekasi-gangguan-jaringan"]
    path = main_path(bekasi)
    times = [bekasi.step(n).time for n in path if bekasi.step(n).time is not None]
    minutes = timedelta(minutes=1)
    hour = timedelta(hours=1)
    # SOP: 15 menit, 15 menit, 1 jam, 1 hari, 1 jam, 1 jam, 1 jam
    assert times == [15 * minutes, 15 * minutes, hour, WORKING_DAY, hour, hour, hour]
    assert [bekasi.step(n).sop_step for n in path[:-1]] == [str(i) for i in range(1, 8)]
    assert [bekasi.step(n).role for n in path[:-1]] == ["KB", "KS", "ADM", "PL", "ADM", "KS", "KB"]
    assert bekasi.tiers == ("PL", "ADM", "KS", "KB")
    assert bekasi.step(path[-2]).status == "resolved"  # the KB confirms with the agency


def test_kaltim_times_match_the_mutu_baku(workflows):
    kaltim = workflows["kaltim-keamanan-jaringan"]
    m, h = timedelta(minutes=1), timedelta(hours=1)
    # step: (SOP step, mutu baku); a range takes its upper bound ("1-2 jam" -> 2h,
    # "1-3 jam" -> 3h, "1-2 hari" -> two working days), "1 hari" is one working day.
    expected = {
        "pti_record": ("1", WORKING_DAY),  # 1 hari
        "pa_dispose": ("2", 20 * m),  # 20 menit
        "pp_direct": ("3", 2 * h),  # 1-2 jam
        "tt_handle": ("4", WORKING_DAY),  # 1 hari
        "pp_consult": ("5", 1 * h),  # 1 jam
        "pa_direct": ("6", 2 * h),  # 1-2 jam
        "tt_follow_up": ("7", 2 * WORKING_DAY),  # 1-2 hari
        "tt_report": ("8", 20 * m),  # 20 menit
        "pp_check": ("9", 1 * h),  # 1 jam
        "pa_accept": ("10", 20 * m),  # 20 menit
        "pp_notify": ("11", 2 * h),  # 1-2 jam
        "tt_pass_on": ("12", 3 * h),  # 1-3 jam
    }
    for name, (sop_step, time) in expected.items():
        step = kaltim.step(name)
        assert (step.sop_step, step.time, step.working_time) == (sop_step, time, True), name
    covered: set[int] = set()
    for step in kaltim.steps.values():
        covered |= sop_numbers(step.sop_step)
    assert covered == set(range(1, 13))
    # the supervisor's check: not done -> the team repeats step 7
    check = kaltim.step("pp_check").actions["verify"].outcomes
    assert check == {"resolved": "pa_accept", "not_resolved": "tt_follow_up"}
    # a hard case is consulted: TT -> PP -> PA
    assert kaltim.step("tt_handle").actions["escalate"].next == "pp_consult"
    assert kaltim.step("pp_consult").actions["escalate"].next == "pa_direct"
    assert kaltim.tiers == ("TT", "PP", "PA")


def test_katingan_records_the_solution(workflows):
    katingan = workflows["katingan-helpdesk-2024"]
    restore = katingan.step("ts_restore").actions["resolve"]
    assert restore.needs_note
    path = main_path(katingan)
    assert path == ["pk_receive", "kadis_dispose", "kb_check", "pk_classify", "ts_restore",
                    "kb_inform", "pk_close", "closed"]
    assert katingan.step("kb_inform").status == "resolved"  # the OPD is informed
    assert "OPD" not in katingan.roles  # the requesting agency is the reporter


def test_court_approves_before_work_and_a_rejection_closes_without_work(workflows):
    court = workflows["pengadilan-layanan-ti"]
    path = main_path(court)
    actions = [next(iter(court.step(n).actions)) for n in path if court.step(n).actions]
    handle = path.index("op_handle")
    before = {next(iter(court.step(n).actions)) for n in path[:handle]}
    assert {"classify", "verify", "approve"} <= before
    assert "kbg_prioritise" in path[:handle]
    assert actions[-2:] == ["resolve", "inform"]
    approve = court.step("ket_approve").actions["approve"].outcomes
    assert approve["resolved"] == "op_handle"
    # rejected: the requester is told, then it closes; nothing on that path does the work
    name, seen = approve["not_resolved"], []
    while not court.step(name).terminal:
        seen.append(name)
        name = next(iter(court.step(name).actions.values())).next
    assert "op_handle" not in seen and seen
    assert court.step(seen[-1]).status != "resolved"
    # the SOP's day numbers: five working days for the whole request
    assert sum((court.step(n).time for n in path if court.step(n).time
                and n != "op_inform"), timedelta()) == 5 * WORKING_DAY


# -- structural errors: file, line, key path --------------------------------------------------

VALID = """\
name: broken
title: {en: Test, id: Uji}
roles:
  A: {en: A, id: A}
  B: {en: B, id: B}
tiers: [A, B]
start: a
steps:
  a:
    title: {en: a, id: a}
    role: A
    time: 1h
    actions:
      forward: {next: b}
    on_timeout: {action: escalate, next: b}
  b:
    title: {en: b, id: b}
    role: B
    actions:
      verify: {outcomes: {resolved: done, not_resolved: a}}
  done:
    title: {en: done, id: done}
    status: closed
"""


def write(tmp_path: Path, text: str) -> tuple[Path, int]:
    """The file, and the line marked `# <-` (the line the problem must name)."""
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    marked = [i for i, line in enumerate(text.splitlines(), 1) if "# <-" in line]
    return path, (marked[0] if marked else 0)


def test_the_valid_base_loads(tmp_path):
    path, _ = write(tmp_path, VALID)
    assert set(load_workflow(path).steps) == {"a", "b", "done"}


BROKEN = {
    "unknown role": (
        VALID.replace("    role: B\n", "    role: X  # <-\n"),
        "steps.b.role", "role defined under roles"),
    "unknown next step": (
        VALID.replace("      forward: {next: b}\n", "      forward: {next: nowhere}  # <-\n"),
        "steps.a.actions.forward.next", "step defined under steps"),
    "unreachable step": (
        VALID + "  orphan:  # <-\n    title: {en: o, id: o}\n    role: A\n"
        "    actions:\n      forward: {next: done}\n",
        "steps.orphan", "reachable"),
    "step with no way out": (
        VALID.replace("      forward: {next: b}\n",
                      "      forward: {next: b}\n      escalate: {next: stuck}\n")
        + "  stuck:  # <-\n    title: {en: s, id: s}\n    role: B\n",
        "steps.stuck", "status: closed"),
    "escalate timeout without next": (
        VALID.replace("    on_timeout: {action: escalate, next: b}\n",
                      "    on_timeout: {action: escalate}  # <-\n"),
        "steps.a.on_timeout", "escalate"),
    "outcomes without not_resolved": (
        VALID.replace("      verify: {outcomes: {resolved: done, not_resolved: a}}\n",
                      "      verify: {outcomes: {resolved: done}}  # <-\n"),
        "steps.b.actions.verify", "not_resolved"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_structural_errors_name_file_line_and_key(tmp_path, case):
    text, key_path, expected = BROKEN[case]
    path, line = write(tmp_path, text)
    assert line, "the broken line is marked"
    with pytest.raises(ConfigError) as caught:
        load_workflow(path)
    problems = caught.value.problems
    assert [(p.file, p.line, p.path) for p in problems] == [(str(path), line, key_path)], \
        "\n".join(map(str, problems))
    assert expected in problems[0].expected
    assert f"{path}:{line}: {key_path}:" in str(caught.value)


def test_a_broken_office_file_fails_load_workflows_with_its_name(tmp_path):
    text, key_path, _ = BROKEN["unknown role"]
    path, line = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_workflows((str(path),))
    assert [(p.file, p.line, p.path) for p in caught.value.problems] == \
        [(str(path), line, key_path)]
