"""The node's minimal job runner: persisted job records, one thread per running job, resume on
restart. (The full job platform with negotiation and DAGs is later work.)"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, insert, select, update

from privfin.data.loaders import read_table
from privfin.errors import ConfigError, PrivfinError
from privfin.federation.http import HttpTransport
from privfin.federation.mailbox import Mailbox
from privfin.federation.transport import CancelToken, Channel, validate_name
from privfin.jobs.registry import get_component
from privfin.node.config import NodeConfig
from privfin.runtime import Context, DirectoryArtifacts, Progress
from privfin.runtime.context import Metrics

__all__ = ["JobRunner", "JobSpec"]

_log = logging.getLogger("privfin.node.jobs")
_meta = MetaData()
jobs_table = Table(
    "jobs",
    _meta,
    Column("job", String(64), primary_key=True),
    Column("spec", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("result", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("updated_at", Integer, nullable=False),
)


class ColumnStream(BaseModel):
    """An input streamed from a dataset: the values of one column, in chunks (bounded memory),
    instead of the whole table."""

    model_config = ConfigDict(extra="forbid")
    dataset: str
    column: str
    chunk_rows: int = 250_000


class JobSpec(BaseModel):
    """A job as submitted to each party's node."""

    model_config = ConfigDict(extra="forbid")
    job: str
    component: str
    roles: dict[str, list[str]]
    params: dict[str, Any] = {}
    # party -> {input name: dataset name (a whole table) or a column stream}
    inputs: dict[str, dict[str, str | ColumnStream]] = {}
    timeout: float | None = None

    @field_validator("job", "component")
    @classmethod
    def _names(cls, v: str) -> str:
        return validate_name("name", v)

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        if len(v) < 2:
            raise ValueError("a job needs at least two parties")
        for party in v:
            validate_name("party", party)
        return v


def jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return {"columns": list(map(str, value.columns)), "rows": len(value)}
    if isinstance(value, bytes):
        return value.hex()
    to_json = getattr(value, "to_json", None)
    if callable(to_json):  # models and other objects that serialise themselves
        return json.loads(to_json())
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"a job result of type {type(value).__name__} cannot be stored as JSON")


