"""SS-LR with two computing parties and OT products: each computing party's own feature
columns stay with it in plaintext (Gilboa products with the shared weights and residuals,
no matrix triple, nothing of X opened); blocks of data-only parties keep the general path."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from _datasets import breast_hetero
from privfin.config import Settings
from privfin.errors import ProtocolAbort
from privfin.federation import codec
from privfin.federation.transport import MessageKey
from privfin.mpc.lr import plaintext_logistic, ss_lr
from privfin.mpc.messages import InputHeader, OtCorrections
from privfin.mpc.providers.ot import OtProvider
from privfin.mpc.ring import encode_fixed, ring_matmul
from privfin.mpc.session import Session
from privfin.mpc.tensor import SharedTensor
from privfin.runtime import simulate

from .test_security import TamperingHub

PROD = Settings(mode="production")
TRAIN = {"epochs": 5, "batch_size": 128, "learning_rate": 0.5}
ROLES = {"guest": ("data", "compute", "result"), "host": ("data", "compute")}


def _breast() -> tuple[Any, Any, list[str], list[str]]:
    g, h = breast_hetero()
    hc = [c for c in h.columns if c != "id"]
    h = h.rename(columns={c: f"h_{c}" for c in hc})
    return g, h, [c for c in g.columns if c not in ("id", "y")], [f"h_{c}" for c in hc]


def _check(out: dict[str, Any], x: np.ndarray, y: np.ndarray) -> None:
    w = np.array(out["coef"])
    auc = roc_auc_score(y, x @ w + out["intercept"])
    ref = plaintext_logistic(x, y, **TRAIN)  # type: ignore[arg-type]
    assert abs(auc - roc_auc_score(y, x @ ref[:-1] + ref[-1])) <= 1e-3
    np.testing.assert_allclose(w, ref[:-1], atol=0.05)
    np.testing.assert_allclose(out["intercept"], ref[-1], atol=0.05)


def test_ot_ss_lr_keeps_the_computing_parties_columns_in_plaintext(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    g, h, gc, hc = _breast()
    x = np.hstack([g[gc].to_numpy(), h[hc].to_numpy()])
    y = g["y"].to_numpy().astype(np.float64)
    params = {
        "features": {"guest": gc, "host": hc},
        "label": {"party": "guest", "column": "y"},
        "triples": "ot",
        **TRAIN,
    }

    def no_triples(*args: Any) -> None:
        raise AssertionError("a matrix triple was asked: X went through the general path")

    monkeypatch.setattr(OtProvider, "matmul_triple", no_triples)
    got = simulate(
        ss_lr,
        ROLES,
        params=params,
        inputs={"guest": {"table": g}, "host": {"table": h}},
        settings=PROD,
        seed=4,
        timeout=300,
    )
    assert got["host"] is None
    _check(got["guest"], x, y)


def test_a_data_only_partys_block_is_shared_and_mixed_with_plaintext_blocks() -> None:
    g, h, gc, hc = _breast()
    t = h[["id", *hc[:4]]].rename(columns={c: f"t_{c}" for c in hc[:4]})
    tc = [f"t_{c}" for c in hc[:4]]
    hc = hc[4:]
    x = np.hstack([g[gc].to_numpy(), h[hc].to_numpy(), t[tc].to_numpy()])
    y = g["y"].to_numpy().astype(np.float64)
    roles = {**ROLES, "third": ("data",)}
    out = simulate(
        ss_lr,
        roles,
        params={
            "features": {"guest": gc, "host": hc, "third": tc},
            "label": {"party": "guest", "column": "y"},
            "triples": "ot",
            **TRAIN,
        },
        inputs={"guest": {"table": g}, "host": {"table": h}, "third": {"table": t}},
        settings=PROD,
        seed=5,
        timeout=300,
    )
    assert out["host"] is None and out["third"] is None
    _check(out["guest"], x, y)


@pytest.mark.parametrize("kernel", [True, False])
@pytest.mark.parametrize(("owners", "n"), [(("a", "b"), 1), (("a", "b"), 3), (("b",), 2)])
def test_plain_matmul_is_the_exact_ring_product(
    kernel: bool, owners: tuple[str, ...], n: int
) -> None:
    from privfin.crypto import ot as otm

    if kernel and not otm.KERNEL:
        pytest.skip("the compiled OT kernel is not built")
    rng = np.random.default_rng(len(owners) + n)
    dims = {"a": (70, 5), "b": (9, 130)}
    mats = {o: rng.normal(size=dims[o]) for o in owners}
    ys = {o: rng.normal(size=(dims[o][1], n)) for o in owners}

    def program(ctx: Any, p: Any, inputs: Any) -> Any:
        s = Session(ctx, provider=OtProvider(ctx, ("a", "b"), kernel=kernel))
        pairs = []
        for o in owners:
            m = s.plain_input(o, mats[o] if ctx.party == o else None)
            pairs.append((m, s.share("a", ys[o] if ctx.party == "a" else None)))
        return [t.reveal("a") for t in s.plain_matmul(pairs)]

    roles = {"a": ("data", "compute", "result"), "b": ("data", "compute")}
    got = simulate(program, roles, settings=PROD, seed=6, timeout=60)["a"]
    for o, value in zip(owners, got, strict=True):
        exact = ring_matmul(encode_fixed(mats[o], 16), encode_fixed(ys[o], 16))
        want = (exact.view(np.int64) / 2.0**32).astype(np.float64)
        np.testing.assert_allclose(value, want, rtol=0, atol=1e-9)


def _params() -> dict[str, Any]:
    _, _, gc, hc = _breast()
    return {
        "features": {"guest": gc, "host": hc},
        "label": {"party": "guest", "column": "y"},
        "triples": "ot",
        "epochs": 1,
        "batch_size": 128,
    }


def _run(hub: TamperingHub) -> Any:
    g, h, _, _ = _breast()
    return simulate(
        ss_lr,
        ROLES,
        params=_params(),
        inputs={"guest": {"table": g}, "host": {"table": h}},
        settings=PROD,
        hub=hub,
        seed=1,
        timeout=60,
    )


def _short_corrections(key: MessageKey, payload: bytes) -> bytes:
    msg = codec.decode(payload)
    return codec.encode(OtCorrections(counter=msg.counter, data=msg.data[:-3]))


def _long_corrections(key: MessageKey, payload: bytes) -> bytes:
    msg = codec.decode(payload)
    return codec.encode(OtCorrections(counter=msg.counter, data=msg.data + bytes(8)))


def _wider_block(key: MessageKey, payload: bytes) -> bytes:
    msg = codec.decode(payload)
    assert isinstance(msg, InputHeader)
    return codec.encode(InputHeader(shape=[msg.shape[0], msg.shape[1] + 1]))


@pytest.mark.parametrize(
    ("tag", "forge", "culprit"),
    [
        ("mpc.ot.corr", _short_corrections, None),
        ("mpc.ot.corr", _long_corrections, None),
        ("mpc.input", _wider_block, "guest"),
    ],
)
def test_a_deviating_party_is_detected_loudly(tag: str, forge: Any, culprit: str | None) -> None:
    with pytest.raises(ProtocolAbort) as err:
        _run(TamperingHub(tag, forge))
    assert err.value.party == (culprit or err.value.party) and err.value.party in ROLES


def test_shares_of_the_products_reveal_nothing_alone() -> None:
    """Each party's share of a plaintext product is uniform: the same product with fresh
    randomness gives unrelated shares at the matrix's owner and at its peer."""
    m = np.arange(12.0).reshape(4, 3)

    def program(ctx: Any, p: Any, inputs: Any) -> Any:
        s = Session(ctx, triples="ot")
        a = s.plain_input("a", m if ctx.party == "a" else None)
        w = s.public(np.ones(3))
        (z,) = s.plain_matmul([(a, w)])
        assert isinstance(z, SharedTensor) and z.share is not None
        return z.share.copy()

    roles = {"a": ("data", "compute", "result"), "b": ("data", "compute")}
    one = simulate(program, roles, settings=PROD, seed=1)
    two = simulate(program, roles, settings=PROD, seed=2)
    for party in ("a", "b"):
        assert not np.array_equal(one[party], two[party])
    np.testing.assert_array_equal(one["a"] + one["b"], two["a"] + two["b"])


