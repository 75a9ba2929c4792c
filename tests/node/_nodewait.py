"""Waiting helpers shared by the node tests (one copy instead of one per test module)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from privfin.node.cluster import Cluster


def until(
    what: Callable[[], Any], timeout: float = 30.0, every: float = 0.1, message: str = ""
) -> Any:
    """Poll ``what`` until it returns something truthy (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message or what}")
        time.sleep(every)


def job_status(cluster: Cluster, party: str, job: str) -> dict[str, Any]:
    """``job``'s status at ``party``'s node, through its own admin identity."""
    with cluster.client(party) as c:
        status: dict[str, Any] = c.status(job)
        return status
