"""Compliance checks on one job, from one node's own records: its store (proposal, signed
decisions, data registry, DP ledger) and its audit log, read through the public APIs of
:mod:`privfin.jobs`, :mod:`privfin.audit`, :mod:`privfin.data` and :mod:`privfin.dp`.

Each :class:`~privfin.assess.model.Check` cites the clause it maps to. The clause numbers
are **our mapping** of the requirements onto JR/T 0196-2020 (multi-party computation in
finance) and JR/T 0171-2020 (personal financial information protection); docs/assessment.md
lists them, and a testing lab should confirm them against the published texts.

A node sees its own part of a job: what other parties did is evidenced in their own logs
(each runs this check on its own node; ``privfin audit export`` carries the evidence across).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from privfin.assess.model import Check

__all__ = ["CLAUSES", "job_checks"]

#: Check name -> the clause it maps to (our mapping; see the module docstring).
CLAUSES: Mapping[str, str] = {
    "jrt0196-roles": "JR/T 0196-2020 §5 (participants: data, computing and result parties)",
    "role-evidence": "JR/T 0196-2020 §7.6 (evidence of what was computed, by whom, on what)",
    "approvals": "JR/T 0196-2020 §7 (authorisation by every participant before computing)",
    "jrt0171-levels": "JR/T 0171-2020 §5-§7 (C3 information never leaves for joint computing)",
    "dp-budget": "JR/T 0171-2020 §7 (minimum necessary use); privfin dp/SPEC.md §Budget ledger",
    "audit-chain": "JR/T 0196-2020 §7.6 (tamper-evident audit records)",
    "job-outcome": "JR/T 0196-2020 §7.6 (the outcome is recorded)",
}

_DP_PARAMS = ("epsilon", "dp_epsilon", "dp_noise_multiplier")


def _check(name: str, passed: bool, detail: str) -> Check:
    return Check(name, passed, detail, CLAUSES[name])


def _is_dp(component: str, params: Mapping[str, Any]) -> bool:
    from privfin.jobs.components import DECLARATIONS

    decl = DECLARATIONS.get(component)
    if decl is not None and decl.technology == "differential privacy":
        return True
    return any(params.get(k) is not None for k in _DP_PARAMS)


def job_checks(
    engine: Engine,
    node: str,
    job: str,
    *,
    certificates: Mapping[str, bytes] | None = None,
) -> list[Check]:
    """The compliance checks of ``job`` on node ``node`` whose store is ``engine``.

    With ``certificates[node]`` (the node's own certificate) the audit chain check also
    verifies the signatures of the log's signed checkpoints.

    ``certificates`` (party -> PEM, the pinned certificates of the node's config and its own)
    lets the approvals check verify every signature; without them it checks that every party's
    approval is recorded for the exact spec digest, and says signatures were not checked.

    Raises
    ------
    ConfigError
        The store holds no proposal of ``job``.
    """
    from privfin.audit import AuditLog
    from privfin.errors import ConfigError
    from privfin.jobs.negotiation import NegotiationStore, verify_decision
    from privfin.jobs.spec import parse_spec_data

    negotiation = NegotiationStore(engine)
    proposal = negotiation.proposal(job)
    if proposal is None:
        raise ConfigError(f"node {node!r} knows no job {job!r}")
    spec = parse_spec_data(json.loads(proposal["spec"]))
    sha = str(proposal["spec_sha256"])
    log = AuditLog(engine, node=node)
    entries = list(log.entries(job=job))
    checks: list[Check] = []

    # JR/T 0196 roles
    data_parties = sorted(p for p, ps in spec.parties.items() if ps.datasets)
    computing = sorted({p for st in spec.steps.values() for p in st.roles})
    results = sorted(spec.results)
    missing = [
        what
        for what, who in (("data", data_parties), ("computing", computing), ("result", results))
        if not who
    ]
    checks.append(
        _check(
            "jrt0196-roles",
            not missing,
            f"data parties {data_parties}, computing parties {computing}, result parties "
            f"{results}" + (f"; missing: {', '.join(missing)}" if missing else ""),
        )
    )

    # this node's part is evidenced in its log
    mine = spec.parties.get(node)
    used = sorted({d.name for d in mine.datasets.values()}) if mine else []
    accessed = {e.dataset for e in entries if e.action == "data_access" and e.dataset}
    started = any(e.action == "job_started" for e in entries)
    steps_done = sorted({str(e.step) for e in entries if e.action == "step_done"})
    unevidenced = [d for d in used if d not in accessed]
    checks.append(
        _check(
            "role-evidence",
            started and not unevidenced and (node not in computing or bool(steps_done)),
            f"{node}: job started {'recorded' if started else 'NOT recorded'}; data access "
            f"recorded for {sorted(accessed & set(used)) or 'none'}"
            + (f", NOT for {unevidenced}" if unevidenced else "")
            + f"; steps done {steps_done or 'none'}",
        )
    )

    # every party's approval of this exact spec
    decisions = [d for d in negotiation.decisions(job) if d.decision == "approve"]
    approved = {d.party for d in decisions if d.spec_sha256 == sha}
    bad_sig: list[str] = []
    if certificates:
        for d in decisions:
            cert = certificates.get(d.party)
            if cert is None or not verify_decision(d, cert):
                bad_sig.append(d.party)
        approved -= set(bad_sig)
    audited = {
        e.party for e in entries if e.action == "approval" and e.evidence.get("spec_sha256") == sha
    }
    lacking = sorted(set(spec.parties) - approved)
    unaudited = sorted(set(spec.parties) - audited)
    checks.append(
        _check(
            "approvals",
            not lacking and not unaudited,
            f"approvals of spec sha256:{sha[:12]}… by {sorted(approved) or 'nobody'}"
            + (f"; MISSING: {lacking}" if lacking else "")
            + (f"; not in the audit log: {unaudited}" if unaudited else "")
            + (f"; signature invalid: {sorted(bad_sig)}" if bad_sig else "")
            + ("; signatures verified" if certificates else "; signatures not checked"),
        )
    )

    # JR/T 0171: no C3 field read
    from privfin.data.registry import DatasetRegistry, Level

    registry = DatasetRegistry(engine)
    c3: list[str] = []
    unknown: list[str] = []
    for e in entries:
        if e.action != "data_access" or e.dataset is None:
            continue
        try:
            info = registry.get(e.dataset)
        except ConfigError:
            unknown.append(e.dataset)
            continue
        fields = e.evidence.get("fields")
        if not isinstance(fields, list):
            continue  # "all non-C3": the registry filtered the C3 fields out
        levels = {f.name: f.level for f in info.fields}
        c3 += [f"{e.dataset}.{f}" for f in fields if levels.get(str(f)) is Level.C3]
    checks.append(
        _check(
            "jrt0171-levels",
            not c3 and not unknown,
            (f"C3 fields read: {sorted(set(c3))}" if c3 else "no C3 field read")
            + (f"; datasets not in the registry: {sorted(set(unknown))}" if unknown else "")
            + f" ({sum(e.action == 'data_access' for e in entries)} data accesses)",
        )
    )

    # DP budget accounted
    from privfin.dp.ledger import BudgetLedger

    dp_datasets: set[str] = set()
    for st in spec.steps.values():
        if node in st.roles and _is_dp(st.component, st.params_of(node)) and mine is not None:
            for ref in st.inputs_of(node).values():
                if ref.startswith("datasets."):
                    alias = ref.split(".", 1)[1]
                    if alias in mine.datasets:
                        dp_datasets.add(mine.datasets[alias].name)
    if not dp_datasets:
        checks.append(_check("dp-budget", True, f"no DP release on {node}'s data in this job"))
    else:
        ledger = BudgetLedger(engine, registry)
        unaccounted = []
        for ds in sorted(dp_datasets):
            spends = [s for s in ledger.history(ds) if s.job == job and s.state == "committed"]
            audited_spend = any(
                e.action == "dp_spend" and e.dataset == ds and e.evidence.get("event") == "commit"
                for e in entries
            )
            if not spends or not audited_spend:
                unaccounted.append(ds)
        checks.append(
            _check(
                "dp-budget",
                not unaccounted,
                f"DP releases on {sorted(dp_datasets)}: "
                + (
                    f"NOT accounted for {unaccounted}"
                    if unaccounted
                    else "charged to the ledger and audited"
                ),
            )
        )

    # the audit chain (and its signed checkpoints, with the node's own certificate)
    keys = []
    if certificates and node in certificates:
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec

        key = x509.load_pem_x509_certificate(certificates[node]).public_key()
        if isinstance(key, ec.EllipticCurvePublicKey):
            keys.append(key)
    report = log.verify(keys=keys)
    checks.append(_check("audit-chain", report.ok, str(report)))

    outcome = [
        e.action for e in entries if e.action.startswith("job_") and e.action != "job_started"
    ]
    checks.append(
        _check(
            "job-outcome",
            bool(outcome),
            f"recorded: {outcome[-1]}" if outcome else "no outcome recorded (still running?)",
        )
    )
    return checks
