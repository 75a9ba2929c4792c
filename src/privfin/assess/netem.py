"""Network tolerance: a technology's workload run by two nodes (two processes) over the
streaming transport (mutual TLS), under an emulated WAN and with a cut mid-run.

WAN (``mode="netem"``)
    Two network namespaces joined by a veth pair; each end has ``tc qdisc ... netem delay
    25ms rate 100mbit`` (:data:`WAN_NETEM`), so a round trip takes 50 ms and each direction
    carries 100 Mbit/s. Node ``a`` runs in one namespace, node ``b`` in the other; the parties
    of the workload are placed on the nodes by the workload (:attr:`Job.sides
    <privfin.assess.measure.workloads.Job.sides>`). Needs root, ``ip`` and ``tc``
    (iproute2) and a kernel that permits namespaces; :func:`wan_unavailable` names what is
    missing.

Fallback (``mode="loopback"``)
    The same two processes on 127.0.0.1, every connection between the nodes through a
    :class:`DelayProxy` (a userspace forwarder: 25 ms and 100 Mbit/s each way; TCP's own
    behaviour under loss is not emulated); the result is recorded as
    ``wan_mode = "loopback-fallback: <reason>; ..."``.

Interruption
    During a second run the link is cut for :data:`CUT_SECONDS` (netem: the veth end of node
    ``b`` is set down, then up; loopback: the proxies drop every connection and hold new
    ones) once a quarter of the uninterrupted run's time has passed. Outcome:
    ``recovered`` (both nodes finished the job), ``failed-cleanly`` (a node reported an error
    and both exited before the deadline) or ``hung`` (the deadline passed; the processes are
    killed).

Each node process is ``python -m privfin.assess.netem <spec.json> <side>``; it rebuilds the job
from the technology's workload (deterministic from the seed), runs its own parties in threads,
each with a :class:`~privfin.federation.stream.StreamServer`, a SQLite
:class:`~privfin.federation.mailbox.Mailbox` and a
:class:`~privfin.federation.stream.StreamTransport` (the pattern of
``benchmarks/stream_channel.py``), and prints one JSON line with its wall time.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "CUT_SECONDS",
    "WAN_NETEM",
    "DelayProxy",
    "NetworkResult",
    "NodeRun",
    "measure_network",
    "run_two_nodes",
    "veth_pair",
    "wan_unavailable",
]

#: Each direction of the emulated WAN: 25 ms one way (50 ms round trip), 100 Mbit/s.
WAN_NETEM = ("delay", "25ms", "rate", "100mbit")
#: How long the link is cut in the interruption run.
CUT_SECONDS = 3.0
#: Seconds the node processes may take to start (imports, identities, servers) before the run.
STARTUP_TIMEOUT = 300.0
_SUBNET = ("10.77.0.1", "10.77.0.2")
_log = logging.getLogger("privfin.assess")


def _run(cmd: Sequence[str]) -> None:
    # fixed iproute2 commands built in this module (names and addresses from here only)
    subprocess.run(list(cmd), check=True, capture_output=True, text=True, timeout=30)  # noqa: S603


def wan_unavailable() -> str | None:
    """Why the netem WAN cannot run here (``None``: it can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not running as root (network namespaces and tc need it)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"the {tool} command (iproute2) is not installed"
    probe = f"pfprobe{os.getpid()}"
    try:
        _run(["ip", "netns", "add", probe])
    except subprocess.CalledProcessError as exc:
        return f"network namespaces are not permitted here: {(exc.stderr or '').strip()}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"network namespaces are not permitted here: {exc}"
    try:
        _run(["ip", "netns", "exec", probe, "ip", "link", "set", "lo", "up"])
        _run(["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo", "root", "netem",
              *WAN_NETEM])  # fmt: skip
    except subprocess.CalledProcessError as exc:
        return f"tc netem is not available: {(exc.stderr or '').strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], check=False, capture_output=True)  # noqa: S603,S607
    return None


@dataclass(frozen=True)
class Link:
    """Two namespaces joined by a veth pair (``ns[i]`` holds ``dev[i]`` with ``ip[i]``)."""

    ns: tuple[str, str]
    dev: tuple[str, str]
    ip: tuple[str, str]

    def set_b(self, up: bool) -> None:
        _run(["ip", "-n", self.ns[1], "link", "set", self.dev[1], "up" if up else "down"])


_counter = iter(range(1 << 30))


@contextmanager
def veth_pair() -> Iterator[Link]:
    """Create the emulated WAN (see the module doc); removed on exit however it ends."""
    tag = f"{os.getpid() % 100000}x{next(_counter)}"
    ns = (f"pfwan{tag}a", f"pfwan{tag}b")
    dev = (f"pfv{tag}a", f"pfv{tag}b")  # at most 15 characters
    made: list[str] = []
    try:
        for n in ns:
            _run(["ip", "netns", "add", n])
            made.append(n)
        _run(["ip", "link", "add", dev[0], "type", "veth", "peer", "name", dev[1]])
        for n, d, addr in zip(ns, dev, _SUBNET, strict=True):
            _run(["ip", "link", "set", d, "netns", n])
            _run(["ip", "-n", n, "addr", "add", f"{addr}/24", "dev", d])
            _run(["ip", "-n", n, "link", "set", d, "up"])
            _run(["ip", "-n", n, "link", "set", "lo", "up"])
            _run(["ip", "netns", "exec", n, "tc", "qdisc", "add", "dev", d, "root", "netem",
                  *WAN_NETEM])  # fmt: skip
        yield Link(ns, dev, _SUBNET)
    finally:
        for n in made:  # deleting a namespace deletes its veth end, and so the pair
            subprocess.run(["ip", "netns", "del", n], check=False, capture_output=True)  # noqa: S603,S607


# -- coordinator ------------------------------------------------------------------------------


@dataclass
class NodeRun:
    """One two-node run: ``wall_s`` (the slower node, from the common start to its end),
    ``ok``, the first error a node reported, and whether the deadline passed."""

    ok: bool
    wall_s: float | None
    error: str = ""
    hung: bool = False
    cut: str = ""  # how the link was cut ("" if it was not)
    cut_after_end: bool = False  # the job had already ended when the cut came


def _package_root() -> str:
    import privfin

    return str(Path(privfin.__file__).resolve().parents[1])


def _line(stream: IO[str], deadline: float) -> dict[str, Any]:
    """The next JSON line a node prints, before ``deadline`` (monotonic)."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(max(0.0, deadline - time.monotonic()))
    if not box:
        raise TimeoutError("a node printed nothing before the deadline")
    if not box[0]:
        raise EOFError("a node exited")
    parsed: dict[str, Any] = json.loads(box[0])
    return parsed


def run_two_nodes(
    technology: str,
    size: Sequence[int],
    *,
    seed: int = 0,
    quick: bool = True,
    link: Link | None = None,
    cut_after: float | None = None,
    deadline: float = 120.0,
    recv_timeout: float = 30.0,
    delay: float = 0.025,
    rate: float = 12.5e6,
) -> NodeRun:
    """Run ``technology``'s workload of ``size`` (rows, features, parties) on two node
    processes: in ``link``'s namespaces (netem) or on loopback (``link=None``: every
    connection between the nodes through a :class:`DelayProxy` of ``delay`` seconds and
    ``rate`` bytes/s each way); with ``cut_after`` seconds, cut the link then (see the
    module doc). ``deadline``: seconds from the common start to both nodes' results (their
    start-up has its own :data:`STARTUP_TIMEOUT`)."""
    from privfin.assess.measure.workloads import WORKLOADS, Size
    from privfin.federation.tls import create_identity

    job = WORKLOADS[technology].build(Size(*size), seed, quick)
    sides = {p: job.sides.get(p, "a") for p in job.roles}
    if set(sides.values()) != {"a", "b"}:
        raise ValueError(f"{technology}: the workload does not span two nodes")
    ips = {"a": link.ip[0], "b": link.ip[1]} if link else {"a": "127.0.0.1", "b": "127.0.0.1"}
    env = dict(os.environ)
    env["PYTHONPATH"] = _package_root() + (
        os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""
    )
    with tempfile.TemporaryDirectory(prefix="privfin-netem-") as tmp:
        root = Path(tmp)
        for party in job.roles:
            create_identity(party, root / "id", hosts=("localhost", "127.0.0.1", *_SUBNET))
        spec = {
            "technology": technology,
            "size": list(size),
            "seed": seed,
            "quick": quick,
            "sides": sides,
            "ips": ips,
            "root": str(root),
            "recv_timeout": recv_timeout,
        }
        (root / "spec.json").write_text(json.dumps(spec))
        procs: dict[str, subprocess.Popen[str]] = {}
        proxies: dict[str, DelayProxy] = {}
        end = time.monotonic() + STARTUP_TIMEOUT  # imports and TLS set-up, slow under load
        try:
            for side in ("a", "b"):
                prefix = ["ip", "netns", "exec", link.ns[0 if side == "a" else 1]] if link else []
                procs[side] = subprocess.Popen(  # noqa: S603 (our interpreter and module)
                    [*prefix, sys.executable, "-m", "privfin.assess.netem",
                     str(root / "spec.json"), side],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    text=True, env=env, start_new_session=True,
                )  # fmt: skip
            ports: dict[str, int] = {}
            for proc in procs.values():
                assert proc.stdout is not None
                ports.update(_line(proc.stdout, end)["ports"])
            if link is None:  # every cross-node connection through a delaying proxy
                for p, port in ports.items():
                    proxies[p] = DelayProxy(port, delay=delay, rate=rate)
            for side, proc in procs.items():
                where = {
                    p: [ips[sides[p]], proxies[p].port if p in proxies and sides[p] != side
                        else port]
                    for p, port in ports.items()
                }  # fmt: skip
                _send(proc, {"peers": where})
            for proc in procs.values():
                assert proc.stdout is not None
                _line(proc.stdout, end)  # ready
            for proc in procs.values():
                _send(proc, {"go": True})
            end = time.monotonic() + deadline
            cut = ""
            cut_late = False
            if cut_after is not None:
                time.sleep(cut_after)
                cut_late = any(p.poll() is not None for p in procs.values())
                cut = _cut(link, list(proxies.values()))
            results: list[dict[str, Any]] = []
            for proc in procs.values():
                assert proc.stdout is not None
                results.append(_line(proc.stdout, end))
        except (TimeoutError, EOFError, json.JSONDecodeError, OSError) as exc:
            hung = isinstance(exc, TimeoutError)
            why = f"{type(exc).__name__}: {exc}"
            return NodeRun(False, None, why, hung=hung, cut=cut_desc(link))
        finally:
            for proxy in proxies.values():
                proxy.close()
            for proc in procs.values():
                if proc.poll() is None:
                    with suppress(OSError):
                        os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                for stream in (proc.stdin, proc.stdout):
                    if stream is not None:
                        stream.close()
    errors = [str(r["error"]) for r in results if not r["ok"]]
    wall = max(float(r["wall_s"]) for r in results)
    return NodeRun(not errors, wall, errors[0] if errors else "", cut=cut, cut_after_end=cut_late)


def cut_desc(link: Link | None) -> str:
    if link:
        return f"node b's veth end set down for {CUT_SECONDS:.0f} s, then up"
    return (
        f"every connection between the nodes dropped by the proxies, and new ones held, "
        f"for {CUT_SECONDS:.0f} s"
    )


def _cut(link: Link | None, proxies: Sequence[DelayProxy]) -> str:
    if link is not None:
        link.set_b(False)
        time.sleep(CUT_SECONDS)
        link.set_b(True)
    else:
        for proxy in proxies:
            proxy.cut(CUT_SECONDS)
        time.sleep(CUT_SECONDS)
    return cut_desc(link)


def _send(proc: subprocess.Popen[str], msg: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(msg) + "\n")
    proc.stdin.flush()


# -- userspace WAN ----------------------------------------------------------------------------


class DelayProxy:
    """A userspace WAN for hosts without ``tc netem``: a TCP forwarder (TLS passes through
    untouched) that delivers every byte ``delay`` seconds after it arrived, in order, at most
    ``rate`` bytes per second per direction and connection. Runs its own event loop in a
    thread. :meth:`cut` drops every open connection and holds new ones (no byte passes) until
    the link is up again: a cut link.

    (Moved here from ``benchmarks/transport.py``, which imports it.)
    """

    def __init__(
        self,
        target_port: int,
        delay: float = 0.010,
        rate: float = 125e6,
        *,
        target_host: str = "127.0.0.1",
    ) -> None:
        import asyncio

        self.target_port, self.target_host = target_port, target_host
        self.delay, self.rate = delay, rate
        self._down_until = 0.0
        self._conns: set[Any] = set()  # the asyncio transports of both ends of every connection
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def _listen(self) -> Any:
        import asyncio

        return await asyncio.start_server(self._client, "127.0.0.1", 0)

    async def _client(self, reader: Any, writer: Any) -> None:
        import asyncio

        while time.monotonic() < self._down_until:  # a new connection waits for the link
            await asyncio.sleep(0.05)
        try:
            up_r, up_w = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return
        ends = {writer.transport, up_w.transport}
        self._conns |= ends
        try:
            await asyncio.gather(
                self._pipe(reader, up_w), self._pipe(up_r, writer), return_exceptions=True
            )
        finally:
            self._conns -= ends

    async def _pipe(self, reader: Any, writer: Any) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            free_at = 0.0  # when the emulated link has sent everything before
            try:
                while True:
                    due, data = await queue.get()
                    if not data:
                        break
                    start = max(due, free_at)
                    free_at = start + len(data) / self.rate
                    wait = free_at - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()

        task = loop.create_task(deliver())
        try:
            while True:
                data = await reader.read(256 * 1024)
                await queue.put((loop.time() + self.delay, data))
                if not data:
                    break
        except OSError:
            await queue.put((0.0, b""))
        finally:
            await task

    def cut(self, seconds: float) -> None:
        """Drop every open connection (both ends) and hold new ones for ``seconds``."""

        def drop() -> None:
            self._down_until = time.monotonic() + seconds
            for transport in list(self._conns):
                transport.abort()

        self.loop.call_soon_threadsafe(drop)

    def close(self) -> None:
        def stop() -> None:
            self.server.close()
            for transport in list(self._conns):
                transport.abort()
            self.loop.call_later(0.05, self.loop.stop)

        self.loop.call_soon_threadsafe(stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


# -- what measure_technology records ----------------------------------------------------------


@dataclass
class NetworkResult:
    wan_mode: str
    wan_wall_s: float | None
    wan_error: str
    interruption: str
    interruption_detail: str


def measure_network(
    technology: str,
    size: Sequence[int],
    *,
    seed: int = 0,
    quick: bool = True,
    force_loopback: str | None = None,
    deadline: float = 120.0,
) -> NetworkResult:
    """The WAN run and the interruption run of ``technology`` (see the module doc).
    ``force_loopback``: skip netem and record this reason (tests of the fallback)."""
    reason = force_loopback or wan_unavailable()
    if reason is None:
        with veth_pair() as link:
            return _measure(technology, size, seed, quick, link, "netem", deadline)
    mode = (
        f"loopback-fallback: {reason}; the WAN is emulated by a userspace delay proxy "
        f"(25 ms, 100 Mbit/s each way)"
    )
    return _measure(technology, size, seed, quick, None, mode, deadline)


def _measure(
    technology: str,
    size: Sequence[int],
    seed: int,
    quick: bool,
    link: Link | None,
    mode: str,
    deadline: float,
) -> NetworkResult:
    base = run_two_nodes(technology, size, seed=seed, quick=quick, link=link, deadline=deadline)
    if not base.ok or base.wall_s is None:
        return NetworkResult(mode, None, base.error, "hung" if base.hung else "failed-cleanly",
                             f"the uninterrupted run failed: {base.error}")  # fmt: skip
    cut_after = max(0.05, 0.25 * base.wall_s)
    # the nodes wait at most recv_timeout for a message: longer than the cut, well inside
    # the deadline, so a lost message ends the job with a clear timeout instead of a hang
    recv_timeout = max(10.0, 3 * CUT_SECONDS)
    run = run_two_nodes(
        technology, size, seed=seed, quick=quick, link=link, cut_after=cut_after,
        deadline=2 * base.wall_s + CUT_SECONDS + 3 * recv_timeout, recv_timeout=recv_timeout,
    )  # fmt: skip
    how = run.cut or cut_desc(link)
    when = f"{cut_after:.2f} s into a run of {base.wall_s:.2f} s"
    if run.cut_after_end:
        when += " (the job had already ended: the cut came too late to test anything)"
    if run.ok:
        outcome = "recovered"
        detail = f"{how}, {when}: the job finished ({run.wall_s:.2f} s)"
    elif run.hung:
        outcome = "hung"
        detail = f"{how}, {when}: no result before the deadline; the nodes were killed"
    else:
        outcome = "failed-cleanly"
        detail = f"{how}, {when}: the job failed with: {run.error[:300]}"
    return NetworkResult(mode, base.wall_s, "", outcome, detail)


# -- node process -----------------------------------------------------------------------------


def _node(spec_path: str, side: str) -> None:
    """One node: its parties' servers, transports and threads (see the module doc)."""
    from privfin.assess.measure.workloads import WORKLOADS, Size
    from privfin.compute import SerialBackend
    from privfin.crypto.random import SeededRandom
    from privfin.federation.mailbox import Mailbox
    from privfin.federation.stream import (
        StreamPeer,
        StreamServer,
        StreamTransport,
        mailbox_abort,
        mailbox_admit,
        mailbox_admit_many,
    )
    from privfin.federation.tls import Identity
    from privfin.federation.transport import Channel
    from privfin.runtime import Context, MemoryArtifacts, Progress

    spec = json.loads(Path(spec_path).read_text())
    root = Path(spec["root"])
    job = WORKLOADS[spec["technology"]].build(Size(*spec["size"]), spec["seed"], spec["quick"])
    parties = list(job.roles)
    mine = [p for p in parties if spec["sides"][p] == side]

    def identity(p: str) -> Identity:
        return Identity(p, root / "id" / f"{p}.crt", root / "id" / f"{p}.key")

    certs = {p: identity(p).cert.read_bytes() for p in parties}
    boxes, servers = {}, {}
    for p in mine:
        box = Mailbox(root / f"{p}.sqlite")
        server = StreamServer(
            identity(p),
            {q: c for q, c in certs.items() if q != p},
            mailbox_admit(box),
            host=spec["ips"][side],
            admit_many=mailbox_admit_many(box),
            on_abort=mailbox_abort(box),
        ).start()
        boxes[p], servers[p] = box, server
    print(json.dumps({"ports": {p: s.port for p, s in servers.items()}}), flush=True)
    where = json.loads(sys.stdin.readline())["peers"]
    transports = {
        p: StreamTransport(
            identity(p),
            {q: StreamPeer(where[q][0], int(where[q][1]), certs[q]) for q in parties if q != p},
            boxes[p],
            send_timeout=float(spec["recv_timeout"]),
            heartbeat=0.5,
            idle_timeout=2.0,
            connect_timeout=2.0,
        )
        for p in mine
    }
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()  # go
    errors: dict[str, str] = {}
    all_roles = {p: tuple(r) for p, r in job.roles.items()}

    def run(party: str) -> None:
        channel = Channel(
            transports[party],
            job="assess",
            component="workload",
            party=party,
            peers=parties,
            default_timeout=float(spec["recv_timeout"]),
        )
        ctx = Context(
            job="assess",
            component="workload",
            party=party,
            roles=all_roles,
            channel=channel,
            compute=SerialBackend(),
            artifacts=MemoryArtifacts(),
            random=SeededRandom(f"{spec['seed']}/{party}"),
            settings=job.settings,
            progress=Progress(),
            log=logging.LoggerAdapter(_log, {"party": party}),
        )
        try:
            job.component(ctx, job.params, job.inputs.get(party, {}))
            flush = getattr(transports[party], "flush", None)
            if flush is not None:
                flush()
        except Exception as exc:  # reported to the coordinator, which judges the outcome
            errors[party] = f"{party}: {type(exc).__name__}: {exc}"
            channel.abort(errors[party])

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(p,)) for p in mine]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    first = next(iter(errors.values()), "")
    print(json.dumps({"ok": not errors, "error": first, "wall_s": wall}), flush=True)
    # stay up until the coordinator has every result (it closes our stdin then): the peer may
    # still wait for this node to report its last messages durable (SYNCED after the commit)
    sys.stdin.readline()
    os._exit(0)  # servers, transports and mailboxes die with the process


if __name__ == "__main__":  # pragma: no cover - run as a node process by run_two_nodes
    _node(sys.argv[1], sys.argv[2])
