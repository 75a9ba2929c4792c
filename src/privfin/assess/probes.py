"""Deviating-party probes: a representative subset of the adversarial suite of issue [08]
(tests/adversarial/) run as assessment probes against the real checks of the platform.

Each probe plays one deviating party against the honest code and returns a :class:`Check`:
``passed`` means the deviation was **detected** (refused), ``detail`` says what was tried and
what leaked. Each probe also runs the honest counterpart and fails (``passed=False``) if the
honest input is refused too — a check that refuses everything proves nothing. Cheap: well
under a second each.

Which probes apply to which technology: :data:`PROBES_FOR`. The node-level probes (a forged
approval, an edited audit entry) guard every technology run through a node.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from privfin.assess.model import Check

__all__ = [
    "PROBES",
    "PROBES_FOR",
    "probe_forged_approval",
    "probe_malformed_paillier_modulus",
    "probe_psi_small_order_point",
    "probe_tampered_audit_entry",
    "probes_for",
]


def probe_malformed_paillier_modulus(seed: int = 0) -> Check:
    """A key owner sends a Paillier modulus ``n = p**2 * q`` of the agreed size (its ``p``-part
    lets it read a peer's masked values by a p-adic log: tests/adversarial/
    test_paillier_modulus.py) with a made-up proof; the peer must refuse it before computing."""
    import gmpy2

    from privfin.errors import DecodeError
    from privfin.he import paillier

    rnd = random.Random(seed)
    bits = paillier.DEFAULT_KEY_BITS
    while True:
        p = int(gmpy2.next_prime(rnd.getrandbits(bits // 3) | (1 << (bits // 3 - 1))))
        qbits = bits - 2 * p.bit_length() + 1
        q = int(gmpy2.next_prime(rnd.getrandbits(qbits) | (1 << (qbits - 1))))
        n = p * p * q
        if n.bit_length() == bits:
            break
    fake = [rnd.randrange(1, n) for _ in range(paillier.PROOF_ROUNDS)]
    try:
        paillier.verify_modulus(n, fake)
        detected, why = False, "accepted"
    except DecodeError as exc:
        detected, why = True, str(exc)
    # the honest counterpart: a well-formed key with its proof is accepted
    pk, sk = paillier.generate_keypair(
        512, rng=random.Random(seed + 1), insecure_allow_small_keys=True
    )
    try:
        paillier.verify_modulus(pk.n, sk.prove_modulus())
        honest = True
    except DecodeError:
        honest = False
    return Check(
        "probe: malformed Paillier modulus (n = p^2 q)",
        detected and honest,
        (
            f"refused before any ciphertext was computed under it ({why}); nothing leaked"
            if detected
            else "ACCEPTED: the key owner could read the peer's masked values"
        )
        + ("" if honest else "; but an honest key was refused too"),
        "tests/adversarial/test_paillier_modulus.py; he/SPEC.md §Keys received from a peer",
    )


def probe_forged_approval(seed: int = 0) -> Check:
    """A peer forges another party's approval of a job (signs it with its own key); the node
    must refuse it, and accept the genuine one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from privfin.jobs.negotiation import sign_decision, verify_decision

    del seed  # ECDSA keys come from the OS; the outcome does not depend on them
    victim, attacker = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    import datetime

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "telco")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(victim.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(victim, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    sha = "0" * 64
    forged = sign_decision(attacker, job="j", party="telco", decision="approve", spec_sha256=sha)
    genuine = sign_decision(victim, job="j", party="telco", decision="approve", spec_sha256=sha)
    detected = not verify_decision(forged, pem)
    honest = verify_decision(genuine, pem)
    return Check(
        "probe: forged approval of another party",
        detected and honest,
        (
            "refused: the signature does not verify under the party's pinned certificate"
            if detected
            else "ACCEPTED: a job could run without the party's consent"
        )
        + ("" if honest else "; but the genuine approval was refused too"),
        "tests/adversarial/test_negotiation.py; jobs/SPEC.md (negotiation)",
    )


def probe_tampered_audit_entry(seed: int = 0) -> Check:
    """An operator edits one entry of the hash-chained audit log behind the node's back; the
    chain check must find it at that entry (and pass on the untouched log)."""
    from sqlalchemy import create_engine, update

    from privfin.audit import Action, AuditLog
    from privfin.audit.store import audit_entries, metadata

    engine = create_engine("sqlite://")
    try:
        metadata.create_all(engine)
        log = AuditLog(engine, node="bank", clock=lambda: 1_700_000_000.0 + seed)
        for i in range(4):
            log.append(Action.data_access, actor="scheduler", job="j", evidence={"i": i})
        honest = log.verify().ok
        with engine.begin() as conn:
            conn.execute(
                update(audit_entries).where(audit_entries.c.seq == 2).values(evidence='{"i": 99}')
            )
        report = log.verify()
    finally:
        engine.dispose()
    detected = not report.ok and report.first_bad_seq == 2
    return Check(
        "probe: edited audit entry",
        detected and honest,
        (
            f"found at seq {report.first_bad_seq}: {report.reason}"
            if detected
            else "NOT FOUND: an edited entry went unnoticed"
        )
        + ("" if honest else "; but the untouched log failed too"),
        "tests/audit/test_log.py; docs/audit.md",
    )


def probe_psi_small_order_point(seed: int = 0) -> Check:
    """A PSI sender replaces one of its blinded points by a point of small order (the start of
    a small-subgroup attack on the receiver's key: tests/psi/test_protocols.py); the receiver
    must abort naming it before it answers, and the honest run must match the intersection."""
    import msgspec

    from privfin.errors import ProtocolAbort
    from privfin.federation import codec
    from privfin.federation.memory import MemoryHub
    from privfin.federation.transport import MessageKey
    from privfin.psi import simulate

    class _Deviating(MemoryHub):
        def _deliver(self, key: MessageKey, payload: bytes) -> None:
            if key.tag == "b" and key.sender == "s":
                msg = codec.decode(payload)
                rows = msg.rows.copy()
                rows[0, :] = 0  # u = 0: a point of small order on curve25519
                payload = codec.encode(msgspec.structs.replace(msg, rows=rows))
            super()._deliver(key, payload)

    sets = {"r": [f"id{i}" for i in range(8)], "s": [f"id{i}" for i in range(4, 12)]}
    params = {"curve": "x25519"}
    try:
        simulate(sets, reveal_to="receiver", hub=_Deviating(), seed=seed, params=params)
        detected, why = False, "accepted"
    except ProtocolAbort as exc:
        detected, why = exc.party == "s", str(exc)
    honest = simulate(sets, reveal_to="receiver", hub=MemoryHub(), seed=seed, params=params)
    ok = honest.get("r") == [f"id{i}" for i in range(4, 8)]
    return Check(
        "probe: PSI sender sends a small-order point",
        detected and ok,
        (
            f"the receiver aborted naming the sender before answering ({why}); nothing leaked"
            if detected
            else f"NOT DETECTED as the sender's deviation ({why})"
        )
        + ("" if ok else "; but the honest run did not give the intersection"),
        "tests/psi/test_protocols.py; psi/SPEC.md §9",
    )


PROBES: dict[str, Callable[[int], Check]] = {
    "paillier-modulus": probe_malformed_paillier_modulus,
    "psi-small-order": probe_psi_small_order_point,
    "forged-approval": probe_forged_approval,
    "audit-tamper": probe_tampered_audit_entry,
}
_NODE = ("forged-approval", "audit-tamper")
PROBES_FOR: dict[str, tuple[str, ...]] = {
    "hfl": _NODE,
    "hfl-dp": _NODE,
    "vfl-he": ("paillier-modulus", *_NODE),
    "mpc": _NODE,  # its default providers take no peer Paillier key (OT triples, 3PC RSS)
    "psi": ("psi-small-order", *_NODE),
    "dp-central": _NODE,
    "he": ("paillier-modulus",),
    "tee": _NODE,
    "pooled-plaintext": (),
}


def probes_for(technology: str, *, seed: int = 0) -> list[Check]:
    """Run the probes that apply to ``technology`` (none for an unknown one)."""
    return [PROBES[name](seed) for name in PROBES_FOR.get(technology, ())]
