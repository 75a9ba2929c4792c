"""``privfin job validate|submit|status|results|cancel`` and ``privfin model export|import|list``.

A command talks to one node through its own admin identity: ``--config node.yaml`` (the
node's configuration on this machine) or ``--dir CLUSTER --party NAME`` (a local cluster made
by ``privfin cluster up``). ``job submit --dir`` submits to every party of a local cluster.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from privfin.cli.node import job_app

model_app = typer.Typer(
    help="Export a trained model from a job, import it for later jobs.", no_args_is_help=True
)

_CONFIG = typer.Option(None, "--config", help="the node's node.yaml")
_DIR = typer.Option(None, "--dir", help="a local cluster directory (with --party)")
_PARTY = typer.Option(None, "--party", help="the party whose node to use (with --dir)")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _client(config: Path | None, directory: Path | None, party: str | None) -> Any:
    from privfin.node.client import NodeClient

    if config is not None:
        from privfin.node.config import load_config

        return NodeClient.for_config(load_config(config))
    if directory is not None:
        from privfin.node.cluster import load_cluster

        cluster = load_cluster(directory)
        if party is None:
            if len(cluster.parties) != 1:
                raise _fail(f"--party is needed: one of {', '.join(cluster.parties)}")
            party = next(iter(cluster.parties))
        if party not in cluster.parties:
            raise _fail(f"no party {party!r} in {directory} ({', '.join(cluster.parties)})")
        return cluster.client(party)
    raise _fail("name the node: --config node.yaml, or --dir CLUSTER --party NAME")


_ROWS = typer.Option(
    None,
    "--rows",
    help="rows of the data for the cost estimate (default: this node's dataset with "
    "--config, else 10,000)",
)
_RECALIBRATE = typer.Option(
    False, "--recalibrate", help="measure this machine's unit costs again (cached otherwise)"
)
_NO_ESTIMATE = typer.Option(False, "--no-estimate", help="skip the cost estimate of MPC steps")
_DEFAULT_ROWS = 10_000


@job_app.command("validate")
def job_validate(
    spec: Path = typer.Argument(..., help="pipeline or job spec (YAML or JSON)"),
    config: Path | None = _CONFIG,
    rows: int | None = _ROWS,
    recalibrate: bool = _RECALIBRATE,
    no_estimate: bool = _NO_ESTIMATE,
) -> None:
    """Check a whole pipeline before anything runs: schema, components, roles, parameters,
    every input reference and the DAG; with --config also this node's datasets and models.
    Each problem names its path (and line) in the file. A single-component job (``component``,
    ``roles``, ``params``) is checked against its schema. For MPC steps (``ss_lr``,
    ``mpc_stats``) it then prints the cost estimate: rounds, bytes per computing party and
    expected time with each provider (privfin.mpc.cost; unit costs measured once per machine)."""
    import yaml

    from privfin.jobs.spec import SpecError, load_spec
    from privfin.jobs.validate import validate

    try:
        raw = yaml.safe_load(spec.read_text())
    except (OSError, yaml.YAMLError):
        raw = None  # load_spec reports it with its line
    if isinstance(raw, dict) and "component" in raw and "steps" not in raw:
        _validate_job(spec, raw, config, rows, recalibrate, no_estimate)
        return
    try:
        pipeline, lines = load_spec(spec)
    except SpecError as exc:
        typer.echo(exc.report(), err=True)
        raise typer.Exit(1) from None
    party = local = engine = None
    if config is not None:
        from privfin.data.registry import DatasetRegistry
        from privfin.node.config import load_config
        from privfin.node.runner import LocalDatasetChecks
        from privfin.store import open_engine

        cfg = load_config(config)
        engine = open_engine(cfg.store_url())
        party = cfg.party
        local = LocalDatasetChecks(cfg, DatasetRegistry(engine), pipeline)
    try:
        problems = validate(pipeline, lines=lines, party=party, local=local)
    finally:
        if engine is not None:
            engine.dispose()
    if problems:
        for p in problems:
            typer.echo(f"{spec}: {p}", err=True)
        raise typer.Exit(1)
    steps = " -> ".join(pipeline.order())
    typer.echo(f"{spec}: valid ({len(pipeline.parties)} parties; steps {steps})")
    if no_estimate:
        return
    from privfin.jobs.cost import ESTIMATED

    for name in pipeline.order():
        step = pipeline.steps[name]
        if step.component not in ESTIMATED:
            continue
        n, source = rows, "given"
        if n is None and config is not None:
            n, source = _pipeline_rows(config, pipeline, name)
        if n is None:
            n, source = _DEFAULT_ROWS, "assumed: pass --rows"
        _print_estimate(name, step.component, step.roles, step.params, n, source, recalibrate)


def _validate_job(
    spec: Path,
    raw: dict[str, Any],
    config: Path | None,
    rows: int | None,
    recalibrate: bool,
    no_estimate: bool,
) -> None:
    """A single-component job: its schema, its component, then its cost estimate."""
    from pydantic import ValidationError

    from privfin.jobs.registry import COMPONENTS
    from privfin.node.runner import JobSpec

    try:
        job = JobSpec.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(x) for x in err["loc"])
            typer.echo(f"{spec}: {where}: {err['msg']}", err=True)
        raise typer.Exit(1) from None
    if job.component not in COMPONENTS:
        typer.echo(
            f"{spec}: component: unknown component {job.component!r}; known: "
            f"{', '.join(sorted(COMPONENTS))}",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"{spec}: valid ({len(job.roles)} parties; component {job.component})")
    if no_estimate:
        return
    source = "given"
    if rows is None and config is not None:
        rows, source = _rows_on_node(config, job), "this node's dataset"
    if rows is None:
        rows, source = _DEFAULT_ROWS, "assumed: pass --rows"
    _print_estimate(job.job, job.component, job.roles, job.params, rows, source, recalibrate)


def _rows_on_node(config: Path, job: Any) -> int | None:
    """Rows of the first dataset this node's party gives the job (its registry counts them)."""
    from privfin.node.config import load_config

    party = load_config(config).party
    names = [v if isinstance(v, str) else v.dataset for v in job.inputs.get(party, {}).values()]
    return _registered_rows(config, names[0]) if names else None


