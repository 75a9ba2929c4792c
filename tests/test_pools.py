"""Process pools without surprises ([10] item 2): a notebook-style script without an
``if __name__ == "__main__":`` guard trains SecureBoost (its encryption pool: a fork server,
the caller being multi-threaded) and maps on a :class:`LocalBackend` (spawn) and runs ONCE:
no worker re-imports the caller's main module."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from privfin.procwatch import WORKER_PREFIX, pool_context

SCRIPT = textwrap.dedent(
    """
    import threading

    import numpy as np

    import privfin.he._procs as procs
    from privfin.compute import LocalBackend
    from privfin.fl.vertical.secureboost.estimator import HeteroSecureBoost

    print("SCRIPT RUN", flush=True)
    pools = []
    make_pool = procs.make_pool

    def counting(*args, **kwargs):
        pools.append(threading.active_count())
        return make_pool(*args, **kwargs)

    procs.make_pool = counting
    rng = np.random.default_rng(0)
    xg, xh = rng.normal(size=(200, 3)), rng.normal(size=(200, 2))
    y = (xg[:, 0] + xh[:, 1] > 0).astype(int)
    est = HeteroSecureBoost(n_trees=1, max_depth=2, n_jobs=2)
    est.fit(xg, y, hosts={"host": xh}, seed=1)
    print("FITTED", est.train_scores_.shape, "POOLS", len(pools), min(pools) > 1, flush=True)
    with LocalBackend(2) as backend:
        print("MAPPED", backend.map(abs, [-1, -2, -3, -4]), flush=True)
    """
)


@pytest.mark.parametrize("how", ["script", "module"])
def test_a_script_without_main_guard_runs_once(tmp_path: Path, how: str) -> None:
    (tmp_path / "notebook.py").write_text(SCRIPT)
    target = ["notebook.py"] if how == "script" else ["-m", "notebook"]
    run = subprocess.run(
        [sys.executable, *target], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines.count("SCRIPT RUN") == 1, run.stdout  # was 3: once per worker and again
    # A process pool was made, from a multi-threaded caller (so not by fork): the fork server.
    assert "FITTED (200, 2) POOLS 1 True" in lines, run.stdout
    assert "MAPPED [1, 2, 3, 4]" in lines, run.stdout
    assert "Traceback" not in run.stderr, run.stderr


def test_pool_context_prepares_workers_without_the_main_module() -> None:
    from multiprocessing import spawn

    for method in ("spawn", "forkserver"):
        if method not in multiprocessing.get_all_start_methods():
            continue
        ctx = pool_context(method)
        worker = ctx.Process(target=print)
        assert worker.name.startswith(WORKER_PREFIX)
        data = spawn.get_preparation_data(worker.name)
        assert not {"init_main_from_path", "init_main_from_name", "main_path"} & set(data)
        assert "sys_path" in data  # everything else is prepared as before
    # Other processes are untouched (the caller's own pools still get their main module).
    other = multiprocessing.get_context("spawn").Process(target=print)
    assert not other.name.startswith(WORKER_PREFIX)
    assert spawn.get_preparation_data(other.name).keys() >= {"sys_path", "dir"}
    assert pool_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with pytest.raises(ValueError, match="not available"):
        pool_context("teleport")
