"""Horizontal FL: FedAvg (logistic regression and an MLP) against Flower 1.42 with secure
aggregation on (masking or CKKS) and off, the federated histogram GBDT (masking and CKKS), one
aggregation round masking vs CKKS, and the cost of secure aggregation alone.

    .venv/bin/python benchmarks/horizontal.py            # 100 clients x 100k parameters
    .venv/bin/python benchmarks/horizontal.py --quick    # 20 clients x 10k parameters
    .venv/bin/python benchmarks/horizontal.py --parts fedavg --deployment  # + node processes

Part 1 (FedAvg against Flower): FATE's ``default_credit_homo`` (``../shared/data/fate``:
guest, host_1, host_2 = 24,000 training rows, test 6,000 rows), the training rows split into 4
clients in file order, 3 rounds of FedAvg (1 local epoch of minibatch SGD, batch 64, lr 0.05;
``--models logistic,mlp``, the MLP with 16 tanh units). Reported: wall time, bytes the server
received per round, test AUC; and the AUC of the same model trained on the pooled rows.

The peer is Flower (``flwr[simulation]==1.42.*``, which pulls Ray), installed by this script
into ``benchmarks/.venvs/flower``: a Flower App (``FLOWER_APP``: a ``NumPyClient`` with the
same model, initialisation and SGD update in numpy, the built-in weighted ``FedAvg``, the test
AUC computed by the ServerApp after the last round) on the same partitions. Deployments match:

- privfin in one process (``privfin.runtime.simulate``, memory transport) against Flower's
  simulation engine (``flwr.simulation.run_simulation``, Ray actors of one CPU each); timed:
  the call, Flower's Ray start-up included, imports excluded on both sides; repeated
  ``--repeat`` times (default 2).
- with ``--deployment``: the server and the 4 clients as privfin node processes
  (``cluster_up``, development mode, mutual TLS on loopback, the ``hfl`` component) against
  Flower's deployment engine (``flower-superlink --insecure`` and 4 ``flower-supernode``
  processes, each spawning its SuperExec and App processes; ``flwr run --stream``); timed from
  submission until the run is done, start-up of the nodes / SuperLink / SuperNodes excluded;
  a first and a second job on the same processes.

Flower does not expose the bytes it moves in simulation: its column is an estimate, the
serialised parameter arrays the server receives per round (one per client), without the
message envelope and protocol framing. privfin's is counted on the memory transport.
Target of the issue: secure aggregation on, <= 1/3 of Flower's wall time, AUC within 0.005.

Part 2 (federated histogram GBDT): the same 4 clients, 10 trees of depth 3, masking and CKKS
aggregation; wall time, bytes to the server and sent by one client, test AUC against
``PlainGBDT`` (same hyper-parameters) on the pooled rows.

Part 3 (one aggregation round after set-up, masking vs CKKS): 20 clients x 100k floats
(``--quick``: 10 x 10k); round time, bytes per client, error against the exact sum.

Part 5 (``--parts criterion``): FedAvg over node processes until it converges (10 rounds x 3
local epochs, init_seed 0) against the same model on the pooled rows (same initial weights,
optimiser, epochs): the issue's "within 0.005 AUC of pooled" criterion, LR and MLP.

Part 4 (secure aggregation alone): one round of ``n`` clients summing ``dim`` floats, no
dropouts and with 10% of the clients dropping after sharing keys (their pairwise masks are
recovered); wall time of the round (with dropouts it includes the stage deadline the server
waits for the silent clients, overlapping the other clients' masking) and bytes each client
sent and received, against the plain sum of the same vectors.

Measured here (x86_64, 2 cores, 2026-12-02, load 4-12, noisy; docs/benchmarks.md): FedAvg LR
4x3 with secure aggregation 0.15-0.42 s in one process against Flower's simulation engine's
18-56 s (AUC 0.7254 against Flower's 0.7263); node processes (init_seed 0, load 7-12)
LR 3.9-7.6 s for a first job, MLP 5.3-12.3 s, against the deployment engine's 59-107 s
(6.5-17.9x); part 5 (criterion): over nodes LR +0.0010 and MLP -0.0038 AUC against pooled.
One round of 100 clients x 100k parameters 11.0 s wall in one process, 0.82 MB sent per
client against 0.80 MB for the plain update; with 10 clients dropping after sharing keys the
sum is still exact within the bound.
Parts 2-3: GBDT 1.2-3.6 s masking, 5.9-7.1 s CKKS, AUC 0.7821 against 0.7797 pooled; one round
of 20 x 100k: masking 0.5 s and 0.81 MB per client, CKKS 5.9-10 s and 7.3 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import emit, machine, peer_python, print_table, run_peer
from privfin.config import Settings
from privfin.federation.memory import MemoryHub
from privfin.fl.horizontal.aggregation import ClientAggregation, ServerAggregation
from privfin.fl.horizontal.fedavg import LocalOptimiser, hfl_component, local_train, make_model
from privfin.fl.horizontal.gbdt import hfl_gbdt_component
from privfin.fl.horizontal.secagg import SecAggClient, SecAggParams, secagg_component
from privfin.fl.horizontal.secagg.component import params_from_mapping
from privfin.ml.metrics import roc_auc
from privfin.ml.trees import PlainGBDT, TreeParams
from privfin.runtime import Context, simulate

ROOT = Path(__file__).resolve().parents[1]
FATE = ROOT.parent / "shared" / "data" / "fate"
DEV = Settings(mode="development")
#: The FedAvg job of part 1, the same on both sides.
ROUNDS, EPOCHS, BATCH, HIDDEN = 3, 1, 64, 16
LR = {"logistic": 0.05, "mlp": 0.05}

# --- Flower, the peer of part 1 -------------------------------------------------------------
# One Flower App serves both engines: a legacy ``NumPyClient`` running the same minibatch SGD
# as privfin's ``local_train`` (same batch order rule, lr, epochs; zero-initialised LR, the
# same Glorot-uniform MLP initialisation) and the built-in ``FedAvg`` strategy (weighted by row
# counts, i.e. the same average as privfin's weighted FedAvg); the test AUC is computed by the
# ServerApp after the last round. Its clients read their partition from .npz files the
# benchmark writes from the same split as privfin's clients get.
FLOWER_REQUIREMENTS = ["flwr[simulation]==1.42.*"]

FLOWER_APP = '''"""privfin benchmark peer: FedAvg of a numpy LR / MLP (same update as privfin)."""

import json
import os
import time
from pathlib import Path

import numpy as np
from flwr.client import ClientApp, NumPyClient
from flwr.common import Context, ndarrays_to_parameters
from flwr.server import ServerApp, ServerAppComponents, ServerConfig
from flwr.server.strategy import FedAvg


def config(context):
    """The run config (flwr run) or, under run_simulation (no run config), $FB_CONFIG."""
    cfg = dict(context.run_config)
    return cfg if cfg else json.loads(os.environ["FB_CONFIG"])


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def init(model, d, h, seed):
    if model == "logistic":
        return np.zeros(d + 1)
    rng = np.random.default_rng(seed)
    a1, a2 = np.sqrt(6.0 / (d + h)), np.sqrt(6.0 / (h + 1))
    return np.concatenate(
        [rng.uniform(-a1, a1, d * h), np.zeros(h), rng.uniform(-a2, a2, h), [0.0]]
    )


def proba(model, w, x, h):
    if model == "logistic":
        return sigmoid(x @ w[:-1] + w[-1])
    d = x.shape[1]
    w1, b1 = w[: d * h].reshape(d, h), w[d * h : d * h + h]
    return sigmoid(np.tanh(x @ w1 + b1) @ w[d * h + h : d * h + 2 * h] + w[-1])


def grad(model, w, x, y, h):
    if model == "logistic":
        r = (sigmoid(x @ w[:-1] + w[-1]) - y) / len(y)
        return np.concatenate([x.T @ r, [r.sum()]])
    d = x.shape[1]
    w1, b1 = w[: d * h].reshape(d, h), w[d * h : d * h + h]
    w2, b2 = w[d * h + h : d * h + 2 * h], w[-1]
    a = np.tanh(x @ w1 + b1)
    r = (sigmoid(a @ w2 + b2) - y) / len(y)
    da = np.outer(r, w2) * (1.0 - a * a)
    return np.concatenate([(x.T @ da).ravel(), da.sum(axis=0), a.T @ r, [r.sum()]])


def auc(y, s):
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    ranks = (np.bincount(inv, weights=ranks) / counts)[inv]
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


class LocalClient(NumPyClient):
    def __init__(self, x, y, cfg, seed):
        self.x, self.y, self.cfg = x, y, cfg
        self.rng = np.random.default_rng(seed)

    def fit(self, parameters, config):
        c = self.cfg
        w = parameters[0].copy()
        n = len(self.y)
        bs, lr, h = int(c["batch-size"]), float(c["lr"]), int(c["hidden"])
        for _ in range(int(c["local-epochs"])):
            order = self.rng.permutation(n)
            for s in range(0, n, bs):
                idx = order[s : s + bs]
                w = w - lr * grad(c["model"], w, self.x[idx], self.y[idx], h)
        return [w], n, {}


def client_fn(context: Context):
    cfg = config(context)
    pid = int(context.node_config["partition-id"])
    data = np.load(Path(str(cfg["data-dir"])) / f"part{pid}.npz")
    return LocalClient(data["x"], data["y"], cfg, 1000 + pid).to_client()


client_app = ClientApp(client_fn=client_fn)


def server_fn(context: Context):
    cfg = config(context)
    rounds = int(cfg["num-server-rounds"])
    data = np.load(Path(str(cfg["data-dir"])) / "test.npz")
    xt, yt = data["x"], data["y"]
    d, h, model = xt.shape[1], int(cfg["hidden"]), str(cfg["model"])
    start = time.perf_counter()

    def evaluate(rnd, params, _config):
        if rnd == rounds:
            out = {
                "auc": auc(yt, proba(model, params[0], xt, h)),
                "rounds_s": time.perf_counter() - start,
                "param_bytes": sum(len(t) for t in ndarrays_to_parameters(params).tensors),
                "n_params": int(params[0].size),
            }
            Path(str(cfg["out"])).write_text(json.dumps(out))
        return None

    n = int(cfg["clients"])
    strategy = FedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=n,
        min_evaluate_clients=0,
        min_available_clients=n,
        evaluate_fn=evaluate,
        initial_parameters=ndarrays_to_parameters([init(model, d, h, 0)]),
    )
    return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=rounds))


server_app = ServerApp(server_fn=server_fn)
'''

# The App's pyproject for the deployment engine (``flwr run``); {config} is its run config.
FLOWER_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "fbapp"
version = "1.0.0"
description = "privfin benchmark peer"
license = "Apache-2.0"
dependencies = ["flwr[simulation]>=1.42"]

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "privfin"

[tool.flwr.app.components]
serverapp = "fbapp:server_app"
clientapp = "fbapp:client_app"

[tool.flwr.app.config]
{config}
"""

