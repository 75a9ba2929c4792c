"""Run one party's part of a pipeline: steps in DAG order, persisted, resumable, restartable.

Every party runs the same spec; each runs the steps it takes part in, in the spec's
topological order, and binds its own inputs (its datasets, its imported models, its own
outputs of earlier steps). State is persisted before it is acted on:

- a step is marked ``running`` (with its attempt number) before its first message and
  ``done`` only after every output file is written (atomically) and recorded with its digest;
- after a crash, ``done`` steps are skipped (their files are read back and their digests
  checked); a step left ``running`` resumes **in place** if its component can (PSI: its
  checkpoints make the restarted party resend byte-identical messages), otherwise it restarts
  under attempt ``a + 1`` — persisted first, then announced to the step's other parties
  (``on_restart``, delivered by the node until acknowledged);
- the attempt is part of every message key (the channel's component name is ``step`` for
  attempt 1 and ``step.a<N>`` after), so a restarted SecureBoost or hetero LR, which draws
  fresh keys, never collides with a message of the failed attempt;
- a party told that a peer restarted step ``S`` at attempt ``N`` (:meth:`restart`) cancels
  ``S`` or any later step that depends on it, and reruns from ``S`` at attempt ``N``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from privfin.errors import ConfigError, PrivfinError, ProtocolAbort
from privfin.federation.transport import CancelToken, Channel
from privfin.jobs.components import KINDS, ComponentDecl, declaration
from privfin.jobs.spec import PipelineSpec, parse_ref
from privfin.jobs.store import ArtifactRecord, PipelineStore
from privfin.runtime import Context, DirectoryArtifacts, Progress

if TYPE_CHECKING:
    import pandas as pd

    from privfin.dp.ledger import BudgetLedger, Spend

__all__ = [
    "MAX_STEP_ATTEMPTS",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "PartyPipeline",
    "StepIO",
    "channel_name",
    "read_model_file",
    "rewind",
]

#: Attempts of one step a party makes (and accepts from a peer) before the job fails.
MAX_STEP_ATTEMPTS = 10
MODEL_FORMAT = "privfin.model"
MODEL_FORMAT_VERSION = 1
_log = logging.getLogger("privfin.jobs.scheduler")


def channel_name(step: str, attempt: int) -> str:
    """The component part of a step attempt's message keys."""
    return step if attempt == 1 else f"{step}.a{attempt}"


class StepIO(Protocol):
    """Opens the channel of one step attempt (a node: mTLS transport; a simulation: memory)."""

    def open(
        self, step: str, component: str, parties: list[str], cancel: CancelToken, timeout: float
    ) -> tuple[Channel, Callable[[], None]]: ...


class _Rewind(Exception):
    """Internal: a peer restarted an earlier step; rerun from there."""


@dataclass
class _Pending:
    step: str
    attempt: int
    sender: str


def read_model_file(data: bytes) -> dict[str, Any]:
    """Parse a model file (the envelope written by a pipeline step); ConfigError if it is not
    one or has a format version this code cannot read."""
    try:
        env = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ConfigError("not a privfin model file (not JSON)") from None
    if not isinstance(env, dict) or env.get("format") != MODEL_FORMAT:
        raise ConfigError("not a privfin model file")
    version = env.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= MODEL_FORMAT_VERSION:
        raise ConfigError(
            f"model format version {version!r} is not supported (this privfin reads "
            f"1..{MODEL_FORMAT_VERSION})"
        )
    if not isinstance(env.get("model"), dict):
        raise ConfigError("model file has no model")
    return env


