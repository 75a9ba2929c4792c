"""``privfin init``, ``privfin node start``, ``privfin cluster up|down``, ``privfin job``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

node_app = typer.Typer(help="Run a party's node.", no_args_is_help=True)
cluster_app = typer.Typer(help="A local cluster: one node process per party.", no_args_is_help=True)
job_app = typer.Typer(
    help="Validate, submit and follow jobs; fetch their results.", no_args_is_help=True
)


def init(
    party: str = typer.Option(..., help="this party's name (letters, digits, _ . -)"),
    directory: Path = typer.Option(Path("."), "--dir", help="where to write the key and cert"),
    host: list[str] = typer.Option(
        ["localhost", "127.0.0.1"], help="DNS names / IPs peers use to reach the node"
    ),
    port: int = typer.Option(8443, help="the federation port peers connect to (mutual TLS)"),
    listen: str = typer.Option(
        "0.0.0.0",  # noqa: S104 (the federation port is mutual TLS, pinned peers only)
        help="the address the federation port listens on",
    ),
    force: bool = typer.Option(False, help="overwrite an existing key"),
) -> None:
    """Create a party's private key (0600), its self-signed certificate for mutual TLS and a
    complete node.yaml for one institution (peers and datasets to fill in)."""
    from privfin.federation.tls import create_identity, fingerprint

    ident = create_identity(party, directory, hosts=host, overwrite=force)
    fp = fingerprint(ident.cert.read_bytes())
    config = directory / "node.yaml"
    if config.exists() and not force:
        typer.echo(f"kept the existing {config} (use --force to rewrite it)")
    else:
        config.write_text(
            _NODE_YAML.format(
                party=party,
                listen=listen,
                port=port,
                cert=ident.cert.name,
                key=ident.key.name,
                op_port=port + 1,
                fingerprint=fp,
            )
        )
        typer.echo(f"config:      {config}")
    typer.echo(f"key:         {ident.key}")
    typer.echo(f"certificate: {ident.cert}")
    typer.echo(f"fingerprint: {fp}")
    typer.echo(
        "Give the certificate and fingerprint to your peers; keep the key private. Add each "
        "peer's URL, certificate and fingerprint under peers: in node.yaml "
        "(docs/deployment.md), then: privfin node start --config node.yaml"
    )


_NODE_YAML = """\
# privfin node of {party} (written by privfin init; see docs/deployment.md).
# Relative paths are relative to this file.
party: {party}
host: {listen}                 # federation port: mutual TLS, peers only
port: {port}
state_dir: ./state             # jobs, artifacts, models; back it up with the store
cert: ./{cert}                 # this node's certificate (fingerprint {fingerprint})
key: ./{key}                   # private (0600): never leaves this machine
mode: production               # development allows insecure modes for tests only
# store: postgresql://privfin@db.internal:5432/{party}   # default: state/node.sqlite
operator:                      # jobs, approvals, datasets, results, audit: local operators
  host: 127.0.0.1              # loopback; token in state/operator.token (0600)
  port: {op_port}
  tls: false
