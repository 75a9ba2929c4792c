"""What every pipeline component takes and gives: typed inputs, outputs and parameters.

A declaration is the contract the scheduler, ``privfin job validate``, the approvals inbox and
``docs/jobs.md`` all read: the roles a component knows, each input and output with its kind
(``table``, ``model``, ``scores``, ``metrics``) and the roles that take or get it, its
parameter class (a dataclass with ``from_mapping``, the same class the protocol uses, so the
docs and the validation cannot drift from the code), whether it keeps every input field
private (needed for JR/T 0171 C2 fields), and whether a restarted party can resume it in place
from its checkpoints (else the step restarts at all its parties under a new attempt).

Step functions live in :mod:`privfin.jobs.steps` and are imported only when a step runs.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from privfin.errors import ConfigError

__all__ = ["DECLARATIONS", "ComponentDecl", "ParamDoc", "Port", "declaration"]

#: Kinds of step inputs and outputs and the file each is stored as.
KINDS = {"table": "parquet", "scores": "csv", "model": "json", "metrics": "json"}


@dataclass(frozen=True)
class Port:
    """An input or output of a component."""

    name: str
    kind: str
    roles: tuple[str, ...]
    doc: str
    required: bool = True


@dataclass(frozen=True)
class ParamDoc:
    name: str
    type: str
    default: str
    doc: str = ""


def _one(role: str) -> Callable[[Mapping[str, list[str]]], str | None]:
    def check(roles: Mapping[str, list[str]]) -> str | None:
        n = sum(role in rs for rs in roles.values())
        return None if n == 1 else f"needs exactly one {role!r} party, has {n}"

    return check


def _guest_hosts(extra: tuple[str, ...] = ()) -> Callable[[Mapping[str, list[str]]], str | None]:
    def check(roles: Mapping[str, list[str]]) -> str | None:
        guests = sum("guest" in rs for rs in roles.values())
        hosts = sum("host" in rs for rs in roles.values())
        if guests != 1:
            return f"needs exactly one 'guest' party, has {guests}"
        if hosts < 1:
            return "needs at least one 'host' party"
        for party, rs in roles.items():
            if len(rs) != 1:
                return f"party {party!r} must hold exactly one role, holds {rs}"
        return None

    return check


def _psi_roles(roles: Mapping[str, list[str]]) -> str | None:
    flat = [r for rs in roles.values() for r in rs]
    if len(roles) == 2 and sorted(flat) in (["receiver", "sender"], ["client", "server"]):
        return None
    if len(roles) >= 3 and flat.count("leader") == 1 and flat.count("member") == len(roles) - 1:
        return None
    return (
        "two parties need roles receiver/sender (ECDH) or client/server (unbalanced); "
        "three or more need one leader and members"
    )


def _tee_roles(roles: Mapping[str, list[str]]) -> str | None:
    hosts = [p for p, rs in roles.items() if "enclave_host" in rs]
    results = [p for p, rs in roles.items() if "result" in rs]
    if len(hosts) != 1 or len(results) != 1:
        return "needs exactly one 'enclave_host' and one 'result' party"
    if not any("data" in rs for rs in roles.values()):
        return "needs at least one 'data' party"
    if len(roles[hosts[0]]) != 1:
        return "the 'enclave_host' party must hold no other role"
    return None


def _mpc_roles(roles: Mapping[str, list[str]]) -> str | None:
    known = {"data", "compute", "result", "dealer"}
    for party, rs in roles.items():
        odd = set(rs) - known
        if odd:
            return f"party {party!r} has unknown MPC roles {sorted(odd)} (known: {sorted(known)})"
    compute = sum("compute" in rs for rs in roles.values())
    if not 2 <= compute <= 3:
        return f"needs 2 or 3 'compute' parties, has {compute}"
    if not any("data" in rs for rs in roles.values()):
        return "needs at least one 'data' party"
    if not any("result" in rs for rs in roles.values()):
        return "needs at least one 'result' party"
    return None


def _dp_roles(roles: Mapping[str, list[str]]) -> str | None:
    data = sum("data" in rs for rs in roles.values())
    result = sum("result" in rs for rs in roles.values())
    if data != 1 or result != 1:
        return f"needs exactly one 'data' and one 'result' party, has {data} and {result}"
    return None


def _scorers(roles: Mapping[str, list[str]]) -> str | None:
    if not roles or any(rs != ["client"] for rs in roles.values()):
        return "every party must hold the one role 'client' (each scores its own table)"
    return None


def _server_clients(roles: Mapping[str, list[str]]) -> str | None:
    servers = sum("server" in rs for rs in roles.values())
    clients = sum("client" in rs for rs in roles.values())
    if servers != 1 or clients < 2:
        return (
            f"needs exactly one 'server' and at least two 'client' parties, has {servers} and "
            f"{clients}"
        )
    for party, rs in roles.items():
        if len(rs) != 1:
            return f"party {party!r} must hold exactly one role, holds {rs}"
    return None


@dataclass(frozen=True)
class ComponentDecl:
    """The declaration of one pipeline component."""

    name: str
    target: str
    technology: str
    summary: str
    roles: tuple[str, ...]
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    params: str | None
    table_params: tuple[ParamDoc, ...] = ()
    keeps_private: bool = True
    resumable: bool = False
    check_roles: Callable[[Mapping[str, list[str]]], str | None] | None = None
    reveals: str = ""
    local_params: tuple[str, ...] = ("id_column", "label")
    extra: Mapping[str, Any] = field(default_factory=dict)

    def input(self, name: str) -> Port | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output(self, name: str) -> Port | None:
        return next((p for p in self.outputs if p.name == name), None)

    def function(self) -> Callable[..., Any]:
        module, _, attr = self.target.partition(":")
        fn: Callable[..., Any] = getattr(importlib.import_module(module), attr)
        return fn

    def param_class(self) -> Any:
        if self.params is None:
            return None
        module, _, attr = self.params.partition(":")
        return getattr(importlib.import_module(module), attr)

    def check_params(self, params: Mapping[str, Any]) -> None:
        """Raise ConfigError if ``params`` are not valid for this component."""
        own = {p.name for p in self.table_params}
        cls = self.param_class()
        rest = {k: v for k, v in params.items() if k not in own}
        for p in self.table_params:
            value = params.get(p.name)
            if value is None:
                continue
            ok = (
                isinstance(value, str)
                if p.type == "str"
                else (isinstance(value, (int, float)) and not isinstance(value, bool))
            )
            if not ok:
                raise ConfigError(f"parameter {p.name!r} must be a {p.type}")
        if cls is None:
            if rest:
                raise ConfigError(f"unknown parameters {sorted(rest)} (takes none)")
            return
        try:
            cls.from_mapping(rest)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None

    def param_docs(self) -> list[ParamDoc]:
        """Every parameter with its type, default and the text of its class's docstring."""
        out = list(self.table_params)
        cls = self.param_class()
        docs = _attribute_docs(cls.__doc__ or "") if cls is not None else {}
        if cls is not None and dataclasses.is_dataclass(cls):
            for f in dataclasses.fields(cls):
                if f.name.startswith("_"):
                    continue
                if f.default is not dataclasses.MISSING:
                    default = repr(f.default)
                elif f.default_factory is not dataclasses.MISSING:
                    default = repr(f.default_factory())
                else:
                    default = "(required)"
                type_name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
                out.append(ParamDoc(f.name, str(type_name), default, docs.get(f.name, "")))
        return out


