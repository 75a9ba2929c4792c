"""Shared helpers for the benchmark scripts.

Every benchmark prints a readable table and, for each figure compared with a peer, one JSON line::

    {"bench": "he.paillier.encrypt", "unit": "ops/s", "ours": 3600.0, "peer": 123.0,
     "peer_name": "phe 1.5.0 + gmpy2", "ratio": 29.3, "higher_is_better": true,
     "size": "2048-bit, 2 cores"}

``ratio`` is ours/peer when higher is better (rates) and peer/ours otherwise (times), so a ratio
above 1 always means privfin is ahead. Peers are installed from PyPI into their own virtual
environment under ``benchmarks/.venvs/<name>`` (git-ignored), created on first use.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

VENVS = Path(__file__).resolve().parent / ".venvs"


def peer_python(name: str, requirements: Sequence[str]) -> Path:
    """Create (once) ``benchmarks/.venvs/<name>`` with ``requirements`` and return its python.

    A stamp file records the requirement list, so a changed list reinstalls.
    """
    venv = VENVS / name
    python = venv / "bin" / "python"
    stamp = venv / ".requirements"
    wanted = "\n".join(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    VENVS.mkdir(parents=True, exist_ok=True)
    print(f"[bench] installing peer {name}: {' '.join(requirements)}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *requirements],
        check=True,
    )
    stamp.write_text(wanted)
    return python


def run_peer(python: Path, script: str, *args: str, timeout: float = 3600) -> Any:
    """Run ``script`` (Python source) with a peer's interpreter; it must print one JSON value
    on its last line of stdout, which is returned."""
    proc = subprocess.run(
        [str(python), "-c", script, *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def emit(
    bench: str,
    unit: str,
    ours: float,
    peer: float | None,
    peer_name: str,
    higher_is_better: bool,
    size: str,
) -> dict[str, Any]:
    """Print one JSON result line and return it. ``peer=None`` records a figure with no peer."""
    ratio: float | None = None
    if peer is not None and ours > 0 and peer > 0:
        ratio = ours / peer if higher_is_better else peer / ours
    line = {
        "bench": bench,
        "unit": unit,
        "ours": round(float(ours), 6),
        "peer": None if peer is None else round(float(peer), 6),
        "peer_name": peer_name,
        "ratio": None if ratio is None else round(ratio, 3),
        "higher_is_better": higher_is_better,
        "size": size,
    }
    print(json.dumps(line), flush=True)
    return line


def print_table(title: str, rows: Sequence[dict[str, Any]]) -> None:
    """Print ``rows`` (dicts with the same keys) as an aligned text table."""
    if not rows:
        return
    cols = list(rows[0].keys())
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    print(flush=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return "" if value is None else str(value)


def timed(fn: Callable[[], Any], *, min_time: float = 0.0, repeat: int = 1) -> float:
    """Best wall-clock seconds of ``repeat`` calls of ``fn`` (each run at least once)."""
    best = float("inf")
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
        if min_time and best >= min_time:
            break
    return best


def installed_bytecode() -> None:
    """Compile privfin's modules to bytecode, as a wheel install does (an editable install
    under ``PYTHONDONTWRITEBYTECODE=1`` has none, and then every node process the benchmark
    starts compiles the package anew: 0.25 core-s per node start here). Up-to-date files are
    skipped; the peers' wheels come with theirs."""
    import compileall

    import privfin

    compileall.compile_dir(str(Path(privfin.__file__).parent), quiet=2)


def machine() -> str:
    """A one-line description of the machine for the results."""
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _cpu_ticks() -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs from ``/proc/stat`` (None where there is none)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return ticks[7] if len(ticks) == 8 else 0, sum(ticks)


_TICKS_AT_START = _cpu_ticks()


def probe_ms() -> float:
    """Milliseconds of a fixed pure-Python loop (2 million additions in a function): the
    machine's speed for interpreted code at the moment. On a shared virtual machine it varies
    by 2x or more within an hour (measured in the ninth session), so wall times are only
    comparable next to it."""

    def loop() -> int:
        total = 0
        for i in range(2_000_000):
            total += i
        return total

    start = time.perf_counter()
    loop()
    return (time.perf_counter() - start) * 1000


def conditions() -> str:
    """The conditions a run had: load average, the share of CPU time the hypervisor took from
    this machine since this process started (steal), and :func:`probe_ms` now."""
    load = os.getloadavg()
    parts = [f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"]
    now = _cpu_ticks()
    if now is not None and _TICKS_AT_START is not None and now[1] > _TICKS_AT_START[1]:
        steal = (now[0] - _TICKS_AT_START[0]) / (now[1] - _TICKS_AT_START[1])
        parts.append(f"steal {100 * steal:.1f} % since the start")
    parts.append(f"probe {probe_ms():.0f} ms")
    return ", ".join(parts)
