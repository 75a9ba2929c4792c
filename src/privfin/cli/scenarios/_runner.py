"""The scenario runner: templates from ``scenarios/``, a local cluster, negotiation, progress.

A scenario's job template is a YAML pipeline spec with placeholders: a value that is exactly
``"{{name}}"`` is replaced by the runner's value (any type); ``{{name}}`` inside a longer string
is replaced by its text. The runner starts one node process per party (mutual TLS between
them), proposes the job at the initiator's node, has every other party's operator approve it
through its own node's API, and draws one progress bar per party while it polls the nodes.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from privfin.errors import ConfigError, ProtocolAbort

__all__ = ["Demo", "fill", "load_template", "private_root", "record_legal_bases", "templates_dir"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def templates_dir() -> Path:
    """The ``scenarios/`` folder of the source tree (``PRIVFIN_SCENARIOS`` overrides it)."""
    env = os.environ.get("PRIVFIN_SCENARIOS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[4] / "scenarios"


def fill(template: Any, values: Mapping[str, Any]) -> Any:
    """Replace the placeholders of ``template`` (see the module doc); an unknown one fails."""
    if isinstance(template, Mapping):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template.strip())
        if whole:
            return _value(whole.group(1), values)
        return _PLACEHOLDER.sub(lambda m: str(_value(m.group(1), values)), template)
    return template


def _value(name: str, values: Mapping[str, Any]) -> Any:
    if name not in values:
        raise ConfigError(f"the scenario template needs a value for {{{{{name}}}}}")
    return values[name]


def load_template(name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline spec of scenario ``name`` with its placeholders filled."""
    path = templates_dir() / f"{name}.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"no template for scenario {name!r}: {exc}") from None
    spec = fill(raw, values)
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: a template is a mapping")
    return spec


@contextmanager
def private_root(keep: Path | None) -> Iterator[Path]:
    """The demo's directory: ``keep`` (created 0700, kept) or a private temporary directory
    removed at the end however the demo ends (it holds private keys and data)."""
    if keep is not None:
        root = Path(keep).resolve()
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        yield root
        return
    root = Path(tempfile.mkdtemp(prefix="privfin-demo-"))  # mode 0700
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def record_legal_bases(cluster: Any, bases: Mapping[str, Mapping[str, str]]) -> None:
    """Each party's operator records the legal basis of its datasets in their usage policy
    (``{party: {dataset: basis}}``; what ``privfin data register NAME ... --legal-basis B
    --replace`` does): shown in every approval inbox, written into the audit with each
    approval, demanded by templates that need one (blacklist: licensed source)."""
    import dataclasses

    from privfin.cli.data import _registry

    for party, named in bases.items():
        registry, _ = _registry(cluster.config_path(party))
        try:
            for dataset, basis in named.items():
                policy = registry.get(dataset).policy
                registry.set_policy(dataset, dataclasses.replace(policy, legal_basis=basis))
        finally:
            registry.engine.dispose()


