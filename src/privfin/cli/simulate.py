"""``privfin simulate --spec job.yaml``: run a job's component for every party in one process
(threads and the memory transport), with inputs read from local files."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def simulate_cmd(
    spec: Path = typer.Option(..., help="job spec (YAML/JSON); inputs map party -> name -> file"),
    seed: int | None = typer.Option(None, help="seed every party's randomness (reproducible)"),
    timeout: float = typer.Option(60.0, help="seconds a party waits for a message"),
    mode: str | None = typer.Option(
        None,
        help="'production' refuses insecure modes (trusted dealer, small keys); 'development' "
        "allows them with a warning. Default: PRIVFIN_MODE / PRIVFIN_ALLOW_INSECURE, else "
        "production",
    ),
) -> None:
    """Simulate a job in-process: the same component code the nodes run, without a network."""
    import yaml

    from privfin.config import Settings
    from privfin.data.loaders import read_table
    from privfin.errors import ConfigError
    from privfin.jobs.registry import get_component
    from privfin.runtime import simulate

    env = Settings.from_env()
    settings = env if mode is None else Settings(mode=mode, allow_insecure=env.allow_insecure)
    data = yaml.safe_load(spec.read_text())
    if not isinstance(data, dict) or "component" not in data or "roles" not in data:
        raise ConfigError(f"{spec}: a job spec needs 'component' and 'roles'")
    base = spec.resolve().parent
    inputs = {
        party: {name: read_table(base / path) for name, path in files.items()}
        for party, files in (data.get("inputs") or {}).items()
    }
    out = simulate(
        get_component(data["component"]),
        data["roles"],
        params=data.get("params") or {},
        inputs=inputs,
        job=str(data.get("job", "sim")),
        component_name=data["component"],
        timeout=timeout,
        seed=seed,
        settings=settings,
    )
    from privfin.node.runner import jsonable

    for party, result in out.items():
        typer.echo(f"{party}: {json.dumps(jsonable(result))[:2000]}")