def test_prefetched_truncation_pairs_are_served_in_order_and_exact() -> None:
    v = np.array([3 << 40, -(7 << 38) - 5, 12345678901, -1, 0], dtype=np.int64)

    def program(ctx: Any, p: Any, inputs: Any) -> Any:
        s = Session(ctx, triples="ot")
        x = s.share("a", v if ctx.party == "a" else None, fixed=False)
        s.engine.prefetch_trunc([(5, 16), (5, 20), (5, 16)])
        pool = s.provider._pool  # type: ignore[attr-defined]
        outs = []
        for bits in (16, 20, 16, 12):  # the last one is not prefetched
            t = s.engine.trunc(x.share, x.shape, bits)
            outs.append(s.engine.reveal(t, x.shape, "a"))
        return outs, sum(len(q) for q in pool.values())

    roles = {"a": ("data", "compute", "result"), "b": ("data", "compute")}
    got = simulate(program, roles, settings=PROD, seed=3, timeout=60)
    outs, left = got["a"]
    assert left == 0 and got["b"][1] == 0
    for bits, out in zip((16, 20, 16, 12), outs, strict=True):
        assert np.abs(out.view(np.int64) - (v >> bits)).max() <= 1


# ----------------------------------------------------------- products modulo a smaller ring


@pytest.mark.parametrize("kernel", [True, False])
@pytest.mark.parametrize("ring", [2, 37, 48, 53])
def test_plain_matmul_modulo_a_smaller_ring(kernel: bool, ring: int) -> None:
    """With ``ring_bits`` the products are exact modulo ``2**ring_bits`` (the shares' higher
    bits are arbitrary), from ``ring_bits`` OTs per element of the shared operand."""
    from privfin.crypto import ot as otm

    if kernel and not otm.KERNEL:
        pytest.skip("the compiled OT kernel is not built")
    rng = np.random.default_rng(ring)
    dims = {"a": (70, 5), "b": (9, 130)}
    mats = {o: rng.normal(size=dims[o]) for o in dims}
    ys = {o: rng.normal(size=(dims[o][1], 1)) for o in dims}

    def program(ctx: Any, p: Any, inputs: Any) -> Any:
        prov = OtProvider(ctx, ("a", "b"), kernel=kernel)
        s = Session(ctx, provider=prov)
        pairs = []
        for o in dims:
            m = s.plain_input(o, mats[o] if ctx.party == o else None)
            pairs.append((m, s.share("a", ys[o] if ctx.party == "a" else None)))
        got = s.plain_matmul(pairs, ring_bits=ring)
        assert prov.ot is not None
        return [t.share for t in got], prov.ot.stats.received

    roles = {"a": ("data", "compute", "result"), "b": ("data", "compute")}
    out = simulate(program, roles, settings=PROD, seed=ring, timeout=60)
    low = np.uint64((1 << ring) - 1)
    for i, o in enumerate(dims):
        exact = ring_matmul(encode_fixed(mats[o], 16), encode_fixed(ys[o], 16))
        got = out["a"][0][i].reshape(exact.shape) + out["b"][0][i].reshape(exact.shape)
        np.testing.assert_array_equal(got & low, exact & low)
    # each party chose ring bits of its share of the peer's operand, not 64
    assert out["a"][1] == ring * dims["b"][1] and out["b"][1] == ring * dims["a"][1]


