"""[14] The simulated enclave end to end (attest → broker releases keys → component runs on
data decrypted in memory → result sealed to the result party), the Gramine manifest, and
``privfin tee verify``."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from privfin.cli.main import app
from privfin.config import Settings
from privfin.errors import InsecureModeError, PrivfinError
from privfin.tee import KeyReleaseRefused, SealError, SimulatedEnclaveRefused
from privfin.tee.broker import KeyBroker, UsagePolicy, encrypt_dataset, sign_policy
from privfin.tee.enclave import SimulatedEnclave, gramine_manifest, measure_component
from privfin.tee.sealing import SealKeyPair, open_authenticated
from privfin.tee.simulated import SimulationRoot

from ._evidence import DATA

DEV = Settings(mode="development")


def _tables(n: int = 300) -> tuple[bytes, bytes, pd.DataFrame]:
    rng = np.random.default_rng(3)
    ids = np.arange(n)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (x1 - x2 + 0.5 * rng.normal(size=n) > 0).astype(int)
    bank = pd.DataFrame({"id": ids, "x1": x1, "label": y})
    telco = pd.DataFrame({"id": ids[::-1], "x2": x2[::-1]})
    joined = bank.merge(telco, on="id")
    return bank.to_csv(index=False).encode(), telco.to_csv(index=False).encode(), joined


def _setup(settings: Settings, allow_simulated: bool = True):  # type: ignore[no-untyped-def]
    root = SimulationRoot.create()
    owners = {"bank": Ed25519PrivateKey.generate(), "telco": Ed25519PrivateKey.generate()}
    records: list[object] = []
    broker = KeyBroker(
        SealKeyPair.generate(),
        {k: v.public_key() for k, v in owners.items()},
        settings=settings,
        audit=records.append,
        simulation_root=root.certificate,
    )
    bank, telco, joined = _tables()
    measurement, _ = measure_component("train_model")
    encrypted = []
    for owner, raw in (("bank", bank), ("telco", telco)):
        enc, wrapped = encrypt_dataset(owner, f"{owner}_ds", raw, broker.public)
        policy = UsagePolicy(
            owner,
            f"{owner}_ds",
            wrapped.key_id,
            "job-7",
            (measurement.hex(),),
            datetime.now(UTC) + timedelta(hours=1),
            allow_simulated=allow_simulated,
        )
        broker.deposit(wrapped, sign_policy(policy, owners[owner]))
        encrypted.append(enc)
    return root, broker, encrypted, joined, records


def test_simulated_enclave_trains_on_the_joined_data_and_seals_the_result() -> None:
    root, broker, encrypted, joined, records = _setup(DEV)
    result_party = SealKeyPair.generate()
    with SimulatedEnclave("train_model", root, settings=DEV) as enclave:
        assert enclave.measurement == measure_component("train_model")[0].hex()
        nonce = broker.challenge("job-7")
        keys = broker.release(
            "job-7",
            enclave.attest(nonce),
            enclave.public_key,
            nonce,
            [e.key_id for e in encrypted],
        )
        sealed = enclave.run(
            "job-7",
            keys,
            encrypted,
            {"model": "lr", "seed": 1},
            result_party.public,
            b"job-7|result",
        )
        enclave_key = enclave.public_key
    with pytest.raises(SealError):
        open_authenticated(sealed, SealKeyPair.generate(), enclave_key, b"job-7|result")
    with pytest.raises(SealError):  # authenticated by the enclave, not by another key
        open_authenticated(sealed, result_party, SealKeyPair.generate().public, b"job-7|result")
    out = json.loads(open_authenticated(sealed, result_party, enclave_key, b"job-7|result"))
    assert out["metrics"]["rows_joined"] == len(joined)
    # plaintext reference: the same model trained outside the enclave on the same split
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    data = joined.sort_values("id")
    x = data[out["model"]["features"]].to_numpy(dtype=float)
    x_tr, _, y_tr, _ = train_test_split(
        x, data["label"].to_numpy(), test_size=0.3, random_state=1, stratify=data["label"]
    )
    ref = LogisticRegression(max_iter=1000).fit(x_tr, y_tr)
    np.testing.assert_allclose(out["model"]["coef"], ref.coef_[0], rtol=1e-6, atol=1e-8)
    assert out["metrics"]["auc"] > 0.8
    assert len(records) == 2


def test_simulated_enclave_is_refused_in_production() -> None:
    root = SimulationRoot.create()
    with pytest.raises(InsecureModeError, match="simulated enclave"):
        SimulatedEnclave("train_model", root, settings=Settings())


def test_broker_in_production_refuses_the_simulated_enclave_end_to_end() -> None:
    root, broker, encrypted, _, records = _setup(Settings())
    with SimulatedEnclave("column_stats", root, settings=DEV) as enclave:
        nonce = broker.challenge("job-7")
        with pytest.raises(KeyReleaseRefused) as info:
            broker.release(
                "job-7",
                enclave.attest(nonce),
                enclave.public_key,
                nonce,
                [e.key_id for e in encrypted],
            )
    assert isinstance(info.value.cause, SimulatedEnclaveRefused)
    assert {r.evidence["outcome"] for r in records} == {"refused"}  # type: ignore[attr-defined]


def test_unapproved_component_does_not_start() -> None:
    with pytest.raises(PrivfinError):
        SimulatedEnclave("exfiltrate", SimulationRoot.create(), settings=DEV).start()


def test_gramine_manifest() -> None:
    text = gramine_manifest("train_model")
    doc = tomllib.loads(
        text.replace("{{ entrypoint }}", "/usr/bin/python3")
        .replace("{{ gramine.libos }}", "/lib/libsysdb.so")
        .replace("{{ gramine.runtimedir() }}", "/rt")
    )
    assert doc["sgx"]["debug"] is False
    assert doc["sgx"]["remote_attestation"] == "dcap"
    assert doc["sgx"]["allowed_files"] == []
    assert doc["loader"]["argv"][-1] == "privfin.tee._enclave_main"
    assert doc["loader"]["insecure__use_cmdline_argv"] is False
    assert doc["loader"]["env"]["PRIVFIN_ENCLAVE_COMPONENT"] == "train_model"
    with pytest.raises(PrivfinError, match="not approved"):
        gramine_manifest("exfiltrate")


# ----------------------------------------------------------------------------- CLI

runner = CliRunner()


def _cli(*args: str) -> tuple[int, dict[str, object]]:
    res = runner.invoke(app, ["tee", "verify", *args])
    return res.exit_code, json.loads(res.stdout)


def test_cli_verifies_each_platform_as_of_a_time() -> None:
    code, out = _cli(
        str(DATA / "sgx/sgx_quote_v3.bin"),
        "--platform",
        "sgx",
        "--collateral",
        str(DATA / "sgx/sgx_quote_v3_collateral.json"),
        "--at",
        "2025-07-04T00:00:00Z",
    )
    assert code == 0 and out["tcb_status"] == "ConfigurationAndSWHardeningNeeded"
    code, out = _cli(
        str(DATA / "tdx/tdx_quote_v4_dstack.hex"),
        "--platform",
        "tdx",
        "--at",
        "2025-07-04T00:00:00",
    )
    assert code == 0 and out["tcb_status"] is None and out["platform"] == "tdx"
    code, out = _cli(
        str(DATA / "nitro/blocky_2024-09-07_production.b64"),
        "--platform",
        "nitro",
        "--at",
        "2024-09-07T14:37:39.545Z",
    )
    assert code == 0 and out["measurement"].startswith("e72a46ca")  # type: ignore[union-attr]
    code, out = _cli(
        str(DATA / "sev-snp/virtee_milan_report.hex"),
        "--platform",
        "snp",
        "--collateral",
        str(DATA / "sev-snp"),
        "--at",
        "2026-11-27T00:00:00Z",
    )
    assert code == 0 and out["details"]["product"] == "Milan"  # type: ignore[index]


def test_cli_prints_the_precise_error() -> None:
    code, out = _cli(
        str(DATA / "nitro/blocky_2024-09-07_production.b64"),
        "--platform",
        "nitro",
        "--at",
        "2026-11-27T00:00:00Z",
    )
    assert code == 1 and out["error"] == "NotValidAtTimeError"
    code, out = _cli(
        str(DATA / "tdx/tdx_quote_v5_outdated.bin"),
        "--platform",
        "tdx",
        "--collateral",
        str(DATA / "tdx/tdx_quote_v5_outdated_collateral.json"),
        "--at",
        "2026-03-01T00:00:00Z",
    )
    assert code == 1 and out["error"] == "TcbStatusError"
    code, out = _cli(str(DATA / "sgx/sgx_quote_v3.bin"), "--platform", "tdx")
    assert code == 1 and out["code"] == "evidence_format"
    code, out = _cli(str(DATA / "sgx/sgx_quote_v3.bin"), "--platform", "arm")
    assert code == 1 and out["code"] == "usage"


def test_cli_reads_a_pcs_collateral_directory(tmp_path: Path) -> None:
    chain = json.loads((DATA / "tdx/tdx_quote_v4_collateral.json").read_text())
    (tmp_path / "tcb_signing_chain.pem").write_text(chain["tcb_info_issuer_chain"])
    (tmp_path / "tcb_info.json").write_bytes(
        (DATA / "tdx/trustee_tcb_info_fmspc00a06d080000.json").read_bytes()
    )
    (tmp_path / "qe_identity.json").write_bytes(
        (DATA / "tdx/trustee_td_qe_identity.json").read_bytes()
    )
    code, out = _cli(
        str(DATA / "tdx/trustee_tdx_quote_v4_fmspc00a06d080000.bin"),
        "--platform",
        "tdx",
        "--collateral",
        str(tmp_path),
        "--at",
        "2025-11-01T00:00:00Z",
    )
    assert code == 0 and out["details"]["tdx_module"] == "TDX_03"  # type: ignore[index]


def test_an_enclave_that_does_not_answer_in_time_is_stopped() -> None:
    enclave = SimulatedEnclave("column_stats", SimulationRoot.create(), settings=DEV, timeout=0.001)
    with pytest.raises(PrivfinError, match="did not start"):
        enclave.start()  # a Python process takes far longer than 1 ms to start
    enclave.close()
