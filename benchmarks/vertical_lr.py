"""Hetero LR benchmark: privfin vs FATE 2.2.0 coordinated LR on FATE's breast split.

Setting (as the FATE figure in ../shared/data/fate/README.md): 569 rows, guest 10 features and
the labels, host 20 features, 20 epochs, batch 240, RMSprop, lr 0.15, L2 0.01, zero init.
privfin runs its arbiter mode (the same roles as FATE's coordinated LR) with **2048-bit**
Paillier keys (and, as an extra line, 2048-bit OU); FATE runs with its default 1024-bit
Paillier, through its multiprocess launcher in standalone mode (one process per party, no
FATE-Flow). Reported: training wall time (FATE: measured inside the guest around ``fit``, so
process start-up is excluded) and training AUC.

privfin runs its three parties as threads of one process over the memory transport (gmpy2
releases the GIL in the bulk loops). The machine is shared with other work: timings are noisy.

``--quick`` (under a minute): privfin only, 5 epochs, no FATE run (``peer = None``).
Library use: ``run(quick) -> list[dict]`` (the JSON lines), called by ``benchmarks/vertical.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import emit, machine, print_table

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "fate"
PEER_NAME = "FATE 2.2.0 coordinated LR (Paillier 1024, multiprocess launcher)"

# Runs inside FATE's venv, one process per party (spawned by FATE's launcher).
FATE_SCRIPT = r"""
import json, os, time
from fate.arch.launchers.multiprocess_launcher import launch

EPOCHS = int(os.environ["PF_EPOCHS"])


def run(ctx):
    import pandas as pd
    from fate.arch.dataframe import PandasReader
    from fate.ml.glm import (CoordinatedLRModuleArbiter, CoordinatedLRModuleGuest,
                             CoordinatedLRModuleHost)

    ctx.cipher.set_phe(ctx.device, {"kind": "paillier", "key_length": 1024})
    opt = {"method": "rmsprop", "penalty": "l2", "alpha": 0.01, "optimizer_params": {"lr": 0.15}}
    sched = {"method": "constant", "scheduler_params": {"factor": 1.0}}
    init = {"method": "zeros", "fit_intercept": True}
    common = dict(epochs=EPOCHS, batch_size=240, optimizer_param=opt, learning_rate_param=sched)
    start = time.perf_counter()
    if ctx.is_on_arbiter:
        CoordinatedLRModuleArbiter(early_stop="diff", tol=1e-4, **common).fit(ctx.sub_ctx("train"))
        return
    guest = ctx.is_on_guest
    df = pd.read_csv(os.environ["PF_GUEST" if guest else "PF_HOST"])
    df.insert(0, "sample_id", df["id"])
    reader = PandasReader(sample_id_name="sample_id", match_id_name="id",
                          label_name="y" if guest else None, dtype="float32")
    data = reader.to_frame(ctx, df)
    cls = CoordinatedLRModuleGuest if guest else CoordinatedLRModuleHost
    module = cls(init_param=init, **common)
    module.fit(ctx.sub_ctx("train"), data)
    elapsed = time.perf_counter() - start
    result = module.predict(ctx.sub_ctx("predict"), data)
    if guest:
        from sklearn.metrics import roc_auc_score
        pdf = result.as_pd_df()
        auc = roc_auc_score(pdf["label"].astype(int), pdf["predict_score"].astype(float))
        with open(os.environ["PF_OUT"], "w") as fh:
            json.dump({"seconds": elapsed, "auc": float(auc), "epochs": EPOCHS}, fh)


if __name__ == "__main__":
    launch(run)
