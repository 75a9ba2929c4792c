"""Paillier: deterministic vectors, key handling, wire format and tamper tests."""

from __future__ import annotations

import hashlib
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gmpy2
import numpy as np
import pytest

from privfin.errors import ConfigError, DecodeError, InsecureModeError, PrivfinError
from privfin.federation import codec
from privfin.he import ou, paillier
from privfin.he.errors import KeyMismatchError, OverflowDetected

PK_SK = tuple[paillier.PublicKey, paillier.PrivateKey]


def test_refuses_small_keys_without_flag() -> None:
    with pytest.raises(InsecureModeError):
        paillier.generate_keypair(1024)
    with pytest.raises(InsecureModeError):
        ou.generate_keypair(1024)
    with pytest.raises(ConfigError):
        paillier.generate_keypair(2047)
    pk, _ = paillier.generate_keypair(512, insecure_allow_small_keys=True, rng=random.Random(1))
    with pytest.raises(InsecureModeError):
        paillier.PublicKey.from_wire(pk.to_wire())


def test_deterministic_vectors_with_injected_randomness() -> None:
    def run() -> tuple[int, list[int]]:
        pk, _ = paillier.generate_keypair(
            512, rng=random.Random(2024), insecure_allow_small_keys=True
        )
        return pk.n, pk.encrypt([1, -2, 3]).ciphertexts

    n1, c1 = run()
    n2, c2 = run()
    assert (n1, c1) == (n2, c2)
    # Pinned: any change to key generation or encryption shows up here.
    digest = hashlib.sha256(repr((n1, c1)).encode()).hexdigest()
    assert digest == PINNED_DIGEST


PINNED_DIGEST = "784f68622dc801da1042a6bda57e6be1b1406f3bdd196994d085d05d4dc761d8"


def test_textbook_known_answer(paillier_keys: PK_SK) -> None:
    pk, sk = paillier_keys
    m, r = 123456789, 987654321
    n, nsq = pk.n, pk.n * pk.n
    expected = pow(n + 1, m, nsq) * pow(r, n, nsq) % nsq
    assert pk.raw_encrypt_with_r(m, r) == expected
    assert sk.raw_decrypt([expected]) == [m]
    # raw API: plaintexts reduce mod n, decryption returns the residue.
    c = pk.raw_encrypt([n - 5, 7])
    assert sk.raw_decrypt(c) == [n - 5, 7]
    assert sk.raw_decrypt(pk.raw_add(c, c)) == [(2 * (n - 5)) % n, 14]
    assert sk.raw_decrypt(pk.raw_mul(c, [3, -1])) == [(3 * (n - 5)) % n, n - 7]
    assert sk.raw_decrypt(pk.raw_add_plain(c, [5, 1])) == [0, 8]
    assert sk.raw_decrypt([pk.raw_sum(c)]) == [2]


def test_threads_do_not_change_results(paillier_keys: PK_SK) -> None:
    pk, sk = paillier_keys
    values = list(range(-100, 100))
    a = pk.encrypt(values, rng=random.Random(5), n_jobs=1)
    with ThreadPoolExecutor(2) as ex:
        b = pk.encrypt(values, rng=random.Random(5), executor=ex)
        assert sk.decrypt(b, executor=ex) == values
    c = pk.encrypt(values, rng=random.Random(5), n_jobs=2)
    assert a.ciphertexts == b.ciphertexts == c.ciphertexts


def test_obfuscate_changes_ciphertexts_not_plaintexts(paillier_keys: PK_SK) -> None:
    pk, sk = paillier_keys
    enc = pk.encrypt([1, 2, 3]) + 1
    assert not enc.fresh
    ob = enc.obfuscate()
    assert ob.fresh
    assert all(x != y for x, y in zip(enc.ciphertexts, ob.ciphertexts, strict=True))
    assert sk.decrypt(ob) == [2, 3, 4]
    wire = enc.to_wire()  # re-randomised automatically
    assert paillier.EncryptedVector.from_wire(pk, wire).ciphertexts != enc.ciphertexts


