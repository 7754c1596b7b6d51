"""Service check results -> findings. Pure: reads the `service_check` Events that
`collectors/services.py` emits (fields: check, kind, target, ok, up, error, days_left,
chain_error, hostname_error, ...), never a socket or the clock.

- `service_down`: the service did not answer `failures` checks in a row (one miss is a blip);
  the first answer clears it. Category application by default, database for database checks,
  or whatever the check's policy says.
- `tls_cert_expiring`: fewer than `tls_warn_days` days left; the severity rises as the day
  nears (low, medium under half the warning, high under `tls_critical_days`, critical once
  expired). Cleared when a renewed certificate is seen.
- `tls_cert_invalid`: the chain does not verify or the certificate is for another name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from monitord.i18n import N_, _
from monitord.records import Category, Event, Finding, FindingState, Level, Sample, Severity

SERVICE_DOWN = N_("{check} is not answering: {error} ({misses} checks in a row)")
TLS_EXPIRING = N_("The certificate of {target} expires in {days:.0f} days ({not_after})")
TLS_EXPIRED = N_("The certificate of {target} expired on {not_after}")
TLS_INVALID = N_("The certificate of {target} is not valid: {problem}")
KINDS = ("service_down", "tls_cert_expiring", "tls_cert_invalid")


@dataclass(frozen=True, slots=True)
class ServicePolicy:
    """What a check's failures mean. `category` None: database for a database check,
    application otherwise."""

    category: Category | None = None
    failures: int = 3
    severity: Severity = Severity.HIGH
    impact: Level = Level.MEDIUM
    urgency: Level = Level.HIGH
    tls_warn_days: float = 30.0
    tls_critical_days: float = 7.0

    def category_for(self, kind: str) -> Category:
        if self.category is not None:
            return Category(self.category)
        return Category.DATABASE if kind == "database" else Category.APPLICATION

    @classmethod
    def from_settings(cls, settings: object, base: "ServicePolicy | None" = None
                      ) -> "ServicePolicy":
        """From a config model (a ServiceCheck) or a dict: the attributes it has, else `base`."""
        base = base or cls()
        get = settings.get if isinstance(settings, dict) else \
            (lambda name, default=None: getattr(settings, name, default))
        values = {}
        for name in ("category", "failures", "severity", "impact", "urgency", "tls_warn_days",
                     "tls_critical_days"):
            value = get(name, None)
            values[name] = getattr(base, name) if value is None else value
        return cls(category=Category(values["category"]) if values["category"] else None,
                   failures=int(values["failures"]), severity=Severity(values["severity"]),
                   impact=Level(values["impact"]), urgency=Level(values["urgency"]),
                   tls_warn_days=float(values["tls_warn_days"]),
                   tls_critical_days=float(values["tls_critical_days"]))


@dataclass(slots=True)
class _State:
    misses: int = 0
    down: bool = False
    down_since: Any = None
    expiring: bool = False
    expiring_since: Any = None
    invalid: bool = False
    invalid_since: Any = None
    last_error: str | None = None
    extra: dict = field(default_factory=dict)


def tls_severity(days_left: float, policy: ServicePolicy) -> Severity:
    if days_left <= 0:
        return Severity.CRITICAL
    if days_left <= policy.tls_critical_days:
        return Severity.HIGH
    if days_left <= policy.tls_warn_days / 2:
        return Severity.MEDIUM
    return Severity.LOW


class ServiceDetector:
    name = "services"

    def __init__(self, policies: Mapping[str, ServicePolicy] | None = None,
                 default: ServicePolicy | None = None, failures: int | None = None) -> None:
        """`policies` by check name; `failures` overrides every policy's (a one-shot
        `monitord check service` uses 1)."""
        self.policies = dict(policies or {})
        self.default = default or ServicePolicy()
        self.failures_override = failures
        self._state: dict[tuple[str, str], _State] = {}

    def reconfigure(self, config: object) -> None:
        """Policies from `config.checks` (a tuple of ServiceCheck models), defaults from
        `config.detectors.services` when the configuration has them; state is kept."""
        defaults = getattr(getattr(config, "detectors", None), "services", None)
        self.default = ServicePolicy.from_settings(defaults) if defaults is not None \
            else ServicePolicy()
        self.policies = {check.name: ServicePolicy.from_settings(check, self.default)
                         for check in getattr(config, "checks", ()) or ()}

    def policy(self, check: str) -> ServicePolicy:
        return self.policies.get(check, self.default)

    def observe(self, record: Sample | Event) -> list[Finding]:
        if not isinstance(record, Event) or record.kind != "service_check":
            return []
        fields = record.fields
        check = str(fields.get("check") or fields.get("target"))
        policy = self.policy(check)
        state = self._state.setdefault((record.device, check), _State())
        findings: list[Finding] = []
        if not fields.get("part_of"):  # the TLS part of an https check is not a second outage
            findings += self._availability(record, check, policy, state)
        if fields.get("days_left") is not None:  # a certificate was read
            findings += self._certificate(record, check, policy, state)
        return findings

    # -- availability -----------------------------------------------------------------------

    def _availability(self, record: Event, check: str, policy: ServicePolicy,
                      state: _State) -> list[Finding]:
        fields = record.fields
        failures = self.failures_override or policy.failures
        if fields.get("up"):
            state.misses = 0
            if state.down:
                state.down = False
                return [self._down(record, check, policy, state, FindingState.CLEARED)]
            return []
        state.misses += 1
        state.last_error = fields.get("error")
        if state.misses < failures:
            return []
        if not state.down:
            state.down, state.down_since = True, record.at
        return [self._down(record, check, policy, state, FindingState.FIRING)]

    def _down(self, record: Event, check: str, policy: ServicePolicy, state: _State,
              finding_state: FindingState) -> Finding:
        fields = record.fields
        kind = str(fields.get("kind"))
        summary = SERVICE_DOWN
        target = str(fields.get("target"))
        shown = check if check == target else f"{check} ({target})"
        text = _(summary).format(check=shown,
                                 error=state.last_error or "-", misses=state.misses)
        return Finding(
            kind="service_down", category=policy.category_for(kind), severity=policy.severity,
            state=finding_state, dedup_key=f"service_down:{record.device}:{check}",
            summary=text, first_seen=state.down_since or record.at, last_seen=record.at,
            device=record.device, subject=str(fields.get("target")), impact=policy.impact,
            urgency=policy.urgency,
            evidence={"check": check, "kind": kind, "target": fields.get("target"),
                      "error": state.last_error, "misses": state.misses,
                      "failures_needed": self.failures_override or policy.failures,
                      "latency_ms": fields.get("latency_ms"), "status": fields.get("status")})

    # -- certificate ------------------------------------------------------------------------

    def _certificate(self, record: Event, check: str, policy: ServicePolicy,
                     state: _State) -> list[Finding]:
        fields = record.fields
        days_left = float(fields["days_left"])
        findings = []
        evidence = {"check": check, "target": fields.get("target"), "days_left": days_left,
                    "not_after": fields.get("not_after"), "subject": fields.get("subject"),
                    "issuer": fields.get("issuer")}
        if days_left < policy.tls_warn_days:
            if not state.expiring:
                state.expiring, state.expiring_since = True, record.at
            findings.append(self._tls(record, check, policy, "tls_cert_expiring",
                                      tls_severity(days_left, policy), FindingState.FIRING,
                                      state.expiring_since, evidence))
        elif state.expiring:
            state.expiring = False
            findings.append(self._tls(record, check, policy, "tls_cert_expiring", Severity.LOW,
                                      FindingState.CLEARED, state.expiring_since, evidence))
        chain_error, hostname_error = fields.get("chain_error"), fields.get("hostname_error")
        invalid_evidence = {**evidence, "chain_error": chain_error,
                            "hostname_error": hostname_error}
        if chain_error or hostname_error:
            if not state.invalid:
                state.invalid, state.invalid_since = True, record.at
            findings.append(self._tls(record, check, policy, "tls_cert_invalid", Severity.HIGH,
                                      FindingState.FIRING, state.invalid_since,
                                      invalid_evidence))
        elif state.invalid:
            state.invalid = False
            findings.append(self._tls(record, check, policy, "tls_cert_invalid", Severity.HIGH,
                                      FindingState.CLEARED, state.invalid_since,
                                      invalid_evidence))
        return findings

    def _tls(self, record: Event, check: str, policy: ServicePolicy, kind: str,
             severity: Severity, finding_state: FindingState, since: Any,
             evidence: Mapping[str, Any]) -> Finding:
        target = evidence.get("target")
        if kind == "tls_cert_invalid":
            summary = TLS_INVALID
        elif evidence["days_left"] <= 0:
            summary = TLS_EXPIRED
        else:
            summary = TLS_EXPIRING
        problem = "; ".join(p for p in (evidence.get("chain_error"),
                                        evidence.get("hostname_error")) if p)
        text = _(summary).format(target=target, days=evidence["days_left"],
                                 not_after=evidence.get("not_after"), problem=problem or "-")
        urgency = Level.HIGH if severity.rank >= Severity.HIGH.rank else Level.MEDIUM
        return Finding(
            kind=kind, category=policy.category_for("tls"), severity=severity,
            state=finding_state, dedup_key=f"{kind}:{record.device}:{check}", summary=text,
            first_seen=since or record.at, last_seen=record.at, device=record.device,
            subject=str(target), impact=policy.impact, urgency=urgency, evidence=evidence)
