"""The ``privfin`` command.

Each group of sub-commands lives in its own module of :mod:`privfin.cli` and is mounted here;
heavy imports happen inside the commands so ``privfin --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from privfin import __version__
from privfin.cli import assess as assess_cli
from privfin.cli import audit as audit_cli
from privfin.cli import data as data_cli
from privfin.cli import jobs as jobs_cli
from privfin.cli import node as node_cli
from privfin.cli import simulate as simulate_cli
from privfin.cli import tee as tee_cli
from privfin.cli.psi import psi as psi_cli
from privfin.errors import PrivfinError

app = typer.Typer(
    name="privfin",
    help="privfin: privacy-preserving computing for finance (FL, MPC, PSI, HE, DP, TEE).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cli.app, name="data")
app.add_typer(audit_cli.app, name="audit")
app.add_typer(assess_cli.app, name="assess")
app.add_typer(node_cli.node_app, name="node")
app.add_typer(node_cli.cluster_app, name="cluster")
app.add_typer(node_cli.job_app, name="job")
app.add_typer(jobs_cli.model_app, name="model")
app.add_typer(tee_cli.app, name="tee")
app.command("init")(node_cli.init)
app.command("simulate")(simulate_cli.simulate_cmd)
app.command(name="psi")(psi_cli)


@app.command()
def version() -> None:
    """Print the privfin version."""
    typer.echo(f"privfin {__version__}")


@app.command()
def demo(
    scenario: str = typer.Argument(
        "credit", help="credit (default), risk, idverify, fraud, blacklist or marketing"
    ),
    rows: int = typer.Option(0, help="rows per party (0: the scenario's default)"),
    seed: int = typer.Option(7, help="seed of the synthetic data"),
    keep: Path | None = typer.Option(
        None, help="keep keys, data and node state in this directory (else removed)"
    ),
    wait: bool = typer.Option(
        False, help="keep the cluster up at the end (dashboard) until Ctrl-C"
    ),
    data: Path | None = typer.Option(
        None, help="credit: run on the public default_credit split in DIR"
    ),
    key_bits: int = typer.Option(
        1024, help="credit, marketing: Paillier key size (2048: production mode)"
    ),
    roc: Path = typer.Option(Path("credit_roc.svg"), help="credit: where to save the ROC plot"),
) -> None:
    """Run a scenario end to end on a local cluster of nodes over mutual TLS."""
    from privfin.cli.demo import run_demo

    run_demo(
        scenario,
        rows=rows or None,
        seed=seed,
        keep=keep,
        wait=wait,
        data=data,
        key_bits=key_bits,
        roc=roc,
    )


def main() -> None:
    """Console-script entry point: turn privfin errors into a clear message and exit code 2."""
    import httpx

    try:
        app()
    except PrivfinError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except httpx.TransportError as exc:
        where = exc.request.url if exc.request is not None else "the node"
        typer.echo(
            f"error: cannot reach {where} ({type(exc).__name__}): is the node running?", err=True
        )
        sys.exit(2)
    except httpx.HTTPStatusError as exc:
        try:
            detail = exc.response.json().get("detail", "")
        except ValueError:
            detail = exc.response.text[:200]
        typer.echo(f"error: the node answered {exc.response.status_code}: {detail}", err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
