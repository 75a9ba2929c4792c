"""Three-party replicated secret sharing (providers.rss3): operations against numpy, data and
result parties distinct from the three computing parties, what each party receives, and
tampering (loud where checked, silent where semi-honest cannot check)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privfin.config import Settings
from privfin.errors import ConfigError, ProtocolAbort
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.federation.transport import MessageKey
from privfin.mpc import functions as F
from privfin.mpc import mpc_stats, ss_lr
from privfin.mpc.messages import Opening
from privfin.mpc.providers.rss3 import Rss3Provider
from privfin.mpc.session import Session
from privfin.runtime import simulate

from .test_security import TamperingHub

PROD = Settings()
# JR/T 0196 roles: two data parties, three computing parties, the bank receives the results
ROLES = {
    "bank": ("data", "result"),
    "telco": ("data",),
    "c0": ("compute",),
    "c1": ("compute",),
    "c2": ("compute",),
}
RNG = np.random.default_rng(3)
X = RNG.normal(size=(7, 4)) * 3
Y = RNG.normal(size=(4, 3)) * 3
V = np.concatenate([RNG.normal(size=30) * 20, [0.0, -(2.0**-16), 2.0**-16]])
ULP = 2.0**-16


def _program(ctx: Any, params: Any, inputs: Any) -> dict[str, Any]:
    s = Session(ctx)  # production mode, 3 computing parties: replicated sharing by default
    x = s.share("bank", inputs.get("x"))
    y = s.share("telco", inputs.get("y"))
    v = s.share("telco", inputs.get("v"))
    return {
        "provider": s.provider.name,
        "x": x.reveal("bank"),
        "add": (x * 2 - x * 0.25 + 1).reveal("bank"),
        "mul": (x * x).reveal("bank"),
        "matmul": (x @ y).reveal("bank"),
        "sum": (x @ y).sum(axis=0).reveal("bank"),
        "trunc": s.truncate(x * 8.0, 0).reveal("bank"),
        "msb": s.msb(v).reveal("bank"),
        "relu": F.relu(v).reveal("bank"),
        "sigmoid": F.sigmoid(v * 0.1).reveal("bank"),
        "recip": F.reciprocal(x * x + 1).reveal("bank"),
        "traffic": s.traffic() if s.is_compute else None,
    }


def test_replicated_sharing_matches_numpy_with_separate_data_and_result_parties() -> None:
    hub = MemoryHub()
    out = simulate(
        _program,
        ROLES,
        inputs={"bank": {"x": X}, "telco": {"y": Y, "v": V}},
        settings=PROD,
        seed=2,
        hub=hub,
    )
    r = out["bank"]
    assert r["provider"] == "rss3"
    assert np.abs(r["x"] - X).max() <= ULP / 2
    assert np.abs(r["add"] - (1.75 * X + 1)).max() <= 4 * ULP
    assert np.abs(r["mul"] - X * X).max() <= 1e-3
    assert np.abs(r["matmul"] - X @ Y).max() <= 1e-3
    assert np.abs(r["sum"] - (X @ Y).sum(axis=0)).max() <= 5e-3
    assert np.abs(r["trunc"] - 8 * X).max() <= 1e-3
    assert np.array_equal(r["msb"], (np.rint(V * 2**16) < 0).astype(np.int64))
    assert np.abs(r["relu"] - np.maximum(V, 0)).max() <= 2 * ULP
    assert np.abs(r["sigmoid"] - 1 / (1 + np.exp(-0.1 * V))).max() <= 1.1e-3  # piecewise
    assert np.abs(r["recip"] - 1 / (X * X + 1)).max() <= 2e-3
    assert out["telco"]["x"] is None and out["c0"]["x"] is None  # only the result party
    # no dealer, no triples: the computing parties exchange replicated components (each to
    # its predecessor only; also for the ANDs, edaBits and daBits of the packed-bit
    # comparisons), truncation halves and masked openings (comparisons)
    tags = {k.tag for k, _ in hub.wire}
    assert not {t for t in tags if t.startswith(("mpc.dealer", "mpc.ot", "mpc.he"))}
    pairs = {(k.sender, k.receiver) for k, _ in hub.wire if k.tag == "mpc.rss.pair"}
    assert pairs == {("c1", "c0"), ("c2", "c1"), ("c0", "c2")}
    trunc = {(k.sender, k.receiver) for k, _ in hub.wire if k.tag == "mpc.rss.trunc"}
    # one round: P1 and P2 learn the masked c = x + r (r private to P0), P0 learns nothing
    assert trunc == {("c0", "c1"), ("c0", "c2"), ("c1", "c2"), ("c2", "c1")}


def _ring(ctx: Any, params: Any, inputs: Any) -> Any:
    s = Session(ctx, triples="rss3")
    a = s.share("bank", inputs.get("a"), fixed=False)
    b = s.share("telco", inputs.get("b"), fixed=False)
    mm = a.reshape(2, -1) @ b.reshape(-1, 2)
    return {"ab": (a * b).reveal("bank"), "mm": mm.reveal("bank")}


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=4, max_size=4), st.data())
def test_products_are_exact_in_the_ring(xs: list[int], data: Any) -> None:
    ys = data.draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=4, max_size=4))
    a, b = np.array(xs, np.int64), np.array(ys, np.int64)
    r = simulate(_ring, ROLES, inputs={"bank": {"a": a}, "telco": {"b": b}}, settings=PROD)
    with np.errstate(over="ignore"):
        assert np.array_equal(r["bank"]["ab"], a * b)
        assert np.array_equal(r["bank"]["mm"], a.reshape(2, 2) @ b.reshape(2, 2))


def test_statistics_and_ss_lr_run_unchanged_on_replicated_sharing() -> None:
    rng = np.random.default_rng(8)
    n = 600
    xa = rng.normal(size=(n, 2))
    xb = rng.normal(size=(n, 2))
    w = np.array([1.0, -2.0, 0.5, 1.5])
    y = (rng.random(n) < 1 / (1 + np.exp(-np.hstack([xa, xb]) @ w))).astype(float)
    roles = {"bank": ("data", "compute", "result"), "telco": ("data", "compute"), "c": ("compute",)}
    tables = {
        "bank": {"table": {"a0": xa[:, 0], "a1": xa[:, 1], "y": y}},
        "telco": {"table": {"b0": xb[:, 0], "b1": xb[:, 1]}},
    }
    stats = simulate(
        mpc_stats,
        roles,
        params={
            "partition": "vertical",
            "columns": {"bank": ["a0", "a1"], "telco": ["b0"]},
            "statistics": ["sum", "mean", "var"],
        },
        inputs=tables,
        settings=PROD,
        seed=1,
    )["bank"]
    cols = np.column_stack([xa, xb[:, 0]])
    np.testing.assert_allclose(stats["mean"], cols.mean(0), atol=1e-3)
    np.testing.assert_allclose(stats["var"], cols.var(0, ddof=1), rtol=1e-2, atol=1e-2)
    params = {
        "partition": "vertical",
        "features": {"bank": ["a0", "a1"], "telco": ["b0", "b1"]},
        "label": {"party": "bank", "column": "y"},
        "epochs": 2,
        "batch_size": 128,
        "learning_rate": 0.5,
        "sigmoid": "t1",
    }
    model = simulate(ss_lr, roles, params=params, inputs=tables, settings=PROD, seed=1)["bank"]
    plain = simulate(
        ss_lr,
        roles,
        params={**params, "triples": "dealer", "dealer": "bank"},
        inputs=tables,
        settings=Settings(mode="development"),
        seed=1,
    )["bank"]
    np.testing.assert_allclose(model["coef"], plain["coef"], atol=2e-3)


def test_replicated_sharing_needs_three_computing_parties() -> None:
    def program(ctx: Any, params: Any, inputs: Any) -> Any:
        return Session(ctx, triples="rss3").provider.name

    two = {"a": ("data", "compute", "result"), "b": ("compute",)}
    with pytest.raises(ConfigError, match="exactly 3 computing parties"):
        simulate(program, two, settings=PROD)
    with pytest.raises(ConfigError, match="without Beaver triples"):
        Rss3Provider.mul_triple(object.__new__(Rss3Provider), (1,))


def _mul(ctx: Any, params: Any, inputs: Any) -> Any:
    s = Session(ctx, triples="rss3")
    x = s.share("bank", inputs.get("x"), fixed=False)
    return (x * x).reveal("bank")


XI = np.arange(-6, 6, dtype=np.int64)


def test_a_short_replicated_component_fails_loudly() -> None:
    def short(key: MessageKey, payload: bytes) -> bytes:
        return codec.encode(Opening(values=np.zeros(3, np.uint64)))

    with pytest.raises(ProtocolAbort, match="share components"):
        simulate(
            _mul, ROLES, inputs={"bank": {"x": XI}}, settings=PROD,
            hub=TamperingHub("mpc.rss.pair", short), timeout=10,
        )  # fmt: skip


def test_semi_honest_limit_a_shifted_component_is_not_detected() -> None:
    """No MACs (semi-honest): a computing party that shifts the component it hands on shifts
    the product undetected — two parties' views cannot tell (SPEC.md threat model)."""

    def shift(key: MessageKey, payload: bytes) -> bytes:
        msg = codec.decode(payload)
        return codec.encode(Opening(values=msg.values + np.uint64(1)))

    out = simulate(
        _mul, ROLES, inputs={"bank": {"x": XI}}, settings=PROD,
        hub=TamperingHub("mpc.rss.pair", shift), seed=3,
    )["bank"]  # fmt: skip
    assert not np.array_equal(out, XI * XI)


