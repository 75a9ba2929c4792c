"""ECDH-PSI suites (job parameter ``curve``): X25519 (default) and ristretto255 against Python
sets, worker-count independence, suite negotiation."""

from __future__ import annotations

import numpy as np
import pytest

import privfin.psi as psi
from privfin.compute import LocalBackend, SerialBackend, ThreadBackend
from privfin.compute.backend import ComputeBackend
from privfin.errors import ConfigError, ProtocolAbort
from privfin.federation.memory import MemoryHub
from privfin.psi import common
from privfin.psi.component import PsiParams, psi_component
from privfin.runtime import simulate as run_simulation

SIZES = {
    "0x3": ([], ["a", "b", "c"]),
    "1x1-equal": (["only"], ["only"]),
    "1x1-distinct": (["one"], ["two"]),
    "identical": ([f"id{i}" for i in range(50)], [f"id{i}" for i in reversed(range(50))]),
    "disjoint": ([f"a{i}" for i in range(40)], [f"b{i}" for i in range(30)]),
    "duplicates": (["x", "x", "y", "z", "z"], ["z", "z", "x", "w", "w"]),
    "overlap": ([f"k{i}" for i in range(0, 150)], [f"k{i}" for i in range(100, 230)]),
}


@pytest.mark.parametrize("case", sorted(SIZES))
@pytest.mark.parametrize("curve", ["x25519", "ristretto255"])
def test_two_party_exact(case: str, curve: str) -> None:
    a, b = SIZES[case]
    out = psi.simulate({"r": a, "s": b}, params={"curve": curve}, seed=2)
    assert out["r"] == out["s"] == sorted(set(a) & set(b))
    size = psi.simulate({"r": a, "s": b}, cardinality_only=True, params={"curve": curve})
    assert size == {"r": len(set(a) & set(b)), "s": len(set(a) & set(b))}


@pytest.mark.parametrize("curve", ["x25519", "ristretto255"])
def test_n_party_exact(curve: str) -> None:
    sets = {
        "l": [f"k{i}" for i in range(60)],
        "m1": [f"k{i}" for i in range(20, 90)],
        "m2": [f"k{i}" for i in range(0, 100, 2)],
    }
    out = psi.simulate(sets, params={"curve": curve}, seed=4)
    expected = sorted(set(sets["l"]) & set(sets["m1"]) & set(sets["m2"]))
    assert out == {p: expected for p in sets}


def _wire(compute: ComputeBackend) -> list[tuple[tuple[str, str], bytes]]:
    hub = MemoryHub()
    a = [f"id{i}" for i in range(120)]
    b = [f"id{i}" for i in range(60, 200)]
    out = run_simulation(
        psi_component,
        {"r": ("receiver",), "s": ("sender",)},
        params={"normalize": "exact", "reveal_to": "both"},
        inputs={"r": {"ids": a}, "s": {"ids": b}},
        component_name="psi",
        seed=11,
        hub=hub,
        compute=compute,
    )
    assert list(out["r"]["ids"]) == sorted(set(a) & set(b))
    # messages of different tags interleave by thread timing; within a tag the order is fixed
    return sorted(((k.sender, k.tag), p) for k, p in hub.wire)


def test_worker_count_does_not_change_a_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "CHUNK_ROWS", 16)  # several chunks per batch of workers
    wires = [_wire(SerialBackend())]
    for backend in (ThreadBackend(2), LocalBackend(2)):
        with backend:
            wires.append(_wire(backend))
    assert wires[0] == wires[1] == wires[2]
    assert len(wires[0]) > 10


def test_suite_named_in_the_handshake() -> None:
    assert PsiParams().curve == "x25519"
    assert PsiParams.from_mapping({}).agreed()["curve"] == "x25519"
    # a ristretto255 job's handshake is the original one (no new parameter)
    assert "curve" not in PsiParams.from_mapping({"curve": "ristretto255"}).agreed()
    assert "curve" not in PsiParams.from_mapping({"protocol": "kkrt"}).agreed()
    with pytest.raises(ConfigError, match="curve"):
        PsiParams.from_mapping({"curve": "p256"})


def test_mixed_suites_abort() -> None:
    def comp(ctx, params, inputs):  # type: ignore[no-untyped-def]
        p = {"curve": "x25519" if ctx.party == "a" else "ristretto255"}
        return psi.psi_component(ctx, p, inputs)

    with pytest.raises(ProtocolAbort, match="different parameters"):
        run_simulation(
            comp,
            {"a": ("receiver",), "b": ("sender",)},
            inputs={"a": {"ids": ["x"]}, "b": {"ids": ["x"]}},
        )


def test_suites_use_separate_keys_and_domains() -> None:
    class Ctx:
        job = "j"
        component = "c"

    x = common.suite_domain(Ctx(), "ecdh", "x25519")  # type: ignore[arg-type]
    r = common.suite_domain(Ctx(), "ecdh", "ristretto255")  # type: ignore[arg-type]
    assert x != r
    assert r == common.hash_domain(Ctx(), "ecdh")  # type: ignore[arg-type]
    assert np.frombuffer(x, np.uint8).size <= 255
