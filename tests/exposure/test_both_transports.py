"""One exposure test suite, run under the memory transport and under three node processes over
mutual TLS: the result must equal the plaintext sum exactly under both."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from privfin.mpc.exposure import exposure_component, plaintext_exposure
from privfin.mpc.exposure.messages import MAX_AMOUNT
from privfin.node.cluster import cluster_up
from privfin.runtime import simulate

PARTIES = ["bank_a", "bank_b", "bank_c"]
IDS = [f"B{i:05d}" for i in range(120)]


def _books() -> dict[str, dict[str, pd.DataFrame]]:
    rng = random.Random(11)
    books: dict[str, dict[str, pd.DataFrame]] = {}
    for p in PARTIES:
        rows = [(i, rng.randrange(0, 10**12)) for i in IDS if rng.random() < 0.5]
        rows += [(IDS[1], 5), (IDS[1], 7)]  # several loans of one borrower
        books[p] = {
            "random": pd.DataFrame(rows, columns=["id", "outstanding_cents"]),
            "extreme": pd.DataFrame(
                [(IDS[0], MAX_AMOUNT - 1), (IDS[2], 0)], columns=["id", "outstanding_cents"]
            ),
            "empty": pd.DataFrame(
                {"id": pd.Series([], dtype=str), "outstanding_cents": pd.Series([], dtype="int64")}
            ),
        }
    return books


BOOKS = _books()
CASES = {
    "random": ("random", IDS),
    "subset": ("random", IDS[::7]),
    "unknown_ids": ("random", ["nobody", *IDS[:3]]),
    "extreme": ("extreme", IDS[:3]),
    "empty_books": ("empty", IDS[:4]),
}
Runner = Callable[[str, str, list[str]], list[int] | None]
_counter = itertools.count()


@pytest.fixture(scope="module", params=["memory", "http"])
def run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runner]:
    roles = {"bank_a": ["lender", "result"], "bank_b": ["lender"], "bank_c": ["lender"]}
    if request.param == "memory":

        def run_memory(job: str, book: str, ids: list[str]) -> list[int] | None:
            out = simulate(
                exposure_component,
                roles,
                params={"ids": ids},
                inputs={p: {"loans": BOOKS[p][book]} for p in PARTIES},
                job=job,
            )
            totals: list[int] | None = out["bank_a"]["totals"]
            assert out["bank_b"]["totals"] is None and out["bank_c"]["totals"] is None
            return totals

        yield run_memory
        return

    root = tmp_path_factory.mktemp("exposure-cluster")
    datasets: dict[str, dict[str, str | Path]] = {}
    for p in PARTIES:
        datasets[p] = {}
        for name, df in BOOKS[p].items():
            path = root / f"{p}-{name}.csv"
            df.to_csv(path, index=False)
            datasets[p][name] = path
    cluster = cluster_up(PARTIES, root / "cluster", datasets=datasets, message_timeout=30)

    def run_http(job: str, book: str, ids: list[str]) -> list[int] | None:
        spec = {
            "job": job,
            "component": "exposure",
            "roles": roles,
            "params": {"ids": ids},
            "inputs": {p: {"loans": book} for p in PARTIES},
        }
        out = cluster.run_job(spec, timeout=60)
        assert out["bank_b"]["totals"] is None and out["bank_c"]["totals"] is None
        totals: list[int] | None = out["bank_a"]["totals"]
        return totals

    try:
        yield run_http
    finally:
        cluster.down()


@pytest.mark.parametrize("case", sorted(CASES))
def test_exposure_equals_plaintext_sum(run: Runner, case: str) -> None:
    book, ids = CASES[case]
    totals = run(f"t{next(_counter)}-{case.replace('_', '-')}", book, list(ids))
    assert totals == plaintext_exposure(ids, {p: BOOKS[p][book] for p in PARTIES})