@dataclass
class Demo:
    """One scenario run: the cluster, the console and what the parties decided."""

    console: Console
    cluster: Any
    approvals: dict[str, list[str]] = field(default_factory=dict)  # job -> lines
    _clients: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def client(self, party: str) -> Iterator[Any]:
        """``party``'s operator API client, opened once and reused (a new client loads its
        TLS trust store: a noticeable cost when the progress bars poll every node)."""
        if party not in self._clients:
            self._clients[party] = self.cluster.client(party)
        yield self._clients[party]

    def close(self) -> None:
        """Close the clients (before the cluster goes down)."""
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def negotiate(self, spec: Mapping[str, Any], *, timeout: float = 60.0) -> None:
        """Propose ``spec`` at its first party's node; every other party's operator reads its
        inbox (what the job uses of its data) and approves through its own node's API."""
        job = str(spec["job"])
        parties = list(spec["parties"])
        lines: list[str] = []
        with self.client(parties[0]) as client:
            client.propose(dict(spec))
        lines.append(f"{parties[0]} proposed")
        for party in parties[1:]:
            with self.client(party) as client:
                inbox = client.wait_proposal(job, timeout=timeout)
                uses = inbox.get("uses", {}).get("datasets", {})
                fields = sorted({f for d in uses.values() for f in d.get("fields", {})})
                bases = sorted({str(d.get("legal_basis")) for d in uses.values()
                                if d.get("legal_basis")})  # fmt: skip
                client.decide(job, "approve", "demo: operator approval")
                basis = f"; legal basis {', '.join(bases)}" if bases else ""
                lines.append(f"{party} approved ({len(fields)} fields{basis})")
        self.approvals[job] = lines

    def show_approvals(self, job: str, party: str) -> None:
        """One line: who proposed and approved ``job``, and the signed decisions ``party``'s
        node holds as evidence."""
        held = self.signed_decisions(job, party)
        signed = sum(1 for d in held.values() if d == "approve")
        lines = self.approvals[job]
        if len(lines) > 5:  # a large alliance: the approvals that read alike, counted
            first, rest = lines[0], lines[1:]
            kinds: dict[str, int] = {}
            for line in rest:
                what = line.split(" ", 1)[1] if " " in line else line
                kinds[what] = kinds.get(what, 0) + 1
            lines = [first, *(f"{n} parties {what}" for what, n in kinds.items())]
        self.console.print(
            f"approvals of {job}: "
            + "; ".join(lines)
            + f" — {signed} signed approvals held by {party}'s node"
        )

    def signed_decisions(self, job: str, party: str) -> dict[str, str]:
        """The decisions ``party``'s node holds as evidence (signed by each party's node)."""
        with self.client(party) as client:
            decisions = client.proposal(job)["decisions"]
        return {p: str(d["decision"]) for p, d in decisions.items()}

    def watch(
        self, job: str, parties: Sequence[str], *, timeout: float = 600.0, label: str = ""
    ) -> None:
        """One progress bar per party (steps done of the pipeline) until every node is done;
        a failure at any node raises :class:`ProtocolAbort` with its reason."""
        deadline = time.monotonic() + timeout
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[step]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        ) as bars:
            tasks = {
                p: bars.add_task(f"{label}{p:>10}", total=None, step="waiting for approvals")
                for p in parties
            }
            pending = set(parties)
            while pending:
                for party in sorted(pending):
                    status = self._status(party, job)
                    steps = status.get("steps") or {}
                    done = sum(1 for s in steps.values() if s.get("status") == "done")
                    running = [n for n, s in steps.items() if s.get("status") == "running"]
                    bars.update(
                        tasks[party],
                        total=len(steps) or None,
                        completed=done,
                        step=", ".join(running) or str(status.get("status", "")),
                    )
                    if status.get("status") == "failed":
                        raise ProtocolAbort(f"job {job} failed at {party}: {status.get('error')}")
                    if status.get("status") == "done":
                        pending.discard(party)
                if time.monotonic() > deadline:
                    raise ProtocolAbort(f"job {job} did not finish in {timeout:.0f} s")
                time.sleep(0.25)

    def _status(self, party: str, job: str) -> dict[str, Any]:
        import httpx

        with self.client(party) as client:
            try:
                status: dict[str, Any] = client.status(job)
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code == 404:
                    return {"status": "not started"}
                raise
            return status

    def run(self, spec: Mapping[str, Any], *, timeout: float = 600.0) -> None:
        """Negotiate ``spec``, then watch it to the end."""
        self.negotiate(spec)
        self.watch(str(spec["job"]), list(spec["parties"]), timeout=timeout)

    def download(self, party: str, job: str, step: str, name: str) -> bytes:
        with self.client(party) as client:
            data: bytes = client.download(job, step, name)
            return data

    def json(self, party: str, job: str, step: str, name: str) -> Any:
        import json

        return json.loads(self.download(party, job, step, name))

    def frame(self, party: str, job: str, step: str, name: str) -> Any:
        import io

        import pandas as pd

        data = self.download(party, job, step, name)
        if data[:4] == b"PAR1":
            return pd.read_parquet(io.BytesIO(data))
        return pd.read_csv(io.BytesIO(data))

    def outputs(self, party: str, job: str) -> list[tuple[str, str]]:
        """(step, output) of every file ``party``'s node holds for ``job``."""
        with self.client(party) as client:
            return [(str(a["step"]), str(a["name"])) for a in client.artifacts(job)]

    def dashboard(self, party: str) -> str:
        return str(self.cluster.parties[party]["operator"]) + "/"

    def wait_for_ctrl_c(self, party: str) -> None:
        """Keep the cluster up until Ctrl-C, showing ``party``'s dashboard address."""
        token = self.cluster.root / party / "state" / "operator.token"
        self.console.print(
            f"the {party}'s dashboard: [bold]{self.dashboard(party)}[/] (operator token: "
            f"{token}); Ctrl-C stops the cluster"
        )
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            self.console.print("stopping the cluster")
