"""[08] item 6: the dealer-free Paillier triple provider against a deviating peer.

P0 (party ``a``) owns the key; P1 (party ``b``) computes on P0's ciphertexts and replies with a
masked cross term. Each test plays one party maliciously by patching the provider for that
party only (the other runs the honest code) and asserts the attack is refused with a
``ProtocolAbort`` naming the offender, or yields nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import gmpy2
import numpy as np
import pytest

from privfin.config import Settings
from privfin.errors import ConfigError, ProtocolAbort
from privfin.he import paillier
from privfin.mpc.messages import PaillierPublicKey
from privfin.mpc.providers import paillier as prov
from privfin.mpc.providers.paillier import PaillierProvider, cross_term_bound
from privfin.runtime import simulate

from ._smooth import Dlog, ct_with_randomiser, recover_lambda, smooth_keypair

DEV = Settings(mode="development")
ROLES = {"a": ("compute",), "b": ("compute",)}
BITS = 1024
MOD64 = (1 << 64) - 1


def _triple(ctx: Any, params: Any, inputs: Any) -> Any:
    provider = PaillierProvider(ctx, ("a", "b"), n_bits=BITS)
    return provider.mul_triple((3,))


def _run() -> dict[str, Any]:
    return simulate(_triple, ROLES, settings=DEV, seed=11, timeout=30)


@pytest.fixture
def as_party(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str, Any], None]]:
    """Replace one provider method for one party only; the other party stays honest."""

    def patch(party: str, name: str, evil: Any) -> None:
        honest = getattr(PaillierProvider, name)

        def method(self: PaillierProvider, *args: Any) -> Any:
            if self.ctx.party == party:
                return evil(self, *args)
            return honest(self, *args)

        monkeypatch.setattr(PaillierProvider, name, method)

    yield patch


def _send_modulus(n: int) -> Callable[[PaillierProvider], None]:
    def setup(self: PaillierProvider) -> None:
        if self._pk is not None:
            return
        self._seed = self.ctx.random.bytes(32)
        self._pk, self._sk = paillier.generate_keypair(
            BITS, rng=random.Random(1), insecure_allow_small_keys=True
        )
        self.ctx.channel.send(self.peer, "mpc.he.pk", PaillierPublicKey(n=n))

    return setup


def _with_small_factor() -> int:
    m = (1 << (BITS - 1)) // 3 + 1000
    m += 1 - m % 2
    n = 3 * m
    assert n.bit_length() == BITS and n % 2
    return n


def _square() -> int:
    p = int(gmpy2.next_prime(3 << (BITS // 2 - 2)))
    assert (p * p).bit_length() == BITS
    return p * p


def _prime() -> int:
    return int(gmpy2.next_prime((1 << (BITS - 1)) + (1 << 700)))


def _short() -> int:
    pk, _ = paillier.generate_keypair(768, rng=random.Random(2), insecure_allow_small_keys=True)
    return int(pk.n)


def _well_formed_without_proof() -> int:
    """A well-formed modulus sent without its proof (``PaillierPublicKey.proof`` empty): the
    proof is what rules out the moduli of ``test_paillier_modulus.py``, so it is required."""
    pk, _ = paillier.generate_keypair(BITS, rng=random.Random(1), insecure_allow_small_keys=True)
    return int(pk.n)


@pytest.mark.parametrize(
    "make",
    [_with_small_factor, _square, _prime, _short, _well_formed_without_proof],
    ids=lambda f: f.__name__,
)
def test_p1_refuses_a_malformed_or_short_modulus(as_party: Any, make: Any) -> None:
    as_party("a", "setup", _send_modulus(make()))
    with pytest.raises(ProtocolAbort, match="modulus") as err:
        _run()
    assert err.value.party == "a"


def _reply_with(bad: Callable[[PaillierProvider, list[int]], list[int]]) -> Any:
    """P1's _cross that sends ``bad(self, honest_reply)`` instead of its reply."""
    honest = PaillierProvider._cross

    def cross(self: PaillierProvider, left: Any, right: Any, pairs: Any) -> Any:
        sent: list[list[int]] = []
        real_send = self.ctx.channel.send

        def capture(peer: str, tag: str, msg: Any) -> None:
            w = msg.width
            sent.append(
                [int.from_bytes(msg.data[i * w : (i + 1) * w], "big") for i in range(msg.count)]
            )

        self.ctx.channel.send = capture  # type: ignore[method-assign]
        try:
            out = honest(self, left, right, pairs)
        finally:
            self.ctx.channel.send = real_send  # type: ignore[method-assign]
        real_send(self.peer, "mpc.he.ct", prov._pack(bad(self, sent[0]), self._width()))
        return out

    return cross


