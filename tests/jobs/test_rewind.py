"""A peer restarts a step after this party finished it and later steps: every later step this
party had started is restarted under a new attempt too (announced to its parties), so no rerun
reuses a message key of the failed run; the results equal the first run."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pandas as pd

from privfin.config import Settings
from privfin.federation.transport import CancelToken
from privfin.jobs.local import LocalRun
from privfin.jobs.spec import parse_spec_data

from ._pipeline_data import pipeline_spec, split, until


def _rerun(bank: Any, telco: Any) -> None:
    """Run the bank's pipeline, and the telco's once the bank announced its new attempt; both
    must finish without an error."""
    tokens = {p: CancelToken() for p in ("bank", "telco")}
    errors: list[BaseException] = []

    def go(pipe: Any, party: str) -> None:
        try:
            pipe.run(tokens[party])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    tb = threading.Thread(target=go, args=(bank, "bank"))
    tb.start()
    until(lambda: telco._pending, timeout=30)  # the bank announced the step's new attempt
    tt = threading.Thread(target=go, args=(telco, "telco"))
    tt.start()
    tb.join(120)
    tt.join(120)
    assert not errors, errors


def test_restart_of_a_finished_step_restarts_started_later_steps(tmp_path: Path) -> None:
    spec = parse_spec_data(pipeline_spec("rewind-1"))
    run = LocalRun(spec, split(), tmp_path, settings=Settings(mode="development"), seed=3)
    run.run()
    first = run.output("bank", "score", "scores")
    bank, telco = run.pipelines["bank"], run.pipelines["telco"]
    # the bank "crashed" inside train after the telco had finished everything
    bank.store.set_step("rewind-1", "train", status="running")
    _rerun(bank, telco)
    for pipe in (bank, telco):
        steps = pipe.summary()["steps"]
        assert steps["train"]["attempt"] == 2
        assert steps["score"]["attempt"] == 2  # started at the telco: restarted there too
        assert steps["psi"]["attempt"] == 1 and steps["lr"]["attempt"] == 1
        assert all(s["status"] == "done" for s in steps.values())
    pd.testing.assert_frame_equal(run.output("bank", "score", "scores"), first)


def test_a_step_whose_messages_were_lost_before_it_started_runs_under_a_new_attempt(
    tmp_path: Path,
) -> None:
    """The bank's node restarted after its mailbox had taken (in memory only) messages of a
    step it had not started: the step runs under a new attempt, announced to its parties,
    who rerun it; nothing reads the lost messages and the results equal the first run."""
    spec = parse_spec_data(pipeline_spec("lost-1"))
    run = LocalRun(spec, split(), tmp_path, settings=Settings(mode="development"), seed=3)
    run.run()
    first = run.output("bank", "score", "scores")
    bank, telco = run.pipelines["bank"], run.pipelines["telco"]
    bank.store.set_step("lost-1", "score", status="pending")  # not started before the crash
    asked: list[str] = []

    def lost(component: str) -> bool:
        asked.append(component)
        return component == "score"

    bank.lost = lost
    _rerun(bank, telco)
    assert asked == ["score"]
    for pipe in (bank, telco):
        steps = pipe.summary()["steps"]
        assert steps["score"]["attempt"] == 2
        assert steps["train"]["attempt"] == 1
        assert all(s["status"] == "done" for s in steps.values())
    pd.testing.assert_frame_equal(run.output("bank", "score", "scores"), first)
