"""``privfin psi``: private set intersection between parties holding local files.

By default every party runs in its own node process, started for the run on 127.0.0.1 with
fresh identities and mutual TLS (``--transport nodes``); ``--transport memory`` runs the same
component code in this process over the memory transport.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from privfin.errors import ConfigError

__all__ = ["psi"]


def _parse_party(spec: str) -> tuple[str, Path]:
    from privfin.federation.transport import validate_name

    name, sep, file = spec.partition("=")
    if not sep or not name or not file:
        raise ConfigError(f"--party must look like NAME=FILE.csv, got {spec!r}")
    return validate_name("party", name), Path(file)


def _out_dir(out: Path) -> None:
    """Create ``--out`` (a directory) before any work, or say in one line why not."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory (created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the --out directory {out}: {exc.strerror}") from None


def psi(
    party: list[str] = typer.Option(..., "--party", help="NAME=FILE (csv or parquet), repeatable"),
    protocol: str = typer.Option(
        "ecdh",
        help="ecdh, kkrt (OT-based, fastest for large sets), rr22 (VOLE + OKVS) or unbalanced",
    ),
    curve: str = typer.Option(
        "x25519", help="ecdh group: x25519 (default, faster) or ristretto255 (the original)"
    ),
    id_column: str = typer.Option("id", "--id-column", help="column holding the ids"),
    out: Path = typer.Option(..., "--out", help="directory for each party's aligned rows"),
    reveal_to: str = typer.Option("both", "--reveal-to", help="receiver or both"),
    cardinality_only: bool = typer.Option(False, "--cardinality-only", help="only the size"),
    normalize: str = typer.Option("trim", help="exact, trim or trim_casefold"),
    duplicates: str = typer.Option("first", help="first or error"),
    missing: str = typer.Option(
        "error", help="rows with a missing or empty id: error (refuse the input) or drop"
    ),
    transport: str = typer.Option("nodes", help="nodes (mTLS node processes) or memory"),
    timeout: float = typer.Option(600.0, help="seconds to wait for the result"),
) -> None:
    """Intersect the id columns of the parties' files; write each party's intersecting rows,
    aligned (same order for every party), to OUT/NAME.csv, and a summary to OUT/summary.json.

    The first --party is the receiver (unbalanced: the client), the second the sender (the
    server); three or more parties run n-party PSI with the first as leader.
    """
    import pandas as pd

    from privfin.psi.api import _roles
    from privfin.psi.component import psi_component
    from privfin.psi.sources import iter_id_chunks
    from privfin.runtime import simulate

    parties = [_parse_party(s) for s in party]
    names = [n for n, _ in parties]
    if len(set(names)) != len(names) or len(names) < 2:
        raise ConfigError("give at least two --party options with distinct names")
    _out_dir(out)
    params = {
        "protocol": protocol,
        "reveal_to": reveal_to,
        "cardinality_only": cardinality_only,
        "normalize": normalize,
        "duplicates": duplicates,
        "curve": curve,
        "id_column": id_column,
        "missing": missing,
    }
    roles = _roles(names, protocol)
    if transport == "memory":
        inputs = {n: {"chunks": iter_id_chunks(f, id_column)} for n, f in parties}
        outputs = simulate(psi_component, roles, params=params, inputs=inputs, component_name="psi")
    elif transport == "nodes":
        outputs = _run_on_nodes(parties, roles, params, timeout)
    else:
        raise ConfigError(f"--transport must be nodes or memory, got {transport!r}")
    summary: dict[str, dict[str, object]] = {}
    for name, file in parties:
        result = outputs[name]
        summary[name] = {"size": result["size"]}
        if result.get("stats"):  # the party's phase timings and counters
            summary[name]["stats"] = result["stats"]
        if "traffic" in result:  # node runs: the party's channel statistics
            summary[name]["traffic"] = result["traffic"]
        if result["rows"] is None:
            continue
        wanted = result["rows"]
        keep = set(wanted)
        if "".join(file.suffixes).lower().endswith((".parquet", ".pq")):
            frames = [pd.read_parquet(file).iloc[wanted]]
        else:  # stream the file again, keeping only the intersecting rows
            frames = [
                chunk[chunk.index.isin(keep)]
                for chunk in pd.read_csv(file, dtype=str, keep_default_na=False, chunksize=250_000)
            ]
        # pandas keeps the file's row numbers as the index: put rows in the agreed order
        rows = pd.concat(frames).loc[wanted] if wanted else frames[0].iloc[:0]
        rows.to_csv(out / f"{name}.csv", index=False)
        summary[name]["file"] = str(out / f"{name}.csv")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    typer.echo(json.dumps(summary))


def _run_on_nodes(
    parties: list[tuple[str, Path]],
    roles: dict[str, tuple[str, ...]],
    params: dict[str, object],
    timeout: float,
) -> dict[str, dict[str, object]]:
    """Start one node per party (mTLS on 127.0.0.1), run the ``psi`` job, stop the nodes."""
    import secrets
    import tempfile

    from privfin.node.cluster import cluster_up

    job = f"psi-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="privfin-psi-") as tmp:
        datasets = {n: {"input": f.resolve()} for n, f in parties}
        cluster = cluster_up(
            [n for n, _ in parties], Path(tmp) / "cluster", datasets=datasets, transport="stream"
        )
        try:
            spec = {
                "job": job,
                "component": "psi",
                "roles": {n: list(r) for n, r in roles.items()},
                "params": params,
                # ids are streamed from the file in chunks: the node never loads the table
                "inputs": {
                    n: {"chunks": {"dataset": "input", "column": str(params["id_column"])}}
                    for n, _ in parties
                },
                "timeout": timeout,
            }
            for name, _ in parties:
                with cluster.client(name) as client:
                    client.submit(spec)
            typer.echo(f"job {job} running on {len(parties)} nodes over mutual TLS …", err=True)
            outputs: dict[str, dict[str, object]] = {}
            for name, _ in parties:
                with cluster.client(name) as client:
                    status = client.wait(job, timeout=timeout)
                outputs[name] = dict(status["result"]["output"])
                outputs[name]["traffic"] = status["result"].get("traffic", {})
        finally:
            cluster.down()
    return outputs
