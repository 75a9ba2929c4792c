"""[11]/[15] Which received payloads a node keeps in memory only (``JobRunner.volatile``): the
messages of a component that cannot resume in place after a crash, in a pipeline step (it
restarts as a new attempt) and in a single-component job (it reruns from the start with fresh
randomness, so its old messages are never read again). A component that resumes in place
(PSI) or declares nothing keeps its payloads on disk."""

from __future__ import annotations

from privfin.federation.transport import MessageKey
from privfin.node.runner import JobRunner, JobSpec


def _key(job: str, component: str) -> MessageKey:
    return MessageKey(job, component, "t", "telco", "bank", 0)


def test_single_component_jobs_of_components_that_cannot_resume_are_volatile(
    lone_runner: JobRunner,
) -> None:
    runner = lone_runner
    roles = {"bank": ["data"], "telco": ["data"]}
    for job, component in [("lr", "ss_lr"), ("psi", "psi"), ("exp", "exposure"), ("p", "ping")]:
        runner._specs[job] = JobSpec(job=job, component=component, roles=roles)
    assert runner.volatile(_key("lr", "ss_lr"))  # restarts from scratch: memory only
    assert not runner.volatile(_key("psi", "psi"))  # resumes in place from its records
    assert not runner.volatile(_key("exp", "exposure"))  # declares nothing: kept
    assert not runner.volatile(_key("lr", "psi"))  # not the job's component
    assert not runner.volatile(_key("nope", "ss_lr"))  # not a job of this node
    assert runner.volatile(_key("p", "ping"))  # a diagnostic that reruns from the start
    assert not runner.volatile(_key("p", "ss_lr"))