def test_replicated_edabits_and_dabits_are_consistent() -> None:
    """The material the packed-bit comparisons consume, built without a dealer: the additive
    shares of an edaBit sum to the XOR of its bit shares; a daBit's arithmetic value equals
    its XOR-shared bit; a daBit triple's product is ``u·M``."""

    def program(ctx: Any, params: Any, inputs: Any) -> Any:
        s = Session(ctx, triples="rss3")
        eng = s.engine
        return {
            "eda": eng._edabits(3000),
            "da": eng._rss_dabits((500,)),
            "dat": eng._rss_dabit_triple((4, 6), (6,)),
        }

    out = simulate(program, ROLES, settings=PROD, seed=9)
    parts = [out[p] for p in ("c0", "c1", "c2")]
    with np.errstate(over="ignore"):
        r = sum((p["eda"][0] for p in parts), np.zeros(3000, np.uint64))
        bits = parts[0]["eda"][1] ^ parts[1]["eda"][1] ^ parts[2]["eda"][1]
        assert np.array_equal(r, bits)
        assert 0.45 < np.mean(r >> np.uint64(63)) < 0.55  # uniform top bit
        da = sum((p["da"][0] for p in parts), np.zeros(500, np.uint64))
        dx = (parts[0]["da"][1] ^ parts[1]["da"][1] ^ parts[2]["da"][1]) & np.uint64(1)
        assert np.array_equal(da, dx) and 0.35 < da.mean() < 0.65
        u, _, mask, c = (sum(p["dat"][k] for p in parts) for k in range(4))
        assert np.array_equal(c, u * mask[None, :])
    assert out["bank"]["eda"] is None


