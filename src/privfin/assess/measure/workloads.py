"""The workload of each technology: a small job run by every party in one process, and the same
model or statistic computed on the pooled plaintext, to measure accuracy against.

A workload is a deterministic function of ``(size, seed, quick)``: the in-process run
(:mod:`privfin.assess.measure._run`) and the two-node run under an emulated WAN
(:mod:`privfin.assess.netem`, which rebuilds the job in each node's process) run the same job.

Data: ``rows`` rows of ``features`` standard normal features with a logistic label (true
weights fixed by the seed), split 70/30 into training and held-out rows with
:func:`split` (scikit-learn's stratified split sorted by id: the split the simulated enclave
makes too). The accuracy metric of the learning workloads is the AUC on the held-out rows.

Quick mode uses small Paillier keys (768 bits, below the 2048-bit production minimum, through
the protocols' explicit insecure flag) and the MPC trusted dealer (development mode) to stay
fast; full mode uses 2048-bit keys and the same dealer (the OT triple generator is measured by
``benchmarks/mpc_triples.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from privfin.config import Settings, require_insecure_allowed
from privfin.errors import ProtocolAbort
from privfin.runtime import Component, Context

__all__ = [
    "TECHNOLOGIES",
    "WORKLOADS",
    "Accuracy",
    "Job",
    "Size",
    "Workload",
    "logistic_data",
    "split",
]

TECHNOLOGIES: tuple[str, ...] = (
    "hfl",
    "hfl-dp",
    "vfl-he",
    "mpc",
    "psi",
    "dp-central",
    "he",
    "tee",
    "pooled-plaintext",
)

DEV = Settings(mode="development")


@dataclass(frozen=True)
class Size:
    rows: int
    features: int
    parties: int


@dataclass(frozen=True)
class Accuracy:
    metric: str
    value: float
    pooled: float
    detail: str = ""

    @property
    def gap(self) -> float:
        return abs(self.value - self.pooled)


@dataclass
class Job:
    """One run: the component every party runs, roles, parameters, inputs, and how to score it."""

    component: Component
    roles: dict[str, list[str]]
    params: dict[str, Any]
    inputs: dict[str, dict[str, Any]]
    score: Callable[[Mapping[str, Any]], Accuracy]
    #: party -> node ("a" or "b") in the two-node WAN run
    sides: dict[str, str] = field(default_factory=dict)
    settings: Settings = DEV
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Workload:
    """A technology's workload: the job builder, the base size, and the sizes of each
    scalability axis (``parties`` absent where the protocol has a fixed party count)."""

    technology: str
    build: Callable[[Size, int, bool], Job]
    base: Size
    axes: Mapping[str, tuple[int, ...]]
    full_base: Size
    full_axes: Mapping[str, tuple[int, ...]]
    networked: bool = True
    description: str = ""

    def size(self, quick: bool) -> Size:
        return self.base if quick else self.full_base

    def scale_axes(self, quick: bool) -> Mapping[str, tuple[int, ...]]:
        return self.axes if quick else self.full_axes


# -- data -------------------------------------------------------------------------------------


def logistic_data(rows: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` x ``features`` standard normal features and a logistic label (both classes
    present)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=features) * 1.5 / np.sqrt(features) + 0.3
    for _ in range(100):
        x = rng.normal(size=(rows, features))
        p = 1.0 / (1.0 + np.exp(-(x @ w - 0.2)))
        y = (rng.random(rows) < p).astype(np.float64)
        if 2 <= y.sum() <= rows - 2:
            return x, y
    raise ProtocolAbort("could not draw both classes")  # pragma: no cover - 100 draws


def split(x: np.ndarray, y: np.ndarray, seed: int, test: float = 0.3) -> tuple[np.ndarray, ...]:
    """The held-out split every workload uses: the simulated enclave's own split
    (scikit-learn, stratified, ``random_state=seed``) of rows in id order."""
    from sklearn.model_selection import train_test_split

    parts: list[np.ndarray] = train_test_split(x, y, test_size=test, random_state=seed, stratify=y)
    return tuple(parts)


def pooled_lr_auc(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray) -> float:
    """Logistic regression on the pooled plaintext (scikit-learn defaults), AUC held out."""
    from sklearn.linear_model import LogisticRegression

    from privfin.ml.metrics import roc_auc

    model = LogisticRegression(max_iter=1000).fit(xtr, ytr)
    return float(roc_auc(yte, model.decision_function(xte)))


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    from privfin.ml.metrics import roc_auc

    return float(roc_auc(y, score))


def _cols(n: int, prefix: str = "x", start: int = 0) -> list[str]:
    return [f"{prefix}{i}" for i in range(start, start + n)]


def _column_split(features: int, parties: int) -> list[list[int]]:
    """Feature indices of each party of a vertical split (every party at least one)."""
    parties = max(1, min(parties, features))
    return [list(c) for c in np.array_split(np.arange(features), parties)]


def _even_sides(parties: list[str]) -> dict[str, str]:
    return {p: "a" if i == 0 else "b" for i, p in enumerate(parties)}


# -- horizontal FL ----------------------------------------------------------------------------


def _hfl(dp: bool) -> Callable[[Size, int, bool], Job]:
    def build(size: Size, seed: int, quick: bool) -> Job:
        from privfin.fl.horizontal.fedavg import hfl_component, make_model

        x, y = logistic_data(size.rows, size.features, seed)
        xtr, xte, ytr, yte = split(x, y, seed)
        clients = [f"c{i}" for i in range(max(2, size.parties - 1))]
        shards = np.array_split(np.arange(len(ytr)), len(clients))
        params: dict[str, Any] = {
            "n_features": size.features,
            "model": "logistic",
            "rounds": 3 if quick else 10,
            "local_epochs": 2,
            "batch_size": 16,
            "lr": 0.1,
            "optimiser": "sgd",
            "round_deadline": 30.0,
        }
        if dp:
            params |= {"dp_noise_multiplier": 0.5, "dp_clip": 1.0}
        roles = {"server": ["server"], **{c: ["client"] for c in clients}}
        inputs = {c: {"X": xtr[s], "y": ytr[s]} for c, s in zip(clients, shards, strict=True)}
        pooled = pooled_lr_auc(xtr, ytr, xte, yte)

        def score(out: Mapping[str, Any]) -> Accuracy:
            model = make_model("logistic", size.features)
            w = np.asarray(out["server"]["weights"], dtype=np.float64)
            auc = _auc(yte, model.predict_proba(w, xte))
            what = "FedAvg LR" + (" with client-level DP (noise multiplier 0.5)" if dp else "")
            return Accuracy("auc", auc, pooled, f"{what} vs scikit-learn LR on the pooled rows")

        return Job(hfl_component, roles, params, inputs, score, _even_sides(list(roles)))

    return build


# -- vertical FL: hetero LR (Paillier) --------------------------------------------------------


def _vfl(size: Size, seed: int, quick: bool) -> Job:
    from privfin.fl.vertical.hetero_lr import hetero_lr_component

    x, y = logistic_data(size.rows, size.features, seed)
    xtr, xte, ytr, yte = split(x, y, seed)
    parties = ["guest", *[f"host{i}" for i in range(max(1, size.parties - 1))]]
    cols = _column_split(size.features, len(parties))
    parties = parties[: len(cols)]
    roles = {p: ["guest" if p == "guest" else "host"] for p in parties}
    inputs: dict[str, dict[str, Any]] = {
        p: {"X": xtr[:, c]} for p, c in zip(parties, cols, strict=True)
    }
    inputs["guest"]["y"] = ytr
    bits = 768 if quick else 2048
    params = {
        "mode": "guest",
        "max_iter": 3 if quick else 10,
        "batch_size": 0,
        "learning_rate": 0.3,
        "feature_counts": {p: len(c) for p, c in zip(parties, cols, strict=True)},
        "key_bits": bits,
        "insecure_allow_small_keys": bits < 2048,
    }
    pooled = pooled_lr_auc(xtr, ytr, xte, yte)

    def score(out: Mapping[str, Any]) -> Accuracy:
        z = np.full(len(yte), float(out["guest"].get("intercept") or 0.0))
        for p, c in zip(parties, cols, strict=True):
            z += xte[:, c] @ np.asarray(out[p]["coef"], dtype=np.float64)
        return Accuracy(
            "auc",
            _auc(yte, z),
            pooled,
            f"hetero LR (Paillier {bits} bits, {params['max_iter']} epochs) vs pooled LR",
        )

    notes = (f"Paillier {bits}-bit keys" + (" (insecure size, quick mode)" if bits < 2048 else ""),)
    return Job(hetero_lr_component, roles, params, inputs, score, _even_sides(parties), DEV, notes)


# -- MPC: SS-LR -------------------------------------------------------------------------------


def _mpc(size: Size, seed: int, quick: bool) -> Job:
    from privfin.mpc.lr import ss_lr

    x, y = logistic_data(size.rows, size.features, seed)
    xtr, xte, ytr, yte = split(x, y, seed)
    parties = [f"p{i}" for i in range(max(2, size.parties))]
    cols = _column_split(size.features, len(parties))
    parties = parties[: len(cols)]
    if len(parties) < 2:
        raise ValueError("ss_lr needs at least two features for two data parties")
    roles: dict[str, list[str]] = {}
    for i, p in enumerate(parties):
        roles[p] = (
            ["data", "compute", "result"] if i == 0 else ["data", "compute"] if i == 1 else ["data"]
        )
    names = {p: _cols(len(c), f"{p}_") for p, c in zip(parties, cols, strict=True)}
    inputs: dict[str, dict[str, Any]] = {}
    for p, c in zip(parties, cols, strict=True):
        frame = pd.DataFrame(xtr[:, c], columns=names[p])
        if p == parties[0]:
            frame["y"] = ytr
        inputs[p] = {"table": frame}
    params = {
        "features": names,
        "label": {"party": parties[0], "column": "y"},
        "triples": "dealer",
        "epochs": 3 if quick else 10,
        "batch_size": 64,
        "learning_rate": 0.5,
    }
    test_cols = {
        n: xte[:, c[j]] for p, c in zip(parties, cols, strict=True) for j, n in enumerate(names[p])
    }
    pooled = pooled_lr_auc(xtr, ytr, xte, yte)

    def score(out: Mapping[str, Any]) -> Accuracy:
        res = out[parties[0]]
        z = np.full(len(yte), float(res["intercept"]))
        for n, w in zip(res["features"], res["coef"], strict=True):
            z += test_cols[n] * float(w)
        return Accuracy(
            "auc",
            _auc(yte, z),
            pooled,
            f"SS-LR (2PC, dealer triples, {params['epochs']} epochs) vs pooled LR",
        )

    notes = ("multiplication triples from a trusted dealer (development mode)",)
    return Job(ss_lr, roles, params, inputs, score, _even_sides(parties), DEV, notes)


# -- PSI --------------------------------------------------------------------------------------


def _psi(size: Size, seed: int, quick: bool) -> Job:
    from privfin.psi.component import psi_component

    rng = np.random.default_rng(seed)
    n = max(2, size.parties)
    universe = [f"id{i:08d}" for i in rng.permutation(size.rows * 3)]
    common = universe[: size.rows // 2]
    rest = universe[size.rows // 2 :]
    sets: dict[str, list[str]] = {}
    for i in range(n):
        own = rest[i * (size.rows - len(common)) : (i + 1) * (size.rows - len(common))]
        sets[f"p{i}"] = common + own[: size.rows - len(common)]
    parties = list(sets)
    if n == 2:
        roles = {parties[0]: ["receiver"], parties[1]: ["sender"]}
    else:
        roles = {p: ["leader"] if i == 0 else ["member"] for i, p in enumerate(parties)}
    params = {
        "protocol": "ecdh",
        "reveal_to": "both" if n == 2 else "all",
        "cardinality_only": False,
        "normalize": "exact",
        "duplicates": "first",
    }
    expected = sorted(set.intersection(*(set(s) for s in sets.values())))

    def score(out: Mapping[str, Any]) -> Accuracy:
        ok = all(sorted(out[p]["ids"] or []) == expected for p in parties)
        return Accuracy(
            "exact_match",
            1.0 if ok else 0.0,
            1.0,
            f"every party's intersection equals the set intersection ({len(expected)} ids)",
        )

    inputs = {p: {"ids": s} for p, s in sets.items()}
    return Job(psi_component, roles, params, inputs, score, _even_sides(parties), DEV)


# -- central DP -------------------------------------------------------------------------------

DP_EPSILON = 1.0
DP_BOUND = 4.0


def _dp_mean_component(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    """A curator's DP release: the mean of every column, clamped to ``[-bound, bound]``,
    each at ``epsilon``."""
    from privfin.dp.release import mean

    frame = inputs["table"]
    out = {}
    for col in frame.columns:
        rel = mean(
            frame,
            str(col),
            float(params["epsilon"]),
            lower=-float(params["bound"]),
            upper=float(params["bound"]),
            rng=ctx.random,
        )
        out[str(col)] = float(rel.value)
    return out


def _dp(size: Size, seed: int, quick: bool) -> Job:
    x, _ = logistic_data(size.rows, size.features, seed)
    frame = pd.DataFrame(x, columns=_cols(size.features))
    clamped = np.clip(x, -DP_BOUND, DP_BOUND).mean(axis=0)

    def score(out: Mapping[str, Any]) -> Accuracy:
        got = out["curator"]
        err = float(np.mean([abs(got[c] - clamped[i]) for i, c in enumerate(frame.columns)]))
        return Accuracy(
            "mean_abs_error",
            err,
            0.0,
            f"DP means (epsilon {DP_EPSILON} per column, bounds ±{DP_BOUND}) vs the true "
            f"clamped means of {size.features} columns",
        )

    return Job(
        _dp_mean_component,
        {"curator": ["data", "result"]},
        {"epsilon": DP_EPSILON, "bound": DP_BOUND},
        {"curator": {"table": frame}},
        score,
        {},
    )


# -- HE: encrypted scoring --------------------------------------------------------------------

HE_FRAC = 16


def _he_component(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    """Encrypted scoring: the client encrypts its feature matrix under its Paillier key; the
    server multiplies by its plaintext weights and sums per row, re-randomises and returns the
    ciphertexts; only the client decrypts. Fixed point with ``HE_FRAC`` fractional bits."""
    from privfin.errors import DecodeError
    from privfin.he import paillier

    bits = int(params["key_bits"])
    small = bool(params.get("insecure_allow_small_keys", False))
    rows, feats = int(params["rows"]), int(params["features"])
    scale = 1 << HE_FRAC
    if ctx.has_role("client"):
        server = ctx.parties_with("server")[0]
        if small:
            require_insecure_allowed(ctx.settings, f"a {bits}-bit Paillier key")
        pk, sk = paillier.generate_keypair(
            bits, rng=paillier.bits_from(ctx.random), insecure_allow_small_keys=small
        )
        ctx.channel.send(server, "pk", pk.to_wire())
        xq = np.rint(np.asarray(inputs["X"], dtype=np.float64) * scale).astype(np.int64)
        cts = pk.raw_encrypt(
            [int(v) for v in xq.reshape(-1)], rng=paillier.bits_from(ctx.random), n_jobs=1
        )
        ctx.channel.send(server, "x", [int(c) for c in cts])
        back = ctx.channel.recv(server, "score")
        if not isinstance(back, list) or len(back) != rows:
            raise DecodeError("the server's reply is not one ciphertext per row")
        res = sk.raw_decrypt([int(c) for c in back], n_jobs=1)
        n = pk.n
        signed = [int(r) - n if int(r) > n // 2 else int(r) for r in res]
        return {"score": [v / scale / scale for v in signed]}
    client = ctx.parties_with("client")[0]
    pk = paillier.PublicKey.from_wire(
        ctx.channel.recv(client, "pk"), insecure_allow_small_keys=small, expect_bits=bits
    )
    cts = ctx.channel.recv(client, "x")
    if not isinstance(cts, list) or len(cts) != rows * feats:
        raise DecodeError("the client's matrix is not rows x features ciphertexts")
    if any(not isinstance(c, int) or not 0 < c < pk.n * pk.n for c in cts):
        raise DecodeError("a ciphertext is out of range")
    wq = [int(v) for v in np.rint(np.asarray(inputs["w"], dtype=np.float64) * scale)]
    out = []
    for r in range(rows):
        out.append(pk.raw_sum(pk.raw_mul(cts[r * feats : (r + 1) * feats], wq, n_jobs=1)))
    out = pk.raw_obfuscate_for_owner(out, rng=paillier.bits_from(ctx.random), n_jobs=1)
    ctx.channel.send(client, "score", [int(c) for c in out])
    return {}


def _he(size: Size, seed: int, quick: bool) -> Job:
    x, _ = logistic_data(size.rows, size.features, seed)
    w = np.random.default_rng(seed + 1).normal(size=size.features)
    bits = 1024 if quick else 2048
    params = {
        "key_bits": bits,
        "insecure_allow_small_keys": bits < 2048,
        "rows": size.rows,
        "features": size.features,
    }
    exact = x @ w

    def score(out: Mapping[str, Any]) -> Accuracy:
        got = np.asarray(out["client"]["score"], dtype=np.float64)
        return Accuracy(
            "max_abs_error",
            float(np.max(np.abs(got - exact))),
            0.0,
            f"decrypt(Enc(X) · w) vs X · w in float64 ({HE_FRAC} fractional bits, Paillier "
            f"{bits} bits)",
        )

    notes = (f"Paillier {bits}-bit keys" + (" (insecure size, quick mode)" if bits < 2048 else ""),)
    return Job(
        _he_component,
        {"client": ["client"], "server": ["server"]},
        params,
        {"client": {"X": x}, "server": {"w": w}},
        score,
        {"client": "a", "server": "b"},
        DEV,
        notes,
    )


# -- TEE (simulated enclave) ------------------------------------------------------------------


def _tee(size: Size, seed: int, quick: bool) -> Job:
    from privfin.tee.component import tee_component

    x, y = logistic_data(size.rows, size.features, seed)
    ids = [f"r{i:08d}" for i in range(size.rows)]  # id order = row order (the enclave sorts)
    data_parties = [f"d{i}" for i in range(max(1, size.parties - 1))]
    cols = _column_split(size.features, len(data_parties))
    data_parties = data_parties[: len(cols)]
    inputs: dict[str, dict[str, Any]] = {}
    for p, c in zip(data_parties, cols, strict=True):
        frame = pd.DataFrame(x[:, c], columns=_cols(len(c), start=int(c[0])))
        frame.insert(0, "id", ids)
        if p == data_parties[0]:
            frame["y"] = y.astype(int)
        inputs[p] = {"table": frame}
    roles = {p: ["data", "result"] if i == 0 else ["data"] for i, p in enumerate(data_parties)}
    roles["host"] = ["enclave_host"]
    params = {"model": "lr", "seed": seed, "test_fraction": 0.3, "label": "y"}
    xtr, xte, ytr, yte = split(x, y, seed)
    pooled = pooled_lr_auc(xtr, ytr, xte, yte)

    def score(out: Mapping[str, Any]) -> Accuracy:
        return Accuracy(
            "auc",
            float(out[data_parties[0]]["metrics"]["auc"]),
            pooled,
            "LR trained inside the SIMULATED enclave (no hardware protection) vs pooled LR "
            "on the same split",
        )

    sides = {p: "a" for p in data_parties} | {"host": "b"}
    notes = ("simulated enclave: no hardware protection (development mode)",)
    return Job(tee_component, roles, params, inputs, score, sides, DEV, notes)


# -- pooled plaintext -------------------------------------------------------------------------


def _pooled_component(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1000).fit(inputs["X"], inputs["y"])
    return {"score": model.decision_function(inputs["X_test"]).tolist()}


def _pooled(size: Size, seed: int, quick: bool) -> Job:
    x, y = logistic_data(size.rows, size.features, seed)
    xtr, xte, ytr, yte = split(x, y, seed)
    pooled = pooled_lr_auc(xtr, ytr, xte, yte)

    def score(out: Mapping[str, Any]) -> Accuracy:
        auc = _auc(yte, np.asarray(out["pool"]["score"], dtype=np.float64))
        return Accuracy("auc", auc, pooled, "LR on the pooled rows: the baseline itself")

    return Job(
        _pooled_component,
        {"pool": ["data", "result"]},
        {},
        {"pool": {"X": xtr, "y": ytr, "X_test": xte}},
        score,
        {},
    )


_ROWS_Q = (100, 400, 1600)  # a wide range: at small sizes fixed costs and noise dominate
_FEAT_Q = (2, 8, 32)
_PARTIES_Q = (2, 3, 4)
_ROWS_F = (500, 1000, 2000, 4000)
_FEAT_F = (4, 8, 16, 32)
_PARTIES_F = (2, 3, 4, 5)


def _w(
    tech: str,
    build: Callable[[Size, int, bool], Job],
    base: Size,
    full: Size,
    *,
    axes: tuple[str, ...] = ("rows", "features", "parties"),
    rows_q: tuple[int, ...] = _ROWS_Q,
    rows_f: tuple[int, ...] = _ROWS_F,
    feat_q: tuple[int, ...] = _FEAT_Q,
    networked: bool = True,
    description: str = "",
) -> Workload:
    quick = {"rows": rows_q, "features": feat_q, "parties": _PARTIES_Q}
    full_axes = {"rows": rows_f, "features": _FEAT_F, "parties": _PARTIES_F}
    return Workload(
        tech,
        build,
        base,
        {a: quick[a] for a in axes},
        full,
        {a: full_axes[a] for a in axes},
        networked,
        description,
    )


WORKLOADS: dict[str, Workload] = {
    "hfl": _w(
        "hfl",
        _hfl(False),
        Size(120, 4, 3),
        Size(2000, 16, 4),
        description="FedAvg logistic regression over secure aggregation (server + clients)",
    ),
    "hfl-dp": _w(
        "hfl-dp",
        _hfl(True),
        Size(120, 4, 3),
        Size(2000, 16, 4),
        description="FedAvg LR with client-level DP (noise multiplier 0.5) over secure aggregation",
    ),
    "vfl-he": _w(
        "vfl-he",
        _vfl,
        Size(80, 4, 2),
        Size(1000, 8, 3),
        rows_q=(40, 80, 160),
        rows_f=(250, 500, 1000, 2000),
        feat_q=(2, 4, 8),
        description="hetero logistic regression (Paillier, guest mode: no arbiter)",
    ),
    "mpc": _w(
        "mpc",
        _mpc,
        Size(120, 4, 2),
        Size(2000, 8, 2),
        description="secret-shared logistic regression (SS-LR, 2PC, vertical split)",
    ),
    "psi": _w(
        "psi",
        _psi,
        Size(200, 1, 2),
        Size(10000, 1, 2),
        axes=("rows", "parties"),
        rows_q=(100, 400, 1600),
        rows_f=(2500, 5000, 10000, 20000),
        description="ECDH PSI (two parties; n-party with a leader)",
    ),
    "dp-central": _w(
        "dp-central",
        _dp,
        Size(500, 4, 1),
        Size(100000, 16, 1),
        axes=("rows", "features"),
        rows_q=(1000, 10000, 100000),
        rows_f=(10000, 100000, 1000000),
        networked=False,
        description="central DP: a curator's Laplace means (epsilon 1 per column)",
    ),
    "he": _w(
        "he",
        _he,
        Size(20, 4, 2),
        Size(200, 8, 2),
        axes=("rows", "features"),
        rows_q=(10, 20, 40),
        rows_f=(100, 200, 400, 800),
        feat_q=(2, 4, 8),
        description="Paillier encrypted scoring: Enc(X) · w at the model owner",
    ),
    "tee": _w(
        "tee",
        _tee,
        Size(120, 4, 3),
        Size(5000, 16, 3),
        rows_q=(60, 120, 240),
        feat_q=(2, 4, 8),
        description="LR trained in a SIMULATED enclave on the join of the data parties' tables",
    ),
    "pooled-plaintext": _w(
        "pooled-plaintext",
        _pooled,
        Size(120, 4, 1),
        Size(5000, 16, 1),
        axes=("rows", "features"),
        networked=False,
        description="logistic regression on the pooled plaintext (no protection: the baseline)",
    ),
}
