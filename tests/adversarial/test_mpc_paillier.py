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