def _trunc(ctx: Any, params: Any, inputs: Any) -> Any:
    s = Session(ctx, triples="rss3")
    a = s.share("bank", inputs.get("a"), fixed=False)
    bits = int(params["bits"])
    out = s.engine.trunc(a.share, a.shape, bits)
    return s.engine.reveal(out, a.shape, "bank")


@settings(max_examples=10, deadline=None)
@given(
    st.lists(st.integers(-(2**62) + 1, 2**62 - 1), min_size=1, max_size=6),
    st.integers(1, 40),
)
def test_one_round_truncation_is_within_one_ulp_for_any_value_below_2_62(
    xs: list[int], bits: int
) -> None:
    a = np.array([*xs, 2**62 - 1, -(2**62) + 1, 0, -1], np.int64)
    got = simulate(_trunc, ROLES, params={"bits": bits}, inputs={"bank": {"a": a}}, settings=PROD)[
        "bank"
    ].view(np.int64)
    exact = a >> bits  # floor
    assert np.abs(got - exact).max() <= 1


def test_a_short_truncation_message_fails_loudly() -> None:
    def short(key: MessageKey, payload: bytes) -> bytes:
        return codec.encode(Opening(values=np.zeros(1, np.uint64)))

    a = np.arange(5, dtype=np.int64)
    with pytest.raises(ProtocolAbort, match="truncation"):
        simulate(
            _trunc, ROLES, params={"bits": 3}, inputs={"bank": {"a": a}}, settings=PROD,
            hub=TamperingHub("mpc.rss.trunc", short), timeout=10,
        )  # fmt: skip


def _fused(ctx: Any, params: Any, inputs: Any) -> Any:
    s = Session(ctx, triples="rss3")
    x = s.share("bank", inputs.get("x"), fixed=False)
    z = s.share("telco", inputs.get("z"), fixed=False)
    m, k = x.shape
    x_next = s.engine.rss_next(x.share, x.shape)
    g = s.engine.rss_trunc_tmatmul(z.share, x.share, x_next, m, k, int(params["bits"]))
    return s.engine.reveal(g, (k,), "bank")


@pytest.mark.parametrize(("m", "k", "bits"), [(40, 40, 19), (33, 5, 36)])
def test_truncation_fused_with_the_transposed_product_in_one_round(
    m: int, k: int, bits: int
) -> None:
    rng = np.random.default_rng(m + bits)
    x = np.eye(m, k, dtype=np.int64) if m == k else rng.integers(-(2**20), 2**20, size=(m, k))
    z = rng.integers(-(2**55), 2**55, size=m)
    hub = MemoryHub()
    got = simulate(
        _fused,
        ROLES,
        params={"bits": bits},
        inputs={"bank": {"x": x}, "telco": {"z": z}},
        settings=PROD,
        hub=hub,
    )["bank"].view(np.int64)
    err = got - x.T @ (z >> bits)  # each truncated element is floor(z / 2^F) or one above
    if m == k:
        assert err.min() >= 0 and err.max() <= 1
    else:
        assert np.all(np.abs(err) <= np.abs(x).sum(axis=0))
    sizes = {(k_.sender, k_.receiver): len(p) for k_, p in hub.wire if k_.tag == "mpc.rss.trunc"}
    assert set(sizes) == {("c0", "c1"), ("c0", "c2"), ("c1", "c2"), ("c2", "c1")}


