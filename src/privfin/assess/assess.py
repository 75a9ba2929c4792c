"""Assemble assessments: of a technology, of a job on a node, and of one scenario run under
several technologies side by side.

The measured perspectives come from :func:`privfin.assess.measure.measure_technology` /
:func:`privfin.assess.measure.compare`, the empirical attacks from
:func:`privfin.assess.attacks.attacks_for`; both are imported when called (a missing part is
reported as "not measured", never invented). The static facts come from
:mod:`privfin.assess.technologies`, the probes from :mod:`privfin.assess.probes`, the job
checks from :mod:`privfin.assess.compliance`, and :mod:`privfin.assess.rubric` rates them all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from privfin.assess import rubric
from privfin.assess.model import (
    SCHEMA_VERSION,
    Assessment,
    AttackResult,
    Check,
    Evidence,
    Perspective,
    PerspectiveResult,
    Rating,
    ThreatModel,
)
from privfin.assess.technologies import TECHNOLOGIES, Technology, technology

__all__ = [
    "Comparison",
    "assess_compare",
    "assess_job",
    "assess_technology",
    "environment",
    "technology_checks",
]

Progress = Callable[[str], None]
#: The node's SQLite store in its state directory (privfin.node.config.STORE_FILE; assess sits
#: below node and cannot import it).
STORE_FILE = "node.sqlite"
BASELINE = "pooled-plaintext"

#: jobs.components technology labels -> assessed technology names.
_COMPONENT_TECH = {
    "private set intersection": "psi",
    "vertical federated learning": "vfl-he",
    "horizontal federated learning": "hfl",
    "secure multi-party computation": "mpc",
    "differential privacy": "dp-central",
    "confidential computing (TEE)": "tee",
}
_WEAKEST_FIRST = (
    ThreatModel.NONE,
    ThreatModel.SEMI_HONEST,
    ThreatModel.TRUSTED_HARDWARE,
    ThreatModel.COVERT,
    ThreatModel.MALICIOUS,
)


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def environment(**extra: object) -> dict[str, str]:
    """Where an assessment ran, so a lab can tell its figures apart from ours."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pv = version("privfin")
    except PackageNotFoundError:
        pv = "unknown"
    env = {
        "privfin": pv,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
    }
    with contextlib.suppress(OSError):
        env["load_avg_1m"] = f"{os.getloadavg()[0]:.2f}"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _say(progress: Progress | None, text: str) -> None:
    if progress is not None:
        progress(text)


def technology_checks(facts: Technology) -> list[Check]:
    """Compliance of a technology as the platform runs it: whether its steps run through a
    node's job machinery (roles, approvals, JR/T 0171 levels, DP ledger, audit chain)."""
    from privfin.assess.compliance import CLAUSES

    node_run = bool(facts.components)
    how = f"enforced by the node for every {', '.join(facts.components)} step"
    none = "not a node job: pooled data has no roles, approvals or audit"
    dp = facts.name in ("dp-central", "hfl-dp")
    checks = [
        Check("jrt0196-roles", node_run, how if node_run else none, CLAUSES["jrt0196-roles"]),
        Check("approvals", node_run, how if node_run else none, CLAUSES["approvals"]),
        Check(
            "jrt0171-levels",
            node_run,
            how + " (C3 fields never enter a job)" if node_run else none,
            CLAUSES["jrt0171-levels"],
        ),
        Check("audit-chain", node_run, how if node_run else none, CLAUSES["audit-chain"]),
    ]
    if dp:
        detail = (
            "releases reserve their cost in the ledger before reading the data"
            if facts.name == "dp-central"
            else "client-level DP: accounted by the training accountant, not charged to the "
            "per-dataset ledger"
        )
        checks.append(Check("dp-budget", facts.name == "dp-central", detail, CLAUSES["dp-budget"]))
    return checks


def _attacks(name: str, quick: bool, seed: int) -> tuple[list[AttackResult], str | None]:
    from privfin.assess.attacks import attacks_for  # heavy (scikit-learn): imported on use

    return list(attacks_for(name, quick=quick, seed=seed)), None


def _security(
    facts: Technology,
    attacks: Sequence[AttackResult],
    probes: Sequence[Check],
    note: str | None,
) -> PerspectiveResult:
    learns = [Evidence(f"learns[{lr.party}]", lr.learns, "", lr.spec) for lr in facts.learns]
    result = rubric.rate_security(
        threat_model=facts.threat_model,
        params=facts.params(),
        attacks=attacks,
        probes=probes,
        evidence=learns,
        simulated=facts.simulated,
    )
    extra = [f"threat model: {facts.threat_model.value}"]
    if not attacks:
        extra.append(note or "no empirical attack applies")
    return dataclasses.replace(result, reasons=(*result.reasons, *extra))