@pytest.mark.parametrize(
    "bad",
    [
        lambda self, cts: [0, *cts[1:]],  # not in Z*_{n^2}
        lambda self, cts: [int(self._pk.n), *cts[1:]],  # shares a factor with n
        lambda self, cts: [int(self._pk.nsquare) + 1, *cts[1:]],  # above n^2
        lambda self, cts: cts[:-1],  # one ciphertext short
        lambda self, cts: [*cts, cts[0]],  # one too many
    ],
    ids=["zero", "non-unit", "above-n2", "short", "long"],
)
def test_p0_refuses_a_malformed_reply(as_party: Any, bad: Any) -> None:
    as_party("b", "_cross", _reply_with(bad))
    with pytest.raises(ProtocolAbort) as err:
        _run()
    assert err.value.party == "b"


def test_out_of_range_plaintexts_from_p0_reveal_nothing_of_p1_shares(as_party: Any) -> None:
    """A P0 that encrypts 2**200 instead of its share a0 (P1 cannot see it) used to read P1's
    share b1 in bits 200..263 of the decrypted reply (the mask had 194 bits); the mask now
    covers Z_n but a negligible part, so those bits are unrelated to b1."""
    guesses: list[int] = []

    def cross(self: PaillierProvider, left: Any, right: Any, pairs: Any) -> Any:
        cts = self._pk.raw_encrypt([1 << 200] * left.size + [0] * right.size)
        self.ctx.channel.send(self.peer, "mpc.he.ct", prov._pack(cts, self._width()))
        vals = self._sk.raw_decrypt(self._recv_cts(len(pairs)))
        guesses.extend((int(v) >> 200) & MOD64 for v in vals)
        return np.array([int(v) & MOD64 for v in vals], dtype=np.uint64)

    as_party("a", "_cross", cross)
    out = _run()
    b1 = [int(v) for v in out["b"][1]]
    assert len(guesses) == len(b1) == 3
    assert all(g != b for g, b in zip(guesses, b1, strict=True))


def test_mask_holds_to_2_pow_minus_64_for_the_largest_products() -> None:
    # k = 30,000: an output sums 2k products of ring elements, < 2**144; the old 194-bit mask
    # gave a distance up to 2**-50; the mask now spans n - B (< 2**-1900 at 2048 bits).
    bound = cross_term_bound(2 * 30_000)
    assert bound.bit_length() == 144
    assert bound.bit_length() - 194 == -50  # what the old mask gave: not 2**-64
    assert (bound << 1900) <= (1 << 2047) - bound


def test_a_product_too_large_for_the_key_is_refused() -> None:
    provider = PaillierProvider.__new__(PaillierProvider)
    provider._pk = paillier.generate_keypair(
        512, rng=random.Random(3), insecure_allow_small_keys=True
    )[0]
    assert provider._mask_range(2 * 30_000) > 0
    with pytest.raises(ConfigError, match="does not fit"):
        provider._mask_range(1 << 320)


# ------------------------------------------- randomness toward the key owner (red team 3)


def _owner_with_key(pk: Any, sk: Any) -> Callable[[PaillierProvider], None]:
    """P0's setup with a key of its choice (well formed, with a valid modulus proof)."""

    def setup(self: PaillierProvider) -> None:
        if self._pk is not None:
            return
        self._seed = self.ctx.random.bytes(32)
        self._pk, self._sk = pk, sk
        self.ctx.channel.send(
            self.peer, "mpc.he.pk", PaillierPublicKey(n=int(pk.n), proof=pk.to_wire()["proof"])
        )

    return setup


