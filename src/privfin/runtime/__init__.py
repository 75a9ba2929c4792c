"""The runtime every protocol component runs on.

A component is a function ``run(ctx: Context, params: dict, inputs: dict) -> result``. It talks
to peers only through ``ctx.channel``, spreads bulk work through ``ctx.compute``, keeps its
checkpoints in ``ctx.artifacts`` and reports through ``ctx.log``, ``ctx.metrics`` and
``ctx.progress``. The same component runs in one process (:func:`simulate`), as several node
processes on one machine, and across machines: only the transport changes.
"""

from privfin.runtime.context import (
    ArtifactStore,
    Component,
    Context,
    DirectoryArtifacts,
    MemoryArtifacts,
    Metrics,
    Progress,
)
from privfin.runtime.simulate import simulate

__all__ = [
    "ArtifactStore",
    "Component",
    "Context",
    "DirectoryArtifacts",
    "MemoryArtifacts",
    "Metrics",
    "Progress",
    "simulate",
]
