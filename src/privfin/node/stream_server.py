"""The node's stream listener: the streaming transport's server with the node's admission
rules — the same as the HTTP message endpoint's (``privfin.node.app``).

A message is admitted only if its sender (the party of the client certificate; the frame's
sender field must match, checked by the server) is a party of the job, the channel is one of
the job's (``JobRunner.admits``), and the job has not ended here (a message for a job that
failed here is answered with the generic reason this node gave its peers); messages of jobs
this node has not started yet go to the pre-job buffer, within the mailbox quotas like
everything else. Messages are taken write-behind (:meth:`Mailbox.accept`): ACKed ``ACCEPTED``
at once and confirmed to the sender (``SYNCED``) after the mailbox's group commit; the sender
keeps them until then. Refusals are rate-limited in the log and
audited (kind and party only).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from privfin.audit import Action
from privfin.errors import ConfigError, disk_full
from privfin.federation.frames import Code
from privfin.federation.mailbox import Mailbox, MessageTooLarge, QuotaExceeded
from privfin.federation.stream import Durable, Outcome, StreamServer, mailbox_admit_many
from privfin.federation.transport import MessageKey
from privfin.node.config import NodeConfig
from privfin.node.logs import LogLimiter, peer_text
from privfin.node.runner import JobRunner

__all__ = ["start_stream_server"]

_audit = logging.getLogger("privfin.node.audit")


def start_stream_server(config: NodeConfig, mailbox: Mailbox, runner: JobRunner) -> StreamServer:
    """Start this node's stream listener on ``config.host:config.stream_port``."""
    if config.stream_port is None:
        raise ConfigError("no stream_port in node.yaml")
    quotas = config.mailbox_quotas()
    running = runner.running
    volatile_of: dict[tuple[str, str], bool] = {}  # (job, channel): a job's spec never changes

    def known(job: str) -> bool:
        return running(job) or runner.knows(job)

    def volatile(key: MessageKey) -> bool:
        found = volatile_of.get((key.job, key.component))
        if found is None:
            found = runner.volatile(key)
            if running(key.job):
                if len(volatile_of) >= 4096:
                    volatile_of.clear()
                volatile_of[(key.job, key.component)] = found
        return found

    store_many = mailbox_admit_many(mailbox, quotas=quotas, known=known, volatile=volatile)
    limiter = LogLimiter(_audit)
    # (sender, job, channel) found admissible while the job runs here: its later messages
    # skip the checks (a job's parties and channels never change; its end is checked)
    admissible: set[tuple[str, str, str]] = set()

    def job_check(sender: str, key: MessageKey) -> Outcome | None:
        if (sender, key.job, key.component) in admissible and running(key.job):
            return None
        outcome = full_check(sender, key)
        if outcome is None and running(key.job) and not runner.ended(key.job):
            if len(admissible) >= 4096:
                admissible.clear()
            admissible.add((sender, key.job, key.component))
        return outcome

    def full_check(sender: str, key: MessageKey) -> Outcome | None:
        parties = runner.parties(key.job)
        if parties is None:
            return None  # not started here yet: the pre-job buffer (quotas) decides
        if sender not in parties:
            return Outcome(Code.FORBIDDEN, f"{sender!r} is not a party of job {key.job!r}")
        refused = runner.admits(key.job, key.component, sender)
        if refused is not None:
            return Outcome(Code.BAD, refused)
        if runner.ended(key.job) and not mailbox.has(key):
            reason = runner.failure_for_peer(key.job)
            if reason is not None:
                return Outcome(Code.FAILED, reason)
            return Outcome(Code.ENDED, f"job {key.job!r} has ended at {config.party!r}")
        return None

    def admit_many(
        sender: str, items: Sequence[tuple[MessageKey, bytes]], durable: Durable
    ) -> Sequence[Outcome]:
        runner.contacts.seen(sender)  # (the stream server has matched its certificate)
        out: list[Outcome | None] = [job_check(sender, key) for key, _ in items]
        todo = [i for i, o in enumerate(out) if o is None]
        if todo:
            every = len(todo) == len(items)  # (every message admitted: the common case)

            def written(indices: list[int]) -> None:
                durable([todo[i] for i in indices])

            try:
                if every:
                    return store_many(sender, items, durable)
                stored = store_many(sender, [items[i] for i in todo], written)
            except Exception as exc:
                fault = disk_full(exc, str(config.state_dir))
                if fault is None:
                    raise  # the server answers BUSY: the sender retries
                for i in todo:
                    runner.fail(items[i][0].job, fault)
                stored = [Outcome(Code.NOT_STORED, "this node cannot store")] * len(todo)
            for i, o in zip(todo, stored, strict=True):
                out[i] = o
        return [o if o is not None else Outcome(Code.BUSY) for o in out]

    def admit(sender: str, key: MessageKey, payload: bytes) -> Outcome:
        return admit_many(sender, [(key, payload)], lambda _: None)[0]

    def precheck(sender: str, key: MessageKey, size: int) -> Outcome | None:
        runner.contacts.seen(sender)
        refused = job_check(sender, key)
        if refused is not None:
            return refused
        try:
            mailbox.precheck(key, size, quotas, runner.knows)
        except MessageTooLarge as exc:
            return Outcome(Code.TOO_LARGE, str(exc))
        except QuotaExceeded as exc:
            return Outcome(Code.QUOTA, str(exc))
        return None

    def on_abort(sender: str, job: str, reason: str) -> Outcome:
        runner.contacts.seen(sender)
        parties = runner.parties(job)
        if parties is None or sender not in parties:
            return Outcome(Code.FORBIDDEN, f"no job {job!r} of party {sender!r} here")
        runner.accept_abort(job, sender, peer_text(reason) or "(no reason)")
        return Outcome(Code.STORED)

    def on_refused(party: str, kind: str, reason: str) -> None:
        if limiter.log(logging.WARNING, party, f"stream-{kind}", "stream: %s", reason):
            runner.record_later(
                Action.message_refused, actor="node", party=party, evidence={"kind": kind}
            )

    trusted = config.peer_certs()
    return StreamServer(
        config.identity,
        trusted,
        admit,
        host=config.host,
        port=config.stream_port,
        precheck=precheck,
        on_abort=on_abort,
        admit_many=admit_many,
        on_refused=on_refused,
    ).start()
