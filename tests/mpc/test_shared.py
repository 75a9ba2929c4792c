"""The shared behaviour suite: every secure operation against plain numpy, for each provider
setup (dealer inside / outside the computing parties, 2 and 3 computing parties, both
truncations, dealer-free OT triples, three-party replicated sharing; the dealer-free Paillier
setup is added in test_paillier.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from privfin.mpc import functions as F
from privfin.mpc.session import Session
from privfin.mpc.tensor import SharedTensor

from ._setups import BY_NAME, SETUPS, Setup

ULP = 2.0**-16
RNG = np.random.default_rng(11)
X = RNG.normal(size=(6, 5)) * 3
Y = RNG.normal(size=(5, 4)) * 3
# The extremes keep ``v * 0.1`` (0.1 encoded with 20 bits) below the truncation bound 2**62.
V = np.concatenate([RNG.normal(size=40) * 50, [0.0, -ULP, ULP, 2.0**28, -(2.0**28)]])
MODERATE = np.abs(V) < 1000
IA = RNG.integers(-(2**40), 2**40, size=30)
JB = RNG.integers(-(2**20), 2**20, size=30)


def _program(ctx: Any, params: Any, inputs: Any) -> dict[str, Any]:
    s = Session.from_params(ctx, params)
    x = s.share("a", inputs.get("x"))
    y = s.share("b", inputs.get("y"))
    v = s.share("b", inputs.get("v"))
    i = s.share("a", inputs.get("i"), fixed=False)
    j = s.share("b", inputs.get("j"), fixed=False)
    out = {
        "x": x.reveal("r"),
        "add": (x + x * 0.5 - 1.25).reveal("r"),
        "mul": (x * x).reveal("r"),
        "matmul": (x @ y).reveal("r"),
        "matvec": (x @ y[:, 0]).reveal("r"),
        "pubmat": (x @ Y).reveal("r"),
        "sum": x.sum(axis=0).reveal("r"),
        "mean": x.mean().reveal("r"),
        "imul": (i * j).reveal("r"),
        "iadd": (i - j + 3).reveal("r"),
        "msb": s.msb(v).reveal("r"),
        "relu": F.relu(v).reveal("r"),
        "max": F.maximum(v, v * -0.5).reveal("r"),
        "sigmoid": F.sigmoid(v * 0.1).reveal("r"),
        "sigmoid_poly": F.sigmoid(v * 0.1, "poly").reveal("r"),
        "sigmoid_t1": F.sigmoid(v * 0.01, "t1").reveal("r"),
        "sigmoid_t1_2f": F.sigmoid(
            s.matmul(v.reshape(-1, 1), s.public(np.full((1, 1), 0.01)), truncate=False).reshape(-1),
            "t1",
        ).reveal("r"),
        "min": F.minimum(v, v * -0.5).reveal("r"),
        "abs": F.abs_(v).reveal("r"),
        "recip": F.reciprocal(x * x + 1).reveal("r"),
    }
    out["traffic"] = s.traffic()
    return out


def test_every_operation_matches_numpy(setup: Setup) -> None:
    res = setup.run(
        _program,
        {"a": {"x": X, "i": IA}, "b": {"y": Y, "v": V, "j": JB}},
    )
    r = res["r"]
    # inputs reconstruct to their encoding (half an ulp)
    assert np.abs(r["x"] - X).max() <= ULP / 2
    assert np.abs(r["add"] - (X * 1.5 - 1.25)).max() <= 3 * ULP
    # one truncation: < 1 ulp, plus encoding error amplified by |x|
    assert np.abs(r["mul"] - X * X).max() <= 1e-3
    assert np.abs(r["matmul"] - X @ Y).max() <= 1e-3
    assert np.abs(r["matvec"] - X @ Y[:, 0]).max() <= 1e-3
    assert np.abs(r["pubmat"] - X @ Y).max() <= 1e-3
    assert np.abs(r["sum"] - X.sum(axis=0)).max() <= 6 * ULP
    assert abs(float(r["mean"]) - X.mean()) <= 1e-4
    # integers: exact in the ring
    assert np.array_equal(r["imul"], IA * JB)
    assert np.array_equal(r["iadd"], IA - JB + 3)
    # comparisons are exact, including 0 and +-1 ulp
    assert np.array_equal(r["msb"], (np.rint(V * 2**16) < 0).astype(np.int64))
    assert np.abs(r["relu"] - np.maximum(V, 0)).max() <= ULP
    assert np.abs(r["max"] - np.maximum(V, -0.5 * V)).max() <= 2 * ULP
    expected = 1 / (1 + np.exp(np.clip(-0.1 * V, -700, 700)))
    # auto: piecewise (1.0e-3): every setup here compares on packed bits
    assert np.abs(r["sigmoid"] - expected).max() <= 1.1e-3
    assert np.abs(r["sigmoid_poly"] - expected).max() <= 2e-3
    # local truncation fails with probability ~2**(l_x + 1 - 64): only moderate inputs here
    t1 = r["sigmoid_t1"][MODERATE] - (0.5 + 0.00125 * V[MODERATE])
    assert np.abs(t1).max() <= 4 * ULP
    c = np.rint(0.01 * 2**16) / 2**16  # the public 0.01 at 16 fractional bits
    t1_2f = r["sigmoid_t1_2f"][MODERATE] - (0.5 + 0.125 * c * V[MODERATE])
    assert np.abs(t1_2f).max() <= 4 * ULP
    assert np.abs(r["min"] - np.minimum(V, -0.5 * V)).max() <= 2 * ULP
    assert np.abs(r["abs"] - np.abs(V)).max() <= 2 * ULP
    assert np.abs(r["recip"] - 1 / (X * X + 1)).max() <= 2e-3
    # computing parties exchanged bytes; the result party received only revealed shares
    assert res["a"]["traffic"]["bytes_sent"] > 0


def _roundtrip(ctx: Any, params: Any, inputs: Any) -> Any:
    s = Session.from_params(ctx, params)
    x = s.share("a", inputs.get("x"), fixed=False)
    y = s.share("b", inputs.get("y"), fixed=False)
    return {"x": x.reveal("r"), "xy": (x * y).reveal("r")}


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=8),
    st.data(),
)
def test_reconstruct_share_and_beaver_product_are_exact(xs: list[int], data: Any) -> None:
    ys = data.draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=len(xs), max_size=len(xs)))
    x, y = np.array(xs, np.int64), np.array(ys, np.int64)
    for setup in [*SETUPS[:3], BY_NAME["ot-2pc"], BY_NAME["rss3-3pc"]]:
        r = setup.run(_roundtrip, {"a": {"x": x}, "b": {"y": y}})["r"]
        assert np.array_equal(r["x"], x)
        with np.errstate(over="ignore"):
            assert np.array_equal(r["xy"], x * y)  # product modulo 2**64, exact


def _trunc_program(ctx: Any, params: Any, inputs: Any) -> Any:
    s = Session.from_params(ctx, params)
    x = s.share("a", inputs.get("x"), fixed=False)
    wrapped = x + x  # ring addition: wraps modulo 2**64 exactly like int64
    scaled = SharedTensor(s, x.share, x.shape, 16)  # the same ring elements read at scale 16
    return {"t": s.truncate(scaled, 16).reveal("r"), "sum": wrapped.reveal("r")}


@settings(max_examples=12, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(2**62 - 2**40, 2**62 - 1),
            st.integers(-(2**62) + 1, -(2**62) + 2**40),
            st.integers(-(2**20), 2**20),
        ),
        min_size=1,
        max_size=16,
    )
)
def test_truncation_and_addition_near_the_bound(xs: list[int]) -> None:
    """Pair truncation is within [0, 1] ulp above ``floor(x / 2**16)`` for every ``|x| < 2**62``
    (the documented bound), up to its edges; addition wraps like two's-complement int64."""
    x = np.array(xs, dtype=np.int64)
    for setup in (SETUPS[0], BY_NAME["ot-2pc"], BY_NAME["rss3-3pc"]):  # exact (not local)
        r = setup.run(_trunc_program, {"a": {"x": x}})["r"]
        floor = x >> 16
        assert np.all((r["t"] == floor) | (r["t"] == floor + 1)), r["t"] - floor
        with np.errstate(over="ignore"):
            assert np.array_equal(r["sum"], x + x)


