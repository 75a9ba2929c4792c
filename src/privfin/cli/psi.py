"""``privfin psi``: private set intersection between parties holding local files.

By default every party runs in its own node process, started for the run on 127.0.0.1 with
fresh identities and mutual TLS (``--transport nodes``); ``--transport memory`` runs the same
component code in this process over the memory transport.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
    from privfin.psi.roles import psi_roles

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
        "output": "rows",  # the rows are read from each party's file: no ids in the result
    }
    roles = psi_roles(names, protocol)
    if transport == "memory":
        # (the protocols are imported here only: with nodes, only the nodes load them)
        from privfin.psi.component import psi_component
        from privfin.psi.sources import iter_id_chunks
        from privfin.runtime import simulate

        inputs = {n: {"chunks": iter_id_chunks(f, id_column)} for n, f in parties}
        outputs = simulate(psi_component, roles, params=params, inputs=inputs, component_name="psi")
    elif transport == "nodes":
        with _run_on_nodes(parties, roles, params, timeout) as outputs:
            # the nodes shut down (in the background) while the outputs are written
            _write_outputs(parties, outputs, out)
        return
    else:
        raise ConfigError(f"--transport must be nodes or memory, got {transport!r}")
    _write_outputs(parties, outputs, out)


def _write_outputs(
    parties: list[tuple[str, Path]], outputs: dict[str, dict[str, Any]], out: Path
) -> None:
    """Each party's intersecting rows, aligned, to OUT/NAME.csv; the summary to
    OUT/summary.json and stdout."""
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
        _write_rows(file, result["rows"], out / f"{name}.csv")
        summary[name]["file"] = str(out / f"{name}.csv")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    typer.echo(json.dumps(summary))


def _write_rows(file: Path, wanted: list[int], dest: Path) -> None:
    """Rows ``wanted`` (data-row numbers) of ``file``, in that order, to the CSV file
    ``dest``: copied as bytes from a plain CSV file (:mod:`privfin.data.csvlines`, the same
    bytes pandas would write), else read and written with pandas."""
    if _copy_plain_rows(file, wanted, dest):
        return
    import pandas as pd

    if "".join(file.suffixes).lower().endswith((".parquet", ".pq")):
        frames = [pd.read_parquet(file).iloc[wanted]]
    else:
        frames = _csv_rows(file, wanted)
    # pandas keeps the file's row numbers as the index: put rows in the agreed order
    rows = pd.concat(frames).loc[wanted] if wanted else frames[0].iloc[:0]
    rows.to_csv(dest, index=False)


def _copy_plain_rows(file: Path, wanted: list[int], dest: Path, batch: int = 65_536) -> bool:
    """Write the header and rows ``wanted`` of ``file`` to ``dest`` by copying their lines,
    if ``file`` is a plain CSV file (then pandas would read every cell verbatim and write
    the same lines); False, with nothing written, for any other file."""
    import numpy as np

    from privfin.data.csvlines import plain_csv

    if "".join(file.suffixes).lower().endswith((".parquet", ".pq")):
        return False
    rows = np.asarray(wanted, dtype=np.int64)
    with plain_csv(file) as plain:
        if plain is None or (rows.size and not 0 <= rows.min() <= rows.max() < plain.rows):
            return False
        with dest.open("wb") as fh:
            fh.write(plain.header + b"\n")
            for at in range(0, rows.size, batch):
                fh.write(_gather_lines(plain.data, plain.starts, plain.ends, rows[at : at + batch]))
    return True


def _gather_lines(data: Any, starts: Any, ends: Any, rows: Any) -> bytes:
    """The lines ``data[starts[r]:ends[r]]`` of ``rows``, each followed by a newline."""
    import numpy as np

    first, lengths = starts[rows], ends[rows] - starts[rows] + 1  # (+ its newline)
    at = np.cumsum(lengths) - lengths  # where each line goes in the output
    source = np.repeat(first - at, lengths) + np.arange(int(lengths.sum()))
    source[at + lengths - 1] = 0  # (the newline: the file's last line may have none)
    view = np.frombuffer(data, dtype=np.uint8)
    try:
        out = view[source]
    finally:
        del view  # (the file's map closes once no array refers to it)
    out[at + lengths - 1] = ord("\n")
    return out.tobytes()


def _csv_rows(file: Path, wanted: list[int], chunk_rows: int = 250_000) -> list[Any]:
    """The rows ``wanted`` (data-row numbers) of a CSV file, streamed again a chunk at a time
    and read verbatim as strings; stops after the last wanted row. At least one frame."""
    import numpy as np
    import pandas as pd

    member = np.zeros(max(wanted, default=-1) + 1, dtype=bool)
    member[wanted] = True
    frames: list[Any] = []
    at = 0
    reader = pd.read_csv(
        file, dtype=str, keep_default_na=False, na_filter=False, chunksize=chunk_rows
    )
    with reader:
        for chunk in reader:
            hit = np.flatnonzero(member[at : at + len(chunk)])
            at += len(chunk)
            if hit.size or not frames:
                frames.append(chunk.iloc[hit])
            if at >= member.size:
                break
    return frames


@contextlib.contextmanager
def _run_on_nodes(
    parties: list[tuple[str, Path]],
    roles: dict[str, tuple[str, ...]],
    params: dict[str, object],
    timeout: float,
) -> Iterator[dict[str, dict[str, Any]]]:
    """Start one node per party (mTLS on 127.0.0.1), run the ``psi`` job and yield each
    party's output; the nodes are stopped in a background thread as soon as the outputs are
    in (the caller writes its files meanwhile), and waited for when the block ends."""
    import secrets
    import tempfile

    from privfin.node.cluster import cluster_up

    job = f"psi-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="privfin-psi-") as tmp:
        datasets = {n: {"input": f.resolve()} for n, f in parties}
        cluster = cluster_up(
            [n for n, _ in parties], Path(tmp) / "cluster", datasets=datasets, transport="stream"
        )
        stopping = _Background(cluster.down)
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
            outputs: dict[str, dict[str, Any]] = {}
            with contextlib.ExitStack() as stack:  # one client per node for the whole job
                clients = {n: stack.enter_context(cluster.client(n)) for n, _ in parties}
                for client in clients.values():
                    client.submit(spec)
                typer.echo(f"job {job} running on {len(parties)} nodes over mutual TLS …", err=True)
                for name, client in clients.items():
                    status = client.wait(job, timeout=timeout)
                    outputs[name] = dict(status["result"]["output"])
                    outputs[name]["traffic"] = status["result"].get("traffic", {})
            stopping.start()
            yield outputs
        finally:
            stopping.finish()


class _Background:
    """``fn`` run once in a thread from :meth:`start`; :meth:`finish` waits for it (or runs it
    here if it was never started) and raises what it raised."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self._fn = fn
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # handed to finish(), in the caller's thread
            self._error = exc

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="privfin-psi-stop", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        if self._thread is None:
            self._run()
        else:
            self._thread.join()
        if self._error is not None:
            raise self._error