"""


def breast() -> tuple[Any, Any, Any]:
    import pandas as pd

    g = pd.read_csv(DATA / "breast_hetero_guest.csv")
    h = pd.read_csv(DATA / "breast_hetero_host.csv").set_index("id").loc[g["id"]].reset_index()
    return (
        g.drop(columns=["id", "y"]).to_numpy(),
        h.drop(columns=["id"]).to_numpy(),
        g["y"].to_numpy(float),
    )


def run_ours(epochs: int, scheme: str = "paillier", mode: str = "arbiter") -> dict[str, float]:
    """privfin hetero LR at 2048-bit keys; returns seconds (incl. key generation) and AUC."""
    from privfin.config import Settings
    from privfin.fl.vertical.hetero_lr import HeteroLogisticRegression
    from privfin.ml.metrics import roc_auc

    xg, xh, y = breast()
    # Every party runs here, so no key owner is a stranger: OU peer keys (no modulus proof,
    # refused in production by default) are accepted explicitly for the OU line.
    settings = Settings(allow_insecure=True) if scheme == "ou" else None
    est = HeteroLogisticRegression(
        guest="guest", mode=mode, scheme=scheme, key_bits=2048, max_iter=epochs, batch_size=240,
        optimizer="rmsprop", learning_rate=0.15, lr_schedule="constant", penalty="l2",
        alpha=0.01, sigmoid="taylor", seed=1,  # FATE's settings, not privfin's defaults
        settings=settings,
    )  # fmt: skip
    start = time.perf_counter()
    est.fit({"guest": xg, "host": xh}, y)
    seconds = time.perf_counter() - start
    z = xg @ est.coef_["guest"] + xh @ est.coef_["host"] + est.intercept_
    return {"seconds": seconds, "auc": roc_auc(y, z)}


def run_fate(epochs: int) -> dict[str, float] | None:
    """FATE's coordinated LR through its multiprocess launcher; ``None`` if it cannot run."""
    try:
        from _fate import fate_python

        python = fate_python()
    except Exception as exc:
        print(f"[bench] FATE unavailable: {exc}", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory(prefix="fate-lr-") as tmp:
        script = Path(tmp) / "fate_lr.py"
        script.write_text(FATE_SCRIPT)
        out = Path(tmp) / "out.json"
        env = {
            **os.environ, "PF_EPOCHS": str(epochs), "PF_OUT": str(out), "COLUMNS": "200",
            "PF_GUEST": str(DATA / "breast_hetero_guest.csv"),
            "PF_HOST": str(DATA / "breast_hetero_host.csv"),
        }  # fmt: skip
        cmd = [str(python), str(script), "--parties", "guest:9999", "host:10000",
               "arbiter:10000", "--log_level", "WARNING", "--data_dir", tmp]  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.run(
            cmd, check=False, cwd=tmp, env=env, capture_output=True, text=True, timeout=3600
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0 or not out.exists():
            print(f"[bench] FATE failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}",
                  file=sys.stderr)  # fmt: skip
            return None
        result: dict[str, float] = json.loads(out.read_text())
        result["wall"] = wall
        return result


def run(quick: bool) -> list[dict[str, Any]]:
    """Run the benchmark; returns the JSON result lines."""
    epochs = 5 if quick else 20
    size = f"breast 569 rows, 10+20 features, {epochs} epochs, batch 240, {machine()}"
    ours = run_ours(epochs)
    ours_ou = None if quick else run_ours(epochs, scheme="ou")
    fate = None if quick else run_fate(epochs)
    lines = [
        emit("vertical.lr.breast.train_time", "s", ours["seconds"],
             None if fate is None else fate["seconds"], PEER_NAME, False,
             f"{size}; ours Paillier 2048 (arbiter mode) vs FATE Paillier 1024"),
        emit("vertical.lr.breast.train_auc", "AUC", ours["auc"],
             None if fate is None else fate["auc"], PEER_NAME, True, size),
    ]  # fmt: skip
    if ours_ou is not None:
        lines.append(
            emit("vertical.lr.breast.train_time_ou", "s", ours_ou["seconds"],
                 None if fate is None else fate["seconds"], PEER_NAME, False,
                 f"{size}; ours OU 2048 (arbiter mode) vs FATE Paillier 1024")
        )  # fmt: skip
    rows = [{"system": "privfin Paillier-2048", "seconds": ours["seconds"], "auc": ours["auc"]}]
    if ours_ou is not None:
        rows.append(
            {"system": "privfin OU-2048", "seconds": ours_ou["seconds"], "auc": ours_ou["auc"]}
        )
    rows.append({"system": "FATE Paillier-1024",
                 "seconds": None if fate is None else fate["seconds"],
                 "auc": None if fate is None else fate["auc"]})  # fmt: skip
    print_table(f"Hetero LR on breast, {epochs} epochs (shared machine: timings are noisy)", rows)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="privfin only, 5 epochs, under a minute")
    args = ap.parse_args()
    run(args.quick)


if __name__ == "__main__":
    main()
