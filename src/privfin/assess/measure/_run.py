"""One instrumented in-process run: every party a thread of this process, connected by the memory
transport (:func:`privfin.runtime.simulate`), with what each party cost and sent.

Measured per run:

- ``wall_s``: from the start of the parties' threads to the end of the last one;
- ``cpu_s[party]``: that party's thread CPU time (:func:`time.thread_time`, user + system);
  ``cpu_s``: the CPU time of the whole process (and of any worker process it waited for) over
  the run (:func:`resource.getrusage`), which includes helper threads the parties started;
- ``peak_rss_mb``: the process's peak resident set over the run. Parties are threads of one
  process, so memory cannot be split per party here: the per-party figure is the process's
  (the source says so). The kernel's high-water mark is reset before the run where
  ``/proc/self/clear_refs`` allows it; else the figure is the process's lifetime peak;
- ``bytes[party]``: the encoded bytes that party sent (duplicates the transport dropped are not
  counted); ``messages``;
- ``rounds``: the length of the longest causal chain of messages — a message's depth is one
  more than the deepest message its sender had received before sending it — i.e. the number of
  one-way network latencies on the critical path of the run.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privfin.config import Settings
from privfin.federation.memory import MemoryHub
from privfin.federation.transport import MessageKey
from privfin.runtime import Component, Context, simulate

__all__ = ["CausalHub", "RunStats", "peak_rss_mb", "reset_peak_rss", "run_instrumented"]


class CausalHub(MemoryHub):
    """A :class:`MemoryHub` that records the causal depth of every message (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self._depth_lock = threading.Lock()
        self._clock: dict[str, int] = {}  # party -> deepest message it has received
        self._depth: dict[MessageKey, int] = {}

    def _deliver(self, key: MessageKey, payload: bytes) -> None:
        with self._depth_lock:
            if key not in self._depth:
                self._depth[key] = self._clock.get(key.sender, 0) + 1
        super()._deliver(key, payload)

    def _take(self, key: MessageKey, timeout: float, cancel: Any) -> bytes:
        payload = super()._take(key, timeout, cancel)
        with self._depth_lock:
            d = self._depth.get(key, 0)
            if d > self._clock.get(key.receiver, 0):
                self._clock[key.receiver] = d
        return payload

    @property
    def rounds(self) -> int:
        with self._depth_lock:
            return max(self._depth.values(), default=0)

    def bytes_sent(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for key, payload in self.wire:
            out[key.sender] = out.get(key.sender, 0) + len(payload)
        return out

    def messages_sent(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for key, _ in self.wire:
            out[key.sender] = out.get(key.sender, 0) + 1
        return out


@dataclass
class RunStats:
    """What one run cost (see the module doc for how each figure is measured)."""

    outputs: dict[str, Any]
    wall_s: float
    cpu_s: float
    cpu_by_party: dict[str, float]
    peak_rss_mb: float
    rss_note: str
    bytes_by_party: dict[str, int]
    messages: int
    rounds: int
    parties: list[str] = field(default_factory=list)

    @property
    def bytes_total(self) -> int:
        return sum(self.bytes_by_party.values())


_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux ``clear_refs`` 5)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """The process's peak resident set (``VmHWM``), else ``ru_maxrss``, in MiB."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _process_cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_instrumented(
    component: Component,
    roles: Mapping[str, Sequence[str]],
    *,
    params: Mapping[str, Any],
    inputs: Mapping[str, Mapping[str, Any]],
    seed: int,
    settings: Settings | None = None,
    timeout: float = 120.0,
    component_name: str = "workload",
) -> RunStats:
    """Run ``component`` for every party of ``roles`` in one process and measure it."""
    hub = CausalHub()
    cpu: dict[str, float] = {}
    lock = threading.Lock()

    def timed(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
        start = time.thread_time()
        try:
            return component(ctx, params, inputs)
        finally:
            with lock:
                cpu[ctx.party] = time.thread_time() - start

    fresh = reset_peak_rss()
    cpu0 = _process_cpu()
    t0 = time.perf_counter()
    outputs = simulate(
        timed,
        roles,
        params=params,
        inputs=inputs,
        seed=seed,
        settings=settings or Settings(mode="development"),
        hub=hub,
        timeout=timeout,
        component_name=component_name,
    )
    wall = time.perf_counter() - t0
    cpu_total = _process_cpu() - cpu0
    peak = peak_rss_mb()
    note = (
        "process peak RSS over the run (VmHWM reset before it); parties are threads of one "
        "process and share it"
        if fresh
        else "process lifetime peak RSS (the high-water mark could not be reset); parties are "
        "threads of one process and share it"
    )
    sent = hub.bytes_sent()
    return RunStats(
        outputs=outputs,
        wall_s=wall,
        cpu_s=max(cpu_total, sum(cpu.values())),
        cpu_by_party=dict(cpu),
        peak_rss_mb=peak,
        rss_note=note,
        bytes_by_party={p: sent.get(p, 0) for p in roles},
        messages=len(hub.wire),
        rounds=hub.rounds,
        parties=list(roles),
    )
