"""The :class:`Context` a component receives, and its parts."""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from privfin.compute import ComputeBackend, SerialBackend
from privfin.config import Settings
from privfin.crypto.random import RandomSource, SystemRandom
from privfin.errors import disk_full
from privfin.federation.transport import CancelToken, Channel

__all__ = [
    "ArtifactStore",
    "Component",
    "Context",
    "DirectoryArtifacts",
    "MemoryArtifacts",
    "Metrics",
    "Progress",
]

_ARTIFACT = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


def _check_artifact_name(name: str) -> str:
    if not _ARTIFACT.match(name) or name in (".", ".."):
        raise ValueError(f"artifact name {name!r} must be 1-128 of [A-Za-z0-9_.-]")
    return name


class ArtifactStore(Protocol):
    """A party-private key-value store scoped to one job (checkpoints, models, results).

    Artifacts never leave the party; ``put`` is atomic (a crash never leaves half an artifact).
    """

    def put(self, name: str, data: bytes) -> None: ...

    def get(self, name: str) -> bytes | None: ...


class MemoryArtifacts:
    """Artifacts in a dict (tests, simulation)."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, name: str, data: bytes) -> None:
        with self._lock:
            self._data[_check_artifact_name(name)] = bytes(data)

    def get(self, name: str) -> bytes | None:
        with self._lock:
            return self._data.get(_check_artifact_name(name))


#: Artifacts whose name ends with this are per-job secrets, deleted when the job ends.
SECRET_SUFFIX = ".key"  # noqa: S105 (a file-name suffix, not a password)


class DirectoryArtifacts:
    """Artifacts as files in a private directory (mode 0700), written atomically."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def put(self, name: str, data: bytes) -> None:
        """Write atomically (temporary file, fsync, rename). A full disk raises
        :class:`~privfin.errors.DiskFullError` naming the directory."""
        target = self.root / _check_artifact_name(name)
        tmp: str | None = None
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException as exc:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            full = disk_full(exc, str(self.root))
            if full is not None:
                raise full from exc
            raise

    def get(self, name: str) -> bytes | None:
        path = self.root / _check_artifact_name(name)
        return path.read_bytes() if path.exists() else None

    def discard_secrets(self) -> list[str]:
        """Delete the per-job secrets (artifacts named ``*`` :data:`SECRET_SUFFIX`: keys
        checkpointed so a restarted node resends identical messages) and leftover temporary
        files. Call when the job has ended (done or failed), never when it is interrupted to
        resume. Returns the names deleted."""
        gone: list[str] = []
        if not self.root.is_dir():
            return gone
        for path in self.root.iterdir():
            secret = path.name.endswith(SECRET_SUFFIX) or path.name.startswith(".tmp-")
            if secret and path.is_file():
                path.unlink(missing_ok=True)
                gone.append(path.name)
        return gone


class Metrics:
    """Counters and timings of one component run (thread-safe)."""

    def __init__(self) -> None:
        self._values: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, name: str, value: float = 1.0) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0.0) + value

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self._values[name] = value

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._values)


ProgressSink = Callable[[str, int, int | None], None]


class Progress:
    """Progress of long work: ``task = ctx.progress.task("psi.blind", total=n)``, then
    ``task.advance(k)``. The sink (a rich progress bar, a node's job status, a log) is chosen by
    whoever runs the component; updates are rate-limited."""

    def __init__(self, sink: ProgressSink | None = None, min_interval: float = 0.5) -> None:
        self._sink = sink
        self._min_interval = min_interval

    def task(self, name: str, total: int | None = None) -> ProgressTask:
        return ProgressTask(self, name, total)

    def _emit(self, name: str, done: int, total: int | None) -> None:
        if self._sink is not None:
            self._sink(name, done, total)


class ProgressTask:
    def __init__(self, progress: Progress, name: str, total: int | None) -> None:
        self._progress = progress
        self.name = name
        self.total = total
        self.done = 0
        self._last = 0.0
        progress._emit(name, 0, total)

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        finished = self.total is not None and self.done >= self.total
        if finished or now - self._last >= self._progress._min_interval:
            self._last = now
            self._progress._emit(self.name, self.done, self.total)


@dataclass
class Context:
    """Everything a component may use. No globals, no singletons: this is the whole world.

    Attributes
    ----------
    job, component, party:
        Names of this run.
    roles:
        Role(s) of every party in the job, e.g. ``{"bank_a": ("lender", "result")}``.
    channel:
        Typed messaging with the other parties of the job.
    compute:
        Backend for bulk work inside this party.
    artifacts:
        This party's private store for the job (checkpoints, results).
    random:
        Randomness source (``SystemRandom`` in production, seeded in tests).
    settings:
        Mode (production/development) and insecure-mode opt-ins.
    """

    job: str
    component: str
    party: str
    roles: Mapping[str, tuple[str, ...]]
    channel: Channel
    compute: ComputeBackend = field(default_factory=SerialBackend)
    artifacts: ArtifactStore = field(default_factory=MemoryArtifacts)
    random: RandomSource = field(default_factory=SystemRandom)
    settings: Settings = field(default_factory=Settings)
    metrics: Metrics = field(default_factory=Metrics)
    progress: Progress = field(default_factory=Progress)
    log: logging.LoggerAdapter[logging.Logger] = field(
        default_factory=lambda: logging.LoggerAdapter(logging.getLogger("privfin.job"), {})
    )

    @property
    def cancel(self) -> CancelToken:
        return self.channel.cancel

    def has_role(self, role: str, party: str | None = None) -> bool:
        return role in self.roles.get(party or self.party, ())

    def parties_with(self, role: str) -> list[str]:
        """Parties holding ``role``, in a fixed (sorted) order every party agrees on."""
        return sorted(p for p, rs in self.roles.items() if role in rs)


class Component(Protocol):
    """A unit of a job: runs once per party with that party's context and inputs."""

    def __call__(
        self, ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
    ) -> Any: ...