# Simulation engine: ``flwr.simulation.run_simulation`` (deprecated in 1.42 in favour of
# ``flwr run`` against a simulation SuperLink, but still the in-process engine): Ray actors of
# one CPU each. Timed: the run_simulation call (Ray start-up included, imports not).
FLOWER_SIM = """
import json, os, sys, time
app_dir, cfg = sys.argv[1], sys.argv[2]
sys.path.insert(0, app_dir)
os.environ["PYTHONPATH"] = app_dir + os.pathsep + os.environ.get("PYTHONPATH", "")
os.environ["FB_CONFIG"] = cfg
c = json.loads(cfg)
import flwr, ray, fbapp
from flwr.simulation import run_simulation
t0 = time.perf_counter()
run_simulation(fbapp.server_app, fbapp.client_app, num_supernodes=int(c["clients"]),
               backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}})
res = json.loads(open(c["out"]).read())
res["wall_s"] = time.perf_counter() - t0
res["versions"] = f"flwr {flwr.__version__}, ray {ray.__version__}"
print(json.dumps(res))
"""

# Deployment engine: one SuperLink and one SuperNode per client as processes (insecure HTTP
# on loopback; each spawns its SuperExec, which starts the ServerApp / ClientApp processes).
# Timed: ``flwr run --stream`` from submission to the end of the run, after every SuperNode is
# online (start-up excluded, as privfin's cluster start-up is).
FLOWER_DEPLOY = """
import json, os, signal, socket, subprocess, sys, time
app_dir, cfg = sys.argv[1], sys.argv[2]
c = json.loads(cfg)
bindir = os.path.dirname(sys.executable)
env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"],
           FLWR_HOME=os.path.join(app_dir, "home"))
def port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
link = port()
os.makedirs(env["FLWR_HOME"], exist_ok=True)
with open(os.path.join(env["FLWR_HOME"], "config.toml"), "w") as f:
    f.write(f'[superlink]\\ndefault = "bench"\\n\\n[superlink.bench]\\n'
            f'address = "127.0.0.1:{link}"\\ninsecure = true\\n')
logs = open(os.path.join(app_dir, "flower.log"), "w")
procs = [subprocess.Popen([os.path.join(bindir, "flower-superlink"), "--insecure",
                           "--port", str(link)], env=env, stdout=logs, stderr=logs,
                          start_new_session=True)]
try:
    time.sleep(3)
    for i in range(int(c["clients"])):
        procs.append(subprocess.Popen(
            [os.path.join(bindir, "flower-supernode"), "--insecure", "--superlink",
             f"127.0.0.1:{link}", "--port", str(port()), "--node-config",
             f"partition-id={i} num-partitions={c['clients']}"],
            env=env, stdout=logs, stderr=logs, start_new_session=True))
    deadline = time.time() + 300
    while True:
        p = subprocess.run([os.path.join(bindir, "flwr"), "supernode", "ls",
                            "--format", "json"], env=env, capture_output=True, text=True)
        try:
            nodes = json.loads(p.stdout).get("nodes", [])
        except ValueError:
            nodes = []
        if sum(n.get("status") == "online" for n in nodes) >= int(c["clients"]):
            break
        if time.time() > deadline:
            raise SystemExit("the SuperNodes did not come online: " + p.stdout + p.stderr)
        time.sleep(1)
    walls = []
    for _ in range(2):  # a first and a second run on the same SuperLink and SuperNodes
        t0 = time.perf_counter()
        subprocess.run([os.path.join(bindir, "flwr"), "run", app_dir, "bench", "--stream"],
                       env=env, stdout=logs, stderr=logs, check=True, timeout=1800)
        walls.append(time.perf_counter() - t0)
finally:
    for p in reversed(procs):
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    time.sleep(2)
    for p in reversed(procs):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
import flwr, ray
res = json.loads(open(c["out"]).read())
res["wall_s"], res["second_wall_s"] = walls
res["versions"] = f"flwr {flwr.__version__}, ray {ray.__version__}"
print(json.dumps(res))
"""


