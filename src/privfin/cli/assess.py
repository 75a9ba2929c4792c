"""``privfin assess``: assess a technology, a job, or a scenario under several technologies.

``privfin assess technology NAME [--quick/--full] [--out DIR] [--pdf]``,
``privfin assess job ID --node-config node.yaml [--out DIR] [--pdf]`` and
``privfin assess compare --scenario credit --technologies vfl-he,mpc,... [--out DIR]`` write
report.json and report.html (and report.pdf with ``--pdf``) into DIR. With ``--node-config``
and no ``--out``, reports go under the node's ``state_dir/assessments/`` where the dashboard's
Assessments page lists them. Exit code 0: written; 2: a usage error.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from privfin.cli._errors import one_line_errors

if TYPE_CHECKING:
    from privfin.assess.report import Report

__all__ = ["REPORTS_DIR", "app", "reports_dir"]

#: Where a node keeps its assessment reports, under its state directory.
REPORTS_DIR = "assessments"

app = typer.Typer(
    help="Assess technologies and jobs from seven perspectives; write HTML/JSON/PDF reports.",
    no_args_is_help=True,
    add_completion=False,
)

OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="directory for the report")]
NodeOpt = Annotated[
    Path | None, typer.Option("--node-config", "-c", help="a node.yaml: store the report there")
]
PdfOpt = Annotated[bool, typer.Option("--pdf", help="also write report.pdf (needs Chromium)")]
QuickOpt = Annotated[
    bool, typer.Option("--quick/--full", help="small sizes (CI) or the full assessment")
]
SeedOpt = Annotated[int, typer.Option(help="seed of data, attacks and measurements")]


@app.callback()
def _group() -> None:
    """Assess technologies and jobs from seven perspectives; write HTML/JSON/PDF reports."""


def reports_dir(state_dir: Path) -> Path:
    """The node's directory of assessment reports (one sub-directory per report)."""
    return Path(state_dir) / REPORTS_DIR


def _progress(text: str) -> None:
    typer.echo(f"[{time.strftime('%H:%M:%S')}] {text}", err=True)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]


def _target(out: Path | None, node_config: Path | None, name: str) -> Path:
    if out is not None:
        return out
    stamp = time.strftime("%Y%m%dT%H%M%S")
    if node_config is not None:
        from privfin.node.config import load_config

        return reports_dir(load_config(node_config).state_dir) / f"{_slug(name)}-{stamp}"
    return Path("assessments") / f"{_slug(name)}-{stamp}"


def _write(report: Report, out: Path, pdf: bool) -> None:
    from privfin.assess.report import write_report

    paths = write_report(report, out, pdf=False)
    if pdf:
        from privfin.assess.report import to_pdf

        paths.append(to_pdf(paths[1], out / "report.pdf"))
    for p in paths:
        typer.echo(str(p))


def _summary(report: Report) -> None:
    from privfin.assess.assess import Comparison

    items = report.assessments if isinstance(report, Comparison) else (report,)
    for a in items:
        marks = " ".join(
            f"{p.value}={'-' if r is None else int(r)}" for p, r in a.ratings().items()
        )
        _progress(f"{a.subject}: {marks}")


@app.command("technology")
def technology_cmd(
    name: Annotated[
        str,
        typer.Argument(
            help="hfl, hfl-dp, vfl-he, mpc, psi, dp-central, he, tee or pooled-plaintext"
        ),
    ],
    quick: QuickOpt = True,
    out: OutOpt = None,
    node_config: NodeOpt = None,
    pdf: PdfOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Assess one technology: facts, probes, attacks, measurements, ratings."""
    from privfin.assess.assess import assess_technology

    with one_line_errors():
        target = _target(out, node_config, f"technology-{name}")
        report = assess_technology(name, quick=quick, seed=seed, progress=_progress)
        _summary(report)
        _write(report, target, pdf)


@app.command("job")
def job_cmd(
    job: Annotated[str, typer.Argument(help="the job id")],
    node_config: Annotated[Path, typer.Option("--node-config", "-c", help="the node's node.yaml")],
    out: OutOpt = None,
    pdf: PdfOpt = False,
) -> None:
    """Assess one job from this node's store and audit log (compliance checks with clauses)."""
    from privfin.assess.assess import assess_job
    from privfin.node.config import load_config

    with one_line_errors():
        config = load_config(node_config)
        certs = {p: Path(peer.cert).read_bytes() for p, peer in config.peers.items()}
        certs[config.party] = Path(config.cert).read_bytes()
        _progress(f"job {job}: reading {config.party}'s store and audit log")
        report = assess_job(config.store_url(), job, node=config.party, certificates=certs)
        _summary(report)
        _write(report, _target(out, node_config, f"job-{job}"), pdf)


@app.command("compare")
def compare_cmd(
    scenario: Annotated[str, typer.Option(help="the scenario, e.g. credit")],
    technologies: Annotated[
        str, typer.Option(help="comma-separated, e.g. vfl-he,mpc,tee,dp-central,pooled-plaintext")
    ],
    quick: QuickOpt = True,
    out: OutOpt = None,
    node_config: NodeOpt = None,
    pdf: PdfOpt = False,
    seed: SeedOpt = 0,
) -> None:
    """Run one scenario under several technologies and lay the seven perspectives side by
    side, with the cost (time, bytes, rounds) next to the leakage."""
    from privfin.assess.assess import assess_compare

    names = [t.strip() for t in technologies.split(",") if t.strip()]
    with one_line_errors():
        target = _target(out, node_config, f"compare-{scenario}")
        report = assess_compare(scenario, names, quick=quick, seed=seed, progress=_progress)
        _summary(report)
        _write(report, target, pdf)