WIN = np.concatenate(
    [RNG.normal(size=60) * 2.0 ** RNG.integers(-12, 14, 60), [0.0, -(2.0**-10), 2.0**-10, 3e4]]
)


def _window_program(ctx: Any, params: Any, inputs: Any) -> Any:
    s = Session.from_params(ctx, params)
    w = s.share("b", inputs.get("w"))
    y = s.share("a", inputs.get("y"))
    by, b = s.msb_select(w, y, window=6)  # bits [6, 38) of w at scale 16: resolution 2**-10
    exact_by, exact_b = s.msb_select(w, y)
    return {k: t.reveal("r") for k, t in (("by", by), ("b", b), ("eb", exact_b), ("eby", exact_by))}


def test_windowed_and_exact_bit_selection(setup: Setup) -> None:
    y = RNG.normal(size=WIN.shape)
    r = setup.run(_window_program, {"a": {"y": y}, "b": {"w": WIN}})["r"]
    enc = np.rint(WIN * 2**16)
    exact = (enc < 0).astype(np.int64)
    assert np.array_equal(r["eb"], exact)
    assert np.abs(r["eby"] - exact * y).max() <= ULP
    # windowed: exact outside [-2**-10, 0), where it may read as non-negative
    fuzzy = (enc < 0) & (enc >= -(2**6))
    assert np.array_equal(r["b"][~fuzzy], exact[~fuzzy])
    assert np.abs(r["by"] - r["b"] * y).max() <= ULP


