"""SS-LR with the dealer's masked design (``Engine.mask_design``): ``X``, ``y`` opened once, the
step's truncation fused with the next forward product and the sigmoid's truncation carrying
the gradient. Checked against plaintext, against the unfused path (``masked=False``) and
against deviating parties."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privfin.errors import DecodeError, ProtocolAbort
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.federation.transport import MessageKey
from privfin.mpc.lr import plaintext_logistic, ss_lr, step_scale, train_logistic
from privfin.mpc.messages import Opening
from privfin.mpc.ring import encode_fixed, to_signed
from privfin.mpc.session import Session
from privfin.mpc.tensor import SharedTensor
from privfin.runtime import simulate

from ._setups import BY_NAME, DEV, TWO

F = 16


def _data(n: int, d: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ w)))).astype(np.float64)
    return x, y


def _step_program(rows: Any, bits: int, cut: int) -> Any:
    """One fused forward (``w − trunc(raw)`` and ``X_b w'``) and one fused backward
    (``trunc(s) − y_b`` and ``X_bᵀ`` of it) next to the unfused engine calls."""

    def program(ctx: Any, params: Any, inputs: Any) -> Any:
        s = Session.from_params(ctx, params)
        x = s.share("a", inputs.get("x"))
        y = s.share("a", inputs.get("y"))
        w = s.share("b", inputs.get("w"))
        raw = s.share("b", inputs.get("raw"), fixed=False)
        sv = s.share("b", inputs.get("s"), fixed=False)
        eng = s.engine
        n, k = x.shape
        h = eng.mask_design(x.share, y.share, n, k)
        m = h.count(rows)
        got = eng.design_forward(h, rows, w.share, raw.share, bits)
        w2 = SharedTensor(s, None if got is None else got[0], (k,), F)
        z = SharedTensor(s, None if got is None else got[1], (m,), 2 * F)
        back = eng.design_backward(h, rows, sv.share, y[rows].share, cut, 5)
        p = SharedTensor(s, None if back is None else back[0], (m,), F)
        g = SharedTensor(s, None if back is None else back[1], (k,), 2 * F)
        plain = eng.design_forward(h, rows, w.share)  # no truncation: w unchanged
        z0 = SharedTensor(s, None if plain is None else plain[1], (m,), 2 * F)
        # the unfused reference: truncations, then Beaver matmuls
        cut_raw = s.truncate(SharedTensor(s, raw.share, (k,), bits), bits)
        w_ref = w - SharedTensor(s, cut_raw.share, (k,), F)
        p_ref = SharedTensor(
            s, s.truncate(SharedTensor(s, sv.share, (m,), cut), cut).share, (m,), 0
        )
        out = {}
        for name, t in (
            ("w2", w2),
            ("z", z),
            ("p", SharedTensor(s, p.share, (m,), 0)),
            ("g", g),
            ("z0", z0),
            ("w_ref", w_ref),
            ("p_ref", p_ref),
        ):
            out[name] = s.reveal(SharedTensor(s, t.share, t.shape, 0), "r")
        return out

    return program


def _run_steps(
    setup: str,
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    raw: np.ndarray,
    sv: np.ndarray,
    rows: Any,
    bits: int,
    cut: int,
) -> dict[str, np.ndarray]:
    out = BY_NAME[setup].run(
        _step_program(rows, bits, cut),
        {"a": {"x": x, "y": y}, "b": {"w": w, "raw": raw, "s": sv}},
    )["r"]
    return {k: to_signed(np.asarray(v, dtype=np.uint64)) for k, v in out.items()}


def _mod(v: np.ndarray) -> list[int]:
    return [int(e) % 2**64 for e in v]


def _check_steps(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    raw: np.ndarray,
    sv: np.ndarray,
    rows: Any,
    bits: int,
    cut: int,
    got: dict[str, np.ndarray],
) -> None:
    xe = to_signed(encode_fixed(x, F)).astype(object)
    ye = to_signed(encode_fixed(y, F)).astype(object)
    we = to_signed(encode_fixed(w, F)).astype(object)
    xb, yb = xe[rows], ye[rows]
    # w' = w − trunc(raw): trunc within [0, 1] above floor
    expect_w = we - np.array([int(v) >> bits for v in raw], dtype=object)
    diff = expect_w - got["w2"].astype(object)
    assert all(d in (0, 1) for d in diff), diff
    # z = X_b w' exactly (ring products of the revealed w', modulo 2**64)
    np.testing.assert_array_equal(_mod(got["z"]), _mod(xb.dot(got["w2"].astype(object))))
    np.testing.assert_array_equal(_mod(got["z0"]), _mod(xb.dot(we)))
    # p = trunc(s) + offset within [0, 1] above floor; g = X_bᵀ (p − y_b) exactly
    expect_p = np.array([int(v) >> cut for v in sv], dtype=object) + 5
    diff_p = got["p"].astype(object) - expect_p
    assert all(d in (0, 1) for d in diff_p), diff_p
    np.testing.assert_array_equal(_mod(got["g"]), _mod(xb.T.dot(got["p"].astype(object) - yb)))
    # the unfused calls agree within the same ulp
    assert np.abs(got["w_ref"] - got["w2"]).max() <= 1
    assert np.abs(got["p_ref"] + 5 - got["p"]).max() <= 1


@settings(max_examples=12, deadline=None)
@given(
    n=st.integers(3, 24),
    k=st.integers(1, 5),
    bits=st.integers(1, 40),
    cut=st.integers(1, 40),
    shuffled=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fused_truncations_equal_the_unfused_steps(
    n: int, k: int, bits: int, cut: int, shuffled: bool, seed: int
) -> None:
    """Property: ``design_forward`` returns ``w − trunc(raw)`` and ``X_b`` times it exactly,
    ``design_backward`` ``trunc(s) + offset`` and ``X_bᵀ (p − y_b)`` exactly, for any
    row selection, truncation widths and values up to ``2**61`` (raw) and ``2**55`` (s)."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=(n, k)) * 4, 3)
    y = (rng.random(n) < 0.5).astype(np.float64)
    w = np.round(rng.normal(size=k) * 3, 3)
    raw = rng.integers(-(2**61), 2**61, size=k)
    sv = rng.integers(-(2**55), 2**55, size=max(1, n // 2))
    m = sv.size
    rows: Any = rng.permutation(n)[:m] if shuffled else slice(n - m, n)
    got = _run_steps("dealer-in-compute-2pc", x, y, w, raw, sv, rows, bits, cut)
    _check_steps(x, y, w, raw, sv, rows, bits, cut, got)


@pytest.mark.parametrize("setup", ["dealer-separate-2pc", "dealer-separate-3pc"])
def test_fused_steps_with_a_separate_dealer(setup: str) -> None:
    x, y = _data(12, 3)
    w = np.array([0.5, -1.25, 2.0])
    raw = np.array([2**40, -(2**45) + 7, 12345], dtype=np.int64)
    sv = np.arange(6, dtype=np.int64) * (2**40) - 2**42
    rows = np.array([11, 0, 5, 6, 2, 9])
    got = _run_steps(setup, x, y, w, raw, sv, rows, 20, 30)
    _check_steps(x, y, w, raw, sv, rows, 20, 30, got)


def _train(masked: bool, sigmoid: str, fan_in: int = 2, **kw: Any) -> Any:
    x, y = _data(300, 4)

    def program(ctx: Any, params: Any, inputs: Any) -> Any:
        s = Session.from_params(ctx, params)
        xs = s.share("a", inputs.get("x"))
        ys = s.share("b", inputs.get("y"))
        w = train_logistic(xs, ys, epochs=3, batch_size=64, sigmoid=sigmoid, masked=masked, **kw)
        return {"w": w.reveal("r"), "rounds": s.engine.rounds}

    out = simulate(
        program,
        TWO,
        params={"triples": "dealer", "and_fan_in": fan_in},
        inputs={"a": {"x": x}, "b": {"y": y}},
        seed=5,
        settings=DEV,
    )
    return out["r"]["w"], out["a"]["rounds"], x, y


@pytest.mark.parametrize(
    ("sigmoid", "kw", "per_iter"),
    [
        # the knot comparison's guard shares the conversion's round (both paths): 11 and 9
        ("piecewise", {}, (11, 9)),
        ("piecewise", {"fan_in": 4}, (9, 7)),  # radix-4 knot comparison: 2 rounds fewer
        ("piecewise", {"shuffle_seed": 4, "l2": 0.01, "average": True}, (11, 9)),
        ("t1", {"l2": 0.02}, (4, 2)),
        ("t1", {"shuffle_seed": 9, "average": True}, (4, 2)),
    ],
)
def test_masked_training_matches_the_unfused_path_in_fewer_rounds(
    sigmoid: str, kw: dict[str, Any], per_iter: tuple[int, int]
) -> None:
    w_old, r_old, x, y = _train(False, sigmoid, **kw)
    w_new, r_new, _, _ = _train(True, sigmoid, **kw)
    iters = 3 * 5  # 300 rows, batch 64: 5 batches, the last one short
    # the unfused path: per_iter[0] rounds per iteration; the masked one per_iter[1], plus
    # the opening of X − A, y − β and the last step's own truncation (averaging: one more
    # truncation at the end, both paths)
    avg = int(kw.get("average", False))
    fan_in = kw.get("fan_in", 2)
    assert r_old == per_iter[0] * iters + avg
    assert r_new == per_iter[1] * iters + 2 + avg
    # same arithmetic, different randomness: truncation ulps apart
    np.testing.assert_allclose(w_new, w_old, atol=2e-3)
    if sigmoid == "piecewise" and "shuffle_seed" not in kw:
        ref = plaintext_logistic(
            x, y, epochs=3, batch_size=64, l2=kw.get("l2", 0.0), average=kw.get("average", False)
        )
        np.testing.assert_allclose(w_new, ref, atol=2e-2)
    if fan_in == 4:  # the same model as with the radix-2 comparison
        w_two, _, _, _ = _train(True, sigmoid)
        np.testing.assert_allclose(w_new, w_two, atol=2e-3)


def test_ss_lr_with_the_dealer_matches_plaintext_auc() -> None:
    x, y = _data(2000, 6, seed=11)
    g = {**{f"g{j}": x[:, j] for j in range(3)}, "y": y}
    h = {f"h{j}": x[:, 3 + j] for j in range(3)}
    params = {
        "features": {"a": ["g0", "g1", "g2"], "b": ["h0", "h1", "h2"]},
        "label": {"party": "a", "column": "y"},
        "epochs": 2,
        "batch_size": 256,
        "triples": "dealer",
        "sigmoid": "piecewise",
    }
    roles = {"a": ("data", "compute", "result"), "b": ("data", "compute")}
    out = simulate(
        ss_lr,
        roles,
        params=params,
        inputs={"a": {"table": g}, "b": {"table": h}},
        settings=DEV,
        seed=2,
    )["a"]
    from sklearn.metrics import roc_auc_score

    w = np.array(out["coef"])
    ref = plaintext_logistic(x, y, epochs=2, batch_size=256)
    auc = roc_auc_score(y, x @ w + out["intercept"])
    assert abs(auc - roc_auc_score(y, x @ ref[:-1] + ref[-1])) <= 1e-3
    q, sh = step_scale(0.5, 256)
    assert q >> 10 == 1 and sh > 0  # the quantised rate both sides use


class _NthOpening(MemoryHub):
    """Replaces the first ``mpc.open`` message carrying ``size`` values by ``forge(payload)``."""

    def __init__(self, size: int, forge: Any) -> None:
        super().__init__()
        self.size = size
        self.forge = forge
        self.done = False

    def _deliver(self, key: MessageKey, payload: bytes) -> None:
        if key.tag == "mpc.open" and not self.done:
            msg = codec.decode(payload)
            if isinstance(msg, Opening) and msg.values.size == self.size:
                self.done = True
                payload = self.forge(msg, payload)
        super()._deliver(key, payload)


@pytest.mark.parametrize(
    ("sigmoid", "size"),
    [
        ("t1", 10),  # the forward round with the step's truncation: c and V − B, 2k values
        ("t1", 32),  # the sigmoid's truncation carrying the gradient: c, one per row
        ("piecewise", 43),  # guard and conversion: y − mask (32) + 21·32 packed bits (11 words)
    ],
)
@pytest.mark.parametrize(
    ("forge", "error"),
    [
        (lambda msg, p: codec.encode(Opening(values=msg.values[:-1])), ProtocolAbort),
        (
            lambda msg, p: codec.encode(Opening(values=np.concatenate([msg.values] * 2))),
            ProtocolAbort,
        ),
        (lambda msg, p: p[:-5], DecodeError),
    ],
)
def test_a_deviating_party_in_the_fused_rounds_is_detected(
    forge: Any, error: type, sigmoid: str, size: int
) -> None:
    """Each fused round is one opening of a fixed size (k = 5 with the intercept, batches of
    32 rows); a party that sends another count or a broken frame aborts the job."""
    x, y = _data(60, 4)

    def program(ctx: Any, params: Any, inputs: Any) -> Any:
        s = Session.from_params(ctx, params)
        xs = s.share("a", inputs.get("x"))
        ys = s.share("b", inputs.get("y"))
        return train_logistic(xs, ys, epochs=1, batch_size=32, sigmoid=sigmoid).reveal("r")

    hub = _NthOpening(size, forge)
    with pytest.raises(error):
        simulate(
            program,
            TWO,
            params={"triples": "dealer"},
            inputs={"a": {"x": x}, "b": {"y": y}},
            settings=DEV,
            hub=hub,
            timeout=10,
        )
    assert hub.done


def _terms_program(maps: list[tuple[int, int, np.ndarray]], terms: list[list[int]]) -> Any:
    def program(ctx: Any, params: Any, inputs: Any) -> Any:
        s = Session.from_params(ctx, params)
        xs = inputs.get("xs")
        shape = (maps[0][2].size,)
        got = s.engine.and_terms([None] * 2 if xs is None else list(xs), maps, terms, shape)
        return {"out": got, "rounds": s.engine.rounds}

    return program


@settings(max_examples=15, deadline=None)
@given(
    words=st.integers(1, 12),
    factors=st.lists(
        st.tuples(st.integers(0, 1), st.integers(0, 24), st.booleans()),
        min_size=4,
        max_size=7,
    ),
    picks=st.lists(st.lists(st.integers(0, 6), min_size=1, max_size=4), min_size=1, max_size=4),
    setup=st.sampled_from(["dealer-in-compute-2pc", "dealer-separate-3pc"]),
    seed=st.integers(0, 2**16),
)
def test_and_terms_is_the_and_of_the_shifted_factors_in_one_round(
    words: int,
    factors: list[tuple[int, int, bool]],
    picks: list[list[int]],
    setup: str,
    seed: int,
) -> None:
    """Property (the identity ``AND (u_i ^ m_i) = XOR_S (AND_{i∉S} u_i)(AND_{i∈S} m_i)``
    with the dealer's mask products): every term of up to four factors ``(x_j << s) & keep``
    of XOR-shared words comes out as XOR-shares of its AND, in one round."""
    rng = np.random.default_rng(seed)
    ones = np.full(words, np.uint64(2**64 - 1), np.uint64)

    def keep() -> np.ndarray:  # most bits kept, per word (as the lanes' masks)
        r = rng.integers(0, 2**63, size=(3, words), dtype=np.int64).view(np.uint64)
        return np.asarray(r[0] | r[1] | (r[2] << np.uint64(1)), dtype=np.uint64)

    maps = [(j, sh, keep() if masked else ones) for j, sh, masked in factors]
    terms = [sorted({i % len(maps) for i in t}) for t in picks] + [[0, 1, 2, 3]]
    truth = rng.integers(0, 2**63, size=(2, words), dtype=np.int64).view(np.uint64) * np.uint64(2)
    truth ^= rng.integers(0, 2, size=(2, words), dtype=np.int64).view(np.uint64)
    compute = [p for p, r in BY_NAME[setup].roles.items() if "compute" in r]
    shares = {
        p: rng.integers(0, 2**63, size=(2, words), dtype=np.int64).view(np.uint64)
        for p in compute[1:]
    }
    first = truth.copy()
    for v in shares.values():
        first ^= v
    shares[compute[0]] = first
    out = BY_NAME[setup].run(_terms_program(maps, terms), {p: {"xs": shares[p]} for p in compute})
    fac = [(truth[j] << np.uint64(sh)) & keep for j, sh, keep in maps]
    for t, term in enumerate(terms):
        want = np.full(words, np.uint64(2**64 - 1), np.uint64)
        for i in term:
            want &= fac[i]
        got = np.zeros(words, np.uint64)
        for p in compute:
            got ^= out[p]["out"][t]
        np.testing.assert_array_equal(got, want)
    assert all(out[p]["rounds"] == 1 for p in compute)


@pytest.mark.parametrize("setup", ["dealer-in-compute-2pc", "dealer-separate-3pc"])
def test_radix4_knot_comparisons_are_exact(setup: str) -> None:
    """The knot comparison with ``and_fan_in: 4`` (two radix-4 Kogge-Stone levels): the same
    bits as the radix-2 levels, on values inside, near and far outside the knots, in 2
    rounds fewer."""
    from .test_shared import KNOTS, KX, _knots_program

    y = np.random.default_rng(3).uniform(-1.5, 1.5, KX.shape)
    inputs = {"a": {"y": y}, "b": {"x": KX}}
    r = BY_NAME[setup].run(_knots_program, inputs, {"and_fan_in": 4})["r"]
    want = (KX[None, :] < KNOTS[:, None]).astype(np.int64)
    assert np.array_equal(r["b"], want)
    assert np.abs(r["by"] - want * y[None, :]).max() <= 2.0**-16
    z = KX * y**2
    with np.errstate(over="ignore"):
        assert np.abs(r["sig"] - 1 / (1 + np.exp(-z))).max() <= 1.3e-3


@pytest.mark.parametrize("fan_in", [2, 4])
@pytest.mark.parametrize("sigmoid", ["t1", "piecewise"])
def test_cost_model_counts_the_masked_design_exactly(fan_in: int, sigmoid: str) -> None:
    from privfin.mpc.cost import estimate_ss_lr

    from .test_cost import UNIT, _check_traffic, _lr_params, _measure, _roles

    params = {**_lr_params(sigmoid), "and_fan_in": fan_in}
    got = _measure(ss_lr, "dealer", params, 200)
    est = estimate_ss_lr(
        _roles("dealer"), {**params, "triples": "dealer"}, 200, provider="dealer", calibration=UNIT
    )
    assert est.rounds == int(got["a"]["metrics"]["ss_lr.rounds"])
    _check_traffic(est, got, "dealer")


#: the knots of tests/mpc/test_shared.py (outer -8, 8; inner on 16-bit lanes)
_KNOTS = np.array([-8.0, -2.5, -0.25, 0.0, 1.0, 7.5, 8.0])


def _select_knots_program(ctx: Any, params: Any, inputs: Any) -> Any:
    s = Session.from_params(ctx, params)
    x = s.share("b", inputs.get("x"))
    y = s.share("a", inputs.get("y"))
    by, b = s.msb_select_knots(x, _KNOTS, y.reshape(1, -1), low=6, inner_low=10)
    return {"b": b.reveal("r"), "by": by.reveal("r"), "rounds": s.engine.rounds}


@settings(max_examples=8, deadline=None)
@given(
    xs=st.lists(
        st.one_of(st.floats(-9, 9), st.floats(-1e5, 1e5), st.sampled_from([-8.0, 0.0, 8.0])),
        min_size=1,
        max_size=12,
    ),
    fan_in=st.sampled_from([2, 4]),
    seed=st.integers(0, 2**16),
)
def test_guard_and_conversion_in_one_round_are_exact(
    xs: list[float], fan_in: int, seed: int
) -> None:
    """Property (``B_j = g_lo + h·b_j`` and its product with ``y`` from daBits opened once):
    the dealer's fused guard gives the exact knot bits and their products with ``y`` for any
    values, inside, on and far outside the knots, in 7 rounds (5 with radix 4)."""
    x = np.round(np.array(xs), 4)
    y = np.random.default_rng(seed).uniform(-2, 2, x.shape)
    out = BY_NAME["dealer-in-compute-2pc"].run(
        _select_knots_program, {"a": {"y": y}, "b": {"x": x}}, {"and_fan_in": fan_in}
    )
    want = (x[None, :] < _KNOTS[:, None]).astype(np.int64)
    # values closer to a knot than the windows' resolution may read as the knot itself
    near = np.abs(x[None, :] - _KNOTS[:, None]) < 2.0**-5
    assert np.array_equal(out["r"]["b"][~near], want[~near])
    assert np.abs(out["r"]["by"] - out["r"]["b"] * y[None, :]).max() <= 2.0**-15
    # the input sharing opens nothing: the rounds are the comparison's
    assert out["a"]["rounds"] == (7 if fan_in == 2 else 5)
