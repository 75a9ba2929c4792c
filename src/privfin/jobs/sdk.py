"""Build a pipeline spec in Python: the same :class:`~privfin.jobs.spec.PipelineSpec` a YAML
file gives, validated the same way.

>>> p = Pipeline("credit-1", purpose="joint credit scoring", results=["bank"])
>>> p = p.party("bank", datasets={"train": "bank_loans"})
>>> p = p.party("telco", datasets={"train": "telco_usage"})
>>> p = p.step("psi", "psi", roles={"bank": "receiver", "telco": "sender"},
...            inputs={"table": "datasets.train"})
>>> spec = p.build()
>>> spec.order()
['psi']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from privfin.jobs.spec import PipelineSpec, parse_spec_data
from privfin.jobs.validate import check

__all__ = ["Pipeline"]


class Pipeline:
    """A fluent builder; every method returns the builder."""

    def __init__(
        self,
        job: str,
        *,
        purpose: str,
        results: list[str],
        retention_days: int = 30,
        timeout: float | None = None,
    ) -> None:
        self._data: dict[str, Any] = {
            "job": job,
            "purpose": purpose,
            "retention_days": retention_days,
            "parties": {},
            "results": list(results),
            "steps": {},
        }
        if timeout is not None:
            self._data["timeout"] = timeout

    def party(
        self,
        name: str,
        *,
        datasets: Mapping[str, str | Mapping[str, Any]] | None = None,
        models: Mapping[str, str] | None = None,
    ) -> Pipeline:
        """Add a party with its datasets (alias -> registered name, or {name, fields}) and
        imported models (alias -> name)."""
        self._data["parties"][name] = {
            "datasets": dict(datasets or {}),
            "models": dict(models or {}),
        }
        return self

    def step(
        self,
        name: str,
        component: str,
        *,
        roles: Mapping[str, str | list[str]],
        params: Mapping[str, Any] | None = None,
        inputs: Mapping[str, str] | None = None,
        party_params: Mapping[str, Mapping[str, Any]] | None = None,
        party_inputs: Mapping[str, Mapping[str, str]] | None = None,
        after: list[str] | None = None,
        timeout: float | None = None,
    ) -> Pipeline:
        """Add a step (steps run in the order their inputs require)."""
        step: dict[str, Any] = {"component": component, "roles": dict(roles)}
        for key, value in (
            ("params", params),
            ("inputs", inputs),
            ("party_params", party_params),
            ("party_inputs", party_inputs),
            ("after", after),
            ("timeout", timeout),
        ):
            if value is not None:
                step[key] = value if not isinstance(value, Mapping) else dict(value)
        self._data["steps"][name] = step
        return self

    def as_dict(self) -> dict[str, Any]:
        return parse_spec_data(self._data).model_dump(mode="json", exclude_defaults=True)

    def build(self) -> PipelineSpec:
        """The validated spec (:class:`~privfin.jobs.spec.SpecError` lists every problem)."""
        spec = parse_spec_data(self._data, source=f"pipeline {self._data['job']}")
        check(spec, source=f"pipeline {spec.job}")
        return spec

    def to_yaml(self) -> str:
        import yaml

        text: str = yaml.safe_dump(self.as_dict(), sort_keys=False)
        return text
