"""Process pools without surprises ([10] item 2): a notebook-style script without an
``if __name__ == "__main__":`` guard trains SecureBoost (its encryption pool: a fork server,
the caller being multi-threaded) and maps on a :class:`LocalBackend` (spawn) and runs ONCE:
no worker re-imports the caller's main module."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
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
    est = HeteroSecureBoost(n_trees=1, max_depth=2, n_jobs=2, seed=1)
    est.fit({"guest": xg, "host": xh}, y)
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


ORPHANS = textwrap.dedent(
    """
    import random, sys, threading

    from privfin.he import paillier

    print("SCRIPT RUN", flush=True)
    pk, _ = paillier.generate_keypair(512, rng=random.Random(1), insecure_allow_small_keys=True)
    pk.process_threshold = 8
    # From a second thread: the pool is started by the fork server, not by fork.
    work = threading.Thread(target=pk.encrypt, args=(list(range(64)),), kwargs={"n_jobs": 2})
    work.start()
    work.join()
    pool = pk._pool
    print("WORKERS", pool._mp_context.get_start_method(),
          *[p.pid for p in pool._processes.values()], flush=True)
    sys.stdin.read()  # wait to be killed
    """
)


def _running(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


@pytest.mark.skipif(
    not Path("/proc/self/stat").exists()
    or "forkserver" not in multiprocessing.get_all_start_methods(),
    reason="needs /proc and the forkserver start method (Linux)",
)
def test_fork_server_workers_of_a_script_without_guard_die_with_it(tmp_path: Path) -> None:
    (tmp_path / "notebook.py").write_text(ORPHANS)
    proc = subprocess.Popen(
        [sys.executable, "notebook.py"], cwd=tmp_path, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    workers: set[int] = set()
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "SCRIPT RUN"
        line = proc.stdout.readline().split()
        assert line[:2] == ["WORKERS", "forkserver"], line
        workers = {int(pid) for pid in line[2:]}
        assert len(_running(workers)) == 2
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 8  # the watchdog polls every 0.5 s
        while _running(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(workers), f"orphans left: {sorted(_running(workers))}"
        assert proc.stdout.read() == ""  # the script never ran a second time
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        for pid in _running(workers):  # never leave our own test's processes behind
            os.kill(pid, signal.SIGKILL)