def _assessment(
    kind: str,
    subject: str,
    facts: Technology,
    measured: Mapping[Perspective, Sequence[Evidence]],
    attacks: Sequence[AttackResult],
    probes: Sequence[Check],
    note: str | None,
    env: Mapping[str, str],
    pooled: Mapping[Perspective, Sequence[Evidence]] | None = None,
) -> Assessment:
    results = {
        Perspective.FUNCTIONALITY: rubric.rate_functionality(facts.functionality_checks()),
        Perspective.SECURITY: _security(facts, attacks, probes, note),
        Perspective.ACCURACY: rubric.rate_accuracy(measured.get(Perspective.ACCURACY, ())),
        Perspective.PERFORMANCE: rubric.rate_performance(
            measured.get(Perspective.PERFORMANCE, ()),
            pooled=(pooled or {}).get(Perspective.PERFORMANCE),
        ),
        Perspective.COMMUNICATION: rubric.rate_communication(
            measured.get(Perspective.COMMUNICATION, ()),
            pooled=(pooled or {}).get(Perspective.COMMUNICATION),
        ),
        Perspective.SCALABILITY: rubric.rate_scalability(measured.get(Perspective.SCALABILITY, ())),
        Perspective.COMPLIANCE: rubric.rate_compliance(technology_checks(facts)),
    }
    return Assessment(
        kind=kind,
        subject=subject,
        threat_model=facts.threat_model,
        threat_model_words=facts.threat_model_words,
        perspectives=results,
        created=_now(),
        environment=env,
    )


def assess_technology(
    name: str,
    *,
    quick: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
) -> Assessment:
    """Assess technology ``name`` (one of :data:`~privfin.assess.technologies.TECHNOLOGIES`)
    from the seven perspectives: declared facts, deviating-party probes, empirical attacks and
    measurements (``quick``: small sizes, for CI; otherwise the full sizes)."""
    from privfin.assess.probes import probes_for

    facts = technology(name)
    _say(progress, f"{name}: deviating-party probes")
    probes = probes_for(name, seed=seed)
    _say(progress, f"{name}: attacks")
    attacks, note = _attacks(name, quick, seed)
    _say(progress, f"{name}: measurements")
    from privfin.assess.measure import measure_technology  # heavy: imported on use

    measured: Mapping[Perspective, Sequence[Evidence]] = measure_technology(
        name, quick=quick, seed=seed, progress=progress
    )
    _say(progress, f"{name}: rating")
    return _assessment(
        "technology",
        name,
        facts,
        measured,
        attacks,
        probes,
        note,
        environment(quick=quick, seed=seed),
    )


def _engine(store: str | Path | Engine) -> tuple[Engine, bool]:
    if isinstance(store, Engine):
        return store, False
    from privfin.store import open_engine

    path = Path(store)
    if path.is_dir():
        path = path / STORE_FILE
        if not path.exists():
            from privfin.errors import ConfigError

            raise ConfigError(f"no node store {STORE_FILE} in {store}")
        return open_engine(path), True
    return open_engine(store), True


def _node_of(engine: Engine) -> str:
    from sqlalchemy import select

    from privfin.audit.store import audit_entries
    from privfin.errors import ConfigError

    with engine.connect() as conn:
        row = conn.execute(
            select(audit_entries.c.node).order_by(audit_entries.c.seq).limit(1)
        ).first()
    if row is None:
        raise ConfigError("the store has no audit log: which node is it? pass node=")
    return str(row[0])