def rewind(
    store: PipelineStore,
    spec: PipelineSpec,
    party: str,
    step: str,
    attempt: int,
    notify: Callable[[str, int, list[str]], None],
) -> None:
    """Rerun ``step`` at ``attempt`` (a peer restarted it) and everything after it here.

    A later step this party had already started (it may have sent messages under its current
    attempt) is itself restarted under its next attempt, recorded first and announced to that
    step's other parties like any restart — so no rerun ever reuses a message key a peer may
    still hold, and every party of a step converges to the same attempt (the highest any of
    them announced). A later step not started here keeps its attempt."""
    store.set_step(spec.job, step, attempt=attempt, status="pending")
    for later in spec.order():
        if later == step or later not in spec.downstream(step):
            continue
        if party not in spec.steps[later].roles:
            continue
        rec = store.step(spec.job, later)
        if rec is None or rec.status == "pending":
            continue
        bumped = rec.attempt + 1
        if bumped > MAX_STEP_ATTEMPTS:
            raise ProtocolAbort(f"step {later!r} was restarted too often")
        store.set_step(spec.job, later, attempt=bumped, status="pending")
        notify(later, bumped, [p for p in spec.steps[later].roles if p != party])


class PartyPipeline:
    """This party's execution of one pipeline job."""

    def __init__(
        self,
        spec: PipelineSpec,
        party: str,
        *,
        store: PipelineStore,
        root: Path,
        io: StepIO,
        load_dataset: Callable[[str, list[str] | None], pd.DataFrame],
        load_model: Callable[[str], bytes],
        make_context: Callable[[str, str, Channel, DirectoryArtifacts, Progress], Context],
        on_restart: Callable[[str, int, list[str]], None] = lambda s, a, p: None,
        on_step: Callable[[str, str, int], None] = lambda s, status, a: None,
        default_timeout: float = 120.0,
        ledger: BudgetLedger | None = None,
        lost: Callable[[str], bool] = lambda component: False,
    ) -> None:
        if party not in spec.parties:
            raise ConfigError(f"party {party!r} has no part in job {spec.job!r}")
        self.spec = spec
        self.party = party
        self.store = store
        self.root = root
        self.io = io
        self.load_dataset = load_dataset
        self.load_model = load_model
        self.make_context = make_context
        self.on_restart = on_restart
        self.on_step = on_step
        self.default_timeout = default_timeout
        self.ledger = ledger
        self.lost = lost
        self.order = spec.steps_of(party)
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._current: str | None = None
        self._step_cancel: CancelToken | None = None
        self._job_cancel: CancelToken | None = None
        self._progress: dict[str, Any] = {}
        self._started = time.monotonic()
        self._step_durations: list[float] = []

    # -- status
    def progress(self) -> dict[str, Any]:
        """Step, steps done, percent and an ETA (from the steps done so far)."""
        states = self.store.steps(self.spec.job)
        done = sum(1 for s in self.order if states.get(s) and states[s].status == "done")
        total = len(self.order)
        frac = float(self._progress.get("fraction", 0.0))
        percent = 100.0 * (done + (frac if self._current else 0.0)) / max(total, 1)
        eta = None
        elapsed = time.monotonic() - self._started
        if 0 < percent < 100:
            eta = round(elapsed * (100.0 - percent) / percent, 1)
        return {
            "step": self._current,
            "steps_done": done,
            "steps_total": total,
            "percent": round(percent, 1),
            "eta_seconds": eta,
            "task": self._progress.get("task"),
        }

    # -- peers
    def restart(self, step: str, attempt: int, sender: str) -> bool:
        """A party of ``step`` restarted it at ``attempt``: rerun it (and what depends on it)
        here at that attempt. Returns False for a stale request (already at that attempt)."""
        st = self.spec.steps.get(step)
        if st is None or self.party not in st.roles or sender not in st.roles:
            raise ConfigError("restart of a step this party or the sender has no part in")
        rec = self.store.step(self.spec.job, step)
        if rec is not None and rec.attempt >= attempt:
            return False
        with self._lock:
            self._pending.append(_Pending(step, attempt, sender))
            current, token = self._current, self._step_cancel
        if current is not None and token is not None and current in self.spec.downstream(step):
            token.cancel(f"{sender} restarted step {step} (attempt {attempt})")
        return True

    def _apply_rewinds(self) -> bool:
        with self._lock:
            pending, self._pending = self._pending, []
        applied = False
        for req in pending:
            rec = self.store.step(self.spec.job, req.step)
            if rec is not None and rec.attempt >= req.attempt:
                continue
            _log.info(
                "job %s: %s restarted step %s at attempt %d; rerunning from there",
                self.spec.job,
                req.sender,
                req.step,
                req.attempt,
            )
            rewind(self.store, self.spec, self.party, req.step, req.attempt, self.on_restart)
            applied = True
        return applied

    # -- running
    def run(self, cancel: CancelToken) -> dict[str, Any]:
        """Run (or resume) every step of this party; returns the job's summary."""
        self._job_cancel = cancel
        while True:
            self._apply_rewinds()
            states = self.store.steps(self.spec.job)
            todo = [s for s in self.order if states.get(s) is None or states[s].status != "done"]
            if not todo:
                break
            step = todo[0]
            cancel.raise_if_cancelled()
            try:
                self._run_step(step, states.get(step), cancel)
            except _Rewind:
                continue
        return self.summary()

    def summary(self) -> dict[str, Any]:
        states = self.store.steps(self.spec.job)
        arts = self.store.artifacts(self.spec.job)
        return {
            "steps": {
                s: {
                    "status": states[s].status if s in states else "pending",
                    "attempt": states[s].attempt if s in states else 1,
                    "outputs": {a.name: a.as_dict() for a in arts if a.step == s},
                }
                for s in self.order
            }
        }

    def _run_step(self, step: str, rec: Any, job_cancel: CancelToken) -> None:
        spec = self.spec.steps[step]
        decl = declaration(spec.component)
        job = self.spec.job
        if rec is None:
            rec = self.store.set_step(job, step, attempt=1, status="pending")
        attempt = rec.attempt
        interrupted = rec.status in ("running", "failed") or (
            # a message of this attempt was taken in memory only and lost in a restart here
            rec.status == "pending" and self.lost(channel_name(step, attempt))
        )
        if interrupted and not decl.resumable:
            attempt = rec.attempt + 1
            if attempt > MAX_STEP_ATTEMPTS:
                raise ProtocolAbort(
                    f"step {step!r} was interrupted {rec.attempt} times; giving up (at most "
                    f"{MAX_STEP_ATTEMPTS} attempts)"
                )
            self.store.set_step(job, step, attempt=attempt, status="pending")
            others = [p for p in spec.roles if p != self.party]
            _log.info(
                "job %s: step %s cannot resume in place; restarting as attempt %d",
                job,
                step,
                attempt,
            )
            self.on_restart(step, attempt, others)
        spends = self._reserve_budget(step, decl)  # a DP release: before the data is read
        try:
            inputs, lineage = self._inputs(step, decl)
        except BaseException:
            for spend in spends:  # nothing was computed: the reservations go back
                assert self.ledger is not None
                self.ledger.release(spend.id, who=f"{self.party}:scheduler")
            raise
        self.store.set_step(job, step, status="running", started_at=int(time.time()), error=None)
        self.on_step(step, "running", attempt)
        token = CancelToken()
        with self._lock:
            self._current, self._step_cancel = step, token
            self._progress = {}
        stop_watch = threading.Event()

        def watch() -> None:  # the job's cancellation reaches the step
            while not stop_watch.is_set():
                if job_cancel.wait(0.2):
                    token.cancel(job_cancel.reason)
                    return

        watcher = threading.Thread(target=watch, name=f"cancel-{job}-{step}", daemon=True)
        watcher.start()
        name = channel_name(step, attempt)
        channel, close = self.io.open(
            step, name, list(spec.roles), token, spec.timeout or self.default_timeout
        )
        step_root = self.root / "steps" / step / f"a{attempt}"

        def sink(task: str, done: int, total: int | None) -> None:
            self._progress = {
                "task": task,
                "fraction": (done / total) if total else self._progress.get("fraction", 0.0),
            }

        ctx = self.make_context(step, name, channel, DirectoryArtifacts(step_root), Progress(sink))
        t0 = time.monotonic()
        try:
            params = spec.params_of(self.party)
            result = decl.function()(ctx, params, inputs)
            channel.flush()  # the step's messages are on the peers' disks before it is done
        except BaseException as exc:
            with self._lock:
                rewind = bool(self._pending)
            if rewind and token.cancelled and not job_cancel.cancelled:
                raise _Rewind from None
            if isinstance(exc, PrivfinError) and not isinstance(exc, ProtocolAbort):
                self.store.set_step(job, step, status="failed", error=f"{type(exc).__name__}")
            raise
        finally:
            stop_watch.set()
            close()
            with self._lock:
                self._current, self._step_cancel = None, None
        self._write_outputs(step, attempt, decl, result, lineage)
        for spend in spends:
            # A failure after the step started keeps the reservation counted: its noisy
            # values may have left; a rerun reserves again (conservative).
            assert self.ledger is not None
            self.ledger.commit(spend.id, who=f"{self.party}:scheduler")
        self.store.set_step(job, step, status="done", ended_at=int(time.time()))
        self._step_durations.append(time.monotonic() - t0)
        self.on_step(step, "done", attempt)
        with self._lock:
            rewind = bool(self._pending)
        if rewind:
            raise _Rewind

    def _reserve_budget(self, step: str, decl: ComponentDecl) -> list[Spend]:
        """Reserve a DP step's costs in this party's ledger if it holds the step's data (the
        component's ``dp_data_role``, default ``data``): one reservation per charge its
        parameters declare (``dp_charges()``: a release, or each segment of a DP
        PSI-cardinality). Raises :class:`~privfin.errors.BudgetExceededError` before any data
        is read; a refused charge returns the ones reserved before it."""
        if not decl.extra.get("dp_budget"):
            return []
        spec = self.spec.steps[step]
        data_role = str(decl.extra.get("dp_data_role", "data"))
        result_role = str(decl.extra.get("dp_result_role", "result"))
        if data_role not in spec.roles.get(self.party, []):
            return []
        params = decl.param_class().from_mapping(spec.params_of(self.party))
        charges = params.dp_charges()
        if not charges:
            return []
        if self.ledger is None:
            raise ConfigError(
                f"step {step!r} is a differentially private release and this party has no "
                "privacy-budget ledger to charge it to"
            )
        ref = spec.inputs_of(self.party).get("table", "")
        kind, alias, _ = parse_ref(ref) if ref else ("", "", "")
        use = self.spec.parties[self.party].datasets.get(alias) if kind == "dataset" else None
        if use is None:
            raise ConfigError(
                f"step {step!r}: a DP release reads a registered dataset directly "
                "(input table: datasets.<alias>) so that its budget is charged"
            )
        receivers = [p for p, rs in spec.roles.items() if result_role in rs]
        spends: list[Spend] = []
        try:
            for cost, mechanism in charges:
                spends.append(
                    self.ledger.reserve(
                        use.name,
                        cost,
                        party=receivers[0] if receivers else self.party,
                        job=self.spec.job,
                        mechanism=mechanism,
                        who=f"{self.party}:scheduler",
                        step=step,
                    )
                )
        except BaseException:
            for spend in spends:
                self.ledger.release(spend.id, who=f"{self.party}:scheduler")
            raise
        return spends

    # -- inputs and outputs
    def _inputs(self, step: str, decl: ComponentDecl) -> tuple[dict[str, Any], dict[str, str]]:
        spec = self.spec.steps[step]
        roles = spec.roles[self.party]
        mine = self.spec.parties[self.party]
        out: dict[str, Any] = {}
        lineage: dict[str, str] = {}
        for name, ref in spec.inputs_of(self.party).items():
            port = decl.input(name)
            if port is None or not any(r in port.roles for r in roles):
                continue
            kind, ref_name, output = parse_ref(ref)
            if kind == "dataset":
                use = mine.datasets.get(ref_name)
                if use is None:
                    raise ConfigError(f"no dataset alias {ref_name!r} for {self.party}")
                frame = self.load_dataset(use.name, use.fields)
                out[name] = frame
                lineage[name] = f"dataset:{use.name}:{_frame_digest(frame)}"
            elif kind == "model":
                alias = mine.models.get(ref_name)
                if alias is None:
                    raise ConfigError(f"no model alias {ref_name!r} for {self.party}")
                data = self.load_model(alias)
                out[name] = read_model_file(data)["model"]
                lineage[name] = f"model:{alias}:{hashlib.sha256(data).hexdigest()}"
            else:
                arts = {a.name: a for a in self.store.artifacts(self.spec.job, ref_name)}
                art = arts.get(output)
                if art is None:
                    raise ConfigError(
                        f"step {step!r} needs {ref}, which step {ref_name!r} did not give "
                        f"party {self.party!r}"
                    )
                out[name] = self._read(art)
                lineage[name] = f"{ref}:{art.sha256}"
        return out, lineage

    def _read(self, art: ArtifactRecord) -> Any:
        path = self.root / art.path
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"artifact {art.step}.{art.name} is missing: {exc}") from None
        if hashlib.sha256(data).hexdigest() != art.sha256:
            raise ConfigError(
                f"artifact {art.step}.{art.name} changed on disk since it was written "
                "(digest mismatch)"
            )
        if art.kind in ("table", "scores"):
            import pandas as pd

            if art.kind == "table":
                return pd.read_parquet(io.BytesIO(data))
            return pd.read_csv(io.BytesIO(data))
        parsed = json.loads(data)
        if art.kind == "model":
            return read_model_file(data)["model"]
        return parsed

    def _write_outputs(
        self,
        step: str,
        attempt: int,
        decl: ComponentDecl,
        result: Any,
        lineage: Mapping[str, str],
    ) -> None:
        if not isinstance(result, Mapping):
            raise ConfigError(f"step {step!r} returned no outputs")
        import pandas as pd

        store = DirectoryArtifacts(self.root / "outputs" / step / f"a{attempt}")
        for port in decl.outputs:
            value = result.get(port.name)
            if value is None:
                continue
            ext = KINDS[port.kind]
            fname = f"{port.name}.{ext}"
            if port.kind == "table":
                if not isinstance(value, pd.DataFrame):
                    raise ConfigError(f"{step}.{port.name} is not a table")
                buf = io.BytesIO()
                value.to_parquet(buf, index=False)
                data = buf.getvalue()
            elif port.kind == "scores":
                if not isinstance(value, pd.DataFrame):
                    raise ConfigError(f"{step}.{port.name} is not a table of scores")
                data = value.to_csv(index=False).encode()
            elif port.kind == "model":
                envelope = {
                    "format": MODEL_FORMAT,
                    "format_version": MODEL_FORMAT_VERSION,
                    "component": decl.name,
                    "party": self.party,
                    "roles": self.spec.steps[step].roles[self.party],
                    "job": self.spec.job,
                    "step": step,
                    "attempt": attempt,
                    "lineage": dict(lineage),
                    "model": value,
                }
                data = json.dumps(envelope, sort_keys=True, default=_json_default).encode()
            else:
                data = json.dumps(value, sort_keys=True, default=_json_default).encode()
            store.put(fname, data)
            self.store.add_artifact(
                ArtifactRecord(
                    job=self.spec.job,
                    step=step,
                    attempt=attempt,
                    name=port.name,
                    kind=port.kind,
                    path=f"outputs/{step}/a{attempt}/{fname}",
                    sha256=hashlib.sha256(data).hexdigest(),
                    size=len(data),
                    format_version=MODEL_FORMAT_VERSION if port.kind == "model" else 1,
                    lineage={"component": decl.name, "inputs": dict(lineage)},
                    created_at=int(time.time()),
                )
            )


def _frame_digest(frame: pd.DataFrame) -> str:
    import pandas as pd

    h = hashlib.sha256()
    h.update(",".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
