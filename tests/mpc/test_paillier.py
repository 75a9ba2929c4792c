"""The dealer-free Paillier provider in the shared behaviour checks (small key: tests only)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from privfin.config import Settings
from privfin.errors import ConfigError
from privfin.mpc import functions as F
from privfin.mpc.session import Session
from privfin.runtime import simulate

from ._setups import DEV, TWO

PARAMS = {"triples": "paillier", "paillier_bits": 1024}
RNG = np.random.default_rng(5)
X = RNG.normal(size=(4, 3)) * 3
Y = RNG.normal(size=(3, 2)) * 3
V = np.array([-3.5, -(2.0**-16), 0.0, 2.0**-16, 7.25])
IA = RNG.integers(-(2**62), 2**62, size=6)


def _program(ctx: Any, params: Any, inputs: Any) -> dict[str, Any]:
    s = Session.from_params(ctx, params)
    x = s.share("a", inputs.get("x"))
    y = s.share("b", inputs.get("y"))
    v = s.share("b", inputs.get("v"))
    i = s.share("a", inputs.get("i"), fixed=False)
    return {
        "matmul": (x @ y).reveal("r"),
        "mul": (x * x).reveal("r"),
        "imul": (i * i).reveal("r"),
        "relu": F.relu(v).reveal("r"),
        "provider": s.provider.name,
    }


def test_paillier_triples_match_numpy() -> None:
    out = simulate(
        _program,
        TWO,
        params=PARAMS,
        inputs={"a": {"x": X, "i": IA}, "b": {"y": Y, "v": V}},
        settings=DEV,
        seed=3,
    )
    r = out["r"]
    assert out["a"]["provider"] == "paillier"
    assert np.abs(r["matmul"] - X @ Y).max() <= 1e-3
    assert np.abs(r["mul"] - X * X).max() <= 1e-3
    with np.errstate(over="ignore"):
        assert np.array_equal(r["imul"], IA * IA)  # exact modulo 2**64
    assert np.abs(r["relu"] - np.maximum(V, 0)).max() <= 2**-16


def test_paillier_needs_no_insecure_mode_but_refuses_short_keys_in_production() -> None:
    with pytest.raises(ConfigError, match="refused in production"):
        simulate(
            _program,
            TWO,
            params=PARAMS,
            inputs={"a": {"x": X, "i": IA}, "b": {"y": Y, "v": V}},
            settings=Settings(),
        )