def assess_job(
    store: str | Path | Engine,
    job_id: str,
    *,
    node: str | None = None,
    certificates: Mapping[str, bytes] | None = None,
) -> Assessment:
    """Assess job ``job_id`` from one node's records: ``store`` is the node's state directory,
    its store URL/path, or an engine; ``node`` its party name (default: read from its audit
    log); ``certificates`` (party -> PEM) lets the approvals check verify signatures.

    Rated: compliance (the job's checks), security (the threat models and parameters of the
    technologies its steps use), performance (start to finish, from the audit log).
    Accuracy, communication and scalability are not measured for a single job."""
    import json

    from privfin.assess.compliance import job_checks
    from privfin.errors import ConfigError
    from privfin.jobs.components import DECLARATIONS
    from privfin.jobs.negotiation import NegotiationStore
    from privfin.jobs.spec import parse_spec_data

    engine, owned = _engine(store)
    try:
        node = node or _node_of(engine)
        checks = job_checks(engine, node, job_id, certificates=certificates)
        proposal = NegotiationStore(engine).proposal(job_id)
        if proposal is None:  # job_checks raised already; kept for the type checker
            raise ConfigError(f"node {node!r} knows no job {job_id!r}")
        spec = parse_spec_data(json.loads(proposal["spec"]))
        from privfin.audit import AuditLog

        entries = list(AuditLog(engine, node=node).entries(job=job_id))
    finally:
        if owned:
            engine.dispose()
    names = sorted(
        {
            _COMPONENT_TECH[d.technology]
            for st in spec.steps.values()
            if (d := DECLARATIONS.get(st.component)) is not None and d.technology in _COMPONENT_TECH
        }
    )
    techs = [TECHNOLOGIES[n] for n in names]
    env = environment(node=node)
    results: dict[Perspective, PerspectiveResult] = {}
    steps = [
        Check(f"step {s}: {st.component}", st.component in DECLARATIONS, f"roles {st.roles}")
        for s, st in spec.steps.items()
    ]
    results[Perspective.FUNCTIONALITY] = PerspectiveResult(
        Perspective.FUNCTIONALITY,
        Rating.EXCELLENT if all(c.passed for c in steps) else Rating.WEAK,
        (
            f"{len(spec.parties)} parties, {len(spec.steps)} steps, technologies: "
            + (", ".join(names) or "local only"),
        ),
        checks=tuple(steps),
    )
    if techs:
        weakest = min(techs, key=lambda t: _WEAKEST_FIRST.index(t.threat_model))
        sec = [
            _security(t, (), (), "a job is not attacked; see the technology's assessment")
            for t in techs
        ]
        worst = min(sec, key=lambda r: r.rating or 0)
        results[Perspective.SECURITY] = dataclasses.replace(
            worst,
            reasons=(
                f"the weakest of its technologies ({', '.join(names)}) sets the rating",
                *worst.reasons,
            ),
            evidence=tuple(e for r in sec for e in r.evidence),
        )
        tm, words = weakest.threat_model, weakest.threat_model_words
    else:
        results[Perspective.SECURITY] = PerspectiveResult(
            Perspective.SECURITY, None, (rubric.NOT_MEASURED,)
        )
        tm, words = ThreatModel.NONE, "The job uses no privacy technology."
    start = next((e.ts for e in entries if e.action == "job_started"), None)
    end = next(
        (e.ts for e in reversed(entries) if e.action in ("job_finished", "job_failed")), None
    )
    perf = (
        [Evidence("wall_s", (end - start) / 1e6, "s", f"audit log of {node}: start to finish")]
        if start is not None and end is not None
        else []
    )
    results[Perspective.PERFORMANCE] = rubric.rate_performance(perf)
    for p in (Perspective.ACCURACY, Perspective.COMMUNICATION, Perspective.SCALABILITY):
        results[p] = PerspectiveResult(p, None, (rubric.NOT_MEASURED,))
    results[Perspective.COMPLIANCE] = rubric.rate_compliance(checks)
    return Assessment(
        kind="job",
        subject=job_id,
        threat_model=tm,
        threat_model_words=words,
        perspectives=results,
        created=_now(),
        environment=env,
    )


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One scenario run under several technologies: an :class:`Assessment` (kind
    ``comparison``) per technology, in the order asked."""

    scenario: str
    assessments: tuple[Assessment, ...]
    created: str = ""
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "kind": "comparison",
            "scenario": self.scenario,
            "created": self.created,
            "environment": dict(self.environment),
            "assessments": [a.to_dict() for a in self.assessments],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        if int(data.get("schema", 0)) != SCHEMA_VERSION:
            raise ValueError(f"comparison schema {data.get('schema')} is not {SCHEMA_VERSION}")
        return cls(
            scenario=str(data["scenario"]),
            assessments=tuple(Assessment.from_dict(a) for a in data["assessments"]),
            created=str(data.get("created", "")),
            environment={str(k): str(v) for k, v in dict(data.get("environment", {})).items()},
        )


def assess_compare(
    scenario: str,
    technologies: Sequence[str],
    *,
    quick: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
) -> Comparison:
    """Run ``scenario`` under each of ``technologies`` and assess each side by side; cost
    (time, bytes) is rated relative to ``pooled-plaintext`` when it is among them."""
    from privfin.assess.probes import probes_for
    from privfin.errors import ConfigError

    if len(set(technologies)) != len(technologies) or not technologies:
        raise ConfigError("name each technology once, at least one")
    facts = [technology(t) for t in technologies]
    from privfin.assess.measure import compare  # heavy: imported on use

    started = time.monotonic()
    measured: Mapping[str, Mapping[Perspective, Sequence[Evidence]]] = compare(
        scenario, technologies, quick=quick, seed=seed, progress=progress
    )
    _say(
        progress, f"measured {len(technologies)} technologies in {time.monotonic() - started:.1f} s"
    )
    pooled = measured.get(BASELINE)
    env = environment(scenario=scenario, quick=quick, seed=seed)
    out = []
    for f in facts:
        _say(progress, f"{f.name}: probes and attacks")
        probes = probes_for(f.name, seed=seed)
        attacks, note = _attacks(f.name, quick, seed)
        out.append(
            _assessment(
                "comparison",
                f.name,
                f,
                measured.get(f.name, {}),
                attacks,
                probes,
                note,
                env,
                pooled=pooled,
            )
        )
    return Comparison(scenario, tuple(out), _now(), env)