def _attribute_docs(doc: str) -> dict[str, str]:
    """``name -> text`` from a numpydoc "Attributes" or "Parameters" section (``a, b:``
    lines name several attributes sharing one text; the first sentence is kept)."""
    lines = doc.splitlines()
    try:
        start = (
            next(i for i, ln in enumerate(lines) if ln.strip() in ("Attributes", "Parameters")) + 2
        )
    except StopIteration:
        return {}
    out: dict[str, str] = {}
    names: list[str] = []
    text: list[str] = []

    def flush() -> None:
        sentence = " ".join(text).split(". ")[0].strip().rstrip(".")
        for n in names:
            out[n] = sentence

    for ln in lines[start:]:
        stripped = ln.strip()
        if not stripped:
            continue
        indent = len(ln) - len(ln.lstrip())
        if stripped.endswith(":") and indent <= 4 and not stripped.startswith(("``", "(")):
            flush()
            names = [n.strip() for n in stripped[:-1].split(",")]
            text = []
        elif indent <= 4 and not names:
            break
        else:
            text.append(stripped)
    flush()
    return out


_ID = ParamDoc("id_column", "str", "'id'", "the id column of the party's table (local)")
_LABEL = ParamDoc("label", "str", "'y'", "the label column of the guest's table (local)")
_TABLE_IN = Port("table", "table", ("guest", "host"), "the party's aligned rows (id, features)")
_CLIENT_LABEL = ParamDoc(
    "label", "str", "'y'", "the label column of every client's table and of the validation table"
)

