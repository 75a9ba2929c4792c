"""Tune the C allocator of a long-lived privfin process for large, short-lived buffers.

A node moves hundreds of megabytes per job in buffers of a few to tens of megabytes: encoded
messages, TLS records, received payloads, decoded arrays and the protocols' numpy temporaries.
glibc's ``malloc`` serves a request above its mmap threshold (at most 32 MiB, adjusted
dynamically) with a fresh ``mmap`` and returns it with ``munmap`` when freed, and every thread
but the main one allocates from an arena of 64 MiB heaps that are trimmed as soon as they
empty. So the same sizes are mapped, faulted in page by page, and unmapped again, message after
message: measured on this project's 2-core VMs at 3.6-12 µs per 4 KiB page fault, a copy into
a fresh 64 MiB buffer ran at 300-870 MB/s against 3-4.5 GB/s into a reused one.

:func:`tune_allocator` asks glibc (``mallopt``) to serve every thread from the main heap and to
keep up to :data:`KEEP_BYTES` of freed memory for reuse (no mmap below that size, no trimming
of less than that). The cost is resident memory: a node keeps up to that much more than it
uses at a given moment. Nothing is done on a C library other than glibc, when the operator set
glibc's own ``MALLOC_*`` variables (their choice stands), or when ``PRIVFIN_MALLOC=default``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys

__all__ = ["KEEP_BYTES", "tune_allocator"]

_log = logging.getLogger(__name__)

#: freed memory a tuned process keeps for reuse, and the size below which it does not mmap
KEEP_BYTES = 256 * 1024 * 1024

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

_GLIBC_VARIABLES = (
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "GLIBC_TUNABLES",
)


def tune_allocator(keep_bytes: int = KEEP_BYTES) -> dict[str, int] | None:
    """Apply the settings of the module's docstring to this process (call it early, before
    threads start); returns what was set, or None if nothing was (not glibc, the operator's
    own ``MALLOC_*``/``GLIBC_TUNABLES`` settings, ``PRIVFIN_MALLOC=default``, or ``mallopt``
    refused)."""
    if not 0 < keep_bytes <= 1 << 30:
        raise ValueError("keep_bytes must be between 1 byte and 1 GiB")
    if os.environ.get("PRIVFIN_MALLOC", "").strip().lower() == "default":
        return None
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    if any(name in os.environ for name in _GLIBC_VARIABLES):
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    settings = {"arena_max": 1, "mmap_threshold": keep_bytes, "trim_threshold": keep_bytes}
    for param, value in (
        (_M_ARENA_MAX, settings["arena_max"]),
        (_M_MMAP_THRESHOLD, settings["mmap_threshold"]),
        (_M_TRIM_THRESHOLD, settings["trim_threshold"]),
    ):
        if mallopt(param, value) != 1:  # glibc returns 1 on success
            _log.warning("allocator: mallopt(%d, %d) was refused; left as it was", param, value)
            return None
    _log.debug("allocator tuned: %s", settings)
    return settings
