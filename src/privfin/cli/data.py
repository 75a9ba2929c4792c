"""``privfin data``: generate datasets and register them with a node.

``privfin data synth --scenario credit --rows 10000 --seed 7 --out data/credit`` writes one table
per party (and the scenario's extra tables) as CSV and/or Parquet plus a ``manifest.json``, then
prints a per-party summary.

``privfin data register|list|show --config node.yaml`` manage the node's data registry
(:mod:`privfin.data.registry`) in the node's store; they work while the node runs (the node
reads the registry at each job check). Heavy imports happen inside the commands so
``privfin --help`` stays fast.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from privfin.data.registry import DatasetInfo, DatasetRegistry
    from privfin.node.config import NodeConfig

__all__ = ["app", "list_datasets", "register", "show", "synth"]

_HELP = (
    "Datasets: generate seeded synthetic multi-party financial data; register a node's "
    "datasets with their JR/T 0171 levels and usage policy."
)

app = typer.Typer(
    help=_HELP,
    no_args_is_help=True,
    add_completion=False,
)


class OutputFormat(StrEnum):
    """File formats of ``privfin data synth``."""

    csv = "csv"
    parquet = "parquet"
    both = "both"


@app.callback(help=_HELP)
def _group() -> None:
    """Datasets: synthetic data and the node's data registry."""


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


_CONFIG = typer.Option("--config", "-c", help="the node's node.yaml")


def _registry(config: Path) -> tuple[DatasetRegistry, NodeConfig]:
    """The registry in the store of the node configured by ``config`` (migrated if needed),
    and that node's config."""
    from privfin.data.registry import DatasetRegistry
    from privfin.node.config import load_config
    from privfin.store import open_engine, upgrade

    cfg = load_config(config)
    engine = open_engine(cfg.store_url())
    upgrade(engine)  # idempotent; a node that runs has done it already
    return DatasetRegistry(engine), cfg


def _parse_levels(specs: list[str]) -> dict[str, str]:
    from privfin.data.registry import Level
    from privfin.errors import ConfigError

    choices = "|".join(lv.value for lv in Level)
    out: dict[str, str] = {}
    for spec in specs:
        field, sep, level = spec.rpartition("=")
        level = level.strip().upper()
        if not sep or not field.strip() or level not in choices.split("|"):
            raise ConfigError(f"bad --level {spec!r}: use FIELD={choices}, e.g. --level phone=C2")
        out[field.strip()] = level
    return out


@app.command(help="Register a dataset (CSV, Parquet or SQL query) with this node.")
def register(
    name: Annotated[str, typer.Argument(help="dataset name jobs will use")],
    source: Annotated[str, typer.Argument(help="CSV or Parquet file, or a SQLAlchemy URL")],
    config: Annotated[Path, _CONFIG],
    id_column: Annotated[str, typer.Option("--id-column", help="the column identifying rows")],
    label: Annotated[str | None, typer.Option("--label", help="the label column")] = None,
    level: Annotated[
        list[str] | None,
        typer.Option("--level", help="FIELD=C1|C2|C3 (JR/T 0171 level), repeatable"),
    ] = None,
    default_level: Annotated[
        str, typer.Option("--default-level", help="level of fields without --level")
    ] = "C2",
    partner: Annotated[
        list[str] | None,
        typer.Option("--partner", help="party it may be used with, repeatable; '*' = any peer"),
    ] = None,
    purpose: Annotated[
        list[str] | None,
        typer.Option("--purpose", help="purpose it may serve, repeatable; '*' = any"),
    ] = None,
    query: Annotated[
        str | None, typer.Option("--query", help="SQL query (for a SQL URL source)")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="register an existing name again")
    ] = False,
    dp_budget: Annotated[
        float | None,
        typer.Option(
            "--dp-budget",
            help="total differential-privacy epsilon of the dataset (default: none, so no DP "
            "release; kept from the previous version with --replace)",
        ),
    ] = None,
    legal_basis: Annotated[
        str | None,
        typer.Option(
            "--legal-basis",
            help="the legal basis on which the data is held and shared: consent, contract, "
            "legal_obligation, public_interest, legitimate_interest or licensed_source "
            "(default: none recorded; kept from the previous version with --replace)",
        ),
    ] = None,
) -> None:
    """Register SOURCE as dataset NAME: capture its schema, rows and digest, set the fields'
    levels and the usage policy (no partner and no purpose allowed unless given).

    Raises
    ------
    privfin.errors.ConfigError
        Missing file, unknown id/label/level column (the message lists the columns), bad
        ``--level`` syntax, an existing name without ``--replace``.
    """
    from privfin.data.registry import Level, UsagePolicy
    from privfin.errors import ConfigError

    levels = _parse_levels(level or [])
    if default_level.strip().upper() not in {lv.value for lv in Level}:
        raise ConfigError(f"bad --default-level {default_level!r}: use C1, C2 or C3")
    registry, cfg = _registry(config)
    before = None
    kept_budget = None
    kept_basis = None
    if replace:
        try:
            old = registry.get(name)
            before, kept_budget = old.version, old.policy.dp_budget
            kept_basis = old.policy.legal_basis
        except ConfigError:
            before = None
    policy = UsagePolicy(
        frozenset(partner or ()),
        frozenset(purpose or ()),
        dp_budget if dp_budget is not None else kept_budget,
        legal_basis if legal_basis is not None else kept_basis,
    )
    info = registry.register(
        name,
        source,
        id_column=id_column,
        label=label,
        levels={k: Level(v) for k, v in levels.items()},
        default_level=Level(default_level.strip().upper()),
        policy=policy,
        query=query,
        replace=replace,
    )
    if before is None:
        what = "registered"
    elif before == info.version:
        what = "unchanged"
    else:
        what = f"re-registered (was version {before})"
    typer.echo(f"dataset {info.name!r} {what}: version {info.version}, {info.rows} rows")
    _show(info)
    pinned = set(cfg.peers)
    for p in sorted(policy.partners - pinned - {"*"}):
        typer.echo(f"note: partner {p!r} is not a pinned peer of this node (yet)")


