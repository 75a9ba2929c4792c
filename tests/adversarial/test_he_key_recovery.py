"""[08] item 2: a key holder must never return the decryption of a ciphertext whose plaintext a
peer chose beyond the honest bound — for OU (``m mod p``) and for Paillier decrypted modulo ``p``
alone, that value hands the peer ``p = gcd(M - reply, n)``."""

from __future__ import annotations

import math
import random

import gmpy2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from privfin.he import ou, paillier
from privfin.he.errors import OverflowDetected, PlaintextOutOfRange


@pytest.fixture(scope="module")
def ou_2048() -> tuple[ou.PublicKey, ou.PrivateKey]:
    return ou.generate_keypair(2048, rng=random.Random(8))


@pytest.fixture(scope="module")
def ou_small() -> tuple[ou.PublicKey, ou.PrivateKey]:
    return ou.generate_keypair(768, rng=random.Random(9), insecure_allow_small_keys=True)


def _chosen(pk: ou.PublicKey, m: int) -> int:
    """What a malicious peer sends: an honest-looking encryption of its own plaintext ``m``
    (below ``n``, beyond the capacity: built from the public key alone)."""
    return int(gmpy2.powmod(pk.g, m, pk.n) * gmpy2.powmod(pk.h, 12345, pk.n) % pk.n)


def test_ou_capacity_leaves_128_bits_of_p(ou_2048: tuple[ou.PublicKey, ou.PrivateKey]) -> None:
    pk, sk = ou_2048
    p_bits = int(sk._p).bit_length()
    assert p_bits - pk.capacity_bits >= 129
    assert pk.capacity_bits >= 540  # still room for packing


@pytest.mark.parametrize("which", ["ou_2048", "ou_small"])
def test_ou_refuses_chosen_plaintexts_beyond_p(which: str, request: pytest.FixtureRequest) -> None:
    pk, sk = request.getfixturevalue(which)
    rng = random.Random(3)
    for _ in range(20):
        m = rng.randrange(1 << (pk.capacity_bits + 1), pk.n)
        ct = _chosen(pk, m)
        for decrypt in (sk.raw_decrypt, sk.decrypt_ints):
            with pytest.raises(PlaintextOutOfRange):
                decrypt([pk.encrypt([1]).ciphertexts_raw[0], ct])


@given(st.integers())
def test_ou_honest_values_at_the_bound_decrypt(v: int) -> None:
    pk, sk = ou.generate_keypair(768, rng=random.Random(9), insecure_allow_small_keys=True)
    limit = (1 << pk.capacity_bits) - 1
    v = max(-limit, min(limit, v))
    ct = pk.encrypt([v], value_bits=pk.capacity_bits).ciphertexts_raw
    assert sk.decrypt_ints(ct) == [v]


def test_paillier_p_only_decryption_checks_the_bound() -> None:
    pk, sk = paillier.generate_keypair(1024, rng=random.Random(5), insecure_allow_small_keys=True)
    p = int(sk._p)
    m = random.Random(6).randrange(1 << 900, pk.n)  # chosen, far beyond a 64-bit bound
    ct = pk.raw_encrypt([m])
    with pytest.raises(PlaintextOutOfRange):
        sk.decrypt_ints(ct, plain_bits=64)
    # the full (CRT) decryption is unaffected and gives m mod n, which reveals nothing
    assert sk.raw_decrypt(ct) == [m]
    assert issubclass(PlaintextOutOfRange, OverflowDetected)
    assert math.gcd(m - (m % p), pk.n) == p  # what the check keeps from the peer
