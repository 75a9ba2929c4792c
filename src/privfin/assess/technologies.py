"""What each technology declares: functionality, the cryptographic parameters it uses by
default (read from the code's own constants and parameter defaults, not re-typed), its threat
model in plain words, and what each party learns by design (with the SPEC.md section).

These are the static facts of an assessment; :mod:`privfin.assess.probes` adds the
deviating-party probes and :mod:`privfin.assess.measure` / :mod:`privfin.assess.attacks`
the measured ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from privfin.assess.model import Check, ThreatModel
from privfin.assess.rubric import CryptoParam

__all__ = ["TECHNOLOGIES", "Learns", "Technology", "technology"]


@dataclass(frozen=True)
class Learns:
    """What one party learns by design, citing the SPEC section that states it."""

    party: str
    learns: str
    spec: str


@dataclass(frozen=True)
class Technology:
    """The declared facts of one technology (see the module docstring)."""

    name: str
    title: str
    roles: tuple[str, ...]
    min_parties: int
    max_parties: int | None  # None: no fixed limit
    data_types: tuple[str, ...]
    tasks: tuple[str, ...]
    interop: tuple[str, ...]
    threat_model: ThreatModel
    threat_model_words: str
    learns: tuple[Learns, ...]
    params: Callable[[], tuple[CryptoParam, ...]]
    components: tuple[str, ...] = ()
    simulated: bool = False

    def functionality_checks(self) -> list[Check]:
        """The five capability checks the functionality rubric counts."""
        multi = self.max_parties is None or self.max_parties >= 3
        return [
            Check(
                "two-party",
                self.min_parties <= 2,
                f"runs with {self.min_parties}"
                + ("+" if self.max_parties is None else f"-{self.max_parties}")
                + " parties",
            ),
            Check("multi-party", multi, "three or more parties" if multi else "two parties only"),
            Check(
                "data-types",
                len(self.data_types) >= 2,
                "data types: " + ", ".join(self.data_types),
            ),
            Check(
                "train-and-use",
                len(self.tasks) >= 2,
                "tasks: " + ", ".join(self.tasks),
            ),
            Check("interoperability", bool(self.interop), "; ".join(self.interop) or "none"),
        ]


def _default(cls: type, field: str) -> int:
    """The default of ``field`` of dataclass ``cls`` (the value the code uses)."""
    for f in dataclasses.fields(cls):
        if f.name == field and isinstance(f.default, int):
            return f.default
    raise KeyError(field)


def _paillier() -> CryptoParam:
    from privfin.he import paillier

    return CryptoParam(
        "paillier-modulus",
        "ifc",
        paillier.DEFAULT_KEY_BITS,
        "privfin.he.paillier.DEFAULT_KEY_BITS",
    )


def _x25519() -> CryptoParam:
    from privfin.crypto import x25519

    return CryptoParam(
        "x25519 (PSI default curve)",
        "ecc",
        x25519.FIELD_PRIME.bit_length(),
        "privfin.crypto.x25519.FIELD_PRIME; psi curve default privfin.psi.messages.CURVES[0]",
    )


def _ot() -> tuple[CryptoParam, ...]:
    from privfin.crypto import ot

    return (
        CryptoParam("ot-kappa", "symmetric", ot.KAPPA, "privfin.crypto.ot.KAPPA"),
        CryptoParam("ot-statistical", "statistical", ot.STAT, "privfin.crypto.ot.STAT"),
    )


def _aes256(where: str) -> CryptoParam:
    return CryptoParam("aes-256-gcm", "symmetric", 256, where)


def _ring() -> CryptoParam:
    from privfin.mpc.ring import RING_BITS

    return CryptoParam(
        f"additive-sharing Z_2^{RING_BITS}",
        "information-theoretic",
        RING_BITS,
        "privfin.mpc.ring.RING_BITS",
    )


def _hfl_params() -> tuple[CryptoParam, ...]:
    from privfin.crypto import shamir

    return (
        CryptoParam(
            "secagg masks Z_2^64",
            "information-theoretic",
            64,
            "fl/horizontal/secagg/SPEC.md §Encoding",
        ),
        CryptoParam(
            "shamir over 2^521-1",
            "information-theoretic",
            shamir.PRIME.bit_length(),
            "privfin.crypto.shamir.PRIME",
        ),
        CryptoParam("x25519 key agreement", "ecc", 255, "privfin.crypto.kex (X25519)"),
        _aes256("privfin.fl.horizontal.secagg.common (AESGCM, 32-byte keys)"),
    )


def _vfl_params() -> tuple[CryptoParam, ...]:
    from privfin.fl.vertical.hetero_lr.common import LRParams
    from privfin.fl.vertical.secureboost.params import BoostParams

    return (
        CryptoParam(
            "paillier (hetero LR)",
            "ifc",
            _default(LRParams, "key_bits"),
            "privfin.fl.vertical.hetero_lr.common.LRParams.key_bits",
        ),
        CryptoParam(
            "paillier (SecureBoost)",
            "ifc",
            _default(BoostParams, "key_bits"),
            "privfin.fl.vertical.secureboost.params.BoostParams.key_bits",
        ),
        CryptoParam(
            "mask statistical",
            "statistical",
            _default(LRParams, "stat_bits"),
            "privfin.fl.vertical.hetero_lr.common.LRParams.stat_bits",
        ),
    )


def _mpc_params() -> tuple[CryptoParam, ...]:
    return (_ring(), *_ot())


def _he_params() -> tuple[CryptoParam, ...]:
    from privfin.he import ckks

    p = ckks.DEFAULT_PARAMS
    return (
        _paillier(),
        CryptoParam(
            f"ckks N={p.poly_modulus_degree} log q={sum(p.coeff_mod_bit_sizes)}",
            "lattice",
            128,
            "privfin.he.ckks.DEFAULT_PARAMS (checked against MAX_COEFF_BITS_128, HE standard)",
        ),
    )


def _psi_params() -> tuple[CryptoParam, ...]:
    return (_x25519(), *_ot())


def _tee_params() -> tuple[CryptoParam, ...]:
    return (
        CryptoParam("x25519 sealing", "ecc", 255, "privfin.tee.sealing (X25519 ECIES)"),
        _aes256("privfin.tee.sealing (HKDF length 32, AESGCM)"),
    )


def _none() -> tuple[CryptoParam, ...]:
    return ()


_SEMI = (
    "Each party is assumed to follow the protocol honestly but may try to learn more from what "
    "it receives (semi-honest). Messages that are malformed or inconsistent are caught and the "
    "job stops naming the party; a party that cheats with well-formed but wrong values can bias "
    "the result without being noticed."
)

TECHNOLOGIES: dict[str, Technology] = {
    t.name: t
    for t in (
        Technology(
            name="hfl",
            title="Horizontal federated learning (FedAvg + secure aggregation)",
            roles=("server", "client"),
            min_parties=3,
            max_parties=None,
            data_types=("numeric", "categorical (encoded)"),
            tasks=("train", "score"),
            interop=("privfin.model JSON export", "CSV/Parquet/SQL datasets", "mutual-TLS nodes"),
            threat_model=ThreatModel.SEMI_HONEST,
            threat_model_words=_SEMI
            + " The server sees only the sum of the banks' updates while fewer than the "
            "threshold of clients collude with it.",
            learns=(
                Learns(
                    "server",
                    "the sum of the survivors' updates, who dropped, the model size",
                    "fl/horizontal/secagg/SPEC.md §What each party learns",
                ),
                Learns(
                    "client",
                    "the global model after every round; nothing about another client beyond it",
                    "fl/horizontal/fedavg/SPEC.md §What each party learns",
                ),
            ),
            params=_hfl_params,
            components=("hfl",),
        ),
        Technology(
            name="hfl-dp",
            title="Horizontal federated learning with client-level differential privacy",
            roles=("server", "client"),
            min_parties=3,
            max_parties=None,
            data_types=("numeric", "categorical (encoded)"),
            tasks=("train", "score"),
            interop=("privfin.model JSON export", "CSV/Parquet/SQL datasets", "mutual-TLS nodes"),
            threat_model=ThreatModel.SEMI_HONEST,
            threat_model_words=_SEMI
            + " In addition the released model carries a provable bound (epsilon, delta) on "
            "what it reveals about any one client, whoever receives it.",
            learns=(
                Learns(
                    "server",
                    "the noisy sum of the clipped updates, who dropped",
                    "fl/horizontal/fedavg/SPEC.md §Client-level differential privacy",
                ),
                Learns(
                    "client",
                    "the noisy global model (bounded by the DP guarantee)",
                    "fl/horizontal/fedavg/SPEC.md §What each party learns",
                ),
            ),
            params=_hfl_params,
            components=("hfl",),
        ),
        Technology(
            name="vfl-he",
            title="Vertical federated learning (hetero LR / SecureBoost, Paillier)",
            roles=("guest", "host", "arbiter"),
            min_parties=2,
            max_parties=None,
            data_types=("numeric", "categorical (binned)"),
            tasks=("train", "score", "WOE/IV binning", "Pearson"),
            interop=("privfin.model JSON export", "scorecard", "mutual-TLS nodes"),
            threat_model=ThreatModel.SEMI_HONEST,
            threat_model_words=_SEMI
            + " A key holder also checks every request before decrypting (it does not trust "
            "requesters); the arbiter must not collude with the guest or a host.",
            learns=(
                Learns(
                    "guest",
                    "the model's own weights and the training loss; hosts' parts stay masked",
                    "fl/vertical/hetero_lr/SPEC.md §What each party learns",
                ),
                Learns(
                    "host",
                    "its own weights; the gradient on its features, never the labels",
                    "fl/vertical/hetero_lr/SPEC.md §What each party learns",
                ),
                Learns(
                    "host (SecureBoost)",
                    "which of its bins the guest chose for a split; instance spaces of its splits",
                    "fl/vertical/secureboost/SPEC.md §What each party learns (leakage)",
                ),
            ),
            params=_vfl_params,
            components=("hetero_lr", "secureboost"),
        ),
        Technology(
            name="mpc",
            title="Secure multi-party computation (2PC OT triples / 3PC replicated sharing)",
            roles=("data", "compute", "result"),
            min_parties=2,
            max_parties=None,
            data_types=("numeric (fixed point, 16 fractional bits)",),
            tasks=("secure statistics", "SS-LR train", "score"),
            interop=("JR/T 0196 data/computing/result roles", "mutual-TLS nodes"),
            threat_model=ThreatModel.SEMI_HONEST,
            threat_model_words=_SEMI
            + " Any group of all but one computing party learns nothing; there are no MACs, so "
            "a computing party that shifts its share shifts the output undetected.",
            learns=(
                Learns(
                    "computing party",
                    "uniformly random shares only",
                    "mpc/SPEC.md §Threat model",
                ),
                Learns("result party", "the opened result only", "mpc/SPEC.md §Roles"),
            ),
            params=_mpc_params,
            components=("mpc_stats", "ss_lr"),
        ),
        Technology(
            name="psi",
            title="Private set intersection (ECDH / KKRT)",
            roles=("receiver", "sender", "leader", "member"),
            min_parties=2,
            max_parties=None,
            data_types=("identifiers (strings)",),
            tasks=("intersection", "cardinality", "unbalanced query"),
            interop=("aligned table output for VFL", "mutual-TLS nodes"),
            threat_model=ThreatModel.SEMI_HONEST,
            threat_model_words=_SEMI
            + " Each side learns the size of the other's set; the receiver learns the "
            "intersection, the sender too only if the job says so.",
            learns=(
                Learns("receiver", "the intersection and |Y|", "psi/SPEC.md §2"),
                Learns("sender", "|X| (and the intersection if reveal_to=both)", "psi/SPEC.md §2"),
                Learns("cardinality mode", "only |X ∩ Y| and the set sizes", "psi/SPEC.md §3"),
            ),
            params=_psi_params,
            components=("psi",),
        ),
        Technology(
            name="dp-central",
            title="Central differential privacy (releases, DP-SGD)",
            roles=("data", "result"),
            min_parties=2,
            max_parties=None,
            data_types=("numeric", "categorical"),
            tasks=("count/sum/mean/histogram release", "DP-SGD model"),
            interop=("budget ledger per dataset", "mutual-TLS nodes"),
            threat_model=ThreatModel.MALICIOUS,
            threat_model_words=(
                "The data owner computes in the clear on its own data. The result party may "
                "be anyone, ask adaptively and collude: the guarantee (epsilon, delta) holds "
                "against any of them as long as every release goes through the budget ledger."
            ),
            learns=(
                Learns(
                    "data owner",
                    "its own data; who asked and what they spent",
                    "dp/SPEC.md §Roles",
                ),
                Learns(
                    "result party",
                    "noisy values, bounded by (epsilon, delta) per the accountant",
                    "dp/SPEC.md §Mechanisms and their privacy maps",
                ),
            ),
            params=_none,
            components=("dp_release",),
        ),
        Technology(
            name="he",
            title="Homomorphic encryption primitives (Paillier, CKKS)",
            roles=("key holder", "evaluator"),
            min_parties=2,
            max_parties=2,
            data_types=("integers", "fixed-point reals"),
            tasks=("encrypted add", "plaintext multiply", "CKKS vector arithmetic"),
            interop=("versioned wire format with range checks",),
            threat_model=ThreatModel.SEMI_HONEST,
            threat_model_words=_SEMI
            + " A peer's Paillier key is accepted only with a proof that its modulus is well "
            "formed, and ciphertexts are re-randomised before they leave a party.",
            learns=(
                Learns(
                    "evaluator",
                    "ciphertexts only (indistinguishable under DCR / RLWE)",
                    "he/SPEC.md §Schemes and what they guarantee",
                ),
                Learns(
                    "key holder",
                    "exactly the plaintexts it is asked to decrypt",
                    "he/SPEC.md §Re-randomisation, wire format, keys",
                ),
            ),
            params=_he_params,
        ),
        Technology(
            name="tee",
            title="Confidential computing (simulated enclave in tests)",
            roles=("data owner", "key broker", "host", "result"),
            min_parties=2,
            max_parties=None,
            data_types=("numeric", "categorical", "identifiers"),
            tasks=("train", "score", "any approved component"),
            interop=("SGX DCAP, SEV-SNP, Nitro attestation", "sealed outputs"),
            threat_model=ThreatModel.TRUSTED_HARDWARE,
            threat_model_words=(
                "Trusts the CPU vendor, the approved enclave code and the key broker; the host "
                "operator is not trusted. Side channels and physical attacks are out of scope. "
                "The assessed backend is the SIMULATED enclave, which protects nothing."
            ),
            learns=(
                Learns(
                    "host",
                    "ciphertext sizes and timing (simulated: everything)",
                    "tee/SPEC.md §What each party learns",
                ),
                Learns(
                    "key broker",
                    "the data keys, the enclave measurement, job ids, sizes",
                    "tee/SPEC.md §What each party learns",
                ),
                Learns(
                    "result party",
                    "the component's output",
                    "tee/SPEC.md §What each party learns",
                ),
            ),
            params=_tee_params,
            components=("tee",),
            simulated=True,
        ),
        Technology(
            name="pooled-plaintext",
            title="Pooled plaintext (baseline: no protection)",
            roles=("data", "analyst"),
            min_parties=2,
            max_parties=None,
            data_types=("numeric", "categorical", "identifiers"),
            tasks=("train", "score", "statistics"),
            interop=("any tool",),
            threat_model=ThreatModel.NONE,
            threat_model_words=(
                "No protection: every record is copied to one place, and whoever holds the "
                "pool sees everything. The baseline a comparison measures the others against."
            ),
            learns=(Learns("analyst", "every record of every party", "(no SPEC: baseline)"),),
            params=_none,
        ),
    )
}


def technology(name: str) -> Technology:
    """The declared facts of ``name`` (one of :data:`TECHNOLOGIES`)."""
    from privfin.errors import ConfigError

    try:
        return TECHNOLOGIES[name]
    except KeyError:
        raise ConfigError(
            f"unknown technology {name!r}; use one of {', '.join(TECHNOLOGIES)}"
        ) from None