def test_wire_round_trip_through_codec(paillier_keys: PK_SK) -> None:
    pk, sk = paillier_keys
    pk2 = paillier.PublicKey.from_wire(
        codec.decode(codec.encode(pk.to_wire())), insecure_allow_small_keys=True
    )
    assert pk2 == pk and pk2.fingerprint == pk.fingerprint
    enc = pk2.encrypt([1.5, -2.5])  # encrypted by the peer with its own DJN generator
    data = codec.decode(codec.encode(enc.to_wire()))
    back = paillier.EncryptedVector.from_wire(pk, data)
    assert sk.decrypt(back) == [1.5, -2.5]
    packed = pk.encrypt_packed([1, 2, 3], slot_bits=32)
    pdata = codec.decode(codec.encode(packed.to_wire()))
    assert sk.decrypt(paillier.PackedEncryptedVector.from_wire(pk, pdata)) == [1, 2, 3]


def _with_ct(wire: dict[str, Any], pk: paillier.PublicKey, c: int) -> dict[str, Any]:
    width = pk.ciphertext_bytes
    raw = c.to_bytes(width + 1, "big")
    if raw[0]:  # does not fit the fixed width: the length check refuses it
        return {**wire, "ct": raw + wire["ct"][width:]}
    return {**wire, "ct": raw[1:] + wire["ct"][width:]}


def test_tampered_ciphertexts_rejected(paillier_keys: PK_SK) -> None:
    pk, sk = paillier_keys
    wire = pk.encrypt([1, 2]).to_wire()
    nsq = pk.nsquare
    p = int(sk._p)
    for bad in (0, p * 12345, pk.n, nsq, nsq + 1):  # zero, not a unit, out of range
        with pytest.raises(DecodeError):
            paillier.EncryptedVector.from_wire(pk, _with_ct(wire, pk, bad))
    for field, value in (("count", 3), ("ct", b"xx"), ("frac_bits", -1), ("is_float", 1)):
        with pytest.raises(DecodeError):
            paillier.EncryptedVector.from_wire(pk, {**wire, field: value})
    with pytest.raises(DecodeError):
        paillier.EncryptedVector.from_wire(pk, [1, 2])
    # A valid-looking but substituted ciphertext decrypts outside the bound: refused.
    forged = paillier.EncryptedVector.from_wire(pk, _with_ct(wire, pk, int(gmpy2.mpz(3))))
    with pytest.raises(OverflowDetected):
        sk.decrypt(forged)


def test_wrong_key_detected(paillier_keys: PK_SK, paillier_keys_other: PK_SK) -> None:
    pk, _ = paillier_keys
    pk2, sk2 = paillier_keys_other
    a, b = pk.encrypt([1]), pk2.encrypt([1])
    with pytest.raises(KeyMismatchError):
        _ = a + b
    with pytest.raises(KeyMismatchError):
        sk2.decrypt(a)
    with pytest.raises(DecodeError):
        paillier.EncryptedVector.from_wire(pk2, a.to_wire())
    assert isinstance(KeyMismatchError("x"), PrivfinError)


def test_misuse_errors(paillier_keys: PK_SK) -> None:
    pk, _ = paillier_keys
    enc = pk.encrypt([1, 2])
    with pytest.raises(ConfigError):
        _ = enc * enc
    with pytest.raises(ConfigError):
        _ = enc + np.array([1, 2, 3])
    with pytest.raises(ConfigError):
        pk.encrypt([float("nan")])
    with pytest.raises(ConfigError):
        pk.encrypt(["1"])
    with pytest.raises(ConfigError):
        pk.encrypt([1], rng=object())  # type: ignore[arg-type]
    assert "p=" not in repr(paillier_keys[1])


@pytest.mark.slow
def test_2048_bit_smoke() -> None:
    pk, sk = paillier.generate_keypair()
    assert pk.n_bits == 2048 and pk.security_bits == 112
    enc = pk.encrypt([3, -4, 5.5])
    assert sk.decrypt(enc * 2 + [1, 1, 1]) == [7.0, -7.0, 12.0]
    assert sk.decrypt(pk.encrypt_packed(list(range(100)))) == list(range(100))