@app.command("list", help="List the datasets registered with this node.")
def list_datasets(
    config: Annotated[Path, _CONFIG],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """One row per dataset: version, source kind, rows, fields per level, policy."""
    import json

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    infos = _registry(config)[0].list()
    if as_json:
        typer.echo(json.dumps([i.public() for i in infos], indent=2))
        return
    if not infos:
        typer.echo("no datasets registered")
        return
    table = Table(title="registered datasets")
    for col in ("name", "ver", "kind", "rows", "C3", "C2", "C1", "partners", "purposes"):
        table.add_column(col, justify="right" if col in ("ver", "rows") else "left")
    for i in infos:
        counts = {lv: sum(f.level.value == lv for f in i.fields) for lv in ("C3", "C2", "C1")}
        table.add_row(
            Text(i.name),
            str(i.version),
            i.kind.value,
            f"{i.rows:,}",
            *(str(counts[lv]) for lv in ("C3", "C2", "C1")),
            Text(", ".join(sorted(i.policy.partners)) or "(none)"),
            Text(", ".join(sorted(i.policy.purposes)) or "(none)"),
        )
    Console(width=max(120, Console().width)).print(table)


@app.command(help="Show a registered dataset: schema with levels, rows, digest, policy.")
def show(
    name: Annotated[str, typer.Argument(help="dataset name")],
    config: Annotated[Path, _CONFIG],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Everything the registry knows of NAME (a SQL URL's password is hidden)."""
    import json

    registry = _registry(config)[0]
    info = registry.get(name)
    spent = _dp_status(registry, name)
    if as_json:
        typer.echo(json.dumps({**info.public(), "dp": spent}, indent=2))
        return
    _show(info, spent)


def _dp_status(registry: DatasetRegistry, name: str) -> dict[str, Any]:
    """The dataset's DP budget, what is spent of it and its last spends (the ledger)."""
    from privfin.dp.ledger import BudgetLedger

    return BudgetLedger(registry.engine, registry).status(name)


@app.command(help="Set a dataset's differential-privacy budget (total, or one party's cap).")
def budget(
    name: Annotated[str, typer.Argument(help="dataset name")],
    config: Annotated[Path, _CONFIG],
    epsilon: Annotated[float, typer.Option("--epsilon", help="total epsilon (>= 0)")],
    delta: Annotated[float, typer.Option("--delta", help="total delta (>= 0, < 1)")] = 1e-6,
    party: Annotated[
        str,
        typer.Option("--party", help="cap what this receiving party may get ('*' = total)"),
    ] = "*",
) -> None:
    """Set NAME's privacy budget: every DP release on it is charged to it and refused when it
    would exceed it (lowering it below what is spent stops further releases)."""
    from privfin.dp.ledger import BudgetLedger

    registry, cfg = _registry(config)
    registry.get(name)  # a registered dataset only
    BudgetLedger(registry.engine, registry).set_budget(
        name, epsilon, delta, party=party, who=f"{cfg.party}:cli"
    )
    spent = _dp_status(registry, name)
    typer.echo(
        f"dataset {name!r}: DP budget epsilon {epsilon:g}, delta {delta:g}"
        f"{'' if party == '*' else f' for party {party!r}'}; spent epsilon "
        f"{spent['spent_epsilon']:.6g}"
    )


def _show(info: DatasetInfo, dp: dict[str, Any] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=max(120, Console().width))
    p = info.policy
    lines = [
        f"dataset:     {info.name} (version {info.version}, {info.origin})",
        f"source:      {info.kind.value} {info.display_location}",
        *([f"query:       {info.query}"] if info.query else []),
        f"rows:        {info.rows:,}",
        f"sha256:      {info.digest}",
        f"registered:  {info.registered_at.isoformat(timespec='seconds')}",
        f"partners:    {', '.join(sorted(p.partners)) or '(none: no job may use it)'}",
        f"purposes:    {', '.join(sorted(p.purposes)) or '(none: no job may use it)'}",
        f"dp budget:   {'not set' if p.dp_budget is None else p.dp_budget}",
        f"legal basis: {p.legal_basis or '(not recorded)'}",
    ]
    if dp is not None:
        b = dp["budget"]
        limit = "" if b is None else f" of {b['epsilon']:.6g} (delta {b['delta']:.3g})"
        lines.append(
            f"dp spent:    epsilon {dp['spent_epsilon']:.6g}{limit}, delta "
            f"{dp['spent_delta']:.3g}, in {dp['releases']} release(s)"
        )
    for line in lines:
        console.print(line, highlight=False, markup=False)
    table = Table(title=f"fields of {info.name}")
    for col in ("field", "type", "level", "role"):
        table.add_column(col)
    for f in info.fields:
        role = "id" if f.name == info.id_column else "label" if f.name == info.label else ""
        table.add_row(Text(f.name), Text(f.dtype), f.level.value, role)
    console.print(table)