KNOTS = np.array([-8.0, -2.5, -0.25, 0.0, 1.0, 7.5, 8.0])
#: inside the guards, near knots (both sides), far outside the 16-bit lanes' range (|x| >= 512)
KX = np.concatenate(
    [
        RNG.uniform(-9, 9, 40),
        KNOTS - 2.0**-4,
        KNOTS + 2.0**-4,
        [-1e5, -700.0, -600.0, 513.0, 2e3, 1e5, -8.5, 8.5],
    ]
)


def _knots_program(ctx: Any, params: Any, inputs: Any) -> Any:
    s = Session.from_params(ctx, params)
    x = s.share("b", inputs.get("x"))
    y = s.share("a", inputs.get("y"))
    by, b = s.msb_select_knots(x, KNOTS, y.reshape(1, -1), low=6, inner_low=10)
    z = (x * y.square()).rescale(32)  # a logit at the scale of an untruncated product
    fast = F.sigmoid(z, "piecewise", fast_compare=True)
    return {"b": b.reveal("r"), "by": by.reveal("r"), "sig": fast.reveal("r")}


def test_knot_comparisons_guarded_by_the_outer_knots(setup: Setup) -> None:
    """[x < t_j] for every knot: inner knots on 16-bit lanes (resolution 2**-6 at scale 16,
    garbled alone for |x| >= 512) are exact wherever the outer knots say x is inside, and
    follow the outer knots outside."""
    y = np.random.default_rng(3).uniform(-1.5, 1.5, KX.shape)  # logits below 2**21
    r = setup.run(_knots_program, {"a": {"y": y}, "b": {"x": KX}})["r"]
    want = (KX[None, :] < KNOTS[:, None]).astype(np.int64)
    assert r["b"].shape == (len(KNOTS), len(KX))
    assert np.array_equal(r["b"], want)
    assert np.abs(r["by"] - want * y[None, :]).max() <= ULP
    # SS-LR's sigmoid on these knot comparisons: the documented 1.25e-3 (plus the product's
    # own rounding), also far outside [-8, 8]
    z = KX * y**2
    with np.errstate(over="ignore"):
        assert np.abs(r["sig"] - 1 / (1 + np.exp(-z))).max() <= 1.3e-3
