"""CKKS aggregation: the sum against the plaintext sum within the CKKS error bound, the server
never holding the secret key, dropouts, too few inputs, a lying decryptor, a server asking
for a decryption of too few inputs; the hfl and hfl_gbdt components with aggregation="ckks"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from privfin.config import Settings
from privfin.errors import ConfigError, ProtocolAbort
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.fl.horizontal.ckksagg import (
    CKKSAggClient,
    CKKSAggParams,
    CKKSAggServer,
    CKKSThresholdError,
    client_setup,
    server_setup,
)
from privfin.fl.horizontal.ckksagg import client as client_module
from privfin.fl.horizontal.ckksagg.common import CKKS, release
from privfin.fl.horizontal.ckksagg.messages import CKKSKey, CKKSPlain, CKKSPublic, CKKSSum
from privfin.fl.horizontal.fedavg import hfl_component
from privfin.fl.horizontal.gbdt import hfl_gbdt_component
from privfin.he.ckks import CKKSContext
from privfin.ml.trees import PlainGBDT, TreeParams
from privfin.runtime import Context, simulate

DEV = Settings(mode="development")
DIM = 2 * CKKS.slots + 123  # three ciphertexts, the last one short


def roles(n: int) -> dict[str, list[str]]:
    return {"server": ["server"], **{f"c{i}": ["client"] for i in range(n)}}


def vectors(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"c{i}": rng.normal(scale=1e3, size=DIM) for i in range(n)}


def component(
    silent: Mapping[str, str] | None = None, lie: str | None = None, min_clients: int = 2
) -> Any:
    """One CKKS aggregation round; ``silent[c]``: client c stops before "input" or before
    "decrypt"; ``lie``: that client releases a wrong sum."""
    silent = silent or {}

    def run(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
        clients = ctx.parties_with("client")
        p = CKKSAggParams(dim=DIM, min_clients=min_clients, stage_timeout=2.0, client_timeout=30)
        if ctx.has_role("server"):
            pub = server_setup(ctx, clients, prefix="ck", timeout=30)
            return {"res": CKKSAggServer(ctx, clients, p, 0, pub).run(), "public": pub}
        key = client_setup(ctx, "server", clients, prefix="ck", timeout=30)
        c = CKKSAggClient(ctx, "server", p, 0, inputs["x"], key)
        if silent.get(ctx.party) == "input":
            return {"included": False}
        c.send_input()
        if silent.get(ctx.party) == "decrypt":
            return {"included": True}
        if ctx.party == lie:
            msg = ctx.channel.recv("server", "ck.0.sum", expect=CKKSSum)
            fake = np.zeros(DIM)
            ctx.channel.send("server", "ck.0.out", CKKSPlain(round=0, values=fake))
            return {"included": True, "sum_seen": len(msg.cts)}
        return {"included": c.decrypt()}

    return run


def run(
    n: int, hub: MemoryHub | None = None, **kw: Any
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    xs = vectors(n)
    out = simulate(
        component(**kw),
        roles(n),
        inputs={c: {"x": x} for c, x in xs.items()},
        seed=0,
        settings=DEV,
        hub=hub,
        timeout=30,
    )
    return out, xs


def test_sum_within_the_ckks_error_bound() -> None:
    out, xs = run(4)
    res = out["server"]["res"]
    exact = sum(xs.values())
    assert res.survivors == ["c0", "c1", "c2", "c3"] and res.dropped == {}
    # n * 2**-24 + 2**-20 + |sum| * 2**-52: about 1.2e-6 here.
    assert res.error_bound < 2e-6
    assert np.max(np.abs(res.total - exact)) <= res.error_bound
    # Released values lie on the 2**-20 grid (flooded, then rounded).
    assert np.all(res.total * 2.0**20 == np.rint(res.total * 2.0**20))


def test_the_server_never_holds_the_secret_key() -> None:
    """Every message the server receives, decoded: the public context (refused if it carried a
    secret key), input ciphertexts, released sums; the key travels from the key client to the
    other clients only; the public context cannot decrypt."""
    hub = MemoryHub()
    out, _ = run(3, hub=hub)
    kinds: dict[str, set[str]] = {}
    for key, payload in hub.wire:
        msg = codec.decode(payload)
        kinds.setdefault(key.receiver, set()).add(type(msg).__name__)
        if isinstance(msg, CKKSKey):
            assert key.sender == "c0" and key.receiver in ("c1", "c2")
            assert CKKSContext.from_bytes(msg.context, allow_secret_key=True).is_private
        if isinstance(msg, CKKSPublic):
            assert key.receiver == "server"
            assert not CKKSContext.from_bytes(msg.context).is_private
    assert kinds["server"] == {"CKKSPublic", "CKKSInput", "CKKSPlain"}
    assert "CKKSKey" in kinds["c1"]
    pub = out["server"]["public"]
    assert not pub.is_private
    with pytest.raises(ConfigError, match="no secret key"):
        pub.decrypt(pub.encrypt([1.0]))
    # A context that carries the secret key is refused at the server.
    secret = CKKSContext.generate(CKKS, galois_keys=False).serialize_secret()

    def leaky(ctx: Context, params: Any, inputs: Any) -> Any:
        if ctx.has_role("server"):
            return server_setup(ctx, ["c0", "c1"], prefix="ck", timeout=10)
        if ctx.party == "c0":
            ctx.channel.send("server", "ck.pub", CKKSPublic(context=secret))
        return None

    with pytest.raises(ProtocolAbort, match="refusing a CKKS context that carries a secret key"):
        simulate(leaky, roles(2), settings=DEV, timeout=10)


@pytest.mark.parametrize("stage", ["input", "decrypt"])
def test_dropout(stage: str) -> None:
    """c1 stops before sending its input (not in the sum, told so) or before decrypting (in
    the sum; the others' decryptions suffice)."""
    out, xs = run(4, silent={"c1": stage})
    res = out["server"]["res"]
    survivors = [c for c in xs if stage == "decrypt" or c != "c1"]
    assert res.survivors == survivors
    assert res.dropped == {"c1": "in" if stage == "input" else "out"}
    exact = sum(xs[c] for c in survivors)
    assert np.max(np.abs(res.total - exact)) <= res.error_bound


def test_too_few_inputs_fail_and_nothing_is_decrypted() -> None:
    with pytest.raises(CKKSThresholdError, match="below min_clients=3"):
        run(3, silent={"c1": "input", "c2": "input"}, min_clients=3)


def test_a_lying_decryptor_is_detected() -> None:
    with pytest.raises(ProtocolAbort, match="decrypted sums disagree") as info:
        run(3, lie="c2")
    assert info.value.party == "c2"


def test_client_refuses_to_decrypt_a_sum_of_too_few_inputs() -> None:
    """A server that forwards one client's ciphertext as "the sum" (to read that client's
    vector) names too few inputs: the decryptor refuses. (Naming more inputs than it summed
    cannot be detected: a semi-honest server is assumed, SPEC.md.)"""

    def cheat(ctx: Context, params: Any, inputs: Any) -> Any:
        clients = ctx.parties_with("client")
        p = CKKSAggParams(dim=DIM, stage_timeout=5, client_timeout=10)
        if ctx.has_role("server"):
            server_setup(ctx, clients, prefix="ck", timeout=10)
            got = ctx.channel.recv("c0", "ck.0.in")
            ctx.channel.recv("c1", "ck.0.in")
            ctx.channel.send("c1", "ck.0.sum", CKKSSum(round=0, included=["c1"], cts=got.cts))
            return None
        key = client_setup(ctx, "server", clients, prefix="ck", timeout=10)
        c = CKKSAggClient(ctx, "server", p, 0, np.ones(DIM), key)
        c.send_input()
        return c.decrypt() if ctx.party == "c1" else None

    with pytest.raises(ProtocolAbort, match="below min_clients=2: refusing to decrypt"):
        simulate(cheat, roles(2), settings=DEV, timeout=10)


def test_release_is_identical_at_every_decryptor_and_flooded() -> None:
    v = np.linspace(-3, 3, 1000)
    a = release(v, b"s" * 32, 7, 20)
    assert np.array_equal(a, release(v.copy(), b"s" * 32, 7, 20))  # same at every decryptor
    assert np.max(np.abs(a - v)) <= 2.0**-20
    assert np.all(a * 2.0**20 == np.rint(a * 2.0**20))
    # Another round or seed draws other noise.
    assert not np.array_equal(a, release(v, b"s" * 32, 8, 20))
    assert not np.array_equal(a, release(v, b"t" * 32, 7, 20))
    assert client_module.key_client(["b", "a", "c"]) == "a"


def _breast() -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    parts = np.array_split(np.random.default_rng(0).permutation(len(y)), 3)
    inputs = {c: {"X": x[r], "y": y[r].astype(float)} for c, r in zip("abc", parts, strict=True)}
    return inputs, x[np.concatenate(parts)], y[np.concatenate(parts)].astype(float)


ROLES = {"server": ["server"], "a": ["client"], "b": ["client"], "c": ["client"]}


def test_hfl_with_ckks_matches_masking_secure_aggregation() -> None:
    inputs, *_ = _breast()
    for v in inputs.values():
        v["X"] = (v["X"] - 50) / 100
    p = {"n_features": 30, "rounds": 3, "lr": 0.05, "batch_size": 32}
    ck = simulate(
        hfl_component,
        ROLES,
        params=p | {"aggregation": "ckks"},
        inputs=inputs,
        seed=0,
        settings=DEV,
    )
    sa = simulate(hfl_component, ROLES, params=p, inputs=inputs, seed=0, settings=DEV)
    # Same local training; the sums differ by CKKS's (~1e-6) and secagg's (~1e-7) errors,
    # divided by the number of rows.
    np.testing.assert_allclose(ck["server"]["weights"], sa["server"]["weights"], atol=1e-6)


def test_hfl_gbdt_with_ckks_matches_pooled_training() -> None:
    inputs, xs, ys = _breast()
    out = simulate(
        hfl_gbdt_component,
        ROLES,
        params={
            "n_features": 30,
            "n_trees": 2,
            "max_depth": 2,
            "sketch_bins": 256,
            "aggregation": "ckks",
        },
        inputs=inputs,
        seed=0,
        settings=DEV,
    )
    model = out["server"]["model"]
    ref = PlainGBDT(n_trees=2, learning_rate=0.3, n_bins=32, tree=TreeParams(max_depth=2))
    ref.fit(xs, ys, edges=model.edges)
    np.testing.assert_allclose(
        model.decision_function(xs), ref.decision_function(xs)[:, 0], atol=1e-4
    )
