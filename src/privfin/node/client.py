"""A client of a node's operator API (used by the CLI, the demo and tests).

It sends the operator's bearer token (from the file the node writes, 0600) to the operator
listener — loopback by default; with ``operator.tls`` it pins the node's own certificate.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from privfin.errors import ConfigError, PeerTimeout, PrivfinError, ProtocolAbort

if TYPE_CHECKING:
    from privfin.node.config import NodeConfig

__all__ = ["NodeClient"]


#: how long :meth:`NodeClient.wait` lets the node hold a status request (the node answers
#: at once when the job ends; ``on_progress`` sees a status at least this often)
_STATUS_HOLD = 1.0


class NodeClient:
    """Talk to one node's job API."""

    def __init__(
        self,
        url: str,
        token: str,
        party: str,
        *,
        timeout: float = 30.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.party = party
        if self.url.startswith("http://"):
            # no TLS on this URL: nothing to verify, and a verifying client would load the
            # CA bundle (tens of milliseconds) for every client made
            verify = False
        # a long poll's hold stays well inside the request timeout
        self._hold_limit = max(0.0, min(timeout - 5.0, timeout / 2))
        self._http = httpx.Client(
            base_url=self.url,
            verify=verify,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"},
        )

    @classmethod
    def for_config(cls, config: NodeConfig, timeout: float = 30.0) -> NodeClient:
        """A client of the node configured by ``config`` (its operator URL and token)."""
        from privfin.node.tokens import read_token, token_path

        verify: ssl.SSLContext | bool = True
        if config.operator.tls:
            verify = ssl.create_default_context(cadata=config.cert.read_text())
            verify.check_hostname = False  # pinned: only the node's own certificate is trusted
        return cls(
            config.operator_url(),
            read_token(token_path(config)),
            config.party,
            timeout=timeout,
            verify=verify,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> dict[str, Any]:
        resp = self._http.get("/health")
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.health()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise PeerTimeout(self.party, "health", timeout) from None
                time.sleep(0.1)

    def submit(
        self, spec: dict[str, Any], retry_for: float = 30.0, *, check: bool = False
    ) -> dict[str, Any]:
        """Submit ``spec`` (or, with ``check``, only ask whether the node would accept it).
        Raises ConfigError with the node's reason if it refuses."""
        deadline = time.monotonic() + retry_for
        while True:
            try:
                resp = self._http.post("/v1/jobs", json=spec, params={"check": check})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        if resp.status_code in (400, 413, 422):
            raise ConfigError(f"node {self.party} refused the job: {_detail(resp)}")
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def check(self, spec: dict[str, Any]) -> None:
        """Raise ConfigError (with the node's reason) if the node would refuse ``spec``."""
        self.submit(spec, check=True)

    def cancel(self, job: str) -> bool:
        """Stop ``job`` at this node (its peers are told); False if the node has no such job."""
        resp = self._http.post(f"/v1/jobs/{job}/cancel")
        if resp.status_code == 404:
            return False
        resp.raise_for_status()
        return True

    def logs(self, job: str) -> dict[str, Any]:
        """The job's events at this node (from its audit log) and its local error, if any."""
        resp = self._http.get(f"/v1/jobs/{job}/logs")
        if resp.status_code == 404:
            raise ConfigError(f"no job {job!r} on node {self.party}")
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def propose(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Propose a pipeline (this node is its initiator and approves it)."""
        resp = self._http.post("/v1/proposals", json=spec)
        if resp.status_code in (400, 413, 422):
            raise ConfigError(f"node {self.party} refused the job: {_detail(resp)}")
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def proposals(self, status: str | None = None) -> list[dict[str, Any]]:
        """The approvals inbox (every proposal this node knows, with what it uses here)."""
        resp = self._http.get("/v1/proposals", params={"status": status} if status else None)
        resp.raise_for_status()
        data: list[dict[str, Any]] = resp.json()["proposals"]
        return data

    def proposal(self, job: str) -> dict[str, Any]:
        resp = self._http.get(f"/v1/proposals/{job}")
        if resp.status_code == 404:
            raise ConfigError(f"no proposal {job!r} on node {self.party}")
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def decide(self, job: str, decision: str, reason: str = "") -> dict[str, Any]:
        """``approve``, ``reject`` or ``revoke`` a proposal (signed by the node)."""
        resp = self._http.post(f"/v1/proposals/{job}/{decision}", json={"reason": reason})
        if resp.status_code in (404, 409, 422):
            raise ConfigError(f"node {self.party}: {_detail(resp)}")
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def wait_proposal(self, job: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until the proposal ``job`` has reached this node."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.proposal(job)
            except ConfigError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def artifacts(self, job: str) -> list[dict[str, Any]]:
        """This party's output files of ``job`` (name, kind, digest, lineage)."""
        resp = self._http.get(f"/v1/jobs/{job}/artifacts")
        if resp.status_code == 404:
            raise ConfigError(f"no job {job!r} on node {self.party}")
        resp.raise_for_status()
        arts: list[dict[str, Any]] = resp.json()["artifacts"]
        return arts

    def download(self, job: str, step: str, name: str) -> bytes:
        """One output file of ``job``; its SHA-256 is checked against the node's record."""
        import hashlib

        resp = self._http.get(f"/v1/jobs/{job}/artifacts/{step}/{name}")
        if resp.status_code == 404:
            raise ConfigError(f"job {job!r} has no output {step}.{name} at {self.party}")
        resp.raise_for_status()
        digest = resp.headers.get("X-Privfin-Sha256")
        if digest is None or hashlib.sha256(resp.content).hexdigest() != digest:
            raise PrivfinError(f"output {step}.{name} of {job} arrived corrupted")
        return resp.content

    def import_model(self, name: str, data: bytes) -> dict[str, Any]:
        resp = self._http.put(f"/v1/models/{name}", content=data)
        if resp.status_code in (400, 413, 422):
            raise ConfigError(f"node {self.party} refused the model: {_detail(resp)}")
        resp.raise_for_status()
        info: dict[str, Any] = resp.json()
        return info

    def models(self) -> list[dict[str, Any]]:
        resp = self._http.get("/v1/models")
        resp.raise_for_status()
        models: list[dict[str, Any]] = resp.json()["models"]
        return models

    def status(self, job: str, wait: float = 0.0) -> dict[str, Any]:
        """The job's status; with ``wait`` (seconds), the node answers as soon as a running
        job ends, or after ``wait`` seconds (a long poll)."""
        params = {"wait": f"{wait:.3f}"} if wait else None
        resp = self._http.get(f"/v1/jobs/{job}", params=params)
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def wait(
        self,
        job: str,
        timeout: float = 300.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Wait until ``job`` is done (returns its status) or failed (raises); a job this
        node has not started yet is waited for too."""
        deadline = time.monotonic() + timeout
        # A long poll: the node answers when the job ends (no polling delay) or after
        # ``hold`` seconds (for ``on_progress``). A job not started yet is polled, quickly at
        # first, then every 0.2 s.
        pause = 0.02
        while True:
            hold = max(0.0, min(_STATUS_HOLD, deadline - time.monotonic(), self._hold_limit))
            asked = time.monotonic()
            try:
                status = self.status(job, wait=hold)
            except httpx.TransportError:
                status = {"status": "unreachable"}
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 404:
                    raise
                # not started here yet (a pipeline starts once this node has every approval)
                status = {"status": "not started"}
            if on_progress is not None:
                on_progress(status)
            if status["status"] == "done":
                return status
            if status["status"] == "failed":
                raise ProtocolAbort(f"job {job} failed at {self.party}: {status['error']}")
            if time.monotonic() > deadline:
                raise PrivfinError(f"job {job} did not finish at {self.party} in time")
            if status["status"] == "running" and time.monotonic() - asked >= hold / 2:
                continue  # the node held the request: ask again at once
            time.sleep(pause)
            pause = min(pause * 1.5, 0.2)


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:2000]
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return str(detail)[:2000]
