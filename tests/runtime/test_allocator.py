"""[11]/[15] A node process tunes glibc's allocator so that large buffers freed by one message
are reused by the next instead of being unmapped and faulted in again page by page."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from privfin.runtime.allocator import KEEP_BYTES, tune_allocator

_PROBE = r"""
import json, resource, sys, threading
from privfin.runtime.allocator import tune_allocator
applied = tune_allocator() if sys.argv[1] == "tuned" else None
out = {}
def work():
    src = bytes(40 << 20)
    view = memoryview(src)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(8):
        copy = bytes(view)  # a fresh 40 MiB buffer each time, as a received payload is
        del copy
    out["faults"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
t = threading.Thread(target=work)
t.start(); t.join()
print(json.dumps({"applied": applied, "faults": out["faults"]}))
"""

glibc = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


def _probe(mode: str, **env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    clean.pop("PRIVFIN_MALLOC", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


@glibc
def test_tuned_process_reuses_large_buffers_instead_of_faulting_them_in() -> None:
    plain = _probe("plain")
    tuned = _probe("tuned")
    assert tuned["applied"] == {
        "arena_max": 1,
        "mmap_threshold": KEEP_BYTES,
        "trim_threshold": KEEP_BYTES,
    }
    pages = (40 << 20) // 4096
    assert isinstance(plain["faults"], int) and isinstance(tuned["faults"], int)
    assert plain["faults"] >= 6 * pages  # each copy mapped and faulted in anew
    assert tuned["faults"] <= 2 * pages  # the first copy's pages, reused by the others


@glibc
def test_operator_settings_and_opt_out_are_respected() -> None:
    assert _probe("tuned", PRIVFIN_MALLOC="default")["applied"] is None
    assert _probe("tuned", MALLOC_ARENA_MAX="4")["applied"] is None


def test_bounds() -> None:
    for bad in (0, -1, (1 << 30) + 1):
        with pytest.raises(ValueError):
            tune_allocator(bad)
