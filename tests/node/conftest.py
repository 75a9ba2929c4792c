"""Shared set-up of the node tests: a job runner of one node ("bank", one pinned peer
"telco") on a fresh store, without a server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from privfin.federation.mailbox import Mailbox
from privfin.federation.tls import create_identity
from privfin.node.config import NodeConfig, PeerConfig
from privfin.node.runner import JobRunner


@pytest.fixture
def lone_runner(tmp_path: Path) -> Iterator[JobRunner]:
    ids = {p: create_identity(p, tmp_path / p) for p in ("bank", "telco")}
    config = NodeConfig(
        party="bank",
        port=1,
        state_dir=tmp_path / "state",
        cert=ids["bank"].cert,
        key=ids["bank"].key,
        peers={"telco": PeerConfig(url="https://127.0.0.1:1", cert=ids["telco"].cert)},
    )
    box = Mailbox(tmp_path / "state" / "node.sqlite")
    runner = JobRunner(config, box)
    try:
        yield runner
    finally:
        runner.shutdown()
        box.close()
