"""A key owner with smooth ``p - 1`` (red team, issue [08]): tools to play it in tests.

The key is well formed (``gcd(n, φ(n)) = 1``, a valid modulus proof: every peer accepts it),
but its owner takes discrete logarithms modulo ``p`` (Pohlig–Hellman over the small factors
of ``p - 1``). Knowing the factors it also takes ``n``-th roots, so from any ciphertext ``C``
it recovers the random part ``R`` (``C = (1+n)**m * R**n``) and ``log R``. A peer that
re-randomises with the DJN short exponent (``h_s**a``, ``a`` of 256 bits) therefore returns
``Σ q_i log R_i + a log h_s``: with ``R_i`` of its choosing (known logs) and ``log h_s`` found
by lattice reduction from a first reply, the owner reads the scalars ``q_i`` the peer
multiplied in. A uniform ``r**n`` randomiser makes the random part uniform: nothing to read.
"""

from __future__ import annotations

import random
from typing import Any

import gmpy2
from gmpy2 import mpz

from privfin.he import paillier

__all__ = ["Dlog", "ct_with_randomiser", "recover_lambda", "smooth_keypair"]


def _smooth_prime(bits: int, lbits: int, rnd: random.Random) -> tuple[int, list[int]]:
    """A ``bits``-bit prime ``p = 2 * prod(l) + 1`` with every ``l`` below ``2**(lbits + 3)``."""
    while True:
        ls: list[int] = []
        prod = mpz(1)
        while prod.bit_length() < bits - 1 - lbits - 2:
            small = int(gmpy2.next_prime(rnd.getrandbits(lbits) | (1 << (lbits - 1))))
            if small not in ls:
                ls.append(small)
                prod *= small
        for _ in range(400):
            need = bits - 1 - prod.bit_length()
            if need < 3:
                break
            last = int(gmpy2.next_prime(rnd.getrandbits(need) | (1 << (need - 1))))
            if last in ls:
                continue
            p = 2 * prod * last + 1
            if p.bit_length() == bits and gmpy2.is_prime(p, 40):
                return int(p), [*ls, last]


def smooth_keypair(
    n_bits: int, *, lbits: int = 16, seed: int = 1
) -> tuple[paillier.PublicKey, paillier.PrivateKey, int, int, list[int]]:
    """``(pk, sk, p, q, factors of (p-1)/2)``; ``pk`` carries a valid modulus proof."""
    rnd = random.Random(seed)
    p, ls = _smooth_prime(n_bits // 2, lbits, rnd)
    while True:
        q = int(gmpy2.next_prime(rnd.getrandbits(n_bits // 2) | (1 << (n_bits // 2 - 1))))
        n = p * q
        if n.bit_length() == n_bits and gmpy2.gcd(n, (p - 1) * (q - 1)) == 1:
            break
    pk = paillier.PublicKey(n, insecure_allow_small_keys=n_bits < 2048)
    sk = paillier.PrivateKey(pk, p, q)
    pk.modulus_proof = tuple(sk.prove_modulus())
    return pk, sk, p, q, ls


class Dlog:
    """Discrete logs in the order-``T`` subgroup of ``Z*_p``, ``T = (p-1)/2`` smooth."""

    def __init__(self, p: int, ls: list[int], n: int, seed: int = 3) -> None:
        self.p = mpz(p)
        self.ls = [mpz(v) for v in ls]
        self.T = (self.p - 1) // 2
        rnd = random.Random(seed)
        while True:
            g = gmpy2.powmod(rnd.randrange(2, p - 1), 2, self.p)
            if all(gmpy2.powmod(g, self.T // v, self.p) != 1 for v in self.ls):
                break
        self.G = g
        self.ninv = gmpy2.invert(mpz(n), self.p - 1)
        self.tables: dict[int, tuple[dict[int, int], Any, int]] = {}
        for v in self.ls:
            gl = gmpy2.powmod(g, self.T // v, self.p)
            s = int(gmpy2.isqrt(v)) + 1
            baby: dict[int, int] = {}
            acc = mpz(1)
            for j in range(s):
                baby.setdefault(int(acc), j)
                acc = acc * gl % self.p
            giant = gmpy2.invert(gmpy2.powmod(gl, s, self.p), self.p)
            self.tables[int(v)] = (baby, giant, s)

    def log(self, z: Any) -> int:
        z = mpz(z) % self.p
        rs: list[int] = []
        ms: list[int] = []
        for v in self.ls:
            baby, giant, s = self.tables[int(v)]
            t = gmpy2.powmod(z, self.T // v, self.p)
            for i in range(s + 1):
                j = baby.get(int(t))
                if j is not None:
                    rs.append(i * s + j)
                    ms.append(int(v))
                    break
                t = t * giant % self.p
            else:
                raise ValueError("no log")
        x, mod = 0, 1
        for r, m in zip(rs, ms, strict=True):
            x = x + mod * ((r - x) * pow(mod, -1, m) % m)
            mod *= m
        return x % int(self.T)

    def rand_log(self, c: Any) -> int:
        """``log_G`` of ``R**2 mod p``, ``R`` the random part of ciphertext ``c``."""
        r = gmpy2.powmod(mpz(c) % self.p, self.ninv, self.p)
        return self.log(r * r % self.p)

    def element(self, e: int, q: int, rnd: random.Random) -> int:
        """A unit mod ``n`` whose square has log ``e`` mod ``p`` (random mod ``q``)."""
        half = e * pow(2, -1, int(self.T)) % int(self.T)
        rp = int(gmpy2.powmod(self.G, half, self.p))
        rq = rnd.randrange(2, q - 1)
        p = int(self.p)
        return (rq + q * ((rp - rq) * pow(q, -1, p) % p)) % (p * q)


def _gauss(b1: tuple[int, int], b2: tuple[int, int]) -> tuple[int, int]:
    def dot(u: tuple[int, int], v: tuple[int, int]) -> int:
        return u[0] * v[0] + u[1] * v[1]

    while True:
        if dot(b2, b2) < dot(b1, b1):
            b1, b2 = b2, b1
        mu = round(gmpy2.mpq(dot(b1, b2), dot(b1, b1)))
        if mu == 0:
            return b1
        b2 = (b2[0] - mu * b1[0], b2[1] - mu * b1[1])


def recover_lambda(ys: list[int], t: int, abits: int = 256) -> int | None:
    """``ys[j] = a_j * lam mod t`` with ``a_j < 2**abits``: ``lam``, or ``None`` if no
    candidate fits (the replies do not have that form)."""
    y1, y2 = ys[0], ys[1]
    try:
        k = y2 * pow(y1, -1, t) % t
    except ValueError:
        return None
    a1 = abs(_gauss((1, k), (0, t))[0])
    for g in range(1, 3000):
        try:
            lam = y1 * pow(a1 * g, -1, t) % t
            linv = pow(lam, -1, t)
        except ValueError:
            continue
        if all((y * linv) % t < (1 << abits) for y in ys):
            return lam
    return None


def ct_with_randomiser(pk: paillier.PublicKey, m: int, r: int) -> int:
    """``(1+n)**m * r**n mod n**2``: an encryption of ``m`` with random part ``r``."""
    n = pk.n
    nsq = n * n
    return int((1 + (m % n) * n) * gmpy2.powmod(r, n, nsq) % nsq)
