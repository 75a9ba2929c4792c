"""``python -m privfin.node --config node.yaml``: run one node (used by the local cluster).

Once the node has shut down (SIGTERM or SIGINT: graceful, see :mod:`privfin.node.server`;
or a start that failed) the process leaves through :func:`exit_now`: it waits for its
non-daemon threads and runs the ``atexit`` handlers as the interpreter would, then exits
without tearing the interpreter down (with FastAPI, SQLAlchemy, pandas and the protocols
loaded, that teardown took 0.6-0.9 s of every node's stop, and of every ``privfin psi`` run).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import logging
import os
import sys
import threading
from typing import NoReturn

from privfin.errors import PrivfinError, disk_full
from privfin.node.logs import configure_logging


def _import_node() -> None:
    """Import the node's modules with the garbage collector paused, then move everything
    they allocated out of its reach (``gc.freeze``): the import makes hundreds of thousands
    of objects and no garbage worth a collection (0.2-0.3 of 2.1-2.5 core-s per node start),
    and later full collections no longer walk them."""
    gc.disable()
    try:
        import privfin.node.server  # noqa: F401
    finally:
        gc.freeze()
        gc.enable()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m privfin.node")
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    configure_logging(logging.INFO)  # one line per record: peer text cannot forge lines
    from privfin.runtime.allocator import tune_allocator

    tune_allocator()  # before any thread: large buffers are reused, not faulted in anew
    _import_node()
    from privfin.node.config import load_config
    from privfin.node.server import run_node

    try:
        config = load_config(args.config)
        try:
            run_node(config)
        except Exception as exc:  # e.g. the state directory's disk is full at start
            full = disk_full(exc, str(config.state_dir))
            if full is None:
                raise
            raise full from exc
    except PrivfinError as exc:
        logging.getLogger("privfin.node").error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def exit_code(exc: SystemExit) -> int:
    """The status the interpreter would exit with for ``exc`` (a message is printed)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def exit_now(code: int) -> NoReturn:
    """Exit with ``code`` after what a normal exit does first (join the non-daemon threads,
    run the ``atexit`` handlers: logging is flushed, pools are shut down), skipping only the
    interpreter's teardown of its modules."""
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or gone: nothing to say there
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    try:
        status = main()
    except SystemExit as stop:  # SIGTERM: NodeTerminated, after the graceful shutdown
        status = exit_code(stop)
    exit_now(status)