@pytest.mark.parametrize(
    "extra", [{}, {"shuffle_seed": 3, "average": True, "l2": 0.01, "batch_size": 50}]
)
def test_rss3_t1_ss_lr_matches_ot_t1(extra: dict[str, Any]) -> None:
    """The two-round iteration of rss3 with t1 (pairs of X and y once, truncations fused
    with the products) computes what the general path computes (here: the OT provider)."""
    rng = np.random.default_rng(2)
    n = 300
    x = rng.normal(size=(n, 4))
    y = (rng.random(n) < 1 / (1 + np.exp(-x[:, 0] + x[:, 2]))).astype(float)
    a = {"a0": x[:, 0], "a1": x[:, 1], "y": y}
    b = {"b0": x[:, 2], "b1": x[:, 3]}
    params = {
        "features": {"a": ["a0", "a1"], "b": ["b0", "b1"]},
        "label": {"party": "a", "column": "y"},
        "epochs": 2,
        "batch_size": 64,
        "sigmoid": "t1",
        **extra,
    }
    two = {"a": ("data", "compute", "result"), "b": ("data", "compute")}
    outs = {}
    for triples, roles in (("ot", two), ("rss3", {**two, "c": ("compute",)})):
        outs[triples] = simulate(
            ss_lr,
            roles,
            params={**params, "triples": triples},
            inputs={"a": {"table": a}, "b": {"table": b}},
            settings=PROD,
            seed=1,
        )["a"]
    np.testing.assert_allclose(outs["rss3"]["coef"], outs["ot"]["coef"], atol=2e-3)
    assert abs(outs["rss3"]["intercept"] - outs["ot"]["intercept"]) <= 2e-3


def test_a_short_fused_truncation_message_fails_loudly() -> None:
    def short(key: MessageKey, payload: bytes) -> bytes:
        return codec.encode(Opening(values=np.zeros(2, np.uint64)))

    x = np.ones((6, 2), dtype=np.int64)
    z = np.arange(6, dtype=np.int64)
    with pytest.raises(ProtocolAbort, match="truncation"):
        simulate(
            _fused, ROLES, params={"bits": 3}, inputs={"bank": {"x": x}, "telco": {"z": z}},
            settings=PROD, hub=TamperingHub("mpc.rss.trunc", short), timeout=10,
        )  # fmt: skip


@pytest.mark.parametrize("partition", ["vertical", "horizontal"])
def test_two_round_t1_ss_lr_with_separate_data_and_result_parties(partition: str) -> None:
    """JR/T 0196 roles: the data and result parties take part in the two-round rss3 iteration
    only through their inputs and the reveal."""
    rng = np.random.default_rng(9)
    n = 256
    x = rng.normal(size=(n, 4))
    y = (rng.random(n) < 1 / (1 + np.exp(-x @ np.array([1.0, -1.0, 0.5, 0.0])))).astype(float)
    if partition == "vertical":
        tables = {
            "bank": {"table": {"a0": x[:, 0], "a1": x[:, 1], "y": y}},
            "telco": {"table": {"b0": x[:, 2], "b1": x[:, 3]}},
        }
        params: dict[str, Any] = {
            "features": {"bank": ["a0", "a1"], "telco": ["b0", "b1"]},
            "label": {"party": "bank", "column": "y"},
        }
    else:
        cols = {f"x{j}": x[:, j] for j in range(4)}
        tables = {
            "bank": {"table": {**{c: v[:128] for c, v in cols.items()}, "y": y[:128]}},
            "telco": {"table": {**{c: v[128:] for c, v in cols.items()}, "y": y[128:]}},
        }
        params = {"partition": "horizontal", "features": list(cols), "label": "y"}
    params = {**params, "epochs": 2, "batch_size": 64, "sigmoid": "t1"}
    got = simulate(ss_lr, ROLES, params=params, inputs=tables, settings=PROD, seed=2)
    ref = simulate(
        ss_lr,
        ROLES,
        params={**params, "triples": "dealer", "dealer": "c0"},
        inputs=tables,
        settings=Settings(mode="development"),
        seed=2,
    )
    assert got["telco"] is None and got["c0"] is None
    np.testing.assert_allclose(got["bank"]["coef"], ref["bank"]["coef"], atol=2e-3)
