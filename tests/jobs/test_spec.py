"""The pipeline spec and its validation: every problem is found before anything runs and
names its path (and line) in the file."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from privfin.cli.main import app
from privfin.errors import ConfigError
from privfin.jobs.components import DECLARATIONS
from privfin.jobs.spec import SpecError, load_spec, parse_ref, parse_spec_data
from privfin.jobs.validate import validate

from ._pipeline_data import pipeline_spec


def _problems(data: dict[str, Any]) -> list[str]:
    return [str(p) for p in validate(parse_spec_data(data))]


def test_valid_spec_orders_steps_by_their_inputs() -> None:
    spec = parse_spec_data(pipeline_spec())
    assert validate(spec) == []
    order = spec.order()
    assert order.index("psi") < order.index("train") < order.index("score")
    assert order.index("psi_new") < order.index("score")
    assert spec.downstream("psi") >= {"train", "score", "lr", "lr_score", "evaluate"}
    assert "psi_new" not in spec.downstream("psi")
    assert spec.steps_of("telco") == [s for s in order if s != "evaluate"]


def test_references() -> None:
    assert parse_ref("datasets.train") == ("dataset", "train", "")
    assert parse_ref("models.sb") == ("model", "sb", "")
    assert parse_ref("psi.aligned") == ("step", "psi", "aligned")
    for bad in ("psi", "psi.aligned.x", "../x.y", ""):
        with pytest.raises(ConfigError, match="reference"):
            parse_ref(bad)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["steps"]["train"].update(component="xgboost"), "steps.train.component"),
        (
            lambda d: d["steps"]["train"]["inputs"].update(table="psi.alinged"),
            "steps.train.inputs.table: psi (psi) has no output 'alinged'",
        ),
        (
            lambda d: d["steps"]["train"]["inputs"].update(table="datasets.nope"),
            "party 'bank' has no dataset alias 'nope'",
        ),
        (
            lambda d: d["steps"]["score"]["inputs"].update(model="train.train_scores"),
            "train.train_scores is a scores, input 'model' needs a model",
        ),
        (
            lambda d: d["steps"]["train"]["params"].update(max_depth=-1),
            "steps.train.params",
        ),
        (
            lambda d: d["steps"]["train"]["roles"].update(telco="guest"),
            "secureboost needs exactly one 'guest' party, has 2",
        ),
        (
            lambda d: d["steps"]["train"]["roles"].update(mallory="host"),
            "'mallory' is not a party of the job",
        ),
        (lambda d: d["steps"]["train"]["inputs"].pop("table"), "needs input 'table'"),
        (lambda d: d.update(results=["regulator"]), "result party 'regulator'"),
        (
            lambda d: d["steps"]["psi"].update(after=["evaluate"]),
            "the steps form a cycle",
        ),
        (
            lambda d: (
                d["steps"]["evaluate"]["inputs"].update(scores="score.scores")
                or d["steps"]["evaluate"]["roles"].update(bank="guest")
            ),
            None,  # valid: the bank gets score.scores
        ),
        (
            lambda d: (
                d["steps"]["lr_score"]["inputs"].update(model="lr.model")
                or d["steps"]["evaluate"]["inputs"].update(table="psi_new.aligned")
            ),
            None,
        ),
    ],
)
def test_each_problem_is_found_with_its_path(edit: Any, expected: str | None) -> None:
    data = copy.deepcopy(pipeline_spec())
    edit(data)
    found = _problems(data)
    if expected is None:
        assert found == []
    else:
        assert any(expected in f for f in found), found


def test_scores_go_only_to_result_parties() -> None:
    data = copy.deepcopy(pipeline_spec())
    data["steps"]["score"]["roles"] = {"bank": "host", "telco": "guest"}
    found = _problems(data)
    assert any(
        "telco would receive score.scores (scores) but is not a result party" in f for f in found
    ), found
    data["results"] = ["bank", "telco"]
    assert not any("result party" in f for f in _problems(data))


def test_a_party_that_gets_no_output_cannot_read_it() -> None:
    data = copy.deepcopy(pipeline_spec())
    data["steps"]["evaluate"]["roles"] = {"telco": "guest"}
    found = _problems(data)
    assert any("telco (host) gets no 'scores' from lr_score" in f for f in found), found


def test_schema_errors_name_path_and_line(tmp_path: Path) -> None:
    data = copy.deepcopy(pipeline_spec())
    data["steps"]["train"]["timeout"] = -5
    data["parties"]["bank"]["datasets"]["bad alias"] = "x"
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    text = info.value.report()
    assert "steps.train.timeout (line " in text
    assert "parties.bank.datasets" in text
    line = int(text.split("steps.train.timeout (line ")[1].split(")")[0])
    assert path.read_text().splitlines()[line - 1].strip() == "timeout: -5"


def test_reference_errors_point_at_the_line(tmp_path: Path) -> None:
    data = copy.deepcopy(pipeline_spec())
    data["steps"]["score"]["inputs"]["model"] = "trian.model"
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    spec, lines = load_spec(path)
    problems = validate(spec, lines=lines)
    (problem,) = [p for p in problems if p.path == "steps.score.inputs.model"]
    assert problem.path == "steps.score.inputs.model"
    assert "unknown step 'trian'" in problem.message
    assert problem.line is not None
    assert "trian.model" in path.read_text().splitlines()[problem.line - 1]


def test_cli_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(pipeline_spec(), sort_keys=False))
    res = runner.invoke(app, ["job", "validate", str(good)])
    assert res.exit_code == 0, res.output
    assert "valid (2 parties" in res.output
    data = pipeline_spec()
    data["steps"]["train"]["component"] = "xgboost"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data, sort_keys=False))
    res = runner.invoke(app, ["job", "validate", str(bad)])
    assert res.exit_code == 1
    assert "steps.train.component (line" in res.output
    assert "Traceback" not in res.output


def test_every_declaration_is_complete() -> None:
    for name, decl in DECLARATIONS.items():
        assert decl.name == name
        assert callable(decl.function())
        assert decl.outputs and decl.summary and decl.technology
        for port in (*decl.inputs, *decl.outputs):
            assert port.kind in ("table", "model", "scores", "metrics")
            assert set(port.roles) <= set(decl.roles)
        required = [p.name for p in decl.param_docs() if p.default == "(required)"]
        if required:  # (ss_lr needs its features and label): refused with their names
            with pytest.raises(ConfigError):
                decl.check_params({})
        else:
            decl.check_params({})  # defaults are valid
        assert all(p.name for p in decl.param_docs())
