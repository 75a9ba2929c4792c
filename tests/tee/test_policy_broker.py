"""[14] Policies on real evidence (debug enclaves fail any production policy), the key
broker's refusals (wrong measurement, debug, stale nonce, simulated enclave under a production
policy, a signature that is not the owner's) and its audit records, and sealing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from privfin.config import Settings
from privfin.crypto.random import SeededRandom
from privfin.tee import (
    DebugEnclaveError,
    FreshnessError,
    KeyReleaseRefused,
    MeasurementNotAllowed,
    Platform,
    SealError,
    SimulatedEnclaveRefused,
    TcbStatus,
    TcbStatusNotAllowed,
)
from privfin.tee.broker import (
    AuditRecord,
    KeyBroker,
    UsagePolicy,
    decrypt_dataset,
    encrypt_dataset,
    release_context,
    sign_policy,
)
from privfin.tee.dcap import Collateral, verify_dcap
from privfin.tee.nitro import verify_nitro
from privfin.tee.policy import AttestationPolicy, bind_report_data
from privfin.tee.result import AttestationResult
from privfin.tee.sealing import (
    SealKeyPair,
    open_authenticated,
    open_sealed,
    seal,
    seal_authenticated,
)
from privfin.tee.simulated import SimulationRoot, make_simulated_evidence
from privfin.tee.snp import verify_snp
from privfin.tee.verify import Evidence

from ._evidence import SGX_AT, SNP_NOW, TDX_V4_AT, TRUSTEE_TDX_AT, read, t

PROD = Settings()
DEV = Settings(mode="development")
SGX_MR = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"


def _sgx() -> AttestationResult:
    col = Collateral.from_qvl_json(read("sgx/sgx_quote_v3_collateral.json"))
    return verify_dcap(read("sgx/sgx_quote_v3.bin"), collateral=col, at=SGX_AT)


# ----------------------------------------------------------------------------- policy


def test_policy_on_the_sgx_sample() -> None:
    r = _sgx()
    ok = AttestationPolicy(
        measurements=frozenset({SGX_MR}),
        min_tcb_status=TcbStatus.configuration_and_sw_hardening_needed,
    )
    ok.check(r, settings=PROD, report_data=b"Hello, world!")
    with pytest.raises(TcbStatusNotAllowed, match="ConfigurationAndSWHardeningNeeded"):
        AttestationPolicy(measurements=frozenset({SGX_MR})).check(r, settings=PROD)
    with pytest.raises(MeasurementNotAllowed):
        AttestationPolicy(
            measurements=frozenset({"00" * 32}),
            min_tcb_status=TcbStatus.out_of_date,
        ).check(r, settings=PROD)
    with pytest.raises(MeasurementNotAllowed, match="signer"):
        AttestationPolicy(
            measurements=frozenset({SGX_MR}),
            signers=frozenset({"11" * 32}),
            min_tcb_status=TcbStatus.out_of_date,
        ).check(r, settings=PROD)
    with pytest.raises(FreshnessError):
        ok.check(r, settings=PROD, report_data=b"another nonce")


def test_tdx_up_to_date_sample_passes_a_strict_policy() -> None:
    col = Collateral.from_qvl_json(read("tdx/tdx_quote_v4_collateral.json"))
    r = verify_dcap(read("tdx/tdx_quote_v4.bin"), collateral=col, at=TDX_V4_AT)
    AttestationPolicy(
        measurements=frozenset({r.measurement}), registers={"rtmr3": "00" * 48}
    ).check(r, settings=PROD)
    with pytest.raises(MeasurementNotAllowed, match="rtmr0"):
        AttestationPolicy(
            measurements=frozenset({r.measurement}), registers={"rtmr0": "00" * 48}
        ).check(r, settings=PROD)


@pytest.mark.parametrize(
    "result",
    [
        lambda: verify_dcap(read("sgx/trustee_occlum_sgx_quote_v3_debug.bin"), at=TRUSTEE_TDX_AT),
        lambda: verify_dcap(read("tdx/trustee_tdx_quote_v4_debug_td.bin"), at=TRUSTEE_TDX_AT),
        lambda: verify_nitro(read("nitro/blocky_2024-09-07_debug.b64"), at=t("2024-09-07T15:00")),
        lambda: verify_nitro(
            read("nitro/evervault_2022-10-12_debug.cbor"), at=t("2022-10-12T14:00")
        ),
        lambda: verify_snp(
            read("sev-snp/gosevguest_milan_report.bin"),
            [
                __import__("privfin.tee._x509", fromlist=["x"]).load_der_certificate(
                    read("sev-snp/gosevguest_milan_vcek.der")
                )
            ],
            at=SNP_NOW,
        ),
    ],
    ids=["sgx-occlum", "tdx-td", "nitro-blocky", "nitro-evervault", "snp-gosevguest"],
)
def test_debug_enclaves_fail_any_production_policy(
    result: Callable[[], AttestationResult],
) -> None:
    r = result()
    assert r.debug
    policy = AttestationPolicy(
        measurements=frozenset({r.measurement}),
        require_tcb_status=False,
        min_tcb_status=TcbStatus.revoked,
    )
    with pytest.raises(DebugEnclaveError):
        policy.check(r, settings=PROD)


def test_snp_minimum_patch_levels() -> None:
    from privfin.tee._x509 import load_der_certificate

    r = verify_snp(
        read("sev-snp/virtee_milan_report.hex"),
        [load_der_certificate(read("sev-snp/virtee_milan_vcek.der"))],
        at=SNP_NOW,
    )
    AttestationPolicy(
        measurements=frozenset({r.measurement}),
        min_snp_tcb={"bootloader": 3, "snp": 8, "microcode": 115},
    ).check(r, settings=PROD)
    with pytest.raises(TcbStatusNotAllowed, match="microcode"):
        AttestationPolicy(
            measurements=frozenset({r.measurement}), min_snp_tcb={"microcode": 200}
        ).check(r, settings=PROD)


def test_quote_without_collateral_fails_a_policy_requiring_tcb_status() -> None:
    r = verify_dcap(read("tdx/trustee_tdx_quote_v5.bin"), at=TRUSTEE_TDX_AT)
    with pytest.raises(TcbStatusNotAllowed, match="collateral"):
        AttestationPolicy(measurements=frozenset({r.measurement})).check(r, settings=PROD)


def test_policy_needs_an_allowlist() -> None:
    with pytest.raises(ValueError, match="allowed measurement"):
        AttestationPolicy(measurements=frozenset())
    with pytest.raises(ValueError):
        AttestationPolicy(measurements=frozenset({"not hex"}))


# ----------------------------------------------------------------------------- sealing


@given(st.binary(max_size=2000), st.binary(min_size=1, max_size=40))
def test_seal_open_roundtrip(payload: bytes, context: bytes) -> None:
    keys = SealKeyPair.generate(SeededRandom(b"k"))
    assert open_sealed(seal(payload, keys.public, context), keys, context) == payload


def test_authenticated_sealing_rejects_a_result_forged_by_the_host() -> None:
    enclave, result_party = SealKeyPair.generate(), SealKeyPair.generate()
    genuine = seal_authenticated(b"model", result_party.public, enclave, b"ctx")
    assert open_authenticated(genuine, result_party, enclave.public, b"ctx") == b"model"
    host = SealKeyPair.generate()  # the host knows the result party's public key only
    forged = seal_authenticated(b"fake model", result_party.public, host, b"ctx")
    with pytest.raises(SealError, match="expected sender"):
        open_authenticated(forged, result_party, enclave.public, b"ctx")
    plain = seal(bytes(32) + b"fake model", result_party.public, b"ctx")
    with pytest.raises(SealError):
        open_authenticated(plain, result_party, enclave.public, b"ctx")


def test_sealed_results_open_only_with_the_result_partys_key() -> None:
    alice, mallory = SealKeyPair.generate(), SealKeyPair.generate()
    blob = seal(b"model", alice.public, b"job1|result")
    with pytest.raises(SealError):
        open_sealed(blob, mallory, b"job1|result")
    with pytest.raises(SealError):
        open_sealed(blob, alice, b"job2|result")
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 1
        with pytest.raises(SealError):
            open_sealed(bytes(bad), alice, b"job1|result")


# ----------------------------------------------------------------------------- broker


class _World:
    """Two owners, a broker with a fixed clock, a simulation root, and audit records."""

    def __init__(
        self,
        settings: Settings,
        *,
        measurements: tuple[str, str] | None = None,
        allow_simulated: tuple[bool, bool] = (True, True),
    ) -> None:
        self.now = t("2026-11-27T12:00")
        self.root = SimulationRoot.create(now=self.now)
        self.records: list[AuditRecord] = []
        self.owner_keys = {
            "bank": Ed25519PrivateKey.generate(),
            "telco": Ed25519PrivateKey.generate(),
        }
        self.broker = KeyBroker(
            SealKeyPair.generate(),
            {k: v.public_key() for k, v in self.owner_keys.items()},
            settings=settings,
            audit=self.records.append,
            clock=lambda: self.now,
            simulation_root=self.root.certificate,
        )
        self.measurement = bytes(range(48))
        self.enclave = SealKeyPair.generate()
        ms = measurements or (self.measurement.hex(), self.measurement.hex())
        self.key_ids: list[str] = []
        self.datasets = []
        for (owner, m), sim in zip(
            zip(("bank", "telco"), ms, strict=True), allow_simulated, strict=True
        ):
            enc, wrapped = encrypt_dataset(
                owner, f"{owner}_ds", f"{owner} rows".encode(), self.broker.public
            )
            policy = UsagePolicy(
                owner,
                f"{owner}_ds",
                wrapped.key_id,
                "job1",
                (m,),
                self.now + timedelta(days=1),
                allow_simulated=sim,
            )
            self.broker.deposit(wrapped, sign_policy(policy, self.owner_keys[owner]))
            self.key_ids.append(wrapped.key_id)
            self.datasets.append(enc)

    def evidence(
        self,
        nonce: bytes,
        *,
        debug: bool = False,
        key: bytes | None = None,
        at: datetime | None = None,
    ) -> Evidence:
        pem_key, pem_cert = self.root.issue_platform_key(now=self.now)
        data = make_simulated_evidence(
            pem_key,
            pem_cert,
            measurement=self.measurement,
            signer=bytes(32),
            report_data=bind_report_data(key or self.enclave.public, nonce),
            debug=debug,
            now=at or self.now,
        )
        return Evidence(Platform.simulated, data)

    def release(self, nonce: bytes, evidence: Evidence, job: str = "job1") -> list[object]:
        return list(self.broker.release(job, evidence, self.enclave.public, nonce, self.key_ids))


def test_broker_releases_to_an_allowed_enclave_and_audits_it() -> None:
    w = _World(DEV)
    nonce = w.broker.challenge("job1")
    released = w.broker.release("job1", w.evidence(nonce), w.enclave.public, nonce, w.key_ids)
    assert [r.dataset for r in released] == ["bank_ds", "telco_ds"]
    for r, enc in zip(released, w.datasets, strict=True):
        key = open_sealed(
            r.blob,
            w.enclave,
            release_context("job1", r.owner, r.dataset, r.key_id, w.measurement.hex()),
        )
        assert decrypt_dataset(enc, key) == f"{r.owner} rows".encode()
    assert [(a.action, a.dataset, a.party, a.evidence["outcome"]) for a in w.records] == [
        ("key_release", "bank_ds", "bank", "released"),
        ("key_release", "telco_ds", "telco", "released"),
    ]
    assert w.records[0].evidence["simulated"] is True
    assert w.records[0].evidence["measurement"] == w.measurement.hex()


def _refused(w: _World, evidence: Evidence, nonce: bytes, cause: type[Exception]) -> None:
    w.records.clear()
    with pytest.raises(KeyReleaseRefused) as info:
        w.release(nonce, evidence)
    assert isinstance(info.value.cause, cause), info.value
    assert w.records and all(r.evidence["outcome"] == "refused" for r in w.records)
    assert all(r.action == "key_release" for r in w.records)


def test_broker_refuses_a_simulated_enclave_under_production_settings() -> None:
    w = _World(PROD)  # the owners allow simulation, but the process settings do not
    nonce = w.broker.challenge("job1")
    _refused(w, w.evidence(nonce), nonce, SimulatedEnclaveRefused)


def test_broker_refuses_a_simulated_enclave_under_a_production_policy() -> None:
    w = _World(DEV, allow_simulated=(True, False))  # telco's policy is a production policy
    nonce = w.broker.challenge("job1")
    _refused(w, w.evidence(nonce), nonce, SimulatedEnclaveRefused)


def test_broker_refuses_a_measurement_one_owner_does_not_allow() -> None:
    w = _World(DEV, measurements=(bytes(range(48)).hex(), "ab" * 48))
    nonce = w.broker.challenge("job1")
    _refused(w, w.evidence(nonce), nonce, MeasurementNotAllowed)


def test_broker_refuses_a_debug_enclave() -> None:
    w = _World(DEV)
    nonce = w.broker.challenge("job1")
    _refused(w, w.evidence(nonce, debug=True), nonce, DebugEnclaveError)


def test_broker_refuses_stale_reused_foreign_and_unbound_nonces() -> None:
    w = _World(DEV)
    nonce = w.broker.challenge("job1")
    w.now += timedelta(minutes=6)
    _refused(w, w.evidence(nonce), nonce, FreshnessError)  # expired
    nonce = w.broker.challenge("job1")
    w.release(nonce, w.evidence(nonce))
    _refused(w, w.evidence(nonce), nonce, FreshnessError)  # reused
    nonce = w.broker.challenge("job2")
    _refused(w, w.evidence(nonce), nonce, FreshnessError)  # issued for another job
    _refused(w, w.evidence(b"\x07" * 32), b"\x07" * 32, FreshnessError)  # never issued
    nonce = w.broker.challenge("job1")
    other = SealKeyPair.generate().public  # evidence binds another key than the requester's
    _refused(w, w.evidence(nonce, key=other), nonce, FreshnessError)


def test_broker_on_real_sgx_evidence() -> None:
    """The recorded SGX quote verifies and satisfies the owner's policy, but its report data
    ("Hello, world!") binds no enclave key and no nonce of this broker: refused."""
    owner = Ed25519PrivateKey.generate()
    records: list[AuditRecord] = []
    broker = KeyBroker(
        SealKeyPair.generate(),
        {"bank": owner.public_key()},
        settings=PROD,
        audit=records.append,
        clock=lambda: SGX_AT,
    )
    _, wrapped = encrypt_dataset("bank", "loans", b"rows", broker.public)
    policy = UsagePolicy(
        "bank",
        "loans",
        wrapped.key_id,
        "job1",
        (SGX_MR,),
        SGX_AT + timedelta(days=1),
        min_tcb_status=TcbStatus.configuration_and_sw_hardening_needed.value,
    )
    broker.deposit(wrapped, sign_policy(policy, owner))
    col = Collateral.from_qvl_json(read("sgx/sgx_quote_v3_collateral.json"))
    evidence = Evidence(Platform.sgx, read("sgx/sgx_quote_v3.bin"), col)
    nonce = broker.challenge("job1")
    with pytest.raises(KeyReleaseRefused) as info:
        broker.release("job1", evidence, SealKeyPair.generate().public, nonce, [wrapped.key_id])
    assert isinstance(info.value.cause, FreshnessError)
    assert records[-1].evidence["measurement"] == SGX_MR
    assert records[-1].evidence["tcb_status"] == "ConfigurationAndSWHardeningNeeded"
    # the same evidence under a policy with the default minimum (UpToDate): TCB refusal first
    _, wrapped2 = encrypt_dataset("bank", "cards", b"rows", broker.public)
    strict = UsagePolicy(
        "bank", "cards", wrapped2.key_id, "job1", (SGX_MR,), SGX_AT + timedelta(days=1)
    )
    broker.deposit(wrapped2, sign_policy(strict, owner))
    nonce = broker.challenge("job1")
    with pytest.raises(KeyReleaseRefused) as info:
        broker.release("job1", evidence, SealKeyPair.generate().public, nonce, [wrapped2.key_id])
    assert isinstance(info.value.cause, TcbStatusNotAllowed)


def test_broker_checks_owner_signatures_and_unknown_keys() -> None:
    w = _World(DEV)
    _enc, wrapped = encrypt_dataset("bank", "more", b"x", w.broker.public)
    policy = UsagePolicy(
        "bank", "more", wrapped.key_id, "job1", ("00" * 48,), w.now + timedelta(days=1)
    )
    with pytest.raises(KeyReleaseRefused, match="not signed"):
        w.broker.deposit(wrapped, sign_policy(policy, w.owner_keys["telco"]))
    with pytest.raises(KeyReleaseRefused, match="unknown data owner"):
        w.broker.deposit(
            encrypt_dataset("eve", "d", b"x", w.broker.public)[1],
            sign_policy(policy, w.owner_keys["bank"]),
        )
    nonce = w.broker.challenge("job1")
    with pytest.raises(KeyReleaseRefused, match="unknown data key"):
        w.broker.release("job1", w.evidence(nonce), w.enclave.public, nonce, ["nope"])
