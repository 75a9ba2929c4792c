"""Homomorphic encryption: compute on ciphertexts. Pure math: no I/O, randomness injected.

Modules (in import order):

- :mod:`privfin.he.errors` — :class:`OverflowDetected`, :class:`KeyMismatchError`.
- :mod:`privfin.he.paillier` — Paillier (CRT decryption, DJN fixed-base encryption, packing).
- :mod:`privfin.he.ou` — Okamoto–Uchiyama with the same interface (shorter ciphertexts).
- :mod:`privfin.he.ckks` — CKKS adapter over TenSEAL (approximate arithmetic on real vectors).

Internals, in import order: ``_util`` (randomness, primes, fixed-base tables, thread batches)
→ ``_encoding`` → ``_wire`` (ints as bytes, limits) → ``_engine`` (per-key encryption
arithmetic, rebuilt from public values) → ``_procs`` (process pool for bulk encryption) →
``_raw`` (keys' operations on raw ciphertexts) → ``_packed`` (packed vectors) → ``_vector``
(encrypted vectors) → ``_keys`` (the keys' encoded API: ``encrypt``, ``decrypt``).

Importing this package imports none of them (TenSEAL is only loaded by ``privfin.he.ckks``).
See ``SPEC.md`` in this folder for guarantees, assumptions and parameters.
"""

from __future__ import annotations

__all__: list[str] = []
