"""Dealer-free Beaver triples for 2 computing parties from Paillier encryption.

Party P0 (the first computing party) owns a Paillier key; P1 knows the public key only. For a
triple, each party draws its shares ``a_i, b_i`` uniformly in Z_2^64; the cross terms of
``c = (a0 + a1)(b0 + b1)`` are computed under encryption::

    P0 -> P1:  Enc(a0), Enc(b0)
    P1 -> P0:  Enc(a0*b1 + b0*a1 + rho)      rho uniform in [0, n - B)
    c0 = a0*b0 + Dec(...)  mod 2**64,   c1 = a1*b1 - rho  mod 2**64

(matrix triples: the same with ``A0 @ B1 + A1 @ B0``, 2*m*k*n exponentiations by P1). ``B =
2*k*(2**64 - 1)**2 + 1`` bounds the honest cross term of an output that sums ``2*k`` products of
ring elements (``k = 1`` for elementwise triples); the provider refuses a product unless
``B * 2**64 <= n - B`` (:func:`cross_term_bound`), so ``cross + rho < n`` never wraps.

Security property (semi-honest, no trusted party): P1 sees only ciphertexts (IND-CPA of
Paillier under DCR + the DJN assumption, see :mod:`privfin.he.paillier`); the reply is
re-randomised last with a uniform ``r**n`` (``raw_obfuscate_for_owner``; the DJN short-exponent
randomiser would let a P0 with smooth ``p - 1``, or via Legendre symbols any P0, read bits of
``a1, b1`` from the reply's random part), so P0 sees ``cross + rho`` over the integers, which hides
``cross < B`` statistically: distance ``<= B / (n - B) <= 2**-64`` for every ``k`` the key
allows (below ``2**(144 - |n| + 1)`` at ``k = 30,000``). Because ``rho`` covers all of Z_n but ``B``
values, a P0 that encrypted values outside Z_2^64 (P1 cannot see them) still reads a reply
within distance ``B / n`` of uniform: it cannot shift P1's shares above the mask. Checks: P1
accepts P0's modulus only if it has exactly the agreed size, is odd, not prime, not a
perfect power, has no prime factor below 2**16 and comes with a valid proof that
``gcd(n, phi(n)) = 1`` (ten n-th roots of hash challenges, soundness 2**-160; without it a
modulus like ``p1*...*p8*q`` with ``p_i | q - 1`` gives Z*_{n**2} a part of order ~2**136
that neither ``(1+n)**x``, ``r**n`` nor the mask touches, and P0 reads P1's shares from the
reply); every ciphertext must lie in Z*_{n**2} and arrive in the exact count and width the
step expects (``ProtocolAbort`` naming the peer).
Leakage: none beyond the shapes (semi-honest); against active deviation see ``SPEC.md``.
Cost: dominated by P0's encryptions and P1's exponentiations (~ms per element at 2048 bits),
so this provider suits small multiplications; no truncation pairs or random bits (the online
protocol uses local truncation and builds random bits from triples).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod
from typing import Any

import numpy as np

from privfin.crypto.prg import expand_uint64
from privfin.crypto.random import RandomSource
from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.he import paillier
from privfin.mpc.messages import PaillierCiphertexts, PaillierPublicKey
from privfin.mpc.providers.base import Shape
from privfin.mpc.ring import U64, ring_matmul, ring_ops
from privfin.runtime import Context

__all__ = ["STATISTICAL_BITS", "PaillierProvider", "check_peer_modulus", "cross_term_bound"]

#: Statistical security of the mask: P0's view of a cross term is within 2**-64 of uniform.
STATISTICAL_BITS = 64
_MOD64 = (1 << 64) - 1


def cross_term_bound(terms: int) -> int:
    """``B``: one more than the largest honest cross term summing ``terms`` products of two
    elements of Z_2^64 (``terms = 2*k`` for an inner dimension ``k``)."""
    return terms * _MOD64 * _MOD64 + 1


def check_peer_modulus(n: int, n_bits: int, peer: str) -> None:
    """Refuse a Paillier modulus sent by ``peer`` that does not have exactly the agreed
    ``n_bits`` (the size check of :class:`privfin.he.paillier.PublicKey` then applies) or is
    trivially malformed (even, prime, a perfect power, or with a prime factor below 2**16).

    Cheap checks before the proof: the key is then loaded with
    :meth:`privfin.he.paillier.PublicKey.from_wire`, which verifies the owner's proof that
    ``gcd(n, phi(n)) = 1`` (:func:`privfin.he.paillier.verify_modulus`).

    Raises
    ------
    ProtocolAbort
        Naming ``peer``.
    """
    if n.bit_length() != n_bits:
        # Shorter is weaker; longer makes this party's exponentiations slower (work bound).
        raise ProtocolAbort(
            f"peer's Paillier modulus has {n.bit_length()} bits, not the agreed {n_bits}",
            party=peer,
        )
    try:
        paillier.check_modulus_form(n)
    except DecodeError as exc:
        raise ProtocolAbort(f"peer's Paillier modulus is malformed: {exc}", party=peer) from None


def _uniform_below(rng: RandomSource, bound: int) -> int:
    """Uniform in ``[0, bound)`` by rejection (fewer than two draws on average)."""
    bits = (bound - 1).bit_length()
    nbytes = (bits + 7) // 8
    while True:
        r = int.from_bytes(rng.bytes(nbytes), "big") >> (8 * nbytes - bits)
        if r < bound:
            return r


def _pack(values: Sequence[int], width: int) -> PaillierCiphertexts:
    data = b"".join(int(v).to_bytes(width, "big") for v in values)
    return PaillierCiphertexts(width=width, count=len(values), data=data)


class PaillierProvider:
    """Dealer-free multiplication and matrix triples for exactly 2 computing parties."""

    name = "paillier"
    trusted: tuple[str, ...] = ()
    supports_trunc_pair = False
    supports_random_bits = False
    supports_packed_bits = False

    def __init__(self, ctx: Context, compute: Sequence[str], *, n_bits: int = 2048) -> None:
        if len(compute) != 2:
            raise ConfigError("Paillier triples are for exactly 2 computing parties")
        small = n_bits < paillier.MIN_SECURE_KEY_BITS
        if small and ctx.settings.mode == "production" and not ctx.settings.allow_insecure:
            raise ConfigError(f"a {n_bits}-bit Paillier key is refused in production mode")
        self.ctx = ctx
        self.compute = tuple(compute)
        self.n_bits = n_bits
        self.small = small
        self.is_compute = ctx.party in self.compute
        self.is_owner = ctx.party == self.compute[0]
        self.peer = self.compute[1] if self.is_owner else self.compute[0]
        self._pk: Any = None
        self._sk: Any = None
        self._seed = b""
        self._counter = 0
        self.bytes_exchanged = 0

    def setup(self) -> None:
        if not self.is_compute or self._pk is not None:
            return
        self._seed = self.ctx.random.bytes(32)
        rng = paillier.bits_from(self.ctx.random)
        if self.is_owner:
            self._pk, self._sk = paillier.generate_keypair(
                self.n_bits, rng=rng, insecure_allow_small_keys=self.small
            )
            wire = self._pk.to_wire()
            self.ctx.channel.send(
                self.peer, "mpc.he.pk", PaillierPublicKey(n=int(self._pk.n), proof=wire["proof"])
            )
        else:
            msg = self.ctx.channel.recv(self.peer, "mpc.he.pk", expect=PaillierPublicKey)
            check_peer_modulus(int(msg.n), self.n_bits, self.peer)
            wire = {
                "kind": "PaillierPublicKey",
                "v": 1,
                "n": int(msg.n).to_bytes((int(msg.n).bit_length() + 7) // 8, "big"),
                "proof": list(msg.proof),
            }
            try:
                # Verifies the proof that gcd(n, phi(n)) = 1 (he.paillier.verify_modulus).
                self._pk = paillier.PublicKey.from_wire(
                    wire, rng=rng, insecure_allow_small_keys=self.small
                )
            except (ConfigError, DecodeError) as exc:
                raise ProtocolAbort(
                    f"peer's Paillier key refused: {exc}", party=self.peer
                ) from None

    def _width(self) -> int:
        return int(self._pk.ciphertext_bytes)

    def _recv_cts(self, count: int) -> list[int]:
        msg = self.ctx.channel.recv(self.peer, "mpc.he.ct", expect=PaillierCiphertexts)
        if msg.count != count or msg.width != self._width():
            raise ProtocolAbort(
                f"expected {count} ciphertexts of {self._width()} bytes", party=self.peer
            )
        w = msg.width
        cts = [int.from_bytes(msg.data[i * w : (i + 1) * w], "big") for i in range(count)]
        try:
            for c in cts:
                self._pk.check_ciphertext(c)
        except DecodeError as exc:
            raise ProtocolAbort(f"not a ciphertext in Z*_(n^2): {exc}", party=self.peer) from None
        return cts

    def _mask_range(self, terms: int) -> int:
        """``n - B`` for cross terms of ``terms`` products; refuses products whose mask would
        not hide them to ``2**-64`` inside the plaintext space."""
        bound = cross_term_bound(terms)
        rest = int(self._pk.n) - bound
        if rest <= 0 or bound << STATISTICAL_BITS > rest:
            raise ConfigError(
                f"a product summing {terms} terms does not fit a {self._pk.n_bits}-bit Paillier "
                f"key with a {STATISTICAL_BITS}-bit statistical mask; use a larger key "
                "(paillier_bits) or split the product"
            )
        return rest

    def _own(self, sizes: Sequence[int]) -> list[U64]:
        counter = self._counter
        self._counter += 1
        flat = expand_uint64(self._seed, sum(sizes), stream=counter)
        out, at = [], 0
        for s in sizes:
            out.append(flat[at : at + s])
            at += s
        return out

    @ring_ops
    def _cross(self, left: U64, right: U64, pairs: list[list[tuple[int, int, int, int]]]) -> U64:
        """Shares of ``sum over (i, j, i2, j2) of left0[i]*right1[j] + right0[i2]*left1[j2]``
        for each output element; ``pairs[o]`` lists the index quadruples of output ``o``."""
        pk = self._pk
        # Both parties check the same public bound before anything is sent.
        rest = self._mask_range(2 * max((len(q) for q in pairs), default=1))
        if self.is_owner:
            plain = [int(v) for v in np.concatenate([left, right])]
            cts = pk.raw_encrypt(plain)
            self.ctx.channel.send(self.peer, "mpc.he.ct", _pack(cts, self._width()))
            reply = self._recv_cts(len(pairs))
            # The decryptions stay here: only their residue mod 2**64 enters this party's
            # share of c (SPEC.md: what a deviating P1 can do with its reply).
            vals = self._sk.raw_decrypt(reply)
            return np.array([int(v) & _MOD64 for v in vals], dtype=np.uint64)
        cts = self._recv_cts(left.size + right.size)
        enc_left, enc_right = cts[: left.size], cts[left.size :]
        rng = self.ctx.random
        rhos = [_uniform_below(rng, rest) for _ in pairs]
        out = []
        for quads in pairs:
            terms_c = []
            terms_k = []
            for i, j, i2, j2 in quads:
                terms_c += [enc_left[i], enc_right[i2]]
                terms_k += [int(right[j]), int(left[j2])]
            powered = pk.raw_mul(terms_c, terms_k)
            out.append(pk.raw_sum(powered))
        # The reply goes back to the key's owner, who chose the randomness of the ciphertexts
        # it sent and may hold a key with smooth p - 1: the last operation before it leaves is
        # a uniform re-randomisation (r**n, r uniform in Z*_n; the DJN short-exponent h_s**a
        # would let P0 read the exponents a1, b1 from the reply's random part: SPEC.md).
        out = pk.raw_add_plain(out, rhos)
        out = pk.raw_obfuscate_for_owner(out, rng=paillier.bits_from(rng))
        self.ctx.channel.send(self.peer, "mpc.he.ct", _pack(out, self._width()))
        return np.array([(-r) & _MOD64 for r in rhos], dtype=np.uint64)

    @ring_ops
    def mul_triple(self, shape: Shape) -> tuple[U64, U64, U64] | None:
        if not self.is_compute:
            return None
        self.setup()
        size = prod(shape)
        a, b = self._own([size, size])
        # element o: a0[o]*b1[o] + b0[o]*a1[o]; P1 holds (a1, b1) as (left, right)
        pairs = [[(o, o, o, o)] for o in range(size)]
        cross = self._cross(a, b, pairs)
        c = a * b + cross
        return a.reshape(shape), b.reshape(shape), c.reshape(shape)

    @ring_ops
    def matmul_triple(self, m: int, k: int, n: int) -> tuple[U64, U64, U64] | None:
        if not self.is_compute:
            return None
        self.setup()
        a, b = self._own([m * k, k * n])
        # C_ij cross = sum_l A0_il B1_lj + B0_lj A1_il
        pairs = [
            [(i * k + t, t * n + j, t * n + j, i * k + t) for t in range(k)]
            for i in range(m)
            for j in range(n)
        ]
        cross = self._cross(a, b, pairs)
        am, bm = a.reshape(m, k), b.reshape(k, n)
        return am, bm, ring_matmul(am, bm) + cross.reshape(m, n)

    def trunc_pair(self, shape: Shape, frac_bits: int) -> None:
        raise ConfigError("the Paillier provider offers no truncation pairs")

    def random_bits(self, shape: Shape) -> None:
        raise ConfigError("the Paillier provider offers no random bits")

    def bool_triple(self, shape: Shape) -> None:
        raise ConfigError("the Paillier provider offers no packed-bit AND triples")

    def edabits(self, shape: Shape) -> None:
        raise ConfigError("the Paillier provider offers no edaBits")

    def dabits(self, shape: Shape) -> None:
        raise ConfigError("the Paillier provider offers no daBits")

    def dabit_triple(self, shape: Shape, y_shape: Shape) -> None:
        raise ConfigError("the Paillier provider offers no daBit triples")