def _pipeline_rows(config: Path, pipeline: Any, step: str) -> tuple[int | None, str]:
    """Rows of the dataset this node's party gives ``step``: its registered row count, or,
    when the step reads an earlier step's output (rows aligned by PSI), the count of the
    dataset that earlier step read, as an upper bound."""
    from privfin.jobs.components import DECLARATIONS
    from privfin.jobs.spec import parse_ref
    from privfin.node.config import load_config

    party = load_config(config).party
    seen: set[str] = set()
    current, bound = step, False
    while current in pipeline.steps and current not in seen:
        seen.add(current)
        st = pipeline.steps[current]
        decl = DECLARATIONS.get(st.component)
        ports = [p.name for p in decl.inputs if p.kind == "table"] if decl else []
        given = st.inputs_of(party)
        ref = next((given[p] for p in ports if given.get(p)), None)
        if ref is None:
            return None, ""
        kind, alias, _ = parse_ref(ref)
        if kind == "dataset":
            use = pipeline.parties.get(party)
            if use is None or alias not in use.datasets:
                return None, ""
            name = use.datasets[alias].name
            what = "at most, as " if bound else ""
            return _registered_rows(config, name), f"{what}this node's dataset {name}"
        if kind != "step":
            return None, ""
        current, bound = alias, True
    return None, ""


def _registered_rows(config: Path, name: str) -> int | None:
    from privfin.data.registry import DatasetRegistry
    from privfin.errors import ConfigError
    from privfin.node.config import load_config
    from privfin.store import open_engine

    engine = open_engine(load_config(config).store_url())
    try:
        return int(DatasetRegistry(engine).get(name).rows)
    except ConfigError:
        return None
    finally:
        engine.dispose()


def _print_estimate(
    step: str,
    component: str,
    roles: Any,
    params: Any,
    rows: int,
    source: str,
    recalibrate: bool,
) -> None:
    from privfin.jobs.cost import ESTIMATED, estimate_step, load_calibration, render

    if component not in ESTIMATED:
        return
    calibration, measured = load_calibration(refresh=recalibrate)
    if measured:
        typer.echo("(measured this machine's unit costs for the estimate; cached)")
    for line in render(
        step, rows, source, estimate_step(component, roles, params, rows, calibration)
    ):
        typer.echo(line)


