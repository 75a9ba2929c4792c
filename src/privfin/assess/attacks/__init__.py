"""Empirical attacks run against privfin's own protocols (docs/assessment-attacks.md).

Every attack runs against the **protected** target (our protocol) and an **unprotected
control** (the same task done naively), so a result always comes with the evidence that the
attack works. Modules (numpy and scikit-learn only):

``membership``
    Membership inference: LiRA and the shadow-model attack against a plain model, DP-SGD,
    FedAvg and FedAvg with client-level DP.
``gradient_inversion``
    Analytic inversion of a client's update: plain FedAvg updates vs what the server sees
    under secure aggregation.
``label_inference``
    Norm and direction label-inference attacks on what a passive host receives: a naive split
    vs hetero LR and SecureBoost (Paillier ciphertexts).
``dp_audit``
    Canary-based empirical epsilon lower bounds vs the accountant's epsilon: repeated trials
    of the Gaussian vector mechanism (Clopper-Pearson) and a one-run audit of DP-SGD training,
    each against a planted noise bug.
``mpc_inference``
    A computing party infers the sign of the other's inputs from its shares and openings:
    privfin's 2PC over Z_2^64 vs a naive sharing with real-valued masks.
``he_distinguish``
    The IND-CPA distinguishing game on Paillier ciphertexts: fresh randomness vs a reused
    ``r``.
``psi_leakage``
    Dictionary and membership games on what each PSI party receives vs what SPEC.md allows:
    ECDH-PSI vs a naive hash PSI.

:func:`attacks_for` runs the attacks that apply to a technology (``quick``: small sizes, a few
seconds each).
"""

from __future__ import annotations

import functools

from privfin.assess.model import AttackResult

__all__ = ["TECHNOLOGIES", "attacks_for"]

#: Technologies with attacks; others (``tee``) get none yet.
TECHNOLOGIES = (
    "pooled-plaintext",
    "dp-central",
    "hfl",
    "hfl-dp",
    "vfl-he",
    "mpc",
    "he",
    "psi",
)


def attacks_for(technology: str, *, quick: bool = True, seed: int = 0) -> list[AttackResult]:
    """Every attack that applies to ``technology``, against its protected target and the
    unprotected control (results with ``protected=False``). Unknown technology or one without
    attacks: an empty list."""
    from privfin.assess.attacks.dp_audit import audit_dp_sgd_one_run, audit_gaussian_vector
    from privfin.assess.attacks.gradient_inversion import gradient_inversion
    from privfin.assess.attacks.he_distinguish import paillier_distinguishing
    from privfin.assess.attacks.label_inference import label_inference
    from privfin.assess.attacks.membership import membership_inference
    from privfin.assess.attacks.mpc_inference import mpc_input_inference
    from privfin.assess.attacks.psi_leakage import psi_leakage

    out: list[AttackResult] = []
    if technology == "pooled-plaintext":
        out += _plain_membership(quick, seed)
    elif technology == "dp-central":
        out += membership_inference("dp-sgd", quick=quick, seed=seed)
        out += _plain_membership(quick, seed)
        out += [
            audit_gaussian_vector(buggy=False, quick=quick, seed=seed),
            audit_gaussian_vector(buggy=True, quick=quick, seed=seed),
        ]
        out += [
            audit_dp_sgd_one_run(buggy=False, quick=quick, seed=seed),
            audit_dp_sgd_one_run(buggy=True, quick=quick, seed=seed),
        ]
    elif technology in ("hfl", "hfl-dp"):
        out += membership_inference(technology, quick=quick, seed=seed)
        out += _plain_membership(quick, seed)
        for model, batch in (("logistic", 1), ("mlp", 4)):
            out += [
                gradient_inversion(secure=True, model=model, batch=batch, quick=quick, seed=seed),
                gradient_inversion(secure=False, model=model, batch=batch, quick=quick, seed=seed),
            ]
        if technology == "hfl-dp":
            out += [
                audit_gaussian_vector(buggy=False, quick=quick, seed=seed),
                audit_gaussian_vector(buggy=True, quick=quick, seed=seed),
            ]
    elif technology == "vfl-he":
        for target in ("hetero-lr", "secureboost", "naive-split"):
            out += label_inference(target, quick=quick, seed=seed)
    elif technology == "mpc":
        out += [
            mpc_input_inference("ss-2pc", quick=quick, seed=seed),
            mpc_input_inference("naive-float-masks", quick=quick, seed=seed),
        ]
    elif technology == "he":
        out += [
            paillier_distinguishing("paillier", quick=quick, seed=seed),
            paillier_distinguishing("paillier-reused-r", quick=quick, seed=seed),
        ]
    elif technology == "psi":
        out += psi_leakage("ecdh", quick=quick, seed=seed) + psi_leakage(
            "naive-hash", quick=quick, seed=seed
        )
    return out


@functools.lru_cache(maxsize=8)
def _plain_membership(quick: bool, seed: int) -> tuple[AttackResult, ...]:
    """The unprotected membership-inference control, shared by several technologies (computed
    once per process: a comparison asks for it under each technology)."""
    from privfin.assess.attacks.membership import membership_inference

    return tuple(membership_inference("plain", quick=quick, seed=seed))