def load() -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
    names = ["guest", "host_1", "host_2"]
    paths = [FATE / f"default_credit_homo_{n}.csv" for n in [*names, "test"]]
    if not all(p.exists() for p in paths):
        sys.exit(f"{FATE} lacks default_credit_homo_*.csv (the shared data directory)")
    train = pd.concat([pd.read_csv(p) for p in paths[:3]], ignore_index=True)
    test = pd.read_csv(paths[3])
    cols = [c for c in train.columns if c.startswith("x")]
    x, y = train[cols].to_numpy(float), train["y"].to_numpy(float)
    parts = np.array_split(np.arange(len(y)), 4)
    return [(x[i], y[i]) for i in parts], test[cols].to_numpy(float), test["y"].to_numpy(float)


def job_params(model: str, d: int, secure: bool, aggregation: str = "secagg") -> dict[str, Any]:
    return {
        "n_features": d,
        "model": model,
        "hidden": HIDDEN,
        "rounds": ROUNDS,
        "local_epochs": EPOCHS,
        "batch_size": BATCH,
        "lr": LR[model],
        "secure_aggregation": secure,
        "aggregation": aggregation,
        "round_deadline": 120.0,
        # The public initial-weights seed: every party starts from MLP.init(default_rng(0)),
        # the same weights as Flower's App (init(..., 0)) and the pooled reference.
        "init_seed": 0,
    }