@job_app.command("submit")
def job_submit(
    spec: Path = typer.Argument(..., help="pipeline spec (YAML or JSON)"),
    config: Path | None = _CONFIG,
    directory: Path | None = _DIR,
    party: str | None = _PARTY,
) -> None:
    """Validate a pipeline and propose it from this node (--config, or --dir CLUSTER --party
    NAME; with --dir alone, from the spec's first party). Every other party's node checks it
    against its own data and waits for its operator's approval (privfin job approve)."""
    from privfin.jobs.spec import SpecError, load_spec
    from privfin.jobs.validate import check

    try:
        pipeline, lines = load_spec(spec)
        check(pipeline, lines=lines, source=str(spec))
    except SpecError as exc:
        typer.echo(exc.report(), err=True)
        raise typer.Exit(1) from None
    data = json.loads(pipeline.model_dump_json(exclude_none=True))
    if config is None and directory is not None and party is None:
        party = pipeline.initiator or next(iter(pipeline.parties))
    with _client(config, directory, party) as client:
        view = client.propose(data)
    waiting = ", ".join(view.get("waiting_for") or []) or "nobody"
    typer.echo(f"job {pipeline.job} proposed by {view['initiator']}; waiting for: {waiting}")


def _show_proposal(view: dict[str, Any]) -> None:
    uses = view.get("uses") or {}
    typer.echo(f"job {view['job']}: {view['status']} (proposed by {view['initiator']})")
    typer.echo(f"  purpose:    {uses.get('purpose')}")
    typer.echo(
        f"  retention:  {uses.get('retention_days')} days; results to "
        f"{', '.join(uses.get('results') or [])}"
    )
    typer.echo(f"  parties:    {', '.join(uses.get('parties') or [])}")
    typer.echo(f"  technology: {', '.join(uses.get('technologies') or [])}")
    for alias, d in (uses.get("datasets") or {}).items():
        fields = ", ".join(f"{f} ({lv})" for f, lv in d["fields"].items())
        typer.echo(f"  dataset {alias}: {d['dataset']}: {fields}")
        demand = d.get("legal_basis_required")
        typer.echo(
            f"    legal basis: {d.get('legal_basis') or '(not recorded)'}"
            + (f" (the job demands {' or '.join(demand)})" if demand else "")
        )
    if uses.get("timeout"):
        typer.echo(f"  timeout:    {uses['timeout']} s")
    for st in uses.get("steps") or []:
        typer.echo(
            f"  step {st['step']}: {st['component']} as {'/'.join(st['roles'])} "
            f"with {', '.join(st['parties'])}"
        )
        params = {**(st.get("params") or {}), **(st.get("party_params") or {})}
        if params:
            typer.echo(f"    params: {json.dumps(params, sort_keys=True)[:300]}")
        if st.get("reveals"):
            typer.echo(f"    reveals: {st['reveals']}")
        enclave = st.get("enclave")
        if enclave and "measurement" in enclave:
            typer.echo(
                f"    enclave: {enclave['component']} measurement {enclave['measurement']}"
                + (f" -- {enclave['warning']}" if enclave.get("simulated") else "")
            )
        if st.get("timeout"):
            typer.echo(f"    timeout: {st['timeout']} s")
    if view.get("reason"):
        typer.echo(f"  note (local): {view['reason']}")
    for p, d in (view.get("decisions") or {}).items():
        typer.echo(f"  {p}: {d['decision']}" + (f" ({d['reason']})" if d["reason"] else ""))
    if view.get("waiting_for"):
        typer.echo(f"  waiting for: {', '.join(view['waiting_for'])}")


@job_app.command("inbox")
def job_inbox(
    config: Path | None = _CONFIG,
    directory: Path | None = _DIR,
    party: str | None = _PARTY,
    all_: bool = typer.Option(False, "--all", help="also decided proposals"),
) -> None:
    """Proposals waiting for this node's decision, with exactly what each would use here."""
    with _client(config, directory, party) as client:
        views = client.proposals(None if all_ else "pending")
    for view in views:
        _show_proposal(view)
    if not views:
        typer.echo("no proposals" + ("" if all_ else " waiting"))