class JobRunner:
    """Runs jobs for one node; every state change is persisted before it is acted on."""

    def __init__(self, config: NodeConfig, mailbox: Mailbox) -> None:
        self.config = config
        self.mailbox = mailbox
        _meta.create_all(mailbox.engine)
        self._threads: dict[str, threading.Thread] = {}
        self._cancel: dict[str, CancelToken] = {}
        self._progress: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    # -- records
    def _record(self, job: str) -> dict[str, Any] | None:
        with self.mailbox.engine.connect() as conn:
            row = conn.execute(select(jobs_table).where(jobs_table.c.job == job)).mappings().first()
        return None if row is None else dict(row)

    def _set(self, job: str, **values: Any) -> None:
        with self.mailbox.engine.begin() as conn:
            conn.execute(
                update(jobs_table)
                .where(jobs_table.c.job == job)
                .values(updated_at=int(time.time()), **values)
            )

    def status(self, job: str) -> dict[str, Any] | None:
        rec = self._record(job)
        if rec is None:
            return None
        return {
            "job": job,
            "status": rec["status"],
            "result": json.loads(rec["result"]) if rec["result"] else None,
            "error": rec["error"],
            "progress": self._progress.get(job, {}),
        }

    # -- lifecycle
    def submit(self, spec: JobSpec) -> dict[str, Any]:
        """Record and start a job (idempotent for an identical spec)."""
        if self.config.party not in spec.roles:
            raise ConfigError(f"party {self.config.party!r} has no role in job {spec.job!r}")
        get_component(spec.component)
        for party in spec.roles:
            if party != self.config.party and party not in self.config.peers:
                raise ConfigError(f"party {party!r} of job {spec.job!r} is not a pinned peer")
        for source in spec.inputs.get(self.config.party, {}).values():
            dataset = source if isinstance(source, str) else source.dataset
            if dataset not in self.config.datasets:
                raise ConfigError(f"dataset {dataset!r} is not registered on this node")
        text = spec.model_dump_json()
        with self._lock:
            rec = self._record(spec.job)
            if rec is not None:
                if rec["spec"] != text:
                    raise ConfigError(f"job {spec.job!r} exists with another spec")
                return self.status(spec.job) or {}
            with self.mailbox.engine.begin() as conn:
                conn.execute(
                    insert(jobs_table).values(
                        job=spec.job, spec=text, status="running", updated_at=int(time.time())
                    )
                )
            self._start(spec)
        return self.status(spec.job) or {}

    def resume(self) -> list[str]:
        """Restart the jobs a previous process left running (after a crash or restart)."""
        with self.mailbox.engine.connect() as conn:
            rows = conn.execute(
                select(jobs_table.c.spec).where(jobs_table.c.status == "running")
            ).scalars()
            specs = [JobSpec.model_validate_json(s) for s in rows]
        for spec in specs:
            _log.info("resuming job %s", spec.job)
            with self._lock:
                self._start(spec)
        return [s.job for s in specs]

    def cancel(self, job: str) -> None:
        token = self._cancel.get(job)
        if token is not None:
            token.cancel("cancelled at the node")

    def shutdown(self, timeout: float = 5.0) -> None:
        for token in list(self._cancel.values()):
            token.cancel("node shutting down")
        for t in list(self._threads.values()):
            t.join(timeout)

    def _start(self, spec: JobSpec) -> None:
        if spec.job in self._threads and self._threads[spec.job].is_alive():
            return
        token = CancelToken()
        self._cancel[spec.job] = token
        thread = threading.Thread(
            target=self._run, args=(spec, token), name=f"job-{spec.job}", daemon=True
        )
        self._threads[spec.job] = thread
        thread.start()

    def _load_inputs(self, spec: JobSpec) -> dict[str, Any]:
        from privfin.psi.sources import iter_id_chunks

        out: dict[str, Any] = {}
        for name, source in spec.inputs.get(self.config.party, {}).items():
            if isinstance(source, str):
                out[name] = read_table(self.config.datasets[source])
            else:
                path = self.config.datasets[source.dataset]
                out[name] = iter_id_chunks(path, source.column, source.chunk_rows)
        return out

    def _run(self, spec: JobSpec, token: CancelToken) -> None:
        party = self.config.party
        peers = self.config.transport_peers()
        transport = HttpTransport(
            self.config.identity,
            {p: peers[p] for p in spec.roles if p != party},
            self.mailbox,
            send_timeout=spec.timeout or self.config.message_timeout,
        )
        channel = Channel(
            transport,
            job=spec.job,
            component=spec.component,
            party=party,
            peers=list(spec.roles),
            default_timeout=spec.timeout or self.config.message_timeout,
            max_message_size=self.config.max_message_size,
            cancel=token,
        )
        progress_state: dict[str, Any] = {}
        self._progress[spec.job] = progress_state

        def sink(name: str, done: int, total: int | None) -> None:
            progress_state[name] = {"done": done, "total": total}

        compute = self.config.compute_backend()
        ctx = Context(
            job=spec.job,
            component=spec.component,
            party=party,
            roles={p: tuple(r) for p, r in spec.roles.items()},
            channel=channel,
            compute=compute,
            artifacts=DirectoryArtifacts(Path(self.config.state_dir) / "jobs" / spec.job),
            settings=self.config.settings,
            metrics=Metrics(),
            progress=Progress(sink),
            log=logging.LoggerAdapter(_log, {"job": spec.job, "party": party}),
        )
        try:
            inputs = self._load_inputs(spec)
            result = get_component(spec.component)(ctx, spec.params, inputs)
            payload = {"output": jsonable(result), "traffic": channel.stats.as_dict()}
            self._set(spec.job, status="done", result=json.dumps(payload))
            _log.info("job %s done", spec.job)
        except Exception as exc:
            if token.cancelled and "shutting down" in token.reason:
                _log.info("job %s interrupted by shutdown; it resumes on restart", spec.job)
                return
            message = f"{type(exc).__name__}: {exc}"
            self._set(spec.job, status="failed", error=message)
            _log.error("job %s failed: %s", spec.job, message)
            if not isinstance(exc, PrivfinError) or "aborted the job" not in str(exc):
                channel.abort(message)
        finally:
            transport.close()
            compute.close()


def parse_spec(raw: Any) -> JobSpec:
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid job spec: {exc}") from None
