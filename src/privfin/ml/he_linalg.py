"""Encrypted-vector x plaintext-matrix products and masked slot packing for additive HE.

:func:`encrypted_matvec` computes ``Enc(sum_i d_i * Q[i, j])`` for every column ``j`` from the
ciphertexts ``Enc(d_i)`` and a small-integer plaintext matrix ``Q`` (``|Q| < 2**(bits-1)``).
All columns share the same bases, so instead of ``m * d`` independent exponentiations it builds,
for each chunk of ``k`` ciphertexts, the ``2**k`` products of its subsets once and then walks the
bits of ``Q`` most significant first (a shared-base, bit-sliced multi-exponentiation): about
``m/k * (2**k + d * bits)`` modular multiplications instead of ``~1.5 * m * d * bits``.

:func:`mask_and_pack` adds a fresh statistical mask to each result and packs many masked values
into one ciphertext, so the key holder decrypts ``ceil(d / slots)`` ciphertexts instead of ``d``
and learns only uniformly masked integers; :func:`unpack_and_unmask` inverts it. The key holder
runs :func:`check_masked_packed` on what it decrypted before it returns anything: exactly the
public number of packed values, every used slot in the masked range, nothing above the last
slot (a requester cannot smuggle other ciphertexts it holds through the decryption); it returns
only the low ``B + 1`` bits of each slot, which :func:`unmask_reduced` turns into ``g``.

Security: the caller holds only the public key. Results are homomorphic combinations of the
inputs and are *not* re-randomised here: re-randomise (``to_wire`` does) before sending them to
anyone who knows the inputs' randomness. A mask ``r`` uniform in ``[2**B, 2**(B+s))`` hides a
value ``|g| < 2**B`` with statistical distance at most ``2**-s`` (``s = stat_bits``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gmpy2
import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError, ProtocolAbort
from privfin.he._keys import PublicKeyBase

__all__ = [
    "check_masked_packed",
    "encrypted_matvec",
    "mask_and_pack",
    "packed_size",
    "packing_slots",
    "unmask_reduced",
    "unpack_and_unmask",
]

MAX_BITS = 32


def _window(m: int, work: int) -> int:
    best, best_cost = 1, float("inf")
    for k in range(1, 11):
        cost = -(-m // k) * ((1 << k) + work)
        if cost < best_cost:
            best, best_cost = k, cost
    return best


def _run(fn: Callable[[list[int]], list[Any]], items: list[int], n_jobs: int) -> list[Any]:
    def released(chunk: list[int]) -> list[Any]:
        with gmpy2.context(allow_release_gil=True):
            return fn(chunk)

    if n_jobs <= 1 or len(items) <= 1:
        return released(items)
    parts = [items[i::n_jobs] for i in range(n_jobs)]
    with ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="privfin-matvec") as pool:
        results = list(pool.map(released, parts))
    out: list[Any] = [None] * len(items)
    for i in range(n_jobs):
        out[i::n_jobs] = results[i]
    return out


def encrypted_matvec(
    public_key: PublicKeyBase,
    ciphertexts: Sequence[Any],
    matrix: npt.NDArray[np.int64],
    bits: int,
    *,
    n_jobs: int = 1,
) -> list[Any]:
    """``[Enc(sum_i d_i * matrix[i, j]) for j in columns]`` from ``ciphertexts = [Enc(d_i)]``.

    Parameters
    ----------
    matrix:
        Integer matrix of shape ``(len(ciphertexts), d)`` with ``|matrix| < 2**(bits-1)``.
    bits:
        Signed width of the matrix entries (at most 32).
    n_jobs:
        Threads (columns are split among them; gmpy2 releases the GIL).
    """
    q = np.asarray(matrix)
    m = len(ciphertexts)
    if q.ndim != 2 or q.shape[0] != m:
        raise ConfigError(f"matrix must have shape ({m}, d), got {q.shape}")
    if not 2 <= bits <= MAX_BITS:
        raise ConfigError(f"bits must be in [2, {MAX_BITS}], got {bits}")
    offset = 1 << (bits - 1)
    if q.size and int(np.abs(q).max()) >= offset:
        raise ConfigError(f"matrix entries must satisfy |x| < 2**{bits - 1}")
    d = q.shape[1]
    if m == 0 or d == 0:
        return [gmpy2.mpz(1)] * d
    mod = gmpy2.mpz(public_key.ciphertext_modulus)
    k = _window(m, d * bits)
    n_chunks = -(-m // k)
    unsigned = np.zeros((n_chunks * k, d), dtype=np.int64)
    unsigned[:m] = q.astype(np.int64) + offset
    cts = [gmpy2.mpz(c) for c in ciphertexts] + [gmpy2.mpz(1)] * (n_chunks * k - m)
    # idx[t, c, j] = subset of chunk c whose entries in column j have bit t set.
    shaped = unsigned.reshape(n_chunks, k, d)
    weights = (1 << np.arange(k, dtype=np.int64)).reshape(1, k, 1)
    idx = np.stack([(((shaped >> t) & 1) * weights).sum(axis=1) for t in range(bits)])
    idx_list: list[list[list[int]]] = idx.transpose(2, 0, 1).tolist()  # [j][t][c]

    def build(chunks: list[int]) -> list[Any]:
        tables = []
        for c in chunks:
            base = cts[c * k : (c + 1) * k]
            table: list[Any] = [gmpy2.mpz(1)] * (1 << k)
            for mask in range(1, 1 << k):
                low = mask & -mask
                rest = mask ^ low
                single = base[low.bit_length() - 1]
                table[mask] = single if rest == 0 else table[rest] * single % mod
            tables.append(table)
        return tables

    tables: list[list[Any]] = _run(build, list(range(n_chunks)), n_jobs)

    def columns(js: list[int]) -> list[Any]:
        out = []
        for j in js:
            acc = gmpy2.mpz(1)
            for t in range(bits - 1, -1, -1):
                acc = acc * acc % mod
                for c, sub in enumerate(idx_list[j][t]):
                    if sub:
                        acc = acc * tables[c][sub] % mod
            out.append(acc)
        return out

    raw = _run(columns, list(range(d)), n_jobs)
    # Remove the offset: multiply by Enc(sum_i d_i) ** -offset.
    total = gmpy2.mpz(1)
    for table in tables:
        total = total * table[-1] % mod
    correction = gmpy2.invert(gmpy2.powmod(total, offset, mod), mod)
    return [g * correction % mod for g in raw]


def packing_slots(public_key: PublicKeyBase, slot_bits: int) -> int:
    """How many ``slot_bits``-bit unsigned slots fit one plaintext of ``public_key``."""
    slots = int(public_key.capacity_bits) // slot_bits
    if slots < 1:
        raise ConfigError(f"a {slot_bits}-bit slot does not fit this key; use a larger key")
    return slots


def packed_size(public_key: PublicKeyBase, count: int, bound_bits: int, stat_bits: int) -> int:
    """Number of ciphertexts :func:`mask_and_pack` makes of ``count`` values."""
    return -(-count // packing_slots(public_key, bound_bits + stat_bits + 1))


def check_masked_packed(
    public_key: PublicKeyBase,
    plaintexts: Sequence[int],
    count: int,
    bound_bits: int,
    *,
    stat_bits: int,
) -> list[int]:
    """Key holder's check of a decrypted :func:`mask_and_pack` request, before replying.

    An honest request of ``count`` values ``|g| < 2**B`` (``B = bound_bits``) masked by
    ``r`` in ``[2**B, 2**(B+s))`` (``s = stat_bits``) decrypts to exactly
    ``ceil(count / slots)`` residues whose used slots all lie in ``(0, 2**(B+s) + 2**B)`` and
    whose bits above the last used slot are zero. Anything else did not come from
    :func:`mask_and_pack`: a ciphertext the requester received and appended or packed into a
    free slot, a slot widened to carry more, or a chosen plaintext beyond the bound.

    Returns
    -------
    list[int]
        What the requester gets back: each slot reduced modulo ``2**(B+1)``, which is all it
        needs to recover ``g = (slot - r) mod 2**(B+1)`` (:func:`unmask_reduced`).

    Security: this bounds, but cannot remove, what a deviating requester learns: it may still
    fill its ``count`` slots with any linear function of ciphertexts it holds (no check on
    masked values can tell them apart), and it gets back ``B + 1`` bits of each: at most
    ``count * (B + 1)`` bits per request.

    Raises
    ------
    ProtocolAbort
        The request breaks the shape or a range (the caller names the requester and returns
        nothing).
    """
    slot_bits = bound_bits + stat_bits + 1
    slots = packing_slots(public_key, slot_bits)
    expected = -(-count // slots)
    if len(plaintexts) != expected:
        raise ProtocolAbort(
            f"{len(plaintexts)} packed values for {count} entries, {expected} expected"
        )
    width_mask = (1 << slot_bits) - 1
    reply_mask = (1 << (bound_bits + 1)) - 1
    top = (1 << (bound_bits + stat_bits)) + (1 << bound_bits)
    out: list[int] = []
    for i, value in enumerate(plaintexts):
        used = min(slots, count - i * slots)
        v = int(value)
        if not 0 <= v < 1 << (slot_bits * used):
            raise ProtocolAbort(
                f"packed value {i} has bits set above its last used slot (not a masked request)"
            )
        for _ in range(used):
            slot = v & width_mask
            if not 0 < slot < top:
                raise ProtocolAbort(
                    f"packed value {i} holds a slot outside the masked range (not a masked value)"
                )
            out.append(slot & reply_mask)
            v >>= slot_bits
    return out


def unmask_reduced(reduced: Sequence[int], masks: Sequence[int], bound_bits: int) -> list[int]:
    """Requester's side of :func:`check_masked_packed`: ``g = (slot - r) mod 2**(B+1)``,
    centred (``|g| < 2**B``).

    Raises
    ------
    ProtocolAbort
        The key holder returned the wrong number of values or one out of range.
    """
    if len(reduced) != len(masks):
        raise ProtocolAbort(f"expected {len(masks)} decrypted values, got {len(reduced)}")
    modulus = 1 << (bound_bits + 1)
    half = 1 << bound_bits
    out: list[int] = []
    for value, mask in zip(reduced, masks, strict=True):
        v = int(value)
        if not 0 <= v < modulus:
            raise ProtocolAbort("a decrypted value is out of range (tampered?)")
        g = (v - mask) % modulus
        if g >= half:
            g -= modulus
        if g == -half:
            raise ProtocolAbort("an unmasked value is outside its bound (tampered?)")
        out.append(g)
    return out


def mask_and_pack(
    public_key: PublicKeyBase,
    ciphertexts: Sequence[Any],
    bound_bits: int,
    below: Callable[[int], int],
    *,
    stat_bits: int = 48,
) -> tuple[list[Any], list[int], int]:
    """Mask ``Enc(g_j)`` (``|g_j| < 2**bound_bits``) as ``Enc(g_j + r_j)`` and pack them.

    Parameters
    ----------
    below:
        ``below(b)`` returns a uniform integer in ``[0, b)`` from a CSPRNG (``ctx.random.below``).

    Returns
    -------
    (packed ciphertexts, masks, slot_bits)
        Keep the masks secret; send the packed ciphertexts (re-randomised) to the key holder.
    """
    slot_bits = bound_bits + stat_bits + 1
    low = 1 << bound_bits
    masks = [low + below((1 << (bound_bits + stat_bits)) - low) for _ in ciphertexts]
    masked = public_key.raw_add_plain(list(ciphertexts), masks)
    slots = packing_slots(public_key, slot_bits)
    mod = gmpy2.mpz(public_key.ciphertext_modulus)
    shift = gmpy2.mpz(1) << slot_bits
    packed = []
    for start in range(0, len(masked), slots):
        group = masked[start : start + slots]
        acc = gmpy2.mpz(group[-1])
        for c in reversed(group[:-1]):
            acc = gmpy2.powmod(acc, shift, mod) * c % mod
        packed.append(acc)
    return packed, masks, slot_bits


def unpack_and_unmask(
    public_key: PublicKeyBase,
    plaintexts: Sequence[int],
    masks: Sequence[int],
    bound_bits: int,
    slot_bits: int,
) -> list[int]:
    """Invert :func:`mask_and_pack` on the decrypted residues; checks every range.

    Raises
    ------
    ProtocolAbort
        The key holder returned the wrong number of values, or values that cannot come from
        the packed masked results (out of range: tampering or overflow).
    """
    slots = packing_slots(public_key, slot_bits)
    expected = -(-len(masks) // slots)
    if len(plaintexts) != expected:
        raise ProtocolAbort(f"expected {expected} decrypted values, got {len(plaintexts)}")
    width_mask = (1 << slot_bits) - 1
    limit = 1 << bound_bits
    out: list[int] = []
    for i, value in enumerate(plaintexts):
        count = min(slots, len(masks) - i * slots)
        v = int(value)
        if not 0 <= v < 1 << (slot_bits * count):
            raise ProtocolAbort("a decrypted packed value is out of range (tampered?)")
        for _ in range(count):
            g = (v & width_mask) - masks[len(out)]
            if not -limit < g < limit:
                raise ProtocolAbort("an unmasked value is outside its bound (tampered?)")
            out.append(g)
            v >>= slot_bits
    return out
