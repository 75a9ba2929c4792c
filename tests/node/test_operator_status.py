"""[16] The operator API returns a job's status as stored (plain JSON, rendered without
FastAPI's per-item encoder): the same document, large results included."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from privfin.federation.mailbox import Mailbox
from privfin.federation.tls import create_identity
from privfin.node.config import NodeConfig, PeerConfig
from privfin.node.operator import create_operator_app
from privfin.node.runner import JobRunner


def _get(app: Any, url: str, token: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://op") as c:
            return await c.get(url, headers={"Authorization": f"Bearer {token}"})

    return asyncio.run(go())


def test_job_status_is_returned_as_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
        app = create_operator_app(config, runner)
        status = {
            "job": "j1",
            "status": "done",
            "result": {"output": {"rows": list(range(200_000)), "size": 200_000, "name": "é"}},
            "error": None,
            "progress": {"psi": {"done": 3, "total": None}},
        }
        monkeypatch.setattr(runner, "status", lambda job: status if job == "j1" else None)
        r = _get(app, "/v1/jobs/j1", app.state.token)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.json() == status
        assert _get(app, "/v1/jobs/j2", app.state.token).status_code == 404
        assert _get(app, "/v1/jobs/j1", "wrong").status_code in (401, 403)
    finally:
        runner.shutdown()
        box.close()
