"""The FATE 2.2.0 peer used by the vertical-FL benchmarks, installed into benchmarks/.venvs/fate.

torch 2.13.0 resolves to the CPU wheel on this machine's disk; an unpinned pandas breaks FATE's
deserialiser, hence the pins. Both ``vertical.py`` and ``vertical_lr.py`` call
:func:`fate_python`, which creates the venv once (a file lock keeps two scripts from racing).
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from _harness import VENVS, peer_python

FATE_REQUIREMENTS = ["pyfate==2.2.0", "fate_utils", "torch==2.13.0", "pandas==2.2.3"]


def fate_python() -> Path:
    """The FATE venv's python (created on first use)."""
    VENVS.mkdir(parents=True, exist_ok=True)
    with open(VENVS / ".fate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return peer_python("fate", FATE_REQUIREMENTS)