@pytest.mark.parametrize(("ring", "f"), [(48, 19), (53, 16), (40, 1)])
def test_truncation_from_a_smaller_ring_lifts_into_z64(ring: int, f: int) -> None:
    """``Engine.trunc(..., ring_bits)``: shares correct only modulo ``2**ring`` (each party's
    higher bits arbitrary) of ``|x| < 2**(ring - 2)`` give Z_2^64 shares of
    ``floor(x / 2**f)`` or one more, prefetched or not, down to the bound."""
    bound = 1 << (ring - 2)
    rng = np.random.default_rng(ring)
    v = np.concatenate(
        [
            rng.integers(-bound, bound, 300),
            [bound - 1, -bound, 0, -1, 1, (1 << f) - 1, -(1 << f)],
        ]
    ).astype(np.int64)
    n = v.size

    def program(ctx: Any, p: Any, inputs: Any) -> Any:
        s = Session(ctx, triples="ot")
        x = s.share("a", v if ctx.party == "a" else None, fixed=False)
        s.engine.prefetch_trunc([(n, f, ring), (n, f)])
        assert s.engine.ring_trunc and x.share is not None
        junk = np.random.default_rng(ctx.party == "a").integers(0, 2**63, n, dtype=np.uint64)
        share = x.share + (junk << np.uint64(ring))  # arbitrary high bits at each party
        outs = []
        for _ in range(2):  # the pool's pair, then one made on demand
            t = s.engine.trunc(share, x.shape, f, ring)
            outs.append(s.engine.reveal(t, x.shape, "a"))
        full = s.engine.trunc(x.share, x.shape, f)  # the 64-bit pair from the pool
        left = sum(len(q) for q in s.provider._pool.values())  # type: ignore[attr-defined]
        return outs, s.engine.reveal(full, x.shape, "a"), left

    roles = {"a": ("data", "compute", "result"), "b": ("data", "compute")}
    got = simulate(program, roles, settings=PROD, seed=7, timeout=60)
    outs, full, left = got["a"]
    assert left == 0
    for out in [*outs, full]:
        d = out.view(np.int64) - (v >> f)
        assert d.min() >= 0 and d.max() <= 1