def fedavg(secure: bool, aggregation: str = "secagg", model: str = "logistic") -> dict[str, Any]:
    clients, xt, yt = load()
    d = xt.shape[1]
    params = job_params(model, d, secure, aggregation)
    roles = {"server": ["server"], **{f"bank{i}": ["client"] for i in range(4)}}
    inputs = {f"bank{i}": {"X": x, "y": y} for i, (x, y) in enumerate(clients)}
    hub = MemoryHub()
    t0 = time.perf_counter()
    out = simulate(
        hfl_component, roles, params=params, inputs=inputs, seed=0, settings=DEV, hub=hub
    )
    wall = time.perf_counter() - t0
    got = sum(len(p) for k, p in hub.wire if k.receiver == "server")
    m = make_model(model, d, hidden=HIDDEN)
    auc = roc_auc(yt, m.predict_proba(out["server"]["weights"], xt))
    xa = np.concatenate([c[0] for c in clients])
    ya = np.concatenate([c[1] for c in clients])
    opt = LocalOptimiser(lr=LR[model], epochs=ROUNDS * EPOCHS, batch_size=BATCH)
    wp, _ = local_train(m, m.init(np.random.default_rng(0)), xa, ya, opt, np.random.default_rng(1))
    return {
        "side": "privfin (one process)",
        "model": model,
        "secure_aggregation": secure,
        "aggregation": aggregation if secure else "plain",
        "wall_s": wall,
        "rounds_s": None,
        "server_bytes_per_round": got / ROUNDS,
        "auc": auc,
        "pooled_auc": roc_auc(yt, m.predict_proba(wp, xt)),
    }


def flower_app(root: Path, model: str) -> tuple[Path, dict[str, Any]]:
    """Write the Flower App, its run config and the clients' partitions under ``root``."""
    clients, xt, yt = load()
    app = root / f"flower-{model}"
    app.mkdir(parents=True, exist_ok=True)
    for i, (x, y) in enumerate(clients):
        np.savez(app / f"part{i}.npz", x=x, y=y)
    np.savez(app / "test.npz", x=xt, y=yt)
    cfg: dict[str, Any] = {
        "clients": len(clients),
        "num-server-rounds": ROUNDS,
        "data-dir": str(app),
        "model": model,
        "hidden": HIDDEN,
        "lr": LR[model],
        "batch-size": BATCH,
        "local-epochs": EPOCHS,
        "out": str(app / "result.json"),
    }
    (app / "fbapp.py").write_text(FLOWER_APP)
    toml = "\n".join(f"{k} = {json.dumps(v)}" for k, v in cfg.items())
    (app / "pyproject.toml").write_text(FLOWER_PYPROJECT.format(config=toml))
    return app, cfg


def flower(python: Path, root: Path, model: str, engine: str) -> dict[str, Any]:
    """Flower's run of the same FedAvg job on ``engine`` ("simulation" or "deployment")."""
    app, cfg = flower_app(root, model)
    script = FLOWER_SIM if engine == "simulation" else FLOWER_DEPLOY
    res = dict(run_peer(python, script, str(app), json.dumps(cfg), timeout=1800))
    return {
        "side": f"Flower ({engine})",
        "model": model,
        "secure_aggregation": False,
        "wall_s": res["wall_s"],
        "second_wall_s": res.get("second_wall_s"),
        "rounds_s": res["rounds_s"],
        # Estimated: the serialised parameter arrays the server receives per round (one per
        # client), without Flower's message envelope, protobuf and HTTP/gRPC framing.
        "server_bytes_per_round": float(len(load()[0]) * res["param_bytes"]),
        "auc": res["auc"],
        "versions": res["versions"],
    }