@pytest.mark.parametrize("seed", range(4))
def test_modulus_proof_verifies_for_generated_keys(seed: int) -> None:
    pk, sk = paillier.generate_keypair(256, rng=random.Random(seed), insecure_allow_small_keys=True)
    assert pk.modulus_proof == sk.prove_modulus()
    assert pk.modulus_proof is not None and len(pk.modulus_proof) == paillier.PROOF_ROUNDS
    paillier.verify_modulus(pk.n, pk.modulus_proof)
    ys = paillier.modulus_challenges(pk.n)
    assert all(pow(x, pk.n, pk.n) == y for x, y in zip(pk.modulus_proof, ys, strict=True))
    got = paillier.PublicKey.from_wire(
        pk.to_wire(), insecure_allow_small_keys=True, expect_bits=pk.n_bits
    )
    assert got.modulus_proof == pk.modulus_proof


def test_from_wire_checks_the_agreed_size_before_the_proof(
    paillier_keys: PK_SK, monkeypatch: pytest.MonkeyPatch
) -> None:
    pk, _ = paillier_keys
    called: list[int] = []
    monkeypatch.setattr(paillier, "verify_modulus", lambda n, proof: called.append(n))
    with pytest.raises(DecodeError, match="not the agreed 2048"):
        paillier.PublicKey.from_wire(pk.to_wire(), insecure_allow_small_keys=True, expect_bits=2048)
    assert called == []
    paillier.PublicKey.from_wire(pk.to_wire(), insecure_allow_small_keys=True, expect_bits=1024)
    assert called == [pk.n]


def test_a_non_unit_challenge_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A challenge sharing a factor with ``n`` has a root ``x = 0`` on that factor whatever the
    modulus: the verifier refuses it rather than accept such a root."""
    pk, sk = paillier.generate_keypair(256, rng=random.Random(9), insecure_allow_small_keys=True)
    p, q = int(sk._p), int(sk._q)
    n = pk.n
    ys = [y * p % n for y in paillier.modulus_challenges(n)]  # all divisible by p
    d = pow(n, -1, q - 1)
    xs = [p * (pow(y, d, q) * pow(p, -1, q) % q) for y in ys]  # 0 mod p, the root mod q
    assert all(pow(x, n, n) == y for x, y in zip(xs, ys, strict=True))
    monkeypatch.setattr(paillier, "modulus_challenges", lambda n, rounds=10: ys)
    with pytest.raises(DecodeError, match="shares a factor"):
        paillier.verify_modulus(n, xs)


def test_obfuscation_for_the_key_owner_is_uniform_r_to_the_n() -> None:
    """[08] A ciphertext going back to the key's owner is re-randomised with ``r**n``, ``r``
    uniform in ``[1, n)`` (not the owner's short-exponent base ``h_s``, whose logarithms a
    key owner with smooth ``p - 1`` can take): same plaintext, the exact randomiser drawn from
    the injected source."""
    from privfin.he._util import random_bytes

    pk, sk = paillier.generate_keypair(1024, rng=random.Random(31), insecure_allow_small_keys=True)
    vec = pk.encrypt([3, -4, 5])
    out = vec.obfuscate(rng=random.Random(9), for_owner=True)
    assert sk.decrypt(out) == [3, -4, 5]
    width = (pk.n.bit_length() + 128 + 7) // 8
    blob = random_bytes(random.Random(9), width * 3)
    n, nsq = pk.n, pk.n * pk.n
    for i, (c, c2) in enumerate(zip(vec.ciphertexts_raw, out.ciphertexts_raw, strict=True)):
        r = int.from_bytes(blob[i * width : (i + 1) * width], "little") % (n - 1) + 1
        assert int(c2) == int(c) * pow(r, n, nsq) % nsq
    wire = vec.to_wire(for_owner=True, rng=random.Random(9))
    assert paillier.EncryptedVector.from_wire(pk, wire).ciphertexts_raw == out.ciphertexts_raw