def test_truncation_from_a_smaller_ring_needs_the_ot_provider() -> None:
    from privfin.errors import ConfigError

    def program(ctx: Any, p: Any, inputs: Any) -> Any:
        s = Session(ctx, triples="dealer", dealer="d")
        x = s.share("a", np.ones(3) if ctx.party == "a" else None)
        assert not s.engine.ring_trunc
        with pytest.raises(ConfigError, match="smaller ring"):
            s.truncate(x, 4, ring_bits=40)
        return True

    roles = {"a": ("data", "compute", "result"), "b": ("data", "compute"), "d": ("dealer",)}
    assert simulate(program, roles, settings=Settings(mode="development"), seed=1, timeout=60)["a"]


def _t1_reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Float SS-LR with t1 (``0.5 + z/8``), the schedule of :func:`train_logistic`."""
    from privfin.mpc.lr import step_scale

    xi = np.hstack([x, np.ones((x.shape[0], 1))])
    w = np.zeros(xi.shape[1])
    for _ in range(TRAIN["epochs"]):
        for start in range(0, xi.shape[0], TRAIN["batch_size"]):
            xb, yb = xi[start : start + TRAIN["batch_size"]], y[start : start + TRAIN["batch_size"]]
            q, sh = step_scale(TRAIN["learning_rate"], len(xb))
            w = w - (q / 2.0**sh) * (xb.T @ (0.5 + (xb @ w) / 8 - yb))
    return w


def test_t1_ss_lr_with_smaller_rings_matches_the_full_ring_and_the_float_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``ot`` and plaintext blocks the logits go through rings of 2f + 16 bits and the
    gradient of 2f + 21 bits: the same model as with 64-bit products (truncation ulps
    apart), t1's float reference within tolerance, and fewer bytes (the orientation with
    fresh OTs per product, ``reuse_ots: false``)."""
    from privfin.mpc.protocol import Engine

    g, h, gc, hc = _breast()
    x = np.hstack([g[gc].to_numpy(), h[hc].to_numpy()])
    y = g["y"].to_numpy().astype(np.float64)
    params = {
        "features": {"guest": gc, "host": hc},
        "label": {"party": "guest", "column": "y"},
        "triples": "ot",
        "sigmoid": "t1",
        "reuse_ots": False,
        **TRAIN,
    }
    rings: set[int] = set()
    cross = OtProvider.plain_cross

    def spy(self: OtProvider, *a: Any) -> Any:
        rings.add(a[-1] if len(a) == 5 else 64)
        return cross(self, *a)

    monkeypatch.setattr(OtProvider, "plain_cross", spy)

    def program(ctx: Any, p: Any, inputs: Any) -> Any:
        return ss_lr(ctx, p, inputs), ctx.channel.stats.bytes_sent

    def run() -> tuple[dict[str, Any], int]:
        got = simulate(
            program,
            ROLES,
            params=params,
            inputs={"guest": {"table": g}, "host": {"table": h}},
            settings=PROD,
            seed=4,
            timeout=300,
        )
        return got["guest"][0], got["guest"][1]

    small, small_bytes = run()
    assert rings == {48, 53}
    rings.clear()
    monkeypatch.setattr(Engine, "ring_trunc", property(lambda self: False))
    full, full_bytes = run()
    assert rings == {64}
    ws, wf = np.array(small["coef"]), np.array(full["coef"])
    np.testing.assert_allclose(ws, wf, atol=2e-3)
    ref = _t1_reference(x, y)
    np.testing.assert_allclose(ws, ref[:-1], atol=0.02)
    np.testing.assert_allclose(small["intercept"], ref[-1], atol=0.02)
    auc = roc_auc_score(y, x @ ws + small["intercept"])
    assert abs(auc - roc_auc_score(y, x @ ref[:-1] + ref[-1])) <= 1e-3
    assert small_bytes < 0.75 * full_bytes


