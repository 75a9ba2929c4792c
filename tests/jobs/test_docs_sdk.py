"""docs/jobs.md stays in step with the code: the generated component reference equals the
declarations, and every YAML example in it validates; the SDK builds the same spec as YAML."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from privfin.jobs.docs import BEGIN, END, component_reference
from privfin.jobs.sdk import Pipeline
from privfin.jobs.spec import parse_spec_data
from privfin.jobs.validate import validate

from ._pipeline_data import pipeline_spec

DOC = Path(__file__).resolve().parents[2] / "docs" / "jobs.md"


def test_component_reference_is_generated_from_the_declarations() -> None:
    text = DOC.read_text()
    generated = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert generated == component_reference().strip(), (
        "docs/jobs.md is stale: run python -m privfin.jobs.docs docs/jobs.md"
    )


def test_the_worked_example_validates() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    full = [yaml.safe_load(b) for b in blocks if b.startswith("job:") and "<name>" not in b]
    assert full, "no complete example in docs/jobs.md"
    for data in full:
        spec = parse_spec_data(data)
        assert validate(spec) == []
        assert spec.order()[0] == "psi"


def test_sdk_builds_the_yaml_spec() -> None:
    data = pipeline_spec("sdk-1")
    p = Pipeline("sdk-1", purpose=data["purpose"], results=data["results"])
    for party, ps in data["parties"].items():
        p.party(party, datasets=ps["datasets"])
    for name, step in data["steps"].items():
        p.step(
            name,
            step["component"],
            roles=step["roles"],
            params=step.get("params"),
            inputs=step.get("inputs"),
        )
    assert p.build() == parse_spec_data(data)
    assert parse_spec_data(yaml.safe_load(p.to_yaml())) == parse_spec_data(data)