DECLARATIONS: dict[str, ComponentDecl] = {
    d.name: d
    for d in (
        ComponentDecl(
            name="psi",
            target="privfin.jobs.steps:psi_step",
            technology="private set intersection",
            summary="Align rows: the intersection of the parties' ids (ECDH-PSI or "
            "unbalanced OPRF-PSI); each party gets its own rows of the intersection in the "
            "agreed order.",
            roles=("receiver", "sender", "leader", "member", "client", "server"),
            inputs=(
                Port(
                    "table",
                    "table",
                    ("receiver", "sender", "leader", "member", "client", "server"),
                    "the party's rows with the id column",
                ),
            ),
            outputs=(
                Port(
                    "aligned",
                    "table",
                    ("receiver", "leader", "client", "sender", "member"),
                    "the party's intersecting rows, same order at every party (parties "
                    "that learn only the size get none)",
                    required=False,
                ),
                Port(
                    "summary",
                    "metrics",
                    ("receiver", "sender", "leader", "member", "client", "server"),
                    "intersection size where the party learns it",
                    required=False,
                ),
            ),
            params="privfin.psi.component:PsiParams",
            resumable=True,
            check_roles=_psi_roles,
            reveals="the intersection (or only its size) to the parties SPEC.md names; set sizes; "
            "with dp_epsilon only a DP release of the size per segment (charged to the "
            "sender's dataset budget)",
            local_params=("id_column", "missing"),
            extra={"dp_budget": True, "dp_data_role": "sender", "dp_result_role": "receiver"},
        ),
        ComponentDecl(
            name="hetero_binning",
            target="privfin.jobs.steps:binning_step",
            technology="vertical federated learning",
            summary="WOE/IV binning of every party's features against the guest's labels.",
            roles=("guest", "host"),
            inputs=(_TABLE_IN,),
            outputs=(
                Port(
                    "report",
                    "metrics",
                    ("guest", "host"),
                    "guest: IV and WOE per feature of every party; host: its own edges",
                ),
            ),
            params="privfin.fl.vertical.binning.common:BinParams",
            table_params=(_ID, _LABEL),
            check_roles=_guest_hosts(),
            reveals="per-bin event counts of host features to the guest",
        ),
        ComponentDecl(
            name="secureboost",
            target="privfin.jobs.steps:secureboost_step",
            technology="vertical federated learning",
            summary="Train hetero SecureBoost (gradient-boosted trees; the guest holds the "
            "labels and the Paillier key).",
            roles=("guest", "host"),
            inputs=(_TABLE_IN,),
            outputs=(
                Port("model", "model", ("guest", "host"), "the party's slice of the model"),
                Port("train_scores", "scores", ("guest",), "scores of the training rows"),
                Port("importance", "metrics", ("guest", "host"), "split counts per feature"),
            ),
            params="privfin.fl.vertical.secureboost.params:BoostParams",
            table_params=(_ID, _LABEL),
            check_roles=_guest_hosts(),
            reveals="see fl/vertical/secureboost/SPEC.md (split instance spaces to hosts)",
        ),
        ComponentDecl(
            name="secureboost_score",
            target="privfin.jobs.steps:secureboost_score_step",
            technology="vertical federated learning",
            summary="Score aligned rows with a trained SecureBoost model; the guest gets the "
            "scores.",
            roles=("guest", "host"),
            inputs=(
                Port("model", "model", ("guest", "host"), "the party's slice of the model"),
                _TABLE_IN,
            ),
            outputs=(Port("scores", "scores", ("guest",), "id and score per row"),),
            params=None,
            table_params=(_ID, _LABEL),
            check_roles=_guest_hosts(),
            reveals="each row's path through the host's splits to the guest",
        ),
        ComponentDecl(
            name="hetero_lr",
            target="privfin.jobs.steps:hetero_lr_step",
            technology="vertical federated learning",
            summary="Train hetero logistic regression over Paillier (mode guest, or with an "
            "arbiter).",
            roles=("guest", "host", "arbiter"),
            inputs=(Port("table", "table", ("guest", "host"), "the party's aligned rows"),),
            outputs=(Port("model", "model", ("guest", "host"), "the party's coefficients"),),
            params="privfin.fl.vertical.hetero_lr.common:LRParams",
            table_params=(_ID, _LABEL),
            check_roles=_guest_hosts(("arbiter",)),
            reveals="see fl/vertical/hetero_lr/SPEC.md",
        ),
        ComponentDecl(
            name="lr_score",
            target="privfin.jobs.steps:lr_score_step",
            technology="vertical federated learning",
            summary="Score aligned rows with a trained hetero LR model; only the guest learns "
            "the scores.",
            roles=("guest", "host"),
            inputs=(
                Port("model", "model", ("guest", "host"), "the party's coefficients"),
                _TABLE_IN,
            ),
            outputs=(Port("scores", "scores", ("guest",), "id and score per row"),),
            params=None,
            table_params=(_ID, _LABEL),
            check_roles=_guest_hosts(),
            reveals="the sum of the hosts' partial predictors to the guest",
        ),
        ComponentDecl(
            name="tee",
            target="privfin.jobs.steps:tee_step",
            technology="confidential computing (TEE)",
            summary="Train a plaintext scikit-learn model (LR or GBDT) on the data parties' "
            "joined tables inside an attested enclave; each data party releases its data key "
            "only to the enclave measurement it computes for the approved component; model "
            "and metrics come out sealed to the result party. Backend 'simulated' only (NO "
            "hardware protection; refused unless insecure modes are enabled).",
            roles=("data", "result", "enclave_host"),
            inputs=(
                Port(
                    "table",
                    "table",
                    ("data",),
                    "the party's rows: the id column, features, and the label at one party",
                ),
            ),
            outputs=(
                Port("model", "model", ("result",), "the trained model as numbers"),
                Port(
                    "metrics",
                    "metrics",
                    ("result",),
                    "AUC, KS, accuracy on held-out rows; enclave measurement; simulated flag",
                ),
                Port(
                    "release",
                    "metrics",
                    ("data",),
                    "the audit record of this party's key release (measurement, platform)",
                ),
                Port(
                    "enclave",
                    "metrics",
                    ("enclave_host",),
                    "the enclave's measurement and backend",
                ),
            ),
            params="privfin.tee.component:TeeParams",
            check_roles=_tee_roles,
            reveals="every data party's rows in plaintext to the enclave code of the "
            "measurement of params.component (params.measurement if set); with backend "
            "'simulated' the enclave is SIMULATED: the enclave host can read all of them",
            local_params=(),
        ),
        ComponentDecl(
            name="hfl",
            target="privfin.jobs.steps:hfl_step",
            technology="horizontal federated learning",
            summary="Train logistic regression or an MLP by FedAvg / FedProx / FedAdam across "
            "banks holding the same columns about different customers; updates are summed by "
            "secure aggregation (or CKKS), optionally with client-level DP.",
            roles=("server", "client"),
            inputs=(
                Port("table", "table", ("client",), "the client's rows: features and label"),
                Port(
                    "validation",
                    "table",
                    ("server",),
                    "the server's own labelled rows for per-round AUC and early stopping",
                    required=False,
                ),
            ),
            outputs=(
                Port("model", "model", ("server", "client"), "the global model's weights"),
                Port(
                    "history",
                    "metrics",
                    ("server",),
                    "per round: sampled clients, survivors, dropouts, loss, AUC, epsilon",
                ),
            ),
            params="privfin.fl.horizontal.fedavg.common:HFLStepParams",
            table_params=(_ID, _CLIENT_LABEL),
            check_roles=_server_clients,
            reveals="to the server: each round's sum of the surviving clients' weighted "
            "updates and row counts (not one client's), who dropped; to the clients: the "
            "model; every client's feature column names to the server",
        ),
        ComponentDecl(
            name="hfl_gbdt",
            target="privfin.jobs.steps:hfl_gbdt_step",
            technology="horizontal federated learning",
            summary="Train gradient-boosted trees (horizontal SecureBoost) across banks holding "
            "the same columns about different customers: bin edges from a securely aggregated "
            "sketch, splits from securely aggregated gradient histograms.",
            roles=("server", "client"),
            inputs=(
                Port("table", "table", ("client",), "the client's rows: features and label"),
                Port(
                    "validation",
                    "table",
                    ("server",),
                    "the server's own labelled rows for a per-tree AUC",
                    required=False,
                ),
            ),
            outputs=(
                Port(
                    "model",
                    "model",
                    ("server", "client"),
                    "bin edges and trees (the same at every party that finished)",
                ),
                Port("history", "metrics", ("server",), "per tree: clients, leaves, AUC"),
            ),
            params="privfin.fl.horizontal.gbdt.common:GBDTStepParams",
            table_params=(_ID, _CLIENT_LABEL),
            check_roles=_server_clients,
            reveals="to the server: pooled per-feature value counts at the sketch's "
            "resolution, pooled row and positive counts, the pooled gradient histograms of "
            "the nodes it grows (what a GBDT on the pooled rows computes), who dropped; to "
            "the clients: the model; every client's feature column names to the server",
        ),
        ComponentDecl(
            name="hfl_score",
            target="privfin.jobs.steps:hfl_score_step",
            technology="(local)",
            summary="Score a party's rows with a model of the hfl or hfl_gbdt step (every party "
            "of those steps holds the whole model); each party scores its own table.",
            roles=("client",),
            inputs=(
                Port("model", "model", ("client",), "a model of the hfl or hfl_gbdt step"),
                Port("table", "table", ("client",), "rows with the id and the model's features"),
            ),
            outputs=(Port("scores", "scores", ("client",), "id and score per row"),),
            params=None,
            table_params=(
                _ID,
                ParamDoc("label", "str", "'y'", "a label column to leave out, if there is one"),
            ),
            check_roles=_scorers,
            reveals="nothing (local to each party)",
        ),
        ComponentDecl(
            name="ss_lr",
            target="privfin.jobs.steps:ss_lr_step",
            technology="secure multi-party computation",
            summary="Train logistic regression on secret-shared data (vertical or "
            "horizontal partition) between 2 or 3 computing parties; result parties get "
            "the coefficients.",
            roles=("data", "compute", "result", "dealer"),
            inputs=(
                Port(
                    "table",
                    "table",
                    ("data",),
                    "the party's rows, aligned with the others' (vertical) or its own (horizontal)",
                ),
            ),
            outputs=(Port("model", "model", ("result",), "coefficients and intercept"),),
            params="privfin.mpc.params:SSLRParams",
            check_roles=_mpc_roles,
            reveals="the coefficients to the result parties (none with reveal_model false); "
            "the number of rows and columns to every party; with reuse_ots true and no "
            "feature_bound, each computing party's bit count of its largest feature value; "
            "see mpc/SPEC.md",
            local_params=(),
        ),
        ComponentDecl(
            name="mpc_stats",
            target="privfin.jobs.steps:mpc_stats_step",
            technology="secure multi-party computation",
            summary="Secure statistics (count, sum, mean, variance, min, max, quantiles, "
            "histograms, correlations, per-row sums across parties) over columns of several "
            "data parties.",
            roles=("data", "compute", "result", "dealer"),
            inputs=(Port("table", "table", ("data",), "the party's rows"),),
            outputs=(Port("stats", "metrics", ("result",), "the requested statistics"),),
            params="privfin.mpc.params:MpcStatsParams",
            check_roles=_mpc_roles,
            reveals="exactly the requested statistics to the result parties (with row_sums: "
            "one total per row); the number of rows and columns to every party",
            local_params=(),
        ),
        ComponentDecl(
            name="evaluate",
            target="privfin.jobs.steps:evaluate_step",
            technology="(local)",
            summary="Binary-classification metrics (AUC, KS, lift, confusion) of scores "
            "against the labels, with ROC/KS/gain curve data; runs at one party only.",
            roles=("guest",),
            inputs=(
                Port("scores", "scores", ("guest",), "id and score per row"),
                Port("table", "table", ("guest",), "rows with the id and label columns"),
            ),
            outputs=(Port("metrics", "metrics", ("guest",), "figures and curve data"),),
            params=None,
            table_params=(
                _ID,
                _LABEL,
                ParamDoc("threshold", "float", "0.5", "threshold of the confusion matrix"),
            ),
            check_roles=_one("guest"),
            reveals="nothing (local to one party)",
        ),
        ComponentDecl(
            name="dp_release",
            target="privfin.jobs.steps:dp_release_step",
            technology="differential privacy",
            summary="A differentially private count, sum, mean, histogram, quantiles or "
            "contingency table of the data party's table, sent to the result party with its "
            "error bars; its epsilon is reserved in the data party's budget ledger before the "
            "dataset is read.",
            roles=("data", "result"),
            inputs=(Port("table", "table", ("data",), "a registered dataset (datasets.<alias>)"),),
            outputs=(Port("release", "metrics", ("data", "result"), "noisy values and intervals"),),
            params="privfin.dp.release:ReleaseParams",
            check_roles=_dp_roles,
            reveals="DP-noised aggregates (their epsilon charged to the dataset's budget) to "
            "the result party",
            local_params=("id_column",),
            extra={"dp_budget": True},
        ),
    )
}


def declaration(name: str) -> ComponentDecl:
    decl = DECLARATIONS.get(name)
    if decl is None:
        raise ConfigError(
            f"unknown pipeline component {name!r}; known: {', '.join(sorted(DECLARATIONS))}"
        )
    return decl