def test_ot_ss_lr_with_l2_and_averaging_matches_plaintext() -> None:
    """The L2 term joins the step after the gradient's first truncation (scale f) when the
    gradient is a product modulo a smaller ring; averaging is unchanged."""
    g, h, gc, hc = _breast()
    x = np.hstack([g[gc].to_numpy(), h[hc].to_numpy()])
    y = g["y"].to_numpy().astype(np.float64)
    extra = {"l2": 0.05, "average": True}
    got = simulate(
        ss_lr,
        ROLES,
        params={
            "features": {"guest": gc, "host": hc},
            "label": {"party": "guest", "column": "y"},
            "triples": "ot",
            **TRAIN,
            **extra,
        },
        inputs={"guest": {"table": g}, "host": {"table": h}},
        settings=PROD,
        seed=8,
        timeout=300,
    )["guest"]
    ref = plaintext_logistic(x, y, **TRAIN, **extra)  # type: ignore[arg-type]
    # measured 7e-4 and 2e-5; the L2 term alone moves the weights by 0.1
    np.testing.assert_allclose(np.array(got["coef"]), ref[:-1], atol=5e-3)
    np.testing.assert_allclose(got["intercept"], ref[-1], atol=5e-3)
    plain = plaintext_logistic(x, y, **TRAIN, average=True)  # type: ignore[arg-type]
    assert np.abs(plain[:-1] - ref[:-1]).max() > 0.05


@pytest.mark.parametrize("q", [1024, 1100, 2047])
def test_the_rate_folded_into_plaintext_blocks(q: int) -> None:
    """``_Design.backward(e, ring, rate=q)`` is ``(q / 2**11) X^T e`` (the intercept's entry
    exact, the columns within the rounding of ``X·q/2**11`` to the fixed point) modulo the
    ring, at scale 2f, from one OT exchange: the step then needs one truncation."""
    from privfin.mpc.lr import _Design

    rng = np.random.default_rng(q)
    xa, xb, e = rng.normal(size=(40, 3)), rng.normal(size=(40, 2)) * 5, rng.normal(size=40)

    def program(ctx: Any, p: Any, inputs: Any) -> Any:
        s = Session(ctx, triples="ot")
        blocks = [
            s.plain_input("a", xa if ctx.party == "a" else None),
            s.plain_input("b", xb if ctx.party == "b" else None),
        ]
        es = s.share("b", e if ctx.party == "b" else None)
        design = _Design(blocks, True, s)
        assert design.can_fold_rate()
        g = design.backward(es, 53, rate=q)
        return g.share, g.frac_bits

    roles = {"a": ("data", "compute", "result"), "b": ("data", "compute")}
    out = simulate(program, roles, settings=PROD, seed=q, timeout=60)
    assert out["a"][1] == 32
    low = np.uint64((1 << 53) - 1)
    got = ((out["a"][0] + out["b"][0]) & low).astype(np.int64)
    got = np.where(got >= 1 << 52, got - (1 << 53), got) / 2.0**32
    x = np.hstack([xa, xb, np.ones((40, 1))])
    want = x.T @ e * q / 2**11
    # encodings (2**-17 each) and the rounding of X·q/2**11 (2**-17): 40 terms
    np.testing.assert_allclose(got, want, rtol=0, atol=40 * 3 * 2.0**-17 * 4)
    assert abs(got[-1] - want[-1]) <= 40 * 2.0**-17
