"""Provider setups every protocol test runs against."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from privfin.config import Settings
from privfin.runtime import simulate

DEV = Settings(mode="development")


@dataclass(frozen=True)
class Setup:
    """One provider configuration: roles, and the session parameters."""

    name: str
    roles: Mapping[str, tuple[str, ...]]
    params: Mapping[str, Any] = field(default_factory=dict)

    def run(
        self,
        program: Callable[..., Any],
        inputs: Mapping[str, Mapping[str, Any]],
        params: Mapping[str, Any] | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        merged = {**self.params, **(params or {})}
        return simulate(
            program, self.roles, params=merged, inputs=inputs, seed=7, settings=DEV, **kw
        )


TWO = {"a": ("data", "compute"), "b": ("data", "compute"), "r": ("result",)}
SETUPS = [
    Setup("dealer-in-compute-2pc", TWO, {"triples": "dealer"}),
    Setup("dealer-separate-2pc", {**TWO, "d": ("dealer",)}, {"triples": "dealer"}),
    Setup(
        "dealer-separate-3pc",
        {**TWO, "c": ("compute",), "d": ("dealer",)},
        {"triples": "dealer"},
    ),
    Setup("dealer-2pc-local-trunc", TWO, {"triples": "dealer", "truncation": "local"}),
    Setup("ot-2pc", TWO, {"triples": "ot"}),
    Setup("rss3-3pc", {**TWO, "c": ("compute",)}, {"triples": "rss3"}),
]
BY_NAME = {s.name: s for s in SETUPS}
