"""PSI between node processes over mutual TLS gives what the in-process run gives."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from privfin.cli.main import app


def test_psi_cli_nodes_and_memory_agree(tmp_path: Path) -> None:
    rng = random.Random(4)
    universe = [f"id{i:05d}" for i in range(3000)]
    a = rng.sample(universe, 1200)
    b = rng.sample(universe, 900)
    pd.DataFrame({"id": a, "x": range(len(a))}).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"id": b, "y": range(len(b))}).to_csv(tmp_path / "b.csv", index=False)
    outs = {}
    for transport in ("nodes", "memory"):
        out = tmp_path / transport
        result = CliRunner().invoke(
            app,
            [
                "psi",
                "--party",
                f"bank={tmp_path / 'a.csv'}",
                "--party",
                f"tel={tmp_path / 'b.csv'}",
                "--id-column",
                "id",
                "--out",
                str(out),
                "--transport",
                transport,
            ],
        )
        assert result.exit_code == 0, result.output
        outs[transport] = {p: pd.read_csv(out / f"{p}.csv", dtype=str) for p in ("bank", "tel")}
        summary = json.loads((out / "summary.json").read_text())
        assert summary["bank"]["size"] == len(set(a) & set(b))
    expected = sorted(set(a) & set(b))
    for transport, tables in outs.items():
        assert list(tables["bank"]["id"]) == list(tables["tel"]["id"]), transport
        assert sorted(tables["bank"]["id"]) == expected
    assert outs["nodes"]["bank"].equals(outs["memory"]["bank"])
    assert outs["nodes"]["tel"].equals(outs["memory"]["tel"])
