"""Run a whole pipeline in one process: every party a thread, memory channels, each party's
state and files in its own folder (tests, notebooks, trying a spec before the nodes run it).

The same :class:`~privfin.jobs.scheduler.PartyPipeline` runs here as in a node; only the
transport and the dataset lookup differ.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import create_engine

from privfin.compute import SerialBackend
from privfin.config import Settings
from privfin.crypto.random import RandomSource, SeededRandom, SystemRandom
from privfin.errors import ConfigError, PrivfinError, ProtocolAbort
from privfin.federation.memory import MemoryHub
from privfin.federation.transport import CancelToken, Channel
from privfin.jobs.scheduler import PartyPipeline
from privfin.jobs.spec import PipelineSpec
from privfin.jobs.store import PipelineStore
from privfin.jobs.validate import check
from privfin.runtime import Context, DirectoryArtifacts, Progress

if TYPE_CHECKING:
    from privfin.dp.ledger import BudgetLedger

__all__ = ["LocalRun", "run_local"]


class _MemoryIO:
    def __init__(self, hub: MemoryHub, job: str, party: str) -> None:
        self.hub, self.job, self.party = hub, job, party

    def open(
        self, step: str, component: str, parties: list[str], cancel: CancelToken, timeout: float
    ) -> tuple[Channel, Callable[[], None]]:
        channel = Channel(
            self.hub.transport(self.party),
            job=self.job,
            component=component,
            party=self.party,
            peers=parties,
            default_timeout=timeout,
            cancel=cancel,
        )
        return channel, lambda: None


class LocalRun:
    """The parties' pipelines of one in-process run (inspect ``pipelines[party]``)."""

    def __init__(
        self,
        spec: PipelineSpec,
        datasets: Mapping[str, Mapping[str, pd.DataFrame]],
        root: str | Path,
        *,
        models: Mapping[str, Mapping[str, bytes]] | None = None,
        seed: int | None = None,
        settings: Settings | None = None,
        timeout: float = 120.0,
        ledgers: Mapping[str, BudgetLedger] | None = None,
    ) -> None:
        check(spec)
        self.spec = spec
        self.hub = MemoryHub()
        self.root = Path(root)
        self.pipelines: dict[str, PartyPipeline] = {}
        self.cancels: dict[str, CancelToken] = {}
        models = models or {}
        for party in spec.parties:
            own = dict(datasets.get(party, {}))
            own_models = dict(models.get(party, {}))
            proot = self.root / party
            proot.mkdir(parents=True, exist_ok=True)
            engine = create_engine(f"sqlite:///{proot / 'state.db'}")
            store = PipelineStore(engine)
            store.create_tables()

            def load(name: str, fields: list[str] | None, own: Any = own, p: str = party) -> Any:
                if name not in own:
                    raise ConfigError(f"party {p} has no dataset {name!r}")
                frame = own[name]
                return frame[fields] if fields else frame

            def load_model(name: str, own_models: Any = own_models) -> bytes:
                if name not in own_models:
                    raise ConfigError(f"no imported model {name!r}")
                return bytes(own_models[name])

            def make_context(
                step: str,
                component: str,
                channel: Channel,
                artifacts: DirectoryArtifacts,
                progress: Progress,
                p: str = party,
            ) -> Context:
                rnd: RandomSource = (
                    SystemRandom() if seed is None else SeededRandom(f"{seed}/{p}/{component}")
                )
                return Context(
                    job=spec.job,
                    component=component,
                    party=p,
                    roles={q: tuple(r) for q, r in spec.steps[step].roles.items()},
                    channel=channel,
                    compute=SerialBackend(),
                    artifacts=artifacts,
                    random=rnd,
                    settings=settings or Settings.from_env(),
                    progress=progress,
                    log=logging.LoggerAdapter(logging.getLogger("privfin.job"), {"party": p}),
                )

            self.pipelines[party] = PartyPipeline(
                spec,
                party,
                store=store,
                root=proot,
                io=_MemoryIO(self.hub, spec.job, party),
                load_dataset=load,
                load_model=load_model,
                make_context=make_context,
                on_restart=self._restart_from(party),
                default_timeout=timeout,
                ledger=(ledgers or {}).get(party),
            )
            self.cancels[party] = CancelToken()

    def _restart_from(self, sender: str) -> Callable[[str, int, list[str]], None]:
        def notify(step: str, attempt: int, receivers: list[str]) -> None:
            for r in receivers:
                self.pipelines[r].restart(step, attempt, sender)

        return notify

    def run(self) -> dict[str, Any]:
        """Run every party to the end; returns party -> summary. The first failure is raised
        (its peers are aborted)."""
        results: dict[str, Any] = {}
        errors: dict[str, BaseException] = {}
        lock = threading.Lock()

        def go(party: str) -> None:
            try:
                out = self.pipelines[party].run(self.cancels[party])
            except BaseException as exc:
                with lock:
                    errors[party] = exc
                self.hub.transport(party).abort(
                    self.spec.job, party, list(self.spec.parties), f"{type(exc).__name__}"
                )
                for other, token in self.cancels.items():
                    if other != party:
                        token.cancel(f"{party} failed")
                return
            with lock:
                results[party] = out

        threads = [
            threading.Thread(target=go, args=(p,), name=f"pipeline-{p}") for p in self.spec.parties
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for attempt_dir in self.root.glob("*/steps/*/a*"):  # per-run secrets (PSI keys)
            if attempt_dir.is_dir():
                DirectoryArtifacts(attempt_dir).discard_secrets()
        if errors:
            first = next(
                (e for e in errors.values() if not isinstance(e, ProtocolAbort)),
                next(iter(errors.values())),
            )
            if isinstance(first, PrivfinError) or not isinstance(first, Exception):
                raise first
            raise ProtocolAbort(f"pipeline failed: {type(first).__name__}: {first}") from first
        return results

    def output(self, party: str, step: str, name: str) -> Any:
        """Read one output of a finished run (DataFrame, dict)."""
        pipe = self.pipelines[party]
        arts = {a.name: a for a in pipe.store.artifacts(self.spec.job, step)}
        if name not in arts:
            raise ConfigError(f"{party} has no output {step}.{name}")
        return pipe._read(arts[name])


def run_local(
    spec: PipelineSpec,
    datasets: Mapping[str, Mapping[str, pd.DataFrame]],
    root: str | Path,
    **kwargs: Any,
) -> LocalRun:
    """Validate and run ``spec`` in-process; returns the finished :class:`LocalRun`."""
    run = LocalRun(spec, datasets, root, **kwargs)
    run.run()
    return run
