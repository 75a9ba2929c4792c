"""A local cluster: one node process per party on 127.0.0.1, with generated identities.

``cluster_up`` writes, under ``DIR``: ``<party>/<party>.key|.crt``, ``<party>/node.yaml``,
``<party>/node.log``, ``<party>/state/`` and ``cluster.json`` (parties, ports, pids). Every
node pins the certificates of all the others. ``cluster_down`` stops the processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from privfin.errors import ConfigError, PeerTimeout
from privfin.federation.tls import Identity, create_identity, fingerprint
from privfin.federation.transport import validate_name
from privfin.node.config import load_config
from privfin.node.logs import open_private_log
from privfin.node.tokens import ensure_token

if TYPE_CHECKING:
    from privfin.node.client import NodeClient

__all__ = ["Cluster", "cluster_down", "cluster_up", "free_port", "load_cluster"]


#: seconds between two health checks of a starting node
HEALTH_POLL = 0.02


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NodeDied(ConfigError):
    """A node process of a local cluster exited while starting."""

    def __init__(self, party: str, log: str) -> None:
        self.party = party
        self.log = log
        super().__init__(f"the node of {party} exited while starting; its log ends:\n{log}")


@dataclass
class Cluster:
    """A running (or described) local cluster."""

    root: Path
    parties: dict[str, dict[str, Any]]  # party -> {port, pid, url}
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    def identity(self, party: str) -> Identity:
        d = self.root / party
        return Identity(party, d / f"{party}.crt", d / f"{party}.key")

    def client(self, party: str) -> NodeClient:
        """A client of ``party``'s operator API (its token is in its state directory)."""
        # imported here: ``privfin psi`` starts its nodes before it needs a client (httpx)
        from privfin.node.client import NodeClient

        return NodeClient.for_config(load_config(self.config_path(party)))

    def config_path(self, party: str) -> Path:
        return self.root / party / "node.yaml"

    def start(self, party: str) -> int:
        """(Re)start the node process of ``party``; returns its pid."""
        log = open_private_log(self.root / party / "node.log")  # 0600: the node's local log
        proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-m", "privfin.node", "--config", str(self.config_path(party))],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(log)
        self.procs[party] = proc
        self.parties[party]["pid"] = proc.pid
        self._save()
        return proc.pid

    def kill(self, party: str, sig: int = signal.SIGKILL) -> None:
        """Stop ``party``'s node (SIGKILL by default: a crash) and wait until it is gone."""
        pid = self.parties[party].get("pid")
        if pid:
            _stop(int(pid), sig)
        proc = self.procs.pop(party, None)
        if proc is not None:
            proc.wait(timeout=10)
        self.parties[party]["pid"] = None
        self._save()

    def down(self) -> list[str]:
        """Stop every node (SIGTERM to all of them at once, so that they shut down in
        parallel, then SIGKILL to any still alive after the timeout); returns the parties that
        were running."""
        stopped = [p for p, info in self.parties.items() if _alive(info.get("pid"))]
        for party in stopped:  # every node shuts down at once, then each is waited for
            with contextlib.suppress(OSError):
                os.kill(int(self.parties[party]["pid"]), signal.SIGTERM)
        for party in list(self.parties):
            self.kill(party, 0)  # signal 0: only wait (SIGKILL after the timeout)
        return stopped

    def run_job(
        self,
        spec: Mapping[str, Any],
        *,
        submit_to: Sequence[str] | None = None,
        timeout: float = 300.0,
    ) -> dict[str, Any]:
        """Submit ``spec`` to every party of its roles (or to ``submit_to``), wait until each
        party's node is done, and return each party's output. A pipeline is proposed by its
        first party and approved by every other party's operator (the local cluster holds
        every admin identity); its output is each party's summary of its steps and files.
        Raises ProtocolAbort if the job fails at any party."""
        pipeline = "steps" in spec
        parties = list(spec["parties"] if pipeline else spec["roles"])
        if pipeline:  # proposed by the first party, approved by the others' operators
            with self.client(parties[0]) as client:
                client.propose(dict(spec))
            for party in parties[1:]:
                with self.client(party) as client:
                    client.wait_proposal(str(spec["job"]))
                    client.decide(str(spec["job"]), "approve")
            submit_to = []
        started: list[str] = []
        for party in submit_to if submit_to is not None else parties:
            with self.client(party) as client:
                try:
                    client.submit(dict(spec))
                except Exception:  # a refused start: leave no job running alone
                    for other in started:
                        with self.client(other) as c, contextlib.suppress(Exception):
                            c.cancel(str(spec["job"]))
                    raise
            started.append(party)
        outputs: dict[str, Any] = {}
        for party in parties:
            with self.client(party) as client:
                result = client.wait(str(spec["job"]), timeout=timeout)["result"]
                outputs[party] = result if pipeline else result["output"]
        return outputs

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait until every node answers; a node process that exits meanwhile fails at once
        with the end of its log (e.g. a port taken by another program)."""
        import httpx  # (the node client's; imported after the nodes were spawned)

        deadline = time.monotonic() + timeout
        for party in self.parties:
            with self.client(party) as c:  # one client for every attempt
                while True:
                    proc = self.procs.get(party)
                    if proc is not None and proc.poll() is not None:
                        raise NodeDied(party, self._log_tail(party))
                    try:
                        c.health()
                        break
                    except httpx.HTTPError:
                        if time.monotonic() > deadline:
                            raise PeerTimeout(party, "health", timeout) from None
                    # a refused connection costs about a millisecond: asking every 20 ms
                    # (the client's own wait asks every 100 ms) finds a node up 40 ms
                    # sooner on average, and there are usually two
                    time.sleep(HEALTH_POLL)

    def _log_tail(self, party: str, lines: int = 5) -> str:
        try:
            text = (self.root / party / "node.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _save(self) -> None:
        (self.root / "cluster.json").write_text(json.dumps({"parties": self.parties}, indent=2))


def cluster_up(
    parties: Sequence[str],
    directory: str | Path,
    *,
    datasets: Mapping[str, Mapping[str, str | Path]] | None = None,
    mode: str = "production",
    message_timeout: float = 60.0,
    wait: bool = True,
    retries: int = 2,
    transport: str = "http",
) -> Cluster:
    """Create identities and configs and start one node per party."""
    if len(parties) < 2 or len(set(parties)) != len(parties):
        raise ConfigError("a cluster needs at least two distinct parties")
    for p in parties:
        validate_name("party", p)
    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if (root / "cluster.json").exists():
        old = load_cluster(root)
        if any(_alive(info.get("pid")) for info in old.parties.values()):
            raise ConfigError(f"a cluster is already running in {root}; run cluster down first")
    ports = {p: free_port() for p in parties}
    op_ports = {p: free_port() for p in parties}
    if transport not in ("http", "stream"):
        raise ConfigError("transport must be http or stream")
    stream_ports = {p: free_port() for p in parties} if transport == "stream" else {}
    ids: dict[str, Identity] = {}
    for p in parties:
        ids[p] = create_identity(p, root / p, overwrite=True)
    for p in parties:
        cfg = {
            "party": p,
            "host": "127.0.0.1",
            "port": ports[p],
            "state_dir": str(root / p / "state"),
            "cert": str(ids[p].cert),
            "key": str(ids[p].key),
            "mode": mode,
            "message_timeout": message_timeout,
            "peers": {
                q: {
                    "url": f"https://127.0.0.1:{ports[q]}",
                    "cert": str(ids[q].cert),
                    "fingerprint": fingerprint(ids[q].cert.read_bytes()),
                    **(
                        {"transport": "stream", "stream_port": stream_ports[q]}
                        if stream_ports
                        else {}
                    ),
                }
                for q in parties
                if q != p
            },
            "datasets": {k: str(v) for k, v in (datasets or {}).get(p, {}).items()},
            "operator": {"port": op_ports[p]},
            **({"stream_port": stream_ports[p]} if stream_ports else {}),
        }
        (root / p / "node.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        ensure_token(load_config(root / p / "node.yaml"))
    cluster = Cluster(
        root,
        {
            p: {
                "port": ports[p],
                "url": f"https://127.0.0.1:{ports[p]}",
                "operator": f"http://127.0.0.1:{op_ports[p]}",
                "pid": None,
            }
            for p in parties
        },
    )
    for p in parties:
        cluster.start(p)
    if wait:
        try:
            cluster.wait_healthy()
        except NodeDied as exc:
            cluster.down()
            if "in use" in exc.log and retries > 0:  # a free port was taken meanwhile
                return cluster_up(
                    parties,
                    directory,
                    datasets=datasets,
                    mode=mode,
                    message_timeout=message_timeout,
                    wait=wait,
                    retries=retries - 1,
                    transport=transport,
                )
            raise
        except Exception:
            cluster.down()
            raise
    return cluster


def load_cluster(directory: str | Path) -> Cluster:
    root = Path(directory).resolve()
    try:
        data = json.loads((root / "cluster.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"no cluster in {root}: {exc}") from None
    return Cluster(root, data["parties"])


def cluster_down(directory: str | Path) -> list[str]:
    """Stop every node of the cluster in ``directory`` (SIGTERM, then SIGKILL)."""
    return load_cluster(directory).down()


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # reap if it is our child and already exited
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _stop(pid: int, sig: int, timeout: float = 10.0) -> None:
    """Send ``sig`` and wait; SIGKILL the process group if it is still alive after ``timeout``.

    SIGTERM goes to the node alone: it shuts down gracefully and stops its own workers (a
    SIGTERM to the whole group would kill the pool workers under running jobs first, failing
    jobs that should resume). SIGKILL (a crash) goes to the group."""
    try:
        if sig == signal.SIGKILL:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except OSError:
        try:
            os.kill(pid, sig)
        except OSError:
            return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        while _alive(pid) and time.monotonic() < deadline + 5:
            time.sleep(0.05)
