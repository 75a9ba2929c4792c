"""A restarted PSI party redraws the same shuffles and ephemeral keys (its seed is checkpointed
with its blinding key), so it resends byte-identical messages instead of conflicting with what it
sent before the crash ([08]: crash-resume of the sender, n-party and unbalanced roles)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from privfin.crypto.prg import PrgRandom
from privfin.crypto.random import SystemRandom
from privfin.psi.common import job_random, random_permutation
from privfin.runtime.context import MemoryArtifacts


def _ctx(artifacts: MemoryArtifacts) -> Any:
    return cast(Any, SimpleNamespace(artifacts=artifacts, random=SystemRandom()))


def test_prg_random_is_a_deterministic_stream_of_its_seed() -> None:
    a, b, c = PrgRandom(bytes(32)), PrgRandom(bytes(32)), PrgRandom(b"\x01" * 32)
    first = a.bytes(40)
    assert first == b.bytes(40) != c.bytes(40)
    assert a.bytes(40) != first  # a stream, not a repeated block
    assert all(0 <= a.below(7) < 7 for _ in range(200))
    with pytest.raises(ValueError):
        PrgRandom(b"short")


def test_job_random_survives_a_restart_and_differs_between_jobs() -> None:
    store = MemoryArtifacts()
    before = random_permutation(job_random(_ctx(store), "psi.ecdh.sender.seed.key"), 1000)
    assert store.get("psi.ecdh.sender.seed.key") is not None
    after_restart = random_permutation(job_random(_ctx(store), "psi.ecdh.sender.seed.key"), 1000)
    other_job = random_permutation(job_random(_ctx(MemoryArtifacts()), "psi.x.seed.key"), 1000)
    assert (before == after_restart).all()
    assert not (before == other_job).all()
    assert sorted(before.tolist()) == list(range(1000))
