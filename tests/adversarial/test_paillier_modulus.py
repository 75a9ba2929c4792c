"""[08] item 6 and every protocol on a peer's Paillier key: a malformed modulus.

The red team's attack (``/tmp/redteam/mpc6_bad_modulus.py``): the key owner sends
``n = p1*...*p8*q`` with 17-bit primes ``p_i | q - 1``. It has the agreed size, is odd,
composite, not a perfect power and has no factor below 2**16, yet Z*_{n**2} has a part of
order ``P = p1*...*p8 ~ 2**136`` that ``(1+n)**x``, ``r**n`` and the mask never touch. In the
MPC triple provider, P0 multiplies ``Enc(a0)``, ``Enc(b0)`` by elements of that part and reads
P1's shares ``a1``, ``b1`` from the reply by Pohlig-Hellman, exactly and undetected (the
triples stay correct). ``n = p**2 * q`` leaks the same through a p-adic log. Both are refused
now: every Paillier key a party receives carries a proof that ``gcd(n, phi(n)) = 1``
(:func:`privfin.he.paillier.verify_modulus`), which no such modulus can have.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gmpy2
import numpy as np
import pytest

from privfin.config import Settings
from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.federation import codec
from privfin.he import paillier
from privfin.mpc.messages import PaillierPublicKey
from privfin.mpc.providers import paillier as prov
from privfin.mpc.providers.paillier import PaillierProvider, check_peer_modulus
from privfin.runtime import simulate

BITS = 1024
DEV = Settings(mode="development")
ROLES = {"a": ("compute",), "b": ("compute",)}
SHIFT = 66  # P0 reads b1 + 2**66 * a1 from one discrete log


def _crt(residues: list[int], moduli: list[int]) -> int:
    m = math.prod(moduli)
    return sum(r * (m // x) * pow(m // x, -1, x) for r, x in zip(residues, moduli, strict=True)) % m


@dataclass(frozen=True)
class Malformed:
    """A malicious key owner's modulus with the trapdoor it uses to read replies."""

    n: int
    hidden: Callable[[int], int]  # element of Z*_{n^2} outside <1+n> x {r^n}, to a power
    dlog: Callable[[int], int]  # exponent of that element in a reply
    decrypt: Callable[[int], int] | None  # correct decryption mod n (None: not stealthy)
    residue_mod: int  # a prime power modulus on which no challenge is an n-th residue
    residue_exp: int  # y is an n-th residue mod residue_mod iff y**residue_exp == 1


def _bsgs(t: int, g: int, order: int, mod: int) -> int:
    """Discrete log of ``t`` to base ``g`` of prime ``order`` (baby-step giant-step)."""
    m = math.isqrt(order) + 1
    table: dict[int, int] = {}
    acc = 1
    for j in range(m):
        table.setdefault(acc, j)
        acc = acc * g % mod
    step, acc = int(pow(g, -m, mod)), t
    for i in range(m + 1):
        if acc in table:
            return (i * m + table[acc]) % order
        acc = acc * step % mod
    raise AssertionError("no discrete log")


