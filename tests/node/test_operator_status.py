"""[16] The operator API returns a job's status as stored (plain JSON, rendered without
FastAPI's per-item encoder): the same document, large results included. [11] A status request
with ``wait`` is held until the job ends (a long poll), and answers at once when it does."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest

from privfin.node.operator import create_operator_app
from privfin.node.runner import JobRunner


def _get(app: Any, url: str, token: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://op") as c:
            return await c.get(url, headers={"Authorization": f"Bearer {token}"})

    return asyncio.run(go())


def test_job_status_is_returned_as_stored(
    lone_runner: JobRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = lone_runner
    app = create_operator_app(runner.config, runner)
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


def test_status_with_wait_answers_when_the_job_ends(
    lone_runner: JobRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = lone_runner
    app = create_operator_app(runner.config, runner)
    token = app.state.token
    monkeypatch.setattr(
        runner,
        "status",
        lambda job: {"job": job, "status": runner._status[job]} if job == "j1" else None,
    )
    runner._status["j1"] = "running"
    t0 = time.monotonic()  # held for its whole wait: still running
    r = _get(app, "/v1/jobs/j1?wait=0.3", token)
    assert r.json()["status"] == "running" and time.monotonic() - t0 >= 0.3
    # the job ends 0.4 s into a 20 s wait: the answer comes then, not at the end
    timer = threading.Timer(0.4, lambda: runner._set("j1", status="done"))
    t0 = time.monotonic()
    timer.start()
    r = _get(app, "/v1/jobs/j1?wait=20", token)
    took = time.monotonic() - t0
    timer.join()
    assert r.json()["status"] == "done" and 0.35 <= took < 5.0
    t0 = time.monotonic()  # an ended job answers at once
    assert _get(app, "/v1/jobs/j1?wait=20", token).json()["status"] == "done"
    assert time.monotonic() - t0 < 5.0
    for bad in ("31", "-1", "nan", "x"):
        assert _get(app, f"/v1/jobs/j1?wait={bad}", token).status_code in (400, 422)
    assert _get(app, "/v1/jobs/j2?wait=20", token).status_code == 404


def test_a_held_status_request_answers_when_the_node_shuts_down(lone_runner: JobRunner) -> None:
    runner = lone_runner
    runner._status["j1"] = "running"
    timer = threading.Timer(0.3, runner.shutdown)
    t0 = time.monotonic()
    timer.start()
    assert runner.wait_ended("j1", 20.0) is False
    assert time.monotonic() - t0 < 5.0
    timer.join()