def test_smooth_key_owner_reads_nothing_from_the_reply_randomness(as_party: Any) -> None:
    """A1: P0's key has smooth ``p - 1`` (valid proof). P0 sends ``Enc(a0), Enc(b0)`` with
    randomisers ``G**(lam*2**W)``, ``G**(lam*2**(W+66))`` mod p; with the DJN reply mask
    ``h_s**a`` (``a`` of 256 bits, ``h_s = G**lam``) the reply's randomiser has log
    ``lam*(a + b1*2**W + a1*2**(W+66))`` and P0 read ``(b1, a1)`` exactly after learning
    ``lam`` from one triple. With the uniform ``r**n`` re-randomisation the logs are uniform:
    ``lam`` cannot be learned and no share is read."""
    pk, sk, p, q, ls = smooth_keypair(BITS, seed=1)
    dlog = Dlog(p, ls, int(pk.n))
    t, w = int(dlog.T), 264
    rnd = random.Random(4)
    state: dict[str, Any] = {"ys": [], "lam": None, "stolen": []}

    def cross(self: PaillierProvider, left: Any, right: Any, pairs: Any) -> Any:
        self._mask_range(2 * max(len(x) for x in pairs))
        size = left.size
        plain = [int(v) for v in np.concatenate([left, right])]
        lam = state["lam"]
        if lam is None:  # learning call: randomisers 1 mod p
            rs = [dlog.element(0, q, rnd) for _ in plain]
        else:
            rs = [dlog.element(lam * (1 << w) % t, q, rnd) for _ in range(size)] + [
                dlog.element(lam * (1 << (w + 66)) % t, q, rnd) for _ in range(size)
            ]
        cts = [ct_with_randomiser(pk, m, r) for m, r in zip(plain, rs, strict=True)]
        self.ctx.channel.send(self.peer, "mpc.he.ct", prov._pack(cts, self._width()))
        reply = self._recv_cts(len(pairs))
        logs = [dlog.rand_log(c) for c in reply]
        if lam is None:
            state["ys"] += logs
            state["lam"] = recover_lambda(state["ys"], t)
        else:
            linv = pow(lam, -1, t)
            for y in logs:
                s = (y * linv % t) >> w
                state["stolen"].append((s & MOD64, (s >> 66) & MOD64))
        vals = self._sk.raw_decrypt(reply)
        return np.array([int(v) & MOD64 for v in vals], dtype=np.uint64)

    def job(ctx: Any, params: Any, inputs: Any) -> Any:
        provider = PaillierProvider(ctx, ("a", "b"), n_bits=BITS)
        provider.mul_triple((3,))
        return provider.mul_triple((4,))

    as_party("a", "setup", _owner_with_key(pk, sk))
    as_party("a", "_cross", cross)
    out = simulate(job, ROLES, settings=DEV, seed=11, timeout=60)
    (a0, b0, c0), (a1, b1, c1) = out["a"], out["b"]
    assert np.all((a0 + a1) * (b0 + b1) == c0 + c1)  # the key works: triples are correct
    truth = [(int(x), int(y)) for x, y in zip(b1, a1, strict=True)]
    assert state["lam"] is None  # the reply randomness has no short-exponent structure
    assert not any(s in truth for s in state["stolen"])


def test_legendre_symbols_of_the_reply_randomness_are_coin_flips(as_party: Any) -> None:
    """A5: an ordinary key with ``p = q = 1 mod 4`` (so ``h_s = (-x**2)**n`` gives a square
    randomiser): P0 encrypts ``a0`` with a randomiser that is a non-residue mod p and ``b0``
    with one that is a non-residue mod q; with the DJN mask the Legendre symbols of the
    reply's randomiser gave ``b1 mod 2`` and ``a1 mod 2`` for every element (64/64). With the
    uniform ``r**n`` they are independent coin flips (seeded run: deterministic)."""
    rnd = random.Random(9)
    while True:
        pk, sk = paillier.generate_keypair(BITS, rng=rnd, insecure_allow_small_keys=True)
        p, q = int(sk._p), int(sk._q)
        if p % 4 == 1 and q % 4 == 1:
            break
    n = int(pk.n)
    ninv_p, ninv_q = pow(n, -1, p - 1), pow(n, -1, q - 1)

    def nonres(m: int) -> int:
        while True:
            x = rnd.randrange(2, m)
            if gmpy2.legendre(x, m) == -1:
                return x

    def crt(a: int, b: int) -> int:
        return (b + q * ((a - b) * pow(q, -1, p) % p)) % n

    r_left, r_right = crt(nonres(p), 4), crt(4, nonres(q))
    read: list[tuple[int, int]] = []

    def cross(self: PaillierProvider, left: Any, right: Any, pairs: Any) -> Any:
        size = left.size
        plain = [int(v) for v in np.concatenate([left, right])]
        cts = [
            ct_with_randomiser(pk, m, r_left if i < size else r_right) for i, m in enumerate(plain)
        ]
        self.ctx.channel.send(self.peer, "mpc.he.ct", prov._pack(cts, self._width()))
        reply = self._recv_cts(len(pairs))
        for c in reply:
            rp, rq = pow(int(c) % p, ninv_p, p), pow(int(c) % q, ninv_q, q)
            read.append((int(gmpy2.legendre(rp, p) == -1), int(gmpy2.legendre(rq, q) == -1)))
        vals = self._sk.raw_decrypt(reply)
        return np.array([int(v) & MOD64 for v in vals], dtype=np.uint64)

    as_party("a", "setup", _owner_with_key(pk, sk))
    as_party("a", "_cross", cross)
    out = simulate(
        lambda ctx, params, inputs: PaillierProvider(ctx, ("a", "b"), n_bits=BITS).mul_triple(
            (128,)
        ),
        ROLES, settings=DEV, seed=11, timeout=60,
    )  # fmt: skip
    (a0, b0, c0), (a1, b1, c1) = out["a"], out["b"]
    assert np.all((a0 + a1) * (b0 + b1) == c0 + c1)
    assert len(read) == 128
    right_b = sum(r[0] == int(x) & 1 for r, x in zip(read, b1, strict=True))
    right_a = sum(r[1] == int(y) & 1 for r, y in zip(read, a1, strict=True))
    # A coin flip: 64 expected, sd 5.7; the old randomiser gave 128 of 128 (P(>= 96) < 2**-14).
    assert right_b < 96 and right_a < 96, (right_b, right_a)
