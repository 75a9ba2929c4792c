"""The ``tee`` job component: the data parties' tables go, encrypted, to an attested enclave
that trains a plaintext scikit-learn model on their join; the model and metrics come out
sealed to the result party.

Roles: ``data`` (one or more parties, each with a ``table``), ``enclave_host`` (exactly one:
runs the enclave), ``result`` (exactly one: gets the model). A party may hold several roles.
Each data party is its own key broker (:class:`~privfin.tee.broker.KeyBroker`): it releases its
data key only after verifying, itself, the enclave's evidence against its own policy: the
measurement it computes for the approved component from its own privfin (and the one the job
names, if any), no debug, the nonce it issued bound with the enclave's key. So every data
party's policy must allow the enclave, or the enclave never gets all the keys.

Backend ``simulated`` only (no TEE hardware here): the host needs insecure modes enabled to
start it, and each data party's policy admits it only if that party's settings allow insecure
modes too. Outputs say ``simulated: true``. See SPEC.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import timedelta
from typing import Any

from privfin.errors import ConfigError, ProtocolAbort
from privfin.runtime import Context
from privfin.tee.messages import (
    Challenge,
    EnclaveInfo,
    EvidenceMsg,
    KeyRelease,
    ResultKey,
    SealedResult,
)
from privfin.tee.result import AttestationResult

__all__ = ["TeeParams", "enclave_summary", "tee_component"]


@dataclass(frozen=True)
class TeeParams:
    """Parameters of the ``tee`` component.

    Attributes
    ----------
    component:
        The approved enclave component: ``train_model`` or ``column_stats``.
    backend:
        ``simulated`` (the only one that runs here; NO hardware protection).
    measurement:
        If set, the enclave measurement every data party requires (hex); it must also equal
        what each party computes for ``component``.
    model:
        ``lr`` (logistic regression) or ``gbdt`` (gradient boosting).
    id_column, label:
        The join key (same name at every data party) and the label column (at one of them).
    test_fraction:
        Share of the joined rows held out for the metrics.
    seed:
        Seed of the split and of the GBDT.
    n_estimators, max_depth, learning_rate, max_iter:
        Model settings.
    """

    component: str = "train_model"
    backend: str = "simulated"
    measurement: str | None = None
    model: str = "lr"
    id_column: str = "id"
    label: str = "y"
    test_fraction: float = 0.3
    seed: int = 0
    n_estimators: int = 50
    max_depth: int = 3
    learning_rate: float = 0.1
    max_iter: int = 1000

    def __post_init__(self) -> None:
        from privfin.tee.components import APPROVED

        if self.component not in APPROVED:
            raise ValueError(f"component must be one of {sorted(APPROVED)}")
        if self.backend != "simulated":
            raise ValueError(
                "backend must be 'simulated' (the 'gramine' backend runs only on SGX hardware: "
                "see docs/tee.md)"
            )
        if self.model not in ("lr", "gbdt"):
            raise ValueError("model must be 'lr' or 'gbdt'")
        if not 0.05 <= self.test_fraction <= 0.9:
            raise ValueError("test_fraction must be in [0.05, 0.9]")
        if not (1 <= self.n_estimators <= 2000 and 1 <= self.max_depth <= 16):
            raise ValueError("n_estimators must be 1..2000 and max_depth 1..16")
        if self.measurement is not None:
            bytes.fromhex(self.measurement)

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> TeeParams:
        known = {f.name for f in fields(cls)}
        unknown = set(params) - known
        if unknown:
            raise ConfigError(f"unknown tee parameters {sorted(unknown)}; known: {sorted(known)}")
        try:
            return cls(**dict(params))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid tee parameters: {exc}") from None

    def enclave_params(self) -> dict[str, Any]:
        out = asdict(self)
        for k in ("component", "backend", "measurement"):
            out.pop(k)
        return out


def enclave_summary(params: Mapping[str, Any]) -> dict[str, Any]:
    """What a party's approvals inbox shows for a ``tee`` step: the approved component, the
    enclave measurement that will see the data (computed by this party's privfin), the backend,
    and that a simulated enclave offers no hardware protection."""
    from privfin.tee.enclave import SIMULATED_LABEL, measure_component

    p = TeeParams.from_mapping(params)
    measurement = measure_component(p.component)[0].hex()
    return {
        "component": p.component,
        "measurement": measurement,
        "job_measurement_matches": p.measurement is None or p.measurement.lower() == measurement,
        "backend": p.backend,
        "simulated": p.backend == "simulated",
        "warning": SIMULATED_LABEL if p.backend == "simulated" else "",
    }


def _one(ctx: Context, role: str) -> str:
    parties = ctx.parties_with(role)
    if len(parties) != 1:
        raise ConfigError(f"the tee component needs exactly one {role!r} party")
    return parties[0]


def tee_component(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    """Run this party's part; returns ``{"model", "metrics"}`` at the result party,
    ``{"release": <audit record fields>}`` at a data party (merged when a party has both)."""
    p = TeeParams.from_mapping(params)
    host = _one(ctx, "enclave_host")
    result_party = _one(ctx, "result")
    data_parties = ctx.parties_with("data")
    if not data_parties:
        raise ConfigError("the tee component needs at least one 'data' party")
    if host in data_parties or host == result_party:
        raise ConfigError(
            "the enclave host must be a party of its own (not a 'data' or 'result' party)"
        )
    if ctx.party == host:
        return {"enclave": _host(ctx, p, data_parties, result_party)}
    info = ctx.channel.recv(host, "info", expect=EnclaveInfo)
    out: dict[str, Any] = {}
    if ctx.has_role("data"):
        out["release"] = _data(ctx, p, host, info, inputs)
    if ctx.has_role("result"):
        out.update(_result(ctx, p, host, info))
    return out


def _table_csv(inputs: Mapping[str, Any], p: TeeParams) -> bytes:
    table = inputs.get("table")
    if table is None or not hasattr(table, "to_csv"):
        raise ConfigError("a 'data' party needs its input 'table'")
    if p.id_column not in table.columns:
        raise ConfigError(f"input 'table' has no id column {p.id_column!r}")
    return bytes(table.to_csv(index=False).encode())


def _data(
    ctx: Context, p: TeeParams, host: str, info: EnclaveInfo, inputs: Mapping[str, Any]
) -> dict[str, Any]:
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from privfin.tee._x509 import load_pem_certificates
    from privfin.tee.broker import (
        AuditRecord,
        KeyBroker,
        UsagePolicy,
        encrypt_dataset,
        sign_policy,
    )
    from privfin.tee.enclave import SIMULATED_LABEL
    from privfin.tee.errors import KeyReleaseRefused
    from privfin.tee.result import Platform
    from privfin.tee.sealing import SealKeyPair
    from privfin.tee.verify import Evidence

    raw = _table_csv(inputs, p)
    expected = _expected_measurement(p)
    records: list[AuditRecord] = []
    root = load_pem_certificates(info.simulation_root)[0] if info.simulated else None
    if info.simulated:
        ctx.log.warning("%s: host %s asks for this party's data key", SIMULATED_LABEL, host)
    signing = Ed25519PrivateKey.generate()
    broker = KeyBroker(
        SealKeyPair.generate(ctx.random),
        {ctx.party: signing.public_key()},
        settings=ctx.settings,
        audit=records.append,
        random=ctx.random,
        simulation_root=root,
    )
    dataset = f"{ctx.job}/{ctx.component}/{ctx.party}"
    enc, wrapped = encrypt_dataset(ctx.party, dataset, raw, broker.public, random=ctx.random)
    policy = UsagePolicy(
        owner=ctx.party,
        dataset=dataset,
        key_id=wrapped.key_id,
        job=ctx.job,
        measurements=(expected,),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        allow_simulated=True,  # admitted only if this party's settings allow insecure modes
    )
    broker.deposit(wrapped, sign_policy(policy, signing))
    nonce = broker.challenge(ctx.job)
    ctx.channel.send(host, "challenge", Challenge(nonce=nonce))
    ev = ctx.channel.recv(host, "evidence", expect=EvidenceMsg)
    try:
        released = broker.release(
            ctx.job,
            Evidence(Platform(ev.platform), ev.evidence),
            info.public_key,
            nonce,
            [wrapped.key_id],
        )
    except KeyReleaseRefused as exc:
        ctx.log.error("tee: key release refused: %s", exc)
        raise ProtocolAbort(f"{ctx.party} refused to release its data key: {exc}") from None
    key = released[0]
    ctx.channel.send(
        host,
        "data",
        KeyRelease(
            owner=ctx.party,
            dataset=dataset,
            key_id=key.key_id,
            key_blob=key.blob,
            nonce=enc.nonce,
            ciphertext=enc.ciphertext,
        ),
    )
    return {"action": records[-1].action, **records[-1].fields()}


def _verify_enclave(ctx: Context, p: TeeParams, host: str, info: EnclaveInfo) -> AttestationResult:
    """Challenge the enclave and check its evidence against this party's own policy (the
    measurement it computes for the component, no debug, the nonce and the enclave key bound
    in the report data). Used by a result party that is not also a data party (a data party
    checks the same through its key broker)."""
    import secrets

    from privfin.tee._x509 import load_pem_certificates
    from privfin.tee.policy import AttestationPolicy, bind_report_data
    from privfin.tee.result import Platform
    from privfin.tee.verify import Evidence, verify_evidence

    expected = _expected_measurement(p)
    nonce = secrets.token_bytes(32)
    ctx.channel.send(host, "challenge", Challenge(nonce=nonce))
    ev = ctx.channel.recv(host, "evidence", expect=EvidenceMsg)
    root = load_pem_certificates(info.simulation_root)[0] if info.simulated else None
    result = verify_evidence(Evidence(Platform(ev.platform), ev.evidence), simulation_root=root)
    policy = AttestationPolicy(
        measurements=frozenset({expected}),
        platforms=frozenset(
            {Platform.sgx, Platform.tdx, Platform.snp, Platform.nitro, Platform.simulated}
        ),
        allow_simulated=True,  # admitted only if this party's settings allow insecure modes
    )
    policy.check(
        result, settings=ctx.settings, report_data=bind_report_data(info.public_key, nonce)
    )
    return result


def _expected_measurement(p: TeeParams) -> str:
    from privfin.tee.enclave import measure_component

    expected = measure_component(p.component)[0].hex()
    if p.measurement is not None and p.measurement.lower() != expected:
        raise ConfigError(
            f"the job names enclave measurement {p.measurement}, but component "
            f"{p.component!r} of this privfin measures {expected}"
        )
    return expected


def _result(ctx: Context, p: TeeParams, host: str, info: EnclaveInfo) -> dict[str, Any]:
    from privfin.tee.sealing import SealKeyPair, open_authenticated

    if not ctx.has_role("data"):  # a data party verified the enclave before releasing its key
        _verify_enclave(ctx, p, host, info)
    keys = SealKeyPair.generate(ctx.random)
    ctx.channel.send(host, "result_key", ResultKey(public_key=keys.public))
    sealed = ctx.channel.recv(host, "result", expect=SealedResult)
    # authenticated by the attested enclave key: the host cannot substitute a result
    payload = json.loads(
        open_authenticated(sealed.sealed, keys, info.public_key, _result_context(ctx))
    )
    metrics = dict(payload.get("metrics") or {k: v for k, v in payload.items() if k != "model"})
    metrics.update(
        enclave_measurement=info.measurement,
        enclave_platform=info.platform,
        simulated=info.simulated,
    )
    return {"model": payload.get("model"), "metrics": metrics}


def _result_context(ctx: Context) -> bytes:
    return f"privfin-tee-result|{ctx.job}|{ctx.component}".encode()


def _host(ctx: Context, p: TeeParams, data_parties: list[str], result_party: str) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization

    from privfin.tee.broker import EncryptedDataset, ReleasedKey
    from privfin.tee.enclave import SIMULATED_LABEL, SimulatedEnclave
    from privfin.tee.simulated import SimulationRoot

    root = SimulationRoot.create()
    ctx.log.warning("%s: hosting component %r", SIMULATED_LABEL, p.component)
    with SimulatedEnclave(p.component, root, settings=ctx.settings) as enclave:
        info = EnclaveInfo(
            platform="simulated",
            measurement=enclave.measurement,
            public_key=enclave.public_key,
            simulated=True,
            simulation_root=root.certificate.public_bytes(serialization.Encoding.PEM).decode(),
        )
        others = sorted(set(ctx.roles) - {ctx.party})
        for peer in others:
            ctx.channel.send(peer, "info", info)
        # every data party, and a result party that is not one, checks the enclave itself
        for peer in sorted({*data_parties, result_party}):
            ch = ctx.channel.recv(peer, "challenge", expect=Challenge)
            ev = enclave.attest(ch.nonce)
            ctx.channel.send(peer, "evidence", EvidenceMsg(platform="simulated", evidence=ev.data))
        keys: list[ReleasedKey] = []
        datasets: list[EncryptedDataset] = []
        for peer in data_parties:
            msg = ctx.channel.recv(peer, "data", expect=KeyRelease)
            if msg.owner != peer:
                raise ProtocolAbort(f"{peer} sent data in another party's name", party=peer)
            keys.append(ReleasedKey(msg.owner, msg.dataset, msg.key_id, msg.key_blob))
            datasets.append(
                EncryptedDataset(msg.owner, msg.dataset, msg.key_id, msg.nonce, msg.ciphertext)
            )
        rk = ctx.channel.recv(result_party, "result_key", expect=ResultKey)
        sealed = enclave.run(
            ctx.job, keys, datasets, p.enclave_params(), rk.public_key, _result_context(ctx)
        )
        ctx.channel.send(result_party, "result", SealedResult(sealed=sealed))
    return {
        "measurement": info.measurement,
        "platform": "simulated",
        "simulated": True,
        "data_parties": data_parties,
        "result_party": result_party,
        "sealed_bytes": len(sealed),
    }
