"""[08] item 12: lifecycle leftovers. Process-pool workers die with their parent (SIGKILL of
the parent leaves no orphan), SIGTERM is a graceful node shutdown that leaves no temporary PEM
file, and per-job secret checkpoints are deleted when a job ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from privfin.runtime import DirectoryArtifacts

PARENT = r"""
import os, random, sys
from privfin.compute import LocalBackend
from privfin.he import paillier

def main():
    backend = LocalBackend(2)
    backend.map(abs, [-1, -2, -3, -4])  # starts the compute pool (spawn)
    pk, _ = paillier.generate_keypair(512, rng=random.Random(1), insecure_allow_small_keys=True)
    pk.process_threshold = 8
    pk.encrypt(list(range(64)), rng=random.Random(2), n_jobs=2)  # starts the HE pool
    print("ready", flush=True)
    sys.stdin.read()  # wait to be killed

if __name__ == "__main__":
    main()
"""


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    out: set[int] = set()
    frontier = {pid}
    while frontier:
        nxt = {c for c, p in parents.items() if p in frontier and c not in out}
        out |= nxt
        frontier = nxt
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_no_orphan_workers_after_sigkill_of_the_parent(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    workers: set[int] = set()
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == b"ready"
        workers = _children(proc.pid)
        assert len(workers) >= 4  # 2 compute + 2 HE workers (plus helpers)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 8
        while _alive(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(workers), f"orphans left: {sorted(_alive(workers))}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        for pid in _alive(workers):  # never leave our own test's processes behind
            os.kill(pid, signal.SIGKILL)


def test_job_end_discards_secret_checkpoints_only(tmp_path: Path) -> None:
    store = DirectoryArtifacts(tmp_path / "jobs" / "j1")
    store.put("exposure.x25519.key", b"secret")
    store.put("psi.ecdh.receiver.key", b"secret")
    store.put("hetero_lr.model.json", b"{}")
    (store.root / ".tmp-leftover").write_bytes(b"half")
    assert sorted(store.discard_secrets()) == [
        ".tmp-leftover",
        "exposure.x25519.key",
        "psi.ecdh.receiver.key",
    ]
    assert [p.name for p in store.root.iterdir()] == ["hetero_lr.model.json"]
    assert DirectoryArtifacts(tmp_path / "absent").discard_secrets() == []


def test_full_disk_while_checkpointing_is_a_disk_full_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from privfin.errors import DiskFullError

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    store = DirectoryArtifacts(tmp_path / "state" / "jobs" / "j1")
    with pytest.raises(DiskFullError, match=r"disk full at .*state/jobs/j1") as info:
        store.put("exposure.x25519.key", b"secret")
    assert info.value.where == str(store.root)
    assert list(store.root.iterdir()) == []  # no temporary file left


@pytest.mark.cluster
def test_node_jobs_bad_input_secrets_and_sigterm(tmp_path: Path) -> None:
    """Two real nodes: a NaN amount fails the job at its owner with the column and count, the
    peer learns only "input rejected"; a finished job leaves no secret checkpoint; a stale PEM
    bundle is removed at start and SIGTERM is a clean shutdown (exit 0, no temporary PEM)."""
    import pandas as pd

    from privfin.node.cluster import cluster_up

    ids = [f"C{i:06d}" for i in range(20)]
    good = pd.DataFrame({"id": ids, "outstanding_cents": range(1, 21)})
    bad = good.astype({"outstanding_cents": float}).copy()
    bad.loc[3, "outstanding_cents"] = float("nan")
    bad.loc[7, "outstanding_cents"] = 1757885.9
    paths = {}
    for name, df in (("good", good), ("bad", bad)):
        paths[name] = tmp_path / f"{name}.csv"
        df.to_csv(paths[name], index=False)
    root = tmp_path / "cluster"
    for party in ("bank_a", "bank_b"):  # a bundle file an older version left behind
        (root / party / "state").mkdir(parents=True)
        (root / party / "state" / "tmpold.pem").write_text("stale")
    cluster = cluster_up(
        ["bank_a", "bank_b"],
        root,
        datasets={
            "bank_a": {"loans": paths["good"]},
            "bank_b": {"loans": paths["good"], "bad": paths["bad"]},
        },
        message_timeout=20,
    )
    try:
        assert not list(root.glob("*/state/*.pem"))
        spec = {
            "job": "exp-ok",
            "component": "exposure",
            "roles": {"bank_a": ["lender", "result"], "bank_b": ["lender"]},
            "params": {"ids": ids},
            "inputs": {"bank_a": {"loans": "loans"}, "bank_b": {"loans": "loans"}},
        }
        out = cluster.run_job(spec, timeout=60)
        assert out["bank_a"]["totals"] == [2 * v for v in range(1, 21)]
        for party in ("bank_a", "bank_b"):
            assert not list((root / party / "state" / "jobs").rglob("*.key"))
        spec = dict(
            spec, job="exp-bad", inputs={"bank_a": {"loans": "loans"}, "bank_b": {"loans": "bad"}}
        )
        for party in ("bank_a", "bank_b"):
            with cluster.client(party) as c:
                c.submit(spec)
        statuses = {}
        for party in ("bank_a", "bank_b"):
            with cluster.client(party) as c:
                deadline = time.monotonic() + 40
                while (st := c.status("exp-bad"))["status"] == "running":
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
                statuses[party] = st
        local = statuses["bank_b"]["error"]
        assert statuses["bank_b"]["status"] == "failed"
        assert "InputError" in local and "'outstanding_cents'" in local
        assert "missing (NaN or empty) in 1 row" in local
        assert "not a whole number of minor units in 1 row" in local
        assert "1757885" not in local
        remote = statuses["bank_a"]["error"]
        assert statuses["bank_a"]["status"] == "failed"
        assert "bank_b: input rejected" in remote
        for leak in ("outstanding_cents", "1757885", "NaN", str(paths["bad"])):
            assert leak not in remote
        # SIGTERM: graceful
        proc = cluster.procs["bank_b"]
        cluster.kill("bank_b", signal.SIGTERM)
        assert proc.returncode == 0
        assert "shutting down" in (root / "bank_b" / "node.log").read_text()
        assert not list((root / "bank_b" / "state").glob("*.pem"))
    finally:
        cluster.down()


@pytest.mark.cluster
def test_demo_removes_its_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from privfin.cli.demo import run_demo

    made: list[Path] = []

    def mkdtemp(prefix: str = "") -> str:
        made.append(tmp_path / f"{prefix}x")
        made[-1].mkdir(mode=0o700)
        return str(made[-1])

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    run_demo("risk", rows=300, seed=3)
    assert made and not made[0].exists()
