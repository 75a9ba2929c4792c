"""PSI leakage: does a party learn more about the other's set than ``psi/SPEC.md`` says?

SPEC §2 (two-party ECDH-PSI, ``reveal_to="receiver"``): the **receiver** learns the
intersection and ``|Y|``; the **sender** learns ``|X|``. So:

- **receiver dictionary attack**: ids usually live in a small space (customer numbers, phone
  numbers), so the receiver tries every candidate id ``z`` it does not hold (``z ∉ X``) and
  asks whether the sender holds it. It hashes ``z`` with every public encoding the protocol
  could have used — SHA-256, and the protocol's own public hash to the curve
  (``hash_to_u`` with the job's domain tag) — and looks for it among the rows it received;
  score = exact match (1000) plus the longest common prefix in bytes (a tie-breaker). Truth:
  ``z ∈ Y``. Beyond the intersection the receiver should learn nothing: AUC ≈ 0.5.
- **sender membership game**: for each of its own items ``y`` the sender guesses whether it is
  in the intersection (truth ``y ∈ X``), by the same dictionary scoring on what it received;
  the SPEC says it learns only ``|X|``: AUC ≈ 0.5. It also checks that the number of bytes the
  sender receives does not vary between runs with equal ``|X|`` (the sizes are the only
  thing it may learn).

Control: a **naive hash PSI** where both parties exchange ``SHA-256(id)`` of their items (a
common shortcut): the receiver's dictionary recovers the sender's whole set, and the sender
sees which of its items the receiver holds.

Each run draws fresh sets from a universe of ``4·size`` ids; trials are pooled over runs. The
real protocol runs in-process (:func:`privfin.psi.simulate`) with every message captured on the
memory hub.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from privfin.assess.attacks._metrics import roc_result
from privfin.assess.model import AttackResult
from privfin.crypto import x25519
from privfin.errors import ConfigError
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.psi.messages import PROTOCOL_VERSION

__all__ = ["TARGETS", "dictionary_score", "psi_leakage"]

TARGETS = ("ecdh", "naive-hash")
RECEIVER, SENDER = "bank", "telco"
#: The public domain tag of hash-to-curve in ``psi.simulate``'s job (SPEC §1, job "sim").
ECDH_DST = f"privfin/psi/v{PROTOCOL_VERSION}/ecdh-x25519/sim/psi".encode()


def _encodings(item: str, dst: bytes) -> list[bytes]:
    raw = item.encode()
    return [hashlib.sha256(raw).digest(), x25519.hash_to_u(raw, dst)]


def dictionary_score(item: str, received: Iterable[bytes], dst: bytes) -> float:
    """1000 if a public encoding of ``item`` is among the ``received`` rows (compared on the
    row's length), plus the longest common prefix in bytes with any row."""
    best = 0.0
    encs = _encodings(item, dst)
    for row in received:
        for enc in encs:
            if enc[: len(row)] == row:
                return 1000.0 + len(row)
            prefix = 0
            for a, b in zip(enc, row, strict=False):
                if a != b:
                    break
                prefix += 1
            best = max(best, float(prefix))
    return best


def _rows(payloads: Iterable[bytes]) -> tuple[list[bytes], int]:
    """Every row of every array message received, and the total bytes received."""
    rows: list[bytes] = []
    total = 0
    for payload in payloads:
        total += len(payload)
        msg = codec.decode(payload)
        arr = getattr(msg, "rows", None)
        if isinstance(arr, np.ndarray) and arr.ndim == 2 and arr.dtype == np.uint8:
            rows += [bytes(r) for r in arr]
    return rows, total


def _run_ecdh(x: list[str], y: list[str], seed: int) -> tuple[list[bytes], list[bytes], int, bytes]:
    from privfin.psi import simulate

    hub = MemoryHub()
    out = simulate({RECEIVER: x, SENDER: y}, "ecdh", reveal_to="receiver", seed=seed, hub=hub)
    if sorted(out[RECEIVER]) != sorted(set(x) & set(y)):  # type: ignore[arg-type]
        raise RuntimeError("psi returned a wrong intersection")
    to_r, _ = _rows(p for k, p in hub.wire if k.receiver == RECEIVER)
    to_s, size_s = _rows(p for k, p in hub.wire if k.receiver == SENDER)
    if len(to_r) < len(y) or len(to_s) < len(x):
        raise RuntimeError("the captured messages hold fewer points than the sets")
    return to_r, to_s, size_s, ECDH_DST


def _run_naive(x: list[str], y: list[str]) -> tuple[list[bytes], list[bytes], int, bytes]:
    to_r = [hashlib.sha256(v.encode()).digest() for v in y]
    to_s = [hashlib.sha256(v.encode()).digest() for v in x]
    return to_r, to_s, 32 * len(to_s), ECDH_DST


def psi_leakage(target: str, *, quick: bool = True, seed: int = 0) -> list[AttackResult]:
    """Run the receiver dictionary attack and the sender membership game against ``target``
    (``"ecdh"``: privfin's ECDH-PSI; ``"naive-hash"``: the control)."""
    if target not in TARGETS:
        raise ConfigError(f"unknown PSI target {target!r}; one of {TARGETS}")
    runs, size = (6, 24) if quick else (30, 64)
    rng = np.random.default_rng(seed)
    r_truth: list[int] = []
    r_score: list[float] = []
    s_truth: list[int] = []
    s_score: list[float] = []
    sender_bytes: set[int] = set()
    for run in range(runs):
        universe = [f"cust-{run:02d}-{i:05d}" for i in range(4 * size)]
        pick = rng.permutation(len(universe))
        x = [universe[i] for i in pick[:size]]
        y = [universe[i] for i in pick[size // 2 : size // 2 + size]]  # half overlaps x
        if target == "ecdh":
            to_r, to_s, size_s, dst = _run_ecdh(x, y, seed * 1000 + run)
        else:
            to_r, to_s, size_s, dst = _run_naive(x, y)
        sender_bytes.add(size_s)
        xs, ys = set(x), set(y)
        for z in universe:
            if z not in xs:
                r_truth.append(int(z in ys))
                r_score.append(dictionary_score(z, to_r, dst))
        for v in y:
            s_truth.append(int(v in xs))
            s_score.append(dictionary_score(v, to_s, dst))
    name = (
        "ECDH-PSI (privfin.psi, X25519, reveal_to=receiver)"
        if target == "ecdh"
        else "naive hash PSI (parties exchange SHA-256 of ids)"
    )
    protected = target == "ecdh"
    setup = f"{runs} runs, |X| = |Y| = {size}, universe {4 * size} ids per run"
    constant = len(sender_bytes) == 1
    return [
        roc_result(
            "psi/receiver-dictionary", name, protected=protected, members=r_truth, scores=r_score,
            detail=f"receiver guesses which ids outside its set the sender holds; SPEC: it "
            f"learns X∩Y and |Y| only; {setup}",
        ),
        roc_result(
            "psi/sender-membership", name, protected=protected, members=s_truth, scores=s_score,
            metric="sender_bytes_vary", value=0.0 if constant else 1.0,
            detail=f"sender guesses which of its ids the receiver holds; SPEC: it learns |X| "
            f"only; bytes it received {'constant' if constant else 'VARY'} across runs "
            f"({sorted(sender_bytes)}); {setup}",
        ),
    ]  # fmt: skip