def _client_tables(root: Path) -> tuple[list[str], dict[str, Path], int]:
    clients, xt, _ = load()
    d = xt.shape[1]
    banks = [f"bank{i}" for i in range(len(clients))]
    paths = {}
    for b, (x, y) in zip(banks, clients, strict=True):
        df = pd.DataFrame(x, columns=[f"x{j}" for j in range(d)])
        df["y"] = y
        paths[b] = root / f"{b}.csv"
        df.to_csv(paths[b], index=False)
    return banks, paths, d


def _node_jobs(
    root: Path, name: str, params: dict[str, Any], runs: int
) -> tuple[list[float], dict[str, Any]]:
    """``runs`` hfl jobs on one fresh cluster (server + 4 client nodes, development mode,
    mutual TLS on loopback); the wall time of each, from submission until every party is
    done, and the last job's outputs."""
    from privfin.node.cluster import cluster_up

    banks, paths, _ = _client_tables(root)
    cluster = cluster_up(
        ["server", *banks],
        root / f"cluster-{name}",
        mode="development",
        datasets={b: {"table": paths[b]} for b in banks},
    )
    try:
        spec = {
            "job": f"hfl-{name}",
            "component": "hfl",
            "roles": {"server": ["server"], **{b: ["client"] for b in banks}},
            "params": {**params, "label": "y"},
            "inputs": {b: {"table": "table"} for b in banks},
        }
        walls = []
        for run in range(runs):  # a first job (the nodes' first import of the component),
            t0 = time.perf_counter()  # then more on the same nodes
            out = cluster.run_job({**spec, "job": f"{spec['job']}-{run}"}, timeout=1800)
            walls.append(time.perf_counter() - t0)
    finally:
        cluster.down()
    return walls, out


def fedavg_nodes(root: Path, model: str, secure: bool) -> dict[str, Any]:
    """The same job with the server and each client as a privfin node process (development
    mode, mutual TLS on loopback); timed from submission until every party is done."""
    _, xt, yt = load()
    d = xt.shape[1]
    tag = "on" if secure else "off"
    walls, out = _node_jobs(root, f"{model}-{tag}", job_params(model, d, secure), 2)
    w = np.asarray(out["server"]["weights"], dtype=float)
    return {
        "side": "privfin (nodes)",
        "model": model,
        "secure_aggregation": secure,
        "wall_s": walls[0],
        "second_wall_s": walls[1],
        "rounds_s": None,
        "server_bytes_per_round": None,
        "auc": roc_auc(yt, make_model(model, d, hidden=HIDDEN).predict_proba(w, xt)),
        "versions": "",
    }


#: Part 5, FedAvg run until it converges: 10 rounds x 3 local epochs (1 local epoch per round
#: leaves FedAvg with ~1/4 of the pooled run's optimiser steps: under-trained at 3 rounds).
CONVERGED = {
    "logistic": {"optimiser": "sgd", "lr": 0.05},
    "mlp": {"optimiser": "adam", "lr": 0.003},
}


def pooled_criterion(root: Path, model: str) -> dict[str, Any]:
    """FedAvg over node processes (secure aggregation on, public init_seed 0) against the same
    model trained on the pooled rows: same initial weights, optimiser and epochs (rounds x
    local epochs); the pooled AUC is the mean over 2 minibatch orders."""
    clients, xt, yt = load()
    d = xt.shape[1]
    params = {
        **job_params(model, d, True),
        **CONVERGED[model],
        "rounds": 10,
        "local_epochs": 3,
        "l2": 1e-3,
    }
    walls, out = _node_jobs(root, f"{model}-conv", params, 1)
    m = make_model(model, d, hidden=HIDDEN, l2=1e-3)
    fed = roc_auc(yt, m.predict_proba(np.asarray(out["server"]["weights"], float), xt))
    xa = np.concatenate([c[0] for c in clients])
    ya = np.concatenate([c[1] for c in clients])
    opt = LocalOptimiser(kind=params["optimiser"], lr=params["lr"], epochs=30, batch_size=BATCH)
    w0 = m.init(np.random.default_rng(0))
    pools = [
        roc_auc(yt, m.predict_proba(local_train(m, w0, xa, ya, opt, rng)[0], xt))
        for rng in map(np.random.default_rng, (1, 2))
    ]
    return {
        "model": model,
        "rounds x local epochs": "10 x 3",
        "optimiser": f"{params['optimiser']} lr {params['lr']}",
        "wall_s": walls[0],
        "auc_nodes": fed,
        "auc_pooled": float(np.mean(pools)),
        "gap": fed - float(np.mean(pools)),
        "load": load_avg(),
    }