def _decide(
    decision: str,
    job: str,
    reason: str,
    config: Path | None,
    directory: Path | None,
    party: str | None,
) -> None:
    with _client(config, directory, party) as client:
        view = client.decide(job, decision, reason)
    _show_proposal(view)


@job_app.command("approve")
def job_approve(
    job: str = typer.Argument(...),
    config: Path | None = _CONFIG,
    directory: Path | None = _DIR,
    party: str | None = _PARTY,
) -> None:
    """Approve a proposal (signed with this node's identity key; kept as evidence by all)."""
    _decide("approve", job, "", config, directory, party)


@job_app.command("reject")
def job_reject(
    job: str = typer.Argument(...),
    reason: str = typer.Option("", help="the reason the other parties see"),
    config: Path | None = _CONFIG,
    directory: Path | None = _DIR,
    party: str | None = _PARTY,
) -> None:
    """Reject a proposal: it ends at every party."""
    _decide("reject", job, reason, config, directory, party)


@job_app.command("revoke")
def job_revoke(
    job: str = typer.Argument(...),
    reason: str = typer.Option("", help="the reason the other parties see"),
    config: Path | None = _CONFIG,
    directory: Path | None = _DIR,
    party: str | None = _PARTY,
) -> None:
    """Withdraw an approval: a running job stops at every party (state is kept)."""
    _decide("revoke", job, reason, config, directory, party)


def _status(client: Any, job: str) -> dict[str, Any]:
    """The job's status; before it starts here, its proposal's state (waiting for whom)."""
    import httpx

    from privfin.errors import ConfigError

    try:
        status: dict[str, Any] = client.status(job)
        return status
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code != 404:
            raise
    try:
        view = client.proposal(job)
    except ConfigError:
        raise _fail(f"no job or proposal {job!r} on node {client.party}") from None
    waiting = ", ".join(view.get("waiting_for") or []) or "nobody"
    state = view["status"]
    if state in ("rejected", "revoked"):
        return {"job": job, "status": "failed", "error": f"proposal {state}: {view['reason']}"}
    return {"job": job, "status": f"not started ({state}; waiting for: {waiting})"}


def _show_status(status: dict[str, Any]) -> None:
    prog = status.get("progress") or {}
    line = f"job {status['job']}: {status['status']}"
    if status["status"] == "running" and prog:
        eta = prog.get("eta_seconds")
        line += (
            f" - step {prog.get('step') or '-'} ({prog.get('steps_done', 0)}/"
            f"{prog.get('steps_total', '?')} steps, {prog.get('percent', 0):.0f}%"
            + (f", ETA {eta:.0f} s" if isinstance(eta, (int, float)) else "")
            + ")"
        )
    typer.echo(line)
    for name, st in (status.get("steps") or {}).items():
        typer.echo(f"  {name:<20} {st['status']:<8} attempt {st['attempt']}")
    if status.get("error"):
        typer.echo(f"  error: {status['error']}")


@job_app.command("status")
def job_status(
    job: str = typer.Argument(...),
    config: Path | None = _CONFIG,
    directory: Path | None = _DIR,
    party: str | None = _PARTY,
    watch: bool = typer.Option(False, "--watch", help="follow with a progress bar until it ends"),
    timeout: float = typer.Option(3600.0, help="seconds to follow with --watch"),
) -> None:
    """A job's state at this node: steps, attempts, progress and ETA (or, before it starts,
    the approvals it is waiting for)."""
    with _client(config, directory, party) as client:
        if not watch:
            _show_status(_status(client, job))
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        deadline = time.monotonic() + timeout
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn()) as bar:
            task = bar.add_task(job, total=100)
            while True:
                status = _status(client, job)
                prog = status.get("progress") or {}
                bar.update(
                    task,
                    completed=float(prog.get("percent", 0) or 0),
                    description=f"{job}: {prog.get('step') or status['status']}",
                )
                if status["status"] in ("done", "failed") or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            if status["status"] == "done":
                bar.update(task, completed=100)
        _show_status(status)
        if status["status"] == "failed":
            raise typer.Exit(1)


