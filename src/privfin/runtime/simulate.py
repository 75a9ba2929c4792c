"""Run a component for every party in one process, over the memory transport."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from privfin.compute import ComputeBackend, SerialBackend
from privfin.config import Settings
from privfin.crypto.random import RandomSource, SeededRandom, SystemRandom
from privfin.errors import PrivfinError, ProtocolAbort
from privfin.federation.memory import MemoryHub
from privfin.federation.transport import Channel, validate_name
from privfin.runtime.context import Component, Context, MemoryArtifacts, Progress

__all__ = ["simulate"]


def simulate(
    component: Component,
    roles: Mapping[str, Sequence[str]],
    *,
    params: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Mapping[str, Any]] | None = None,
    job: str = "sim",
    component_name: str = "component",
    timeout: float = 60.0,
    seed: int | None = None,
    settings: Settings | None = None,
    hub: MemoryHub | None = None,
    progress: Progress | None = None,
    compute: ComputeBackend | None = None,
) -> dict[str, Any]:
    """Run ``component`` once per party in threads, connected by an in-memory hub.

    Parameters
    ----------
    roles:
        Party name -> its roles in the job.
    inputs:
        Party name -> that party's private inputs.
    seed:
        Seeds each party's randomness (deterministic runs, tests). ``None``: OS randomness.
    settings:
        Default: :meth:`Settings.from_env` (``PRIVFIN_MODE``, ``PRIVFIN_ALLOW_INSECURE``).
    hub:
        Pass a hub to inspect every message afterwards (``hub.wire``).
    compute:
        A compute backend shared by every simulated party (default: each party computes
        serially in its own thread). The caller closes it.

    Returns
    -------
    dict
        Party name -> what that party's component returned.

    Raises
    ------
    PrivfinError
        The first party failure (others are aborted and stop quickly instead of timing out).
    """
    hub = hub or MemoryHub()
    settings = settings or Settings.from_env()
    parties = [validate_name("party", p) for p in roles]  # here, not in a party's thread
    validate_name("job", job)
    validate_name("component", component_name)
    all_roles = {p: tuple(r) for p, r in roles.items()}
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}
    lock = threading.Lock()

    def run(party: str) -> None:
        rnd: RandomSource = SystemRandom() if seed is None else SeededRandom(f"{seed}/{party}")
        channel = Channel(
            hub.transport(party),
            job=job,
            component=component_name,
            party=party,
            peers=parties,
            default_timeout=timeout,
        )
        ctx = Context(
            job=job,
            component=component_name,
            party=party,
            roles=all_roles,
            channel=channel,
            compute=compute or SerialBackend(),
            artifacts=MemoryArtifacts(),
            random=rnd,
            settings=settings,
            progress=progress or Progress(),
            log=logging.LoggerAdapter(logging.getLogger("privfin.job"), {"party": party}),
        )
        try:
            out = component(ctx, params or {}, (inputs or {}).get(party, {}))
        except BaseException as exc:
            with lock:
                errors[party] = exc
            channel.abort(f"{type(exc).__name__}: {exc}")
            return
        with lock:
            results[party] = out

    threads = [threading.Thread(target=run, args=(p,), name=f"party-{p}") for p in parties]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        # Prefer the root cause: a party's own failure over the aborts it caused in others.
        root = [e for e in errors.values() if not _is_induced_abort(e)]
        exc = (root or list(errors.values()))[0]
        if isinstance(exc, PrivfinError) or not isinstance(exc, Exception):
            raise exc
        raise ProtocolAbort(f"component failed: {type(exc).__name__}: {exc}") from exc
    return results


def _is_induced_abort(exc: BaseException) -> bool:
    return isinstance(exc, ProtocolAbort) and "aborted the job" in str(exc)