def criterion_part(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [pooled_criterion(Path(tmp), m) for m in args.models.split(",")]
    print_table(
        "FedAvg over node processes (4 clients, secure aggregation) vs the same model on the"
        " pooled rows (same init_seed, optimiser, epochs)",
        rows,
    )
    for r in rows:
        emit(
            f"hfl.fedavg4.{r['model']}.nodes.converged.auc",
            "AUC",
            r["auc_nodes"],
            r["auc_pooled"],
            "same model, pooled rows",
            True,
            f"4 clients, 10 rounds x 3 local epochs, {r['load']}",
        )
        ok = r["gap"] >= -0.005
        print(
            f"target (within 0.005 of pooled) {r['model']}: gap {r['gap']:+.4f}: "
            f"{'met' if ok else 'NOT met'}"
        )


def secagg_round(n: int, dim: int, drop: int, deadline: float) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    xs = {f"c{i:03d}": rng.normal(size=dim) for i in range(n)}
    gone = set(list(xs)[:drop])

    def component(ctx: Context, params: Any, inputs: Any) -> Any:
        if ctx.party in gone:
            c = SecAggClient(ctx, "server", params_from_mapping(params), 0, inputs["x"])
            c.advertise()
            c.share()
            return None
        return secagg_component(ctx, params, inputs)

    hub = MemoryHub()
    t = n // 2 + 1
    params = {"dim": dim, "threshold": t, "stage_timeout": deadline}
    t0 = time.perf_counter()
    out = simulate(
        component,
        {"server": ["server"], **{c: ["client"] for c in xs}},
        params=params,
        inputs={c: {"x": x} for c, x in xs.items()},
        seed=0,
        settings=DEV,
        hub=hub,
        timeout=900.0,
    )
    wall = time.perf_counter() - t0
    exact = np.sum([x for c, x in xs.items() if c not in gone], axis=0)
    err = float(np.max(np.abs(out["server"]["sum"] - exact)))
    sent: dict[str, int] = defaultdict(int)
    recv: dict[str, int] = defaultdict(int)
    for key, payload in hub.wire:
        sent[key.sender] += len(payload)
        recv[key.receiver] += len(payload)
    alive = [c for c in xs if c not in gone]
    t1 = time.perf_counter()
    np.sum(list(xs.values()), axis=0)
    plain = time.perf_counter() - t1
    return {
        "clients": n,
        "dim": dim,
        "dropped": drop,
        "wall_s": wall,
        "deadline_s": deadline,
        "plain_sum_s": plain,
        "client_sent_MB": np.mean([sent[c] for c in alive]) / 1e6,
        "client_recv_MB": np.mean([recv[c] for c in alive]) / 1e6,
        "plain_MB": 8 * dim / 1e6,
        "max_error": err,
        "error_bound": out["server"]["error_bound"],
    }


def gbdt(aggregation: str, n_trees: int = 10) -> dict[str, Any]:
    """Federated histogram GBDT on the same 4 clients, against the same GBDT on pooled rows."""
    clients, xt, yt = load()
    d = xt.shape[1]
    params = {
        "n_features": d,
        "n_trees": n_trees,
        "max_depth": 3,
        "aggregation": aggregation,
        "round_deadline": 120.0,
    }
    roles = {"server": ["server"], **{f"bank{i}": ["client"] for i in range(4)}}
    inputs = {f"bank{i}": {"X": x, "y": y} for i, (x, y) in enumerate(clients)}
    hub = MemoryHub()
    t0 = time.perf_counter()
    out = simulate(
        hfl_gbdt_component, roles, params=params, inputs=inputs, seed=0, settings=DEV, hub=hub
    )
    wall = time.perf_counter() - t0
    srv = out["server"]
    got = sum(len(p) for k, p in hub.wire if k.receiver == "server")
    sent = sum(len(p) for k, p in hub.wire if k.sender == "bank0")
    xa = np.concatenate([c[0] for c in clients])
    ya = np.concatenate([c[1] for c in clients])
    t1 = time.perf_counter()
    pooled = PlainGBDT(
        n_trees=n_trees, learning_rate=0.3, n_bins=32, tree=TreeParams(max_depth=3)
    ).fit(xa, ya)
    pooled_s = time.perf_counter() - t1
    return {
        "aggregation": aggregation,
        "trees": n_trees,
        "aggregations": srv["aggregations"],
        "wall_s": wall,
        "pooled_s": pooled_s,
        "server_MB": got / 1e6,
        "client_sent_MB": sent / 1e6,
        "auc": roc_auc(yt, srv["model"].predict_proba(xt)[:, 1]),
        "pooled_auc": roc_auc(yt, pooled.predict_proba(xt)[:, 1]),
    }


def agg_round(how: str, n: int, dim: int) -> dict[str, Any]:
    """One aggregation round (after the once-per-job set-up) of n clients x dim floats."""
    rng = np.random.default_rng(0)
    xs = {f"c{i:03d}": rng.normal(size=dim) for i in range(n)}
    sa = SecAggParams(dim=dim, threshold=n // 2 + 1, stage_timeout=600.0, client_timeout=900.0)
    marks: dict[str, float] = {}

    def component(ctx: Context, params: Any, inputs: Any) -> Any:
        clients = ctx.parties_with("client")
        if ctx.has_role("server"):
            s = ServerAggregation(ctx, how, clients, prefix="b", timeout=600.0)
            s.setup()
            marks["start"] = time.perf_counter()
            res = s.run(clients, sa, 0)
            marks["end"] = time.perf_counter()
            return res
        c = ClientAggregation(ctx, how, "server", clients, prefix="b", timeout=600.0)
        c.setup()
        return c.run(sa, 0, inputs["x"])

    hub = MemoryHub()
    t0 = time.perf_counter()
    out = simulate(
        component,
        {"server": ["server"], **{c: ["client"] for c in xs}},
        inputs={c: {"x": x} for c, x in xs.items()},
        seed=0,
        settings=DEV,
        hub=hub,
        timeout=900.0,
    )
    wall = time.perf_counter() - t0
    exact = np.sum(list(xs.values()), axis=0)
    res = out["server"]
    sent: dict[str, int] = defaultdict(int)
    recv: dict[str, int] = defaultdict(int)
    for key, payload in hub.wire:
        sent[key.sender] += len(payload)
        recv[key.receiver] += len(payload)
    return {
        "aggregation": how,
        "clients": n,
        "dim": dim,
        "wall_s": wall,
        "round_s": marks["end"] - marks["start"],
        "client_sent_MB": np.mean([sent[c] for c in xs]) / 1e6,
        "client_recv_MB": np.mean([recv[c] for c in xs]) / 1e6,
        "plain_MB": 8 * dim / 1e6,
        "max_error": float(np.max(np.abs(res.total - exact))),
        "error_bound": res.error_bound,
    }


def load_avg() -> str:
    return "load " + " ".join(f"{v:.1f}" for v in os.getloadavg())


def target_note(ours: dict[str, Any], peer: dict[str, Any]) -> str:
    ratio = peer["wall_s"] / ours["wall_s"]
    gap = abs(ours["auc"] - peer["auc"])
    ok = ratio >= 3 and gap <= 0.005
    return f"{ratio:.1f}x faster, AUC gap {gap:.4f}: target {'met' if ok else 'NOT met'}"


def part1(args: argparse.Namespace, root: Path) -> None:
    """FedAvg 4 x 3 against Flower: one process vs the simulation engine, and (--deployment)
    node processes vs the deployment engine."""
    python = None if args.no_peer else peer_python("flower", FLOWER_REQUIREMENTS)
    for model in args.models.split(","):
        rows: list[dict[str, Any]] = []
        notes = []
        if not args.only_deployment:
            fedavg(True, model=model)  # warm-up (imports, first AES and X25519 calls)
        for rep in range(0 if args.only_deployment else args.repeat):
            on, off = fedavg(True, model=model), fedavg(False, model=model)
            batch = [on, off]
            if rep == 0 and model == "logistic":
                batch.append(fedavg(True, "ckks", model=model))
            peer = None if python is None else flower(python, root, model, "simulation")
            for r in batch:
                tag = {"secagg": "secagg_on", "ckks": "ckks", "plain": "secagg_off"}
                name = f"hfl.fedavg4x3.{model}.{tag[r['aggregation']]}"
                emit(
                    f"{name}.wall",
                    "s",
                    r["wall_s"],
                    None if peer is None else peer["wall_s"],
                    "Flower simulation (not run)" if peer is None else peer["versions"],
                    False,
                    f"4x3 one process vs simulation, run {rep + 1}, {load_avg()}",
                )
                if rep == 0:
                    emit(f"{name}.auc", "AUC", r["auc"], r["pooled_auc"], "pooled", True, "4x3")
            if peer is not None:
                emit(
                    f"hfl.fedavg4x3.{model}.auc_vs_flower",
                    "AUC",
                    on["auc"],
                    peer["auc"],
                    peer["versions"],
                    True,
                    f"4x3, secure aggregation on, run {rep + 1}",
                )
                notes.append(f"run {rep + 1} ({load_avg()}): {target_note(on, peer)}")
            rows += [{k: v for k, v in r.items() if k != "pooled_auc"} for r in batch]
            if peer is not None:
                rows.append({k: v for k, v in peer.items() if k not in ("versions",)})
        if rows:
            print_table(
                f"FedAvg {model}, default_credit_homo, 4 clients x {ROUNDS} rounds: privfin in"
                f" one process vs Flower's simulation engine ({machine()})",
                rows,
            )
        for n in notes:
            print(f"target (secure aggregation on <= 1/3 of Flower's wall, AUC +- 0.005) {n}")
        if not args.deployment:
            continue
        rows = [fedavg_nodes(root, model, True)]
        if not args.only_deployment:
            rows.append(fedavg_nodes(root, model, False))
        print(f"privfin nodes ({load_avg()}): {rows}", flush=True)
        peer = None
        for attempt in range(2 if python is not None else 0):  # one retry: under heavy load
            try:  # a SuperNode has failed to reach the SuperLink in time
                peer = flower(python, root, model, "deployment")  # type: ignore[arg-type]
                break
            except subprocess.CalledProcessError as exc:
                print(f"Flower deployment run failed (attempt {attempt + 1}): {exc}", flush=True)
        for r in rows:
            tag = "secagg_on" if r["secure_aggregation"] else "secagg_off"
            emit(
                f"hfl.fedavg4x3.{model}.nodes.{tag}.wall",
                "s",
                r["wall_s"],
                None if peer is None else peer["wall_s"],
                "Flower deployment (not run)" if peer is None else peer["versions"],
                False,
                f"4x3 node processes vs SuperLink+SuperNodes, {load_avg()}",
            )
            emit(
                f"hfl.fedavg4x3.{model}.nodes.{tag}.second_wall",
                "s",
                r["second_wall_s"],
                None if peer is None else peer["second_wall_s"],
                "Flower deployment (not run)" if peer is None else peer["versions"],
                False,
                f"4x3, second job on the same processes, {load_avg()}",
            )
        if peer is not None:
            rows.append(peer)
        print_table(
            f"FedAvg {model}, 4 clients x {ROUNDS} rounds: privfin node processes vs Flower's"
            f" deployment engine ({load_avg()})",
            [{k: v for k, v in r.items() if k != "versions"} for r in rows],
        )
        if peer is not None:
            print(f"target (deployment, first job): {target_note(rows[0], peer)}")
            second = {"wall_s": rows[0]["second_wall_s"], "auc": rows[0]["auc"]}
            peer2 = {"wall_s": peer["second_wall_s"], "auc": peer["auc"]}
            print(f"target (deployment, second job): {target_note(second, peer2)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", default="fedavg,gbdt,agg,secagg", help="parts to run (+ criterion)")
    ap.add_argument("--models", default="logistic,mlp", help="models of part 1")
    ap.add_argument("--repeat", type=int, default=2, help="runs of part 1's key measurement")
    ap.add_argument("--no-peer", action="store_true", help="do not install and run Flower")
    ap.add_argument("--deployment", action="store_true", help="part 1 also as processes")
    ap.add_argument(
        "--only-deployment", action="store_true", help="part 1 as processes only (implies it)"
    )
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    args.deployment = args.deployment or args.only_deployment
    print(machine(), load_avg())
    if "fedavg" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            part1(args, Path(tmp))
    if "gbdt" in parts:
        gbdt_part()
    if "agg" in parts:
        agg_part(args.quick)
    if "secagg" in parts:
        secagg_part(args.quick)
    if "criterion" in parts:
        criterion_part(args)


def gbdt_part() -> None:
    rows = [gbdt("secagg"), gbdt("ckks")]
    print_table(
        "Federated histogram GBDT, default_credit_homo, 4 clients, 10 trees x depth 3", rows
    )
    for r in rows:
        tag = r["aggregation"]
        emit(f"hfl.gbdt4.{tag}.wall", "s", r["wall_s"], None, "", False, "4x10x3")
        emit(
            f"hfl.gbdt4.{tag}.auc",
            "AUC",
            r["auc"],
            r["pooled_auc"],
            "same GBDT on pooled rows",
            True,
            "4x10x3",
        )


def agg_part(quick: bool) -> None:
    n, dim = (10, 10_000) if quick else (20, 100_000)
    rows = [agg_round("secagg", n, dim), agg_round("ckks", n, dim)]
    print_table(f"One aggregation round, masking vs CKKS, {n} clients x {dim} parameters", rows)
    for r in rows:
        size = f"{n}x{dim}"
        emit(f"hfl.{r['aggregation']}.round_wall", "s", r["round_s"], None, "", False, size)
        emit(
            f"hfl.{r['aggregation']}.client_sent",
            "MB",
            r["client_sent_MB"],
            r["plain_MB"],
            "plain update",
            False,
            size,
        )


def secagg_part(quick: bool) -> None:
    n, dim = (20, 10_000) if quick else (100, 100_000)
    first = secagg_round(n, dim, 0, 600.0)
    # With dropouts the server waits one stage deadline for the silent clients: set it to
    # twice the no-dropout round (ample for the honest clients) and report the rest apart.
    rows = [first, secagg_round(n, dim, n // 10, max(2.0, 2 * first["wall_s"]))]
    print_table(f"Secure aggregation, one round, {n} clients x {dim} parameters", rows)
    for r in rows:
        size = f"{n}x{dim},drop{r['dropped']}"
        emit("hfl.secagg.round_wall", "s", r["wall_s"], None, "", False, size)
        emit(
            "hfl.secagg.client_sent",
            "MB",
            r["client_sent_MB"],
            r["plain_MB"],
            "plain update",
            False,
            size,
        )


if __name__ == "__main__":
    main()
