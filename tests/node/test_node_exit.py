"""[16] A node process leaves through ``exit_now`` once it has shut down: what a normal exit
does first still happens (non-daemon threads joined, atexit handlers run, output flushed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CODE = """
import atexit, sys, threading, time
from privfin.node.__main__ import exit_code, exit_now
atexit.register(lambda: print("atexit ran", flush=False))
def late():
    time.sleep(0.2)
    sys.stdout.write("thread done\\n")
threading.Thread(target=late).start()
sys.stdout.write("buffered")
sys.stdout.write("\\n")
exit_now(exit_code(SystemExit({code})))
"""


@pytest.mark.parametrize(("code", "status"), [("None", 0), ("3", 3), ("'failed'", 1)])
def test_exit_now_joins_threads_runs_atexit_and_flushes(code: str, status: int) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE.format(code=code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == status, out.stderr
    assert out.stdout.splitlines() == ["buffered", "thread done", "atexit ran"]
    assert out.stderr.strip() == ("failed" if code == "'failed'" else "")


def test_node_modules_are_imported_with_gc_paused_then_frozen() -> None:
    code = (
        "import gc, sys\n"
        "from privfin.node.__main__ import _import_node\n"
        "assert 'privfin.node.server' not in sys.modules\n"
        "_import_node()\n"
        "print('privfin.node.server' in sys.modules, gc.isenabled(), gc.get_freeze_count() > 0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True"]