def smooth_q_modulus(bits: int = BITS, seed: int = 7) -> Malformed:
    """``n = p1*...*p8*q`` with 17-bit primes ``p_i | q - 1`` (the red team's modulus)."""
    rnd = random.Random(seed)
    ps: list[int] = []
    x = gmpy2.mpz(1 << 17) + rnd.randrange(1 << 16)
    while len(ps) < 8:
        x = gmpy2.next_prime(x + rnd.randrange(1000))
        ps.append(int(x))
    big_p = math.prod(ps)
    lo = bits - 2 * big_p.bit_length()
    while True:
        q = 1 + rnd.randrange(1 << lo, 1 << (lo + 2)) * big_p
        if (big_p * q).bit_length() == bits and gmpy2.is_prime(q):
            break
    n = big_p * q
    while True:  # zeta: an element of order exactly P mod q
        w = rnd.randrange(2, q)
        zeta = pow(w, (q - 1) // big_p, q)
        if all(pow(zeta, big_p // p, q) != 1 for p in ps):
            break
    g0 = pow(w, q, q * q)  # Teichmueller lift: order divides q - 1 mod q^2

    def hidden(e: int) -> int:  # 1 mod p_i^2, g0^e mod q^2
        return _crt([1] * 8 + [pow(g0, e, q * q)], [p * p for p in ps] + [q * q])

    def dlog(c: int) -> int:  # Pohlig-Hellman in the order-P part of Z*_q
        t = pow(c % q, (q - 1) // big_p, q)
        return _crt([_bsgs(pow(t, big_p // p, q), pow(zeta, big_p // p, q), p, q) for p in ps], ps)

    def decrypt(c: int) -> int:  # CRT over p_i^2 and q^2: still correct mod n
        rs = []
        for p in [*ps, q]:
            z = pow(c, p - 1, p * p)
            rs.append((z - 1) // p * pow((p - 1) * (n // p), -1, p) % p)
        return _crt(rs, [*ps, q])

    return Malformed(n, hidden, dlog, decrypt, q, (q - 1) // math.gcd(n, q - 1))


def p2q_modulus(bits: int = BITS, seed: int = 5) -> Malformed:
    """``n = p**2 * q`` (an OU-shaped modulus used as a Paillier key)."""
    rnd = random.Random(seed)
    while True:
        p = int(gmpy2.next_prime(rnd.getrandbits(341) | (1 << 340)))
        q = int(gmpy2.next_prime(rnd.getrandbits(342) | (1 << 341)))
        n = p * p * q
        if n.bit_length() == bits:
            break
    h = _crt([1 + p, 1], [p**4, q * q])

    def hidden(e: int) -> int:
        return pow(h, e, n * n)

    def dlog(c: int) -> int:  # h^(e(p-1)) = 1 - e*p (mod p^2)
        return -((pow(c, p - 1, p * p) - 1) // p) % p

    return Malformed(n, hidden, dlog, None, p * p, (p * (p - 1)) // math.gcd(n, p * (p - 1)))


MALFORMED = {"p1..p8*q": smooth_q_modulus, "p^2*q": p2q_modulus}


@pytest.fixture(scope="module", params=sorted(MALFORMED))
def bad(request: pytest.FixtureRequest) -> Malformed:
    return MALFORMED[request.param]()


@pytest.fixture(scope="module")
def honest() -> tuple[paillier.PublicKey, paillier.PrivateKey]:
    return paillier.generate_keypair(BITS, rng=random.Random(3), insecure_allow_small_keys=True)


def _wire(n: int, proof: list[bytes] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "PaillierPublicKey", "v": 1, "n": n.to_bytes(BITS // 8, "big")}
    if proof is not None:
        out["proof"] = proof
    return out


def _garbage_proof(n: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    return [rnd.randrange(1, n).to_bytes(BITS // 8, "big") for _ in range(paillier.PROOF_ROUNDS)]


# ---------------------------------------------------------------- he: the modulus itself


def test_malformed_moduli_pass_every_cheap_check(bad: Malformed) -> None:
    """Why a proof is needed: size, parity, compositeness, powers, trial division all pass."""
    check_peer_modulus(bad.n, BITS, "a")
    paillier.check_modulus_form(bad.n)
    assert bad.n.bit_length() == BITS


def test_no_proof_exists_for_a_malformed_modulus(bad: Malformed) -> None:
    """Not one challenge is an n-th residue (checked with the owner's trapdoor), so no proof
    exists, whatever the owner computes."""
    ys = paillier.modulus_challenges(bad.n)
    assert len(ys) == paillier.PROOF_ROUNDS
    assert all(pow(y, bad.residue_exp, bad.residue_mod) != 1 for y in ys)


@pytest.mark.parametrize("proof", ["none", "garbage", "replayed", "short"])
def test_from_wire_refuses_a_malformed_modulus(bad: Malformed, honest: Any, proof: str) -> None:
    pk, _ = honest
    proofs: dict[str, list[bytes] | None] = {
        "none": None,
        "garbage": _garbage_proof(bad.n, 1),
        "replayed": pk.to_wire()["proof"],  # a valid proof of another modulus
        "short": pk.to_wire()["proof"][:-1],
    }
    with pytest.raises(DecodeError, match="proof"):
        paillier.PublicKey.from_wire(_wire(bad.n, proofs[proof]), insecure_allow_small_keys=True)


def test_honest_key_round_trips_through_the_codec(honest: Any) -> None:
    pk, sk = honest
    wire = codec.decode(codec.encode(pk.to_wire()))
    got = paillier.PublicKey.from_wire(wire, insecure_allow_small_keys=True)
    assert got == pk and got.modulus_proof == pk.modulus_proof
    assert sk.decrypt(got.encrypt([5, -7])) == [5, -7]
    # A received key can be forwarded: it keeps its proof.
    assert paillier.PublicKey.from_wire(got.to_wire(), insecure_allow_small_keys=True) == pk


def _plus_n(x: bytes, n: int) -> bytes:
    return (int.from_bytes(x, "big") + n).to_bytes(len(x) + 1, "big")


def _flip(proof: list[bytes], j: int) -> list[bytes]:
    out = list(proof)
    out[j] = bytes([out[j][0] ^ 1]) + out[j][1:]
    return out


@pytest.mark.parametrize(
    "tamper",
    [
        lambda pr, n: _flip(pr, 0),
        lambda pr, n: _flip(pr, len(pr) - 1),
        lambda pr, n: [pr[1], pr[0], *pr[2:]],  # roots swapped
        lambda pr, n: [*pr, pr[0]],  # one too many
        lambda pr, n: [b"\x00" * len(pr[0]), *pr[1:]],  # zero
        lambda pr, n: [n.to_bytes(len(pr[0]), "big"), *pr[1:]],  # n itself
        lambda pr, n: [_plus_n(pr[0], n), *pr[1:]],  # right value mod n, wrong width
        lambda pr, n: [x.hex() for x in pr],  # not bytes
        lambda pr, n: "proof",
    ],
    ids=["flip-first", "flip-last", "swap", "long", "zero", "n", "width", "str", "type"],
)
def test_a_tampered_proof_is_refused(honest: Any, tamper: Any) -> None:
    pk, _ = honest
    wire = pk.to_wire()
    wire["proof"] = tamper(wire["proof"], pk.n)
    with pytest.raises(DecodeError):
        paillier.PublicKey.from_wire(wire, insecure_allow_small_keys=True)


def test_a_key_with_another_modulus_and_the_same_proof_is_refused(honest: Any) -> None:
    pk, _ = honest
    other, _ = paillier.generate_keypair(BITS, rng=random.Random(4), insecure_allow_small_keys=True)
    wire = other.to_wire()
    wire["proof"] = pk.to_wire()["proof"]
    with pytest.raises(DecodeError, match="proof"):
        paillier.PublicKey.from_wire(wire, insecure_allow_small_keys=True)


def test_a_small_prime_factor_is_refused_even_with_gcd_one() -> None:
    """Trial division is what makes each round sound to 2**-16: a factor below 2**16 is
    refused by every receiver, whatever the proof."""
    p = 65521  # largest prime below 2**16
    q = int(gmpy2.next_prime((1 << (BITS - 1)) // p + 12345))
    n = p * q
    assert math.gcd(n, (p - 1) * (q - 1)) == 1 and n.bit_length() == BITS
    d = pow(n, -1, (p - 1) * (q - 1))
    proof = [pow(y, d, n).to_bytes(BITS // 8, "big") for y in paillier.modulus_challenges(n)]
    ys = paillier.modulus_challenges(n)
    assert all(pow(int.from_bytes(x, "big"), n, n) == y for x, y in zip(proof, ys, strict=True))
    with pytest.raises(DecodeError, match="below 2\\*\\*16"):
        paillier.PublicKey.from_wire(_wire(n, proof), insecure_allow_small_keys=True)


def test_proof_is_deterministic_and_pinned() -> None:
    """Seeded key generation gives the same key and proof; the challenge derivation and the
    proof bytes are pinned (any change to the encoding shows up here)."""

    def run() -> tuple[int, list[bytes]]:
        pk, _ = paillier.generate_keypair(
            512, rng=random.Random(2024), insecure_allow_small_keys=True
        )
        return pk.n, pk.to_wire()["proof"]

    (n, proof), again = run(), run()
    assert (n, proof) == again
    nb = n.to_bytes(64, "big")
    for j, (x, y) in enumerate(zip(proof, paillier.modulus_challenges(n), strict=True)):
        seed = (
            b"privfin/paillier/nth-roots/v1" + (64).to_bytes(4, "big") + nb + j.to_bytes(4, "big")
        )
        expect = int.from_bytes(hashlib.shake_256(seed).digest((512 + 128) // 8), "big") % n
        assert y == expect
        assert pow(int.from_bytes(x, "big"), n, n) == y
    assert hashlib.sha256(b"".join(proof)).hexdigest() == (
        "4e79517c2265a70f75212955652bf4f02709c6481f002aea3c1b21ed41ac21a8"
    )


def test_a_key_without_proof_cannot_be_sent(honest: Any) -> None:
    pk, _ = honest
    with pytest.raises(ConfigError, match="no modulus proof"):
        paillier.PublicKey(pk.n, insecure_allow_small_keys=True).to_wire()


# ---------------------------------------------------------------- the MPC triple provider


def _attack(bad: Malformed, proof: list[bytes], stolen: list[tuple[int, int]]) -> Any:
    """The red team's P0: sends ``bad.n`` (with ``proof``), multiplies its ciphertexts by the
    hidden elements and reads ``(b1, a1)`` from P1's reply."""
    honest_setup, honest_cross = PaillierProvider.setup, PaillierProvider._cross
    nsq = bad.n * bad.n
    h1, h2 = bad.hidden(1), bad.hidden(1 << SHIFT)

    def setup(self: PaillierProvider) -> None:
        if self.ctx.party != "a":
            return honest_setup(self)
        if self._pk is not None:
            return None
        self._seed = self.ctx.random.bytes(32)
        self._pk = paillier.PublicKey(bad.n, insecure_allow_small_keys=True)
        self.ctx.channel.send(self.peer, "mpc.he.pk", PaillierPublicKey(n=bad.n, proof=proof))
        return None

    def cross(self: PaillierProvider, left: Any, right: Any, pairs: Any) -> Any:
        if self.ctx.party != "a":
            return honest_cross(self, left, right, pairs)
        cts = self._pk.raw_encrypt([int(v) for v in np.concatenate([left, right])])
        k = left.size
        cts = [c * h1 % nsq for c in cts[:k]] + [c * h2 % nsq for c in cts[k:]]
        self.ctx.channel.send(self.peer, "mpc.he.ct", prov._pack(cts, self._width()))
        reply = self._recv_cts(len(pairs))
        for c in reply:
            a1, b1 = divmod(bad.dlog(int(c)), 1 << SHIFT)
            stolen.append((b1, a1))
        dec = bad.decrypt or (lambda c: 0)
        return np.array([dec(int(c)) & prov._MOD64 for c in reply], dtype=np.uint64)

    return setup, cross


def _triples(ctx: Any, params: Any, inputs: Any) -> Any:
    return PaillierProvider(ctx, ("a", "b"), n_bits=BITS).mul_triple((3,))


def test_the_attack_reads_p1_shares_without_the_proof(
    bad: Malformed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack is real: with the proof check switched off, P0 reads P1's ``a1`` and ``b1``
    exactly (and, for ``p1..p8*q``, the triples remain correct: nothing is detected)."""
    stolen: list[tuple[int, int]] = []
    setup, cross = _attack(bad, _garbage_proof(bad.n, 2), stolen)
    monkeypatch.setattr(PaillierProvider, "setup", setup)
    monkeypatch.setattr(PaillierProvider, "_cross", cross)
    monkeypatch.setattr(paillier, "verify_modulus", lambda n, proof: None)
    out = simulate(_triples, ROLES, settings=DEV, seed=11, timeout=60)
    a1, b1, _ = out["b"]
    assert stolen == [(int(b), int(a)) for b, a in zip(b1, a1, strict=True)]
    if bad.decrypt is not None:
        (a0, b0, c0), (_, _, c1) = out["a"], out["b"]
        assert np.array_equal((a0 + a1) * (b0 + b1), c0 + c1)


@pytest.mark.parametrize("proof", ["none", "garbage", "replayed"])
def test_p1_refuses_the_malformed_modulus_naming_p0(
    bad: Malformed, honest: Any, monkeypatch: pytest.MonkeyPatch, proof: str
) -> None:
    proofs = {
        "none": [],
        "garbage": _garbage_proof(bad.n, 2),
        "replayed": honest[0].to_wire()["proof"],
    }
    stolen: list[tuple[int, int]] = []
    setup, cross = _attack(bad, proofs[proof], stolen)
    monkeypatch.setattr(PaillierProvider, "setup", setup)
    monkeypatch.setattr(PaillierProvider, "_cross", cross)
    with pytest.raises(ProtocolAbort, match="proof") as err:
        simulate(_triples, ROLES, settings=DEV, seed=11, timeout=60)
    assert err.value.party == "a"
    assert stolen == []  # P1 never replied


def test_honest_provider_still_produces_correct_triples() -> None:
    out = simulate(_triples, ROLES, settings=DEV, seed=11, timeout=60)
    (a0, b0, c0), (a1, b1, c1) = out["a"], out["b"]
    assert np.array_equal((a0 + a1) * (b0 + b1), c0 + c1)
