"""CKKS adapter: round trips against NumPy with explicit tolerances, public-context sharing,
size and secret-key checks on deserialisation."""

from __future__ import annotations

import numpy as np
import pytest

from privfin.errors import ConfigError, DecodeError, InsecureModeError
from privfin.he import ckks

pytest.importorskip("tenseal")


@pytest.fixture(scope="module")
def ctx() -> ckks.CKKSContext:
    return ckks.CKKSContext.generate()


def test_params_are_checked() -> None:
    with pytest.raises(InsecureModeError):
        ckks.CKKSParams(8192, (60, 60, 60, 60))
    with pytest.raises(ConfigError):
        ckks.CKKSParams(1000)
    assert ckks.DEFAULT_PARAMS.slots == 4096


def test_arithmetic_matches_numpy(ctx: ckks.CKKSContext) -> None:
    rng = np.random.default_rng(1)
    a, b, w = rng.normal(size=(3, 100))
    ea, eb = ctx.encrypt(a), ctx.encrypt(b)
    np.testing.assert_allclose(ctx.decrypt(ea), a, atol=1e-6)
    np.testing.assert_allclose(ctx.decrypt(ea + eb), a + b, atol=1e-6)
    np.testing.assert_allclose(ctx.decrypt(ea - eb + 1.0), a - b + 1, atol=1e-6)
    np.testing.assert_allclose(ctx.decrypt(ea * w), a * w, atol=1e-4)
    np.testing.assert_allclose(ctx.decrypt(2.5 * ea), 2.5 * a, atol=1e-4)
    np.testing.assert_allclose(ctx.decrypt(ea.sum()), [a.sum()], atol=1e-4)
    np.testing.assert_allclose(ctx.decrypt(ea.dot(w)), [a @ w], atol=1e-3)
    assert ctx.decrypt(ea, round_digits=2).tolist() == np.round(ctx.decrypt(ea), 2).tolist()


def test_public_context_round_trip(ctx: ckks.CKKSContext) -> None:
    wire = ctx.serialize_public()
    peer = ckks.CKKSContext.from_bytes(wire)
    assert not peer.is_private and peer.fingerprint == ctx.fingerprint
    v = peer.encrypt([1.0, 2.0, 3.0])
    with pytest.raises(ConfigError):
        peer.decrypt(v)
    data = ((v + v) * [0.5, 0.5, 0.5] + 1.0).to_bytes()
    back = ckks.CKKSVector.from_bytes(ctx, data)
    np.testing.assert_allclose(ctx.decrypt(back), [2.0, 3.0, 4.0], atol=1e-4)


def test_deserialisation_checks(ctx: ckks.CKKSContext) -> None:
    with pytest.raises(DecodeError):
        ckks.CKKSContext.from_bytes(b"\x00garbage")
    with pytest.raises(DecodeError):
        ckks.CKKSContext.from_bytes(b"x" * 100, max_size=10)
    private = bytes(ctx._ctx.serialize(save_secret_key=True, save_galois_keys=False))
    with pytest.raises(DecodeError):
        ckks.CKKSContext.from_bytes(private)
    data = ctx.encrypt([1.0]).to_bytes()
    with pytest.raises(DecodeError):
        ckks.CKKSVector.from_bytes(ctx, data, max_size=1000)
    with pytest.raises(DecodeError):
        ckks.CKKSVector.from_bytes(ctx, data[: len(data) // 2])
    with pytest.raises(ConfigError):
        ctx.encrypt(np.zeros(5000))
    with pytest.raises(ConfigError):
        ctx.encrypt([1.0]) * ctx.encrypt([1.0])
