"""Ciphertext distinguishing (the IND-CPA game) on Paillier encryption.

The attacker holds the public key and one known pair (plaintext 1, its ciphertext) produced by
the same encryptor — e.g. a value it contributed itself — and sees challenge ciphertexts of
0 or 1 (each with probability ½). It scores a challenge by equality with its known ciphertext
(1000 if equal) plus ``(c mod n)/n`` as a tie-breaker (for Paillier ``c mod n = r^n mod n``
does not depend on the plaintext; any usable structure there would show). Truth: the
challenge encrypts 1. One trial per challenge.

- **Protected**: :meth:`privfin.he.paillier.PublicKey.encrypt` — a fresh uniform ``r`` per
  ciphertext: equal plaintexts give unrelated ciphertexts, AUC ≈ 0.5.
- **Control**: textbook Paillier with a **reused** ``r`` (:meth:`raw_encrypt_with_r` with one
  fixed ``r``: the nonce-reuse bug) — encryption becomes deterministic, so equality with the
  known ciphertext gives every plaintext away.

The key is 1024-bit, a **test-only** size (``insecure_allow_small_keys``); the game does not
depend on the size.
"""

from __future__ import annotations

import random

import numpy as np

from privfin.assess.attacks._metrics import roc_result
from privfin.assess.model import AttackResult
from privfin.errors import ConfigError
from privfin.he.paillier import generate_keypair

__all__ = ["TARGETS", "paillier_distinguishing"]

TARGETS = ("paillier", "paillier-reused-r")
TEST_KEY_BITS = 1024


def paillier_distinguishing(target: str, *, quick: bool = True, seed: int = 0) -> AttackResult:
    """The distinguishing game against ``target`` (see the module docstring)."""
    if target not in TARGETS:
        raise ConfigError(f"unknown HE target {target!r}; one of {TARGETS}")
    n_trials = 400 if quick else 4000
    # a seeded source (reproducible test vectors); production keys use the OS CSPRNG
    pk, _ = generate_keypair(TEST_KEY_BITS, rng=random.Random(seed), insecure_allow_small_keys=True)
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2, size=n_trials)
    if target == "paillier":
        known = pk.encrypt([1]).ciphertexts[0]
        challenges = pk.encrypt([int(b) for b in bits]).ciphertexts
    else:
        r = int(rng.integers(2, 2**62)) | 1
        rn = pk.raw_encrypt_with_r(0, r)  # r^n mod n^2, computed once and reused: the bug
        nsq = pk.nsquare
        known = (1 + pk.n) * rn % nsq
        challenges = [(1 + int(b) * pk.n) * rn % nsq for b in bits]
    n = pk.n
    scores = [
        (1000.0 if c == known else 0.0) + float((c % n) >> max(n.bit_length() - 53, 0)) / 2.0**53
        for c in challenges
    ]
    name = (
        "Paillier encryption (privfin.he.paillier, fresh r)"
        if target == "paillier"
        else "textbook Paillier with a reused r (nonce-reuse bug)"
    )
    return roc_result(
        "he/ind-cpa", name, protected=target == "paillier", members=bits, scores=scores,
        detail=f"{n_trials} challenges of 0 or 1; attacker knows the public key and one "
        f"ciphertext of 1; test-only {TEST_KEY_BITS}-bit key",
    )  # fmt: skip