peers: {{}}
#  telco:
#    url: https://telco.example.com:8443
#    cert: ./peers/telco.crt
#    fingerprint: sha256:...   # as told by the peer's operator, over another channel
datasets: {{}}                 # or register them: privfin data register NAME FILE ...
#  loans: ./data/loans.csv
auto_approve: []
#  - partner: telco
#    purpose: monthly credit scoring
#    datasets: [loans]
"""


@node_app.command("start")
def node_start(config: Path = typer.Option(..., help="node.yaml")) -> None:
    """Run a node in the foreground until interrupted."""
    from privfin.node.config import load_config
    from privfin.node.logs import configure_logging
    from privfin.node.server import run_node

    configure_logging(logging.INFO)
    run_node(load_config(config))


@cluster_app.command("up")
def cluster_up_cmd(
    parties: str = typer.Option(..., help="comma-separated party names"),
    directory: Path = typer.Option(..., "--dir", help="cluster directory"),
    mode: str = typer.Option("production", help="production or development"),
    dataset: list[str] = typer.Option(
        [], "--dataset", help="PARTY:NAME=PATH, a dataset of a party's node (repeatable)"
    ),
    transport: str = typer.Option(
        "stream", help="stream (one long-lived mTLS connection per peer pair) or http"
    ),
) -> None:
    """Start one node per party on 127.0.0.1 with generated certificates."""
    if transport not in ("stream", "http"):
        typer.echo(f"error: --transport must be stream or http, not {transport!r}", err=True)
        raise typer.Exit(2)
    from privfin.node.cluster import cluster_up

    names = [p.strip() for p in parties.split(",") if p.strip()]
    datasets: dict[str, dict[str, Path]] = {}
    for item in dataset:
        owner, sep, rest = item.partition(":")
        name, eq, path = rest.partition("=")
        if not sep or not eq or not owner or not name or not path:
            typer.echo(f"error: --dataset {item!r} must be PARTY:NAME=PATH", err=True)
            raise typer.Exit(2)
        if owner not in names:
            typer.echo(f"error: --dataset {item!r}: no party {owner!r} in --parties", err=True)
            raise typer.Exit(2)
        if not Path(path).is_file():
            typer.echo(f"error: --dataset {item!r}: no file {path}", err=True)
            raise typer.Exit(2)
        datasets.setdefault(owner, {})[name] = Path(path).resolve()
    cluster = cluster_up(names, directory, mode=mode, datasets=datasets, transport=transport)
    for name, info in cluster.parties.items():
        typer.echo(f"{name:<16} {info['url']}  pid {info['pid']}")
    typer.echo(f"cluster is up; stop it with: privfin cluster down --dir {directory}")


@cluster_app.command("down")
def cluster_down_cmd(
    directory: Path = typer.Option(..., "--dir", help="cluster directory"),
) -> None:
    """Stop the nodes of a local cluster."""
    from privfin.node.cluster import cluster_down

    stopped = cluster_down(directory)
    typer.echo(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@job_app.command("run")
def job_run(
    spec: Path = typer.Option(..., help="job spec (JSON or YAML)"),
    directory: Path = typer.Option(..., "--dir", help="cluster directory"),
    timeout: float = typer.Option(300.0, help="seconds to wait for the result"),
) -> None:
    """Run a job on a local cluster and print each party's outcome (a pipeline is proposed by
    its first party and approved by every other party's operator, all held locally).

    The operator of a local cluster holds every party's admin identity, so each node's own
    reason for refusing is shown. Every party is asked first whether it would accept the job
    (nothing is recorded); if one still refuses the actual start, the parties already started
    are cancelled, so no job is left running alone."""
    import yaml

    from privfin.errors import ConfigError
    from privfin.node.cluster import load_cluster

    data = yaml.safe_load(spec.read_text())
    pipeline = isinstance(data, dict) and "steps" in data
    if not isinstance(data, dict) or not isinstance(
        data.get("parties" if pipeline else "roles"), dict
    ):
        typer.echo("error: the job spec must be a mapping with parties and steps", err=True)
        raise typer.Exit(2)
    if pipeline:
        from privfin.jobs.spec import SpecError, parse_spec_data
        from privfin.jobs.validate import check

        try:
            check(parse_spec_data(data, source=str(spec)), source=str(spec))
        except SpecError as exc:
            typer.echo(exc.report(), err=True)
            raise typer.Exit(1) from None
    cluster = load_cluster(directory)
    parties = list(data["parties"] if pipeline else data["roles"])
    unknown = [p for p in parties if p not in cluster.parties]
    if unknown:
        typer.echo(f"error: no node for {', '.join(unknown)} in this cluster", err=True)
        raise typer.Exit(2)
    refusals: dict[str, str] = {}
    for party in parties:
        with cluster.client(party) as client:
            try:
                client.check(data)
            except ConfigError as exc:
                refusals[party] = str(exc)
    if refusals:
        for party, why in refusals.items():
            typer.echo(f"{party} refused: {why}", err=True)
        typer.echo("nothing was started", err=True)
        raise typer.Exit(1)
    if pipeline:  # proposed by the first party, approved by every other party's operator
        with cluster.client(parties[0]) as client:
            client.propose(data)
        for party in parties[1:]:
            with cluster.client(party) as client:
                client.wait_proposal(str(data["job"]))
                client.decide(str(data["job"]), "approve")
                typer.echo(f"{party}: approved")
    started: list[str] = list(parties) if pipeline else []
    for party in [] if pipeline else parties:
        with cluster.client(party) as client:
            try:
                client.submit(data)
            except Exception as exc:
                typer.echo(f"{party} refused to start the job: {exc}", err=True)
                for other in started:
                    with cluster.client(other) as c:
                        try:
                            c.cancel(str(data["job"]))
                            typer.echo(f"{other}: cancelled", err=True)
                        except Exception as cancel_exc:
                            typer.echo(f"{other}: could not cancel: {cancel_exc}", err=True)
                raise typer.Exit(1) from None
        started.append(party)
    for party in parties:
        with cluster.client(party) as client:
            status = client.wait(data["job"], timeout=timeout)
        result = status["result"] or {}
        if "steps" in data:  # a pipeline: its steps and files (fetch them with job results)
            steps = result.get("steps", {})
            done = ", ".join(f"{s} ({len(v['outputs'])} files)" for s, v in steps.items())
            typer.echo(f"{party}: done: {done}")
        else:
            typer.echo(f"{party}: {json.dumps(result.get('output'))}")
    if "steps" in data:
        typer.echo(
            f"fetch a party's files with: privfin job results {data['job']} "
            f"--dir {directory} --party PARTY --out DIR"
        )
