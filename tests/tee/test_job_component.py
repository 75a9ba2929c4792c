"""[14] The ``tee`` job component: the data parties' tables, encrypted, to a simulated
enclave that trains a scikit-learn model on their join; model and metrics sealed to the result
party; the key releases as audit records; refused in production mode; what the approvals inbox
shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privfin.config import Settings
from privfin.errors import ConfigError, InsecureModeError, PrivfinError
from privfin.jobs.local import run_local
from privfin.jobs.negotiation import usage_summary
from privfin.jobs.sdk import Pipeline
from privfin.runtime import simulate
from privfin.tee.component import TeeParams, tee_component
from privfin.tee.enclave import measure_component

DEV = Settings(mode="development")
ROLES = {"bank": ["data", "result"], "telco": ["data"], "host": ["enclave_host"]}


def _tables(n: int = 400) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(11)
    ids = np.arange(n)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (0.8 * x1 + 1.2 * x2 + 0.4 * rng.normal(size=n) > 0).astype(int)
    bank = pd.DataFrame({"id": ids, "x1": x1, "y": y})
    telco = pd.DataFrame({"id": ids[50:], "x2": x2[50:]})  # the join keeps 350 rows
    return bank, telco


def test_component_trains_on_the_join_and_seals_to_the_result_party() -> None:
    bank, telco = _tables()
    out = simulate(
        tee_component,
        ROLES,
        params={"model": "lr", "seed": 2},
        inputs={"bank": {"table": bank}, "telco": {"table": telco}},
        settings=DEV,
        timeout=120,
    )
    metrics = out["bank"]["metrics"]
    assert metrics["rows_joined"] == 350 and metrics["simulated"] is True
    assert metrics["enclave_measurement"] == measure_component("train_model")[0].hex()
    assert metrics["auc"] > 0.9
    assert out["bank"]["model"]["features"] == ["x1", "x2"]
    assert "model" not in out["telco"] and "metrics" not in out["telco"]
    assert out["host"]["enclave"]["simulated"] is True and "model" not in out["host"]
    for party in ("bank", "telco"):
        rec = out[party]["release"]
        assert rec["action"] == "key_release" and rec["evidence"]["outcome"] == "released"
        assert rec["evidence"]["measurement"] == metrics["enclave_measurement"]
    # plaintext reference: the same split and model outside the enclave
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    joined = bank.merge(telco, on="id").sort_values("id")
    x = joined[["x1", "x2"]].to_numpy()
    x_tr, _, y_tr, _ = train_test_split(
        x, joined["y"].to_numpy(), test_size=0.3, random_state=2, stratify=joined["y"]
    )
    ref = LogisticRegression(max_iter=1000).fit(x_tr, y_tr)
    np.testing.assert_allclose(out["bank"]["model"]["coef"], ref.coef_[0], rtol=1e-6)


def test_a_result_party_without_data_verifies_the_enclave_itself() -> None:
    bank, telco = _tables()
    roles = {"bank": ["data"], "telco": ["data"], "risk": ["result"], "host": ["enclave_host"]}
    out = simulate(
        tee_component,
        roles,
        params={"model": "lr"},
        inputs={"bank": {"table": bank}, "telco": {"table": telco}},
        settings=DEV,
        timeout=120,
    )
    assert out["risk"]["metrics"]["rows_joined"] == 350
    assert "model" not in out["bank"] and out["bank"]["release"]["evidence"]["outcome"] == (
        "released"
    )


def test_component_refused_in_production_mode() -> None:
    bank, telco = _tables()
    with pytest.raises(InsecureModeError):
        simulate(
            tee_component,
            ROLES,
            params={},
            inputs={"bank": {"table": bank}, "telco": {"table": telco}},
            settings=Settings(),
            timeout=60,
        )


def test_data_parties_refuse_a_measurement_the_job_does_not_name() -> None:
    bank, telco = _tables()
    with pytest.raises(PrivfinError):
        simulate(
            tee_component,
            ROLES,
            params={"measurement": "ab" * 48},
            inputs={"bank": {"table": bank}, "telco": {"table": telco}},
            settings=DEV,
            timeout=60,
        )


def test_params_and_roles_are_checked() -> None:
    with pytest.raises(ConfigError, match="backend"):
        TeeParams.from_mapping({"backend": "gramine"})
    with pytest.raises(ConfigError, match="unknown"):
        TeeParams.from_mapping({"colour": "red"})
    bank, telco = _tables()
    with pytest.raises(ConfigError, match="enclave host"):
        simulate(
            tee_component,
            {"bank": ["data", "result"], "telco": ["data", "enclave_host"]},
            params={},
            inputs={"bank": {"table": bank}, "telco": {"table": telco}},
            settings=DEV,
            timeout=30,
        )


def _pipeline() -> Pipeline:
    return (
        Pipeline("tee-credit", purpose="joint credit model in an enclave", results=["bank"])
        .party("bank", datasets={"train": "bank_train"})
        .party("telco", datasets={"train": "telco_train"})
        .party("host")
        .step(
            "train",
            "tee",
            roles={"bank": ["data", "result"], "telco": "data", "host": "enclave_host"},
            params={"model": "gbdt", "n_estimators": 20},
            party_inputs={
                "bank": {"table": "datasets.train"},
                "telco": {"table": "datasets.train"},
            },
        )
    )


def test_tee_step_in_a_local_pipeline(tmp_path: Path) -> None:
    bank, telco = _tables()
    spec = _pipeline().build()
    run = run_local(
        spec,
        {"bank": {"bank_train": bank}, "telco": {"telco_train": telco}},
        tmp_path,
        settings=DEV,
        timeout=120,
    )
    metrics = run.output("bank", "train", "metrics")
    assert metrics["simulated"] is True and metrics["rows_joined"] == 350
    model = run.output("bank", "train", "model")
    assert model["type"] == "gbdt" and len(model["trees"]) == 20
    assert run.output("telco", "train", "release")["evidence"]["outcome"] == "released"
    with pytest.raises(ConfigError):
        run.output("telco", "train", "model")
    with pytest.raises(ConfigError):
        run.output("host", "train", "metrics")


def test_approvals_inbox_shows_the_measurement_and_the_simulation() -> None:
    summary = usage_summary(_pipeline().build(), "telco")
    step = summary["steps"][0]
    assert step["component"] == "tee"
    assert "SIMULATED" in step["reveals"] and "measurement" in step["reveals"]
    assert "confidential computing (TEE)" in summary["technologies"]
    assert step["enclave"]["measurement"] == measure_component("train_model")[0].hex()
    assert step["enclave"]["simulated"] is True and "SIMULATED" in step["enclave"]["warning"]


def test_an_error_inside_the_enclave_does_not_quote_the_data() -> None:
    bank, telco = _tables()
    bank["x1"] = bank["x1"].astype(str)
    bank.loc[60, "x1"] = "SECRET-VALUE-123"
    with pytest.raises(PrivfinError) as info:
        simulate(
            tee_component,
            ROLES,
            params={},
            inputs={"bank": {"table": bank}, "telco": {"table": telco}},
            settings=DEV,
            timeout=60,
        )
    assert "SECRET-VALUE-123" not in str(info.value)
