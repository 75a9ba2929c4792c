"""``privfin data``: generate and inspect datasets.

``privfin data synth --scenario credit --rows 10000 --seed 7 --out data/credit`` writes one table
per party (and the scenario's extra tables) as CSV and/or Parquet plus a ``manifest.json``, then
prints a per-party summary. The generator is imported inside the command so ``privfin --help``
stays fast.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["app", "synth"]

app = typer.Typer(
    help="Datasets: generate seeded synthetic multi-party financial data.",
    no_args_is_help=True,
    add_completion=False,
)


class OutputFormat(StrEnum):
    """File formats of ``privfin data synth``."""

    csv = "csv"
    parquet = "parquet"
    both = "both"


@app.callback()
def _group() -> None:
    """Datasets: generate seeded synthetic multi-party financial data."""


@app.command(help="Generate a synthetic scenario and write one table per party to --out.")
def synth(
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario", "-s", help="credit, fraud, blacklist, idverify, risk or marketing"
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory (created if missing)")],
    rows: Annotated[int, typer.Option("--rows", "-n", help="rows per party")] = 10_000,
    seed: Annotated[
        int, typer.Option("--seed", help="non-negative seed; same seed, same data")
    ] = 0,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="csv, parquet or both")
    ] = OutputFormat.both,
) -> None:
    """Generate a synthetic scenario and write one table per party to OUT.

    Raises
    ------
    privfin.errors.ConfigError
        For an unknown scenario, ``rows`` out of range or a negative seed (the ``privfin``
        entry point turns it into ``error: ...`` and exit code 2).
    """
    import time

    from privfin.data.synthetic import generate, write

    started = time.perf_counter()
    dataset = generate(scenario, rows, seed)
    generated = time.perf_counter() - started
    formats = ("csv", "parquet") if fmt is OutputFormat.both else (fmt.value,)
    paths = write(dataset, out, formats)
    typer.echo(
        f"scenario {dataset.scenario}: {rows} rows per party, seed {seed}, "
        f"generated in {generated:.2f} s"
    )
    summary = dataset.summary()
    typer.echo(f"{'party':<12} {'rows':>10} {'cols':>5} {'shared w/ anchor':>17} {'w/ any':>7}")
    for party, rec in summary.iterrows():
        typer.echo(
            f"{party!s:<12} {int(rec['rows']):>10} {int(rec['columns']):>5} "
            f"{rec['shared_with_anchor']:>17.1%} {rec['shared_with_any']:>7.1%}"
        )
    for name, df in dataset.extras.items():
        typer.echo(f"{name:<12} {len(df):>10} {df.shape[1]:>5}  (extra, not a party)")
    if dataset.labels:
        rates = ", ".join(
            f"{p}.{c} = {dataset.parties[p][c].mean():.2%}" for p, c in dataset.labels.items()
        )
        typer.echo(f"label rates: {rates}")
    typer.echo(f"wrote {len(paths)} files to {out}")