@job_app.command("logs")
def job_logs(
    job: str = typer.Argument(...),
    config: Path | None = _CONFIG,
    directory: Path | None = _DIR,
    party: str | None = _PARTY,
) -> None:
    """The job's events at this node: proposal and decisions, data accesses, steps, results,
    and the local error if it failed (the full reason stays local)."""
    import datetime as dt

    with _client(config, directory, party) as client:
        data = client.logs(job)
    for e in data["events"]:
        when = dt.datetime.fromtimestamp(e["time"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        what = " ".join(f"{k}={e[k]}" for k in ("step", "dataset", "party") if e.get(k) is not None)
        typer.echo(f"{when}  {e['action']:<18} {e['actor']:<9} {what}")
    if data.get("error"):
        typer.echo(f"error: {data['error']}")


@job_app.command("cancel")
def job_cancel(
    job: str = typer.Argument(...),
    config: Path | None = _CONFIG,
    directory: Path | None = _DIR,
    party: str | None = _PARTY,
) -> None:
    """Stop a job at this node (its other parties are told; state is kept)."""
    with _client(config, directory, party) as client:
        if not client.cancel(job):
            raise _fail(f"no job {job!r} on node {client.party}")
        typer.echo(f"job {job}: cancel requested at {client.party}")


def _out_dir(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise _fail(f"--out {out} is a file; give a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(f"cannot create {out}: {exc.strerror or exc}") from None
    return out


@job_app.command("results")
def job_results(
    job: str = typer.Argument(...),
    out: Path = typer.Option(..., "--out", help="directory for the files"),
    config: Path | None = _CONFIG,
    directory: Path | None = _DIR,
    party: str | None = _PARTY,
) -> None:
    """Fetch this party's output files of a job (tables as Parquet, scores as CSV, models
    and metrics as JSON) and a manifest.json with their digests and lineage."""
    with _client(config, directory, party) as client:
        arts = client.artifacts(job)
        if not arts:
            raise _fail(f"job {job!r} has no output files at {client.party} (yet)")
        target = _out_dir(out)
        manifest = {"job": job, "party": client.party, "files": []}
        for art in arts:
            data = client.download(job, art["step"], art["name"])
            name = Path(art["path"]).name
            path = target / art["step"] / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            manifest["files"].append({**art, "file": f"{art['step']}/{name}"})
            typer.echo(f"{art['step']}/{name}  {art['kind']:<8} {art['size']:>10} bytes")
        (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
        typer.echo(f"{len(arts)} files in {target}")


@model_app.command("export")
def model_export(
    job: str = typer.Option(..., "--job"),
    step: str = typer.Option(..., "--step", help="the training step"),
    out: Path = typer.Option(..., "--out", help="file to write"),
    name: str = typer.Option("model", "--output", help="the step's output holding the model"),
    config: Path | None = _CONFIG,
    directory: Path | None = _DIR,
    party: str | None = _PARTY,
) -> None:
    """Write this party's slice of a trained model (a versioned JSON file) to --out."""
    from privfin.jobs.scheduler import read_model_file

    if out.is_dir():
        raise _fail(f"--out {out} is a directory; give a file name")
    with _client(config, directory, party) as client:
        data = client.download(job, step, name)
    env = read_model_file(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    typer.echo(
        f"{out}: {env['component']} model of {env['party']} (job {env['job']}, step "
        f"{env['step']}, format {env['format_version']})"
    )


@model_app.command("import")
def model_import(
    file: Path = typer.Argument(..., help="a model file written by 'privfin model export'"),
    name: str = typer.Option(..., "--name", help="the name later specs use (models.<alias>)"),
    config: Path | None = _CONFIG,
    directory: Path | None = _DIR,
    party: str | None = _PARTY,
) -> None:
    """Import a model file into this node for later jobs' scoring steps."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}") from None
    with _client(config, directory, party) as client:
        info = client.import_model(name, data)
    typer.echo(f"imported {info['component']} model as {info['name']} ({info['sha256'][:16]}...)")


@model_app.command("list")
def model_list(
    config: Path | None = _CONFIG,
    directory: Path | None = _DIR,
    party: str | None = _PARTY,
) -> None:
    """The models imported into this node."""
    with _client(config, directory, party) as client:
        models = client.models()
    for m in models:
        typer.echo(f"{m['name']:<24} {m['component']:<20} job {m['job']} step {m['step']}")
    if not models:
        typer.echo("no models imported")
