"""Parameters, fixed-point encoding, party-local model state and the plaintext reference.

Everything here is party-local plaintext. The protocol modules (``guest``, ``host``,
``arbiter``) compute exactly what :func:`plaintext_reference` computes, but over Paillier; the
tests compare the two with an explicit tolerance (fixed-point rounding only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.data.validate import column_of
from privfin.errors import ConfigError, ProtocolAbort
from privfin.fl.vertical.hetero_lr.messages import MAX_FEATURES
from privfin.ml.optim import OPTIMIZERS, SCHEDULES, Optimizer, learning_rate

__all__ = [
    "ARBITER",
    "FOURIER_BITS",
    "FOURIER_CLIP",
    "FOURIER_COEF",
    "FOURIER_OMEGA",
    "GUEST",
    "HOST",
    "SIGMOIDS",
    "LRParams",
    "PartyModel",
    "agreed_entries",
    "batch_plan",
    "check_own_count",
    "encode_fixed",
    "features_of",
    "fourier_features",
    "fourier_weights",
    "min_batch_rows",
    "plaintext_reference",
    "sample_weights",
]

GUEST, HOST, ARBITER = "guest", "host", "arbiter"
#: Public bound on every encoded real value: ``|u / 4| < 2**VALUE_BITS`` and ``|v| < 2**...``.
VALUE_BITS = 20
#: Fractional bits of the quantised class weights (``s = s_int / 2**WEIGHT_FRAC_BITS``).
WEIGHT_FRAC_BITS = 8
#: Class weights must be below ``2**WEIGHT_BITS``.
WEIGHT_BITS = 8
#: Residual approximations (``LRParams.sigmoid``).
SIGMOIDS = ("auto", "taylor", "fourier")
#: ``σ(t) − 1/2 ≈ Σ_k c_k sin(ω_k t)``, ``ω_k = kπ/12``: least squares on ``[−8, 8]`` (max error
#: 0.016 there); with ``sin(a + b) = sin a cos b + cos a sin b`` it separates into functions
#: of the guest's ``z_g`` times functions of the host's ``u`` (public constants).
FOURIER_OMEGA = tuple(k * math.pi / 12 for k in range(1, 5))
FOURIER_COEF = (0.557495, 0.024354, 0.059764, 0.025441)
#: Each party clips its own part (``z_g``, ``u``) to ``±FOURIER_CLIP`` first, so ``|z| ≤ 8``.
FOURIER_CLIP = 4.0
#: Fractional bits of the guest's Fourier weights ``c_k sin(ω_k z_g)``, ``c_k cos(ω_k z_g)``.
FOURIER_BITS = 16

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LRParams:
    """Hyper-parameters of hetero LR; every party receives the same values (they are public).

    Parameters
    ----------
    mode:
        ``"arbiter"`` (a third party holds the Paillier key, as FATE's coordinated LR) or
        ``"guest"`` (no third party: the guest holds one key, each host its own).
    max_iter:
        Epochs.
    batch_size:
        Rows per minibatch; ``0`` means the full data set.
    learning_rate, optimizer, lr_schedule, lr_decay, lr_step:
        See :mod:`privfin.ml.optim`. Defaults: Adam, ``0.1 / (1 + 0.5 * epoch)``. A constant
        rate never settles on a large data set (FATE's RMSprop 0.15 ended 0.17 test AUC below
        scikit-learn on default_credit); the decaying one converges within the 20 epochs
        (``benchmarks/hetero_lr_accuracy.py``, docs/benchmarks.md).
    penalty, alpha:
        ``"l2"`` (``alpha * w`` added to the gradient), ``"l1"`` (proximal soft-thresholding
        after each step) or ``"none"``; the intercept is never penalised. Default ``alpha``
        0.001: 0.01 cost 0.004 test AUC on the credit data even with the exact sigmoid.
    sigmoid:
        The residual ``σ(z) − y`` under encryption. ``"taylor"``: ``0.25 z + 0.5 − y`` (FATE,
        Hardy et al.; its optimum is a least-squares fit, 0.005-0.015 test AUC below logistic
        regression on credit data); ``"fourier"``: ``σ(z) − 1/2`` as a 4-term sine series,
        each term split by the angle-addition formula into ``2·4`` functions of the host's
        clipped ``u`` (sent encrypted, 8 ciphertexts per row instead of 1) weighted by
        functions of the guest's clipped ``z_g`` (mode ``"arbiter"`` with ONE host only: the
        products between hosts' terms need a multiplication under encryption); ``"auto"``
        (default): ``"fourier"`` where it applies, else ``"taylor"``. See SPEC.md.
    early_stopping, tol:
        Stop after an epoch whose global weight change ``||w_t - w_{t-1}||`` is below ``tol``.
    class_weight:
        ``None``, ``"balanced"`` or ``{0: w0, 1: w1}`` (quantised to 1/256; below 256).
    scheme, key_bits, insecure_allow_small_keys:
        ``"paillier"`` (default) or ``"ou"`` (Okamoto-Uchiyama: half-size ciphertexts, about
        2.5x faster, IND-CPA under the p-subgroup assumption); modulus size (2048 minimum
        unless the insecure flag is set, for tests).
    grad_bits:
        Signed width of the quantised feature matrix used in the encrypted gradient.
    frac_bits, stat_bits:
        Fixed-point fractional bits of encrypted values; statistical security of masks.
    n_jobs:
        Threads per party for the encrypted matrix products.
    feature_counts:
        Party name -> number of feature columns of that party (without the intercept): PUBLIC,
        AGREED information, identical at every party (the job spec; with a data registry, the
        approved schemas). Each party checks its own data against its entry, and every key
        holder decrypts for a party exactly the packed size of its agreed count (a different
        announced count aborts naming the sender). Required by the job component; the
        in-process estimator fills it in from the data it holds. Each party's gradient entries
        (features, plus the guest's intercept) must stay below every batch's row count.
    """

    mode: str = "arbiter"
    max_iter: int = 20
    batch_size: int = 240
    learning_rate: float = 0.1
    optimizer: str = "adam"
    lr_schedule: str = "inverse"
    lr_decay: float = 0.5
    lr_step: int = 1
    penalty: str = "l2"
    alpha: float = 0.001
    early_stopping: bool = False
    tol: float = 1e-4
    fit_intercept: bool = True
    sigmoid: str = "auto"
    class_weight: str | dict[int, float] | None = None
    shuffle: bool = False
    scheme: str = "paillier"
    key_bits: int = 2048
    insecure_allow_small_keys: bool = False
    grad_bits: int = 10
    frac_bits: int = 24
    stat_bits: int = 48
    n_jobs: int = 1
    feature_counts: dict[str, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("arbiter", "guest"):
            raise ConfigError(f"mode must be 'arbiter' or 'guest', got {self.mode!r}")
        if self.max_iter < 1 or self.batch_size < 0:
            raise ConfigError("max_iter must be >= 1 and batch_size >= 0 (0 = full batch)")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.lr_schedule not in SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {SCHEDULES}")
        if self.scheme not in ("paillier", "ou"):
            raise ConfigError("scheme must be 'paillier' or 'ou'")
        if self.sigmoid not in SIGMOIDS:
            raise ConfigError(f"sigmoid must be one of {SIGMOIDS}, got {self.sigmoid!r}")
        if self.sigmoid == "fourier" and self.mode != "arbiter":
            raise ConfigError(
                "sigmoid='fourier' needs mode='arbiter' (and one host); use 'taylor' or 'auto'"
            )
        if self.penalty not in ("l1", "l2", "none"):
            raise ConfigError("penalty must be 'l1', 'l2' or 'none'")
        if not (self.learning_rate > 0 and self.alpha >= 0 and self.tol >= 0):
            raise ConfigError("learning_rate must be > 0; alpha and tol >= 0")
        if not 4 <= self.grad_bits <= 24:
            raise ConfigError("grad_bits must be in [4, 24]")
        if not 8 <= self.frac_bits <= 48 or not 32 <= self.stat_bits <= 128:
            raise ConfigError("frac_bits must be in [8, 48] and stat_bits in [32, 128]")
        if self.n_jobs < 1:
            raise ConfigError("n_jobs must be >= 1")
        fc = self.feature_counts
        if fc is not None and (
            not isinstance(fc, Mapping)
            or not fc
            or not all(
                isinstance(k, str)
                and isinstance(v, int)
                and not isinstance(v, bool)
                and 0 < v <= MAX_FEATURES
                for k, v in fc.items()
            )
        ):
            raise ConfigError(
                f"feature_counts must map each party name to its number of feature columns "
                f"(an integer in [1, {MAX_FEATURES}])"
            )
        cw = self.class_weight
        if cw is not None and cw != "balanced":
            if not isinstance(cw, Mapping) or set(cw) != {0, 1}:
                raise ConfigError("class_weight must be None, 'balanced' or {0: w0, 1: w1}")
            if not all(0 < float(v) < 2**WEIGHT_BITS for v in cw.values()):
                raise ConfigError(f"class weights must lie in (0, {2**WEIGHT_BITS})")

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> LRParams:
        """Validate job parameters (unknown keys are refused, with the list of known ones)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        unknown = set(params) - known - {"id_column", "label"}
        if unknown:
            raise ConfigError(
                f"unknown hetero_lr parameters {sorted(unknown)}; known: {sorted(known)}"
            )
        values = {k: v for k, v in params.items() if k in known}
        fc = values.get("feature_counts")
        if isinstance(fc, Mapping):
            values["feature_counts"] = {str(k): v for k, v in fc.items()}
        cw = values.get("class_weight")
        if isinstance(cw, Mapping):
            try:
                values["class_weight"] = {int(k): float(v) for k, v in cw.items()}
            except (TypeError, ValueError):
                raise ConfigError("class_weight keys must be 0 and 1") from None
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"invalid hetero_lr parameters: {exc}") from None

    @property
    def weighted(self) -> bool:
        return self.class_weight is not None

    def residual(self, n_hosts: int) -> str:
        """The approximation used with ``n_hosts`` hosts (public): ``"taylor"`` or
        ``"fourier"``; :class:`ConfigError` if ``sigmoid="fourier"`` cannot apply."""
        if self.sigmoid == "taylor" or (self.sigmoid == "auto" and self.mode != "arbiter"):
            return "taylor"
        if n_hosts == 1:
            return "fourier"
        if self.sigmoid == "fourier":
            raise ConfigError(
                f"sigmoid='fourier' needs exactly one host, got {n_hosts}: use 'taylor' or 'auto'"
            )
        return "taylor"

    def residual_frac_bits(self, n_hosts: int, *, guest: bool) -> int:
        """Fractional bits of the residual a party multiplies by its quantised features.

        Taylor: the guest's ``v + Σ u/4`` (class weights folded into its matrix), the hosts'
        ``s ⊙ (...)``. Fourier: ``s ⊙ d`` for both (the guest's matrix is unweighted)."""
        weight = WEIGHT_FRAC_BITS if self.weighted else 0
        if self.residual(n_hosts) == "fourier":
            return self.frac_bits + FOURIER_BITS + weight
        return self.frac_bits + (0 if guest else weight)

    def bound_bits(self, n_hosts: int, batch: int, *, guest: bool) -> int:
        """Public bound (bits) on the encrypted gradient integers of one party."""
        fourier = self.residual(n_hosts) == "fourier"
        if fourier:
            # |d| <= 1/2 + sum |c_k| < 2 (the fixed-point rounding included).
            value = 1 + self.frac_bits + FOURIER_BITS
        else:
            value = VALUE_BITS + self.frac_bits + math.ceil(math.log2(n_hosts + 2))
        if self.weighted and (fourier or not guest):
            value += WEIGHT_BITS + WEIGHT_FRAC_BITS
        return value + self.grad_bits - 1 + math.ceil(math.log2(batch + 1)) + 1


def agreed_entries(params: LRParams, guest: str, hosts: list[str], n_rows: int) -> dict[str, int]:
    """Each data party's number of gradient entries (features, plus the guest's intercept)
    from the AGREED ``feature_counts`` — never from what a peer announces.

    Raises :class:`ConfigError` if ``feature_counts`` is missing or does not name exactly the
    guest and the hosts, or if a party's entries reach the row count of a batch: a party with
    ``d_p >= m`` gradient entries on a batch of ``m`` rows gets at least ``m`` linear
    functions of the batch's residuals from its own gradient and, with features in general
    position, solves for every residual of that batch. A short last batch is merged into the
    previous one (:func:`batch_plan` with ``min_rows``), so this refuses only a
    ``batch_size`` (or ``n``) not above the largest count. Every party runs the same check on
    the same public values.
    """
    counts = params.feature_counts
    if counts is None:
        raise ConfigError(
            "hetero_lr needs the parameter 'feature_counts' ({party: number of feature "
            "columns}, agreed by all parties; the job spec or the approved schemas): key "
            "holders decrypt exactly that many entries per party"
        )
    parties = {guest, *hosts}
    if set(counts) != parties:
        raise ConfigError(
            f"feature_counts must name exactly the guest and the hosts {sorted(parties)}, "
            f"got {sorted(counts)}"
        )
    entries = {
        party: counts[party] + (1 if party == guest and params.fit_intercept else 0)
        for party in sorted(parties)
    }
    floor = min_batch_rows(entries)
    plan = batch_plan(0, n_rows, params.batch_size, 0, False, floor)
    smallest = min(rows.size for rows in plan)
    for party, count in entries.items():
        if count >= smallest:
            raise ConfigError(
                f"party {party!r} has {count} gradient entries but a batch of only {smallest} "
                f"rows ({n_rows} rows, batch_size={params.batch_size}): its gradient would "
                "determine that batch's residuals; choose batch_size (and a data set) so that "
                "every batch has more rows than any party's features (+1 for the guest)"
            )
    return entries


def check_own_count(params: LRParams, party: str, x: FloatArray) -> None:
    """This party's data must have the number of feature columns agreed for it."""
    counts = params.feature_counts
    if counts is None or party not in counts:
        return  # agreed_entries reports the missing parameter with the full context
    if x.shape[1] != counts[party]:
        raise ConfigError(
            f"this party's data has {x.shape[1]} feature columns, feature_counts[{party!r}] "
            f"agreed {counts[party]}: fix the data or the job parameters"
        )


def features_of(inputs: Mapping[str, Any], params: Mapping[str, Any]) -> FloatArray:
    """The party's feature matrix: ``inputs["X"]`` or the aligned ``inputs["table"]`` without
    the id and label columns (PSI's aligned output)."""
    if "X" in inputs:
        x = inputs["X"]
    elif "table" in inputs and inputs["table"] is not None:
        table = inputs["table"]
        drop = [c for c in (params.get("id_column", "id"), params.get("label", "y")) if c in table]
        x = table.drop(columns=drop)
    else:
        raise ConfigError("hetero_lr needs an input 'X' (or an aligned 'table')")
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ConfigError(f"features must be a non-empty 2-D table, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError("features hold NaN or infinite values; impute them first")
    return arr


def labels_of(inputs: Mapping[str, Any], params: Mapping[str, Any], n: int) -> FloatArray:
    """The guest's 0/1 labels (``inputs["y"]`` or the label column of the aligned table)."""
    if "y" in inputs:
        y = np.asarray(inputs["y"], dtype=np.float64).reshape(-1)
    elif "table" in inputs:
        label = column_of(inputs["table"], str(params.get("label", "y")), what="label")
        y = np.asarray(label, dtype=np.float64)
    else:
        raise ConfigError("the guest needs labels: input 'y' or a 'table' with the label column")
    if y.shape != (n,) or not np.all((y == 0) | (y == 1)):
        raise ConfigError(f"labels must be {n} values in {{0, 1}}")
    return y


def sample_weights(y: FloatArray, params: LRParams) -> tuple[FloatArray, IntArray]:
    """Per-row class weights ``s`` (quantised) and their integers ``s * 2**8``."""
    cw = params.class_weight
    if cw is None:
        return np.ones_like(y), np.full(y.shape, 1 << WEIGHT_FRAC_BITS, dtype=np.int64)
    if cw == "balanced":
        pos = float(y.sum())
        neg = float(y.size - pos)
        if pos == 0 or neg == 0:
            raise ConfigError("class_weight='balanced' needs both classes")
        table = {0: y.size / (2 * neg), 1: y.size / (2 * pos)}
    else:
        assert isinstance(cw, Mapping)
        table = {int(k): float(v) for k, v in cw.items()}
    ints = np.where(y == 1, table[1], table[0]) * (1 << WEIGHT_FRAC_BITS)
    s_int = np.clip(np.rint(ints), 1, (1 << (WEIGHT_BITS + WEIGHT_FRAC_BITS)) - 1).astype(np.int64)
    return s_int / float(1 << WEIGHT_FRAC_BITS), s_int


def fourier_features(u: FloatArray) -> FloatArray:
    """The host's terms ``[cos(ω_k ũ)]_k ++ [sin(ω_k ũ)]_k`` (shape ``(2K, m)``), ``ũ`` its
    partial predictor clipped to ``±FOURIER_CLIP``."""
    t = np.outer(FOURIER_OMEGA, np.clip(u, -FOURIER_CLIP, FOURIER_CLIP))
    out: FloatArray = np.vstack([np.cos(t), np.sin(t)])
    return out


def fourier_weights(z_guest: FloatArray) -> FloatArray:
    """The guest's weights ``[c_k sin(ω_k a)]_k ++ [c_k cos(ω_k a)]_k`` (shape ``(2K, m)``),
    ``a`` its partial predictor (intercept included) clipped to ``±FOURIER_CLIP``: the sum
    over ``j`` of ``weights[j] * fourier_features(u)[j]`` is ``≈ σ(a + ũ) − 1/2``."""
    t = np.outer(FOURIER_OMEGA, np.clip(z_guest, -FOURIER_CLIP, FOURIER_CLIP))
    c = np.asarray(FOURIER_COEF)[:, None]
    out: FloatArray = np.vstack([c * np.sin(t), c * np.cos(t)])
    return out


def encode_fixed(values: FloatArray, frac_bits: int) -> list[int]:
    """``round(x * 2**frac_bits)`` as Python ints; refuses ``|x| >= 2**VALUE_BITS``."""
    if values.size and not float(np.max(np.abs(values))) < 2.0**VALUE_BITS:
        raise ProtocolAbort(
            f"a linear predictor exceeds 2**{VALUE_BITS}: the model diverged; lower the "
            "learning rate or scale the features"
        )
    return [int(v) for v in np.rint(np.ldexp(values, frac_bits)).astype(np.int64).tolist()]


def batch_plan(
    seed: int, n: int, batch_size: int, epoch: int, shuffle: bool, min_rows: int = 1
) -> list[IntArray]:
    """The row indices of each minibatch of ``epoch`` (identical at every party).

    A last batch of fewer than ``min_rows`` rows (public: one more than the largest agreed
    number of gradient entries) is merged into the previous batch, so that no party's
    gradient determines a short batch's residuals (:func:`agreed_entries`)."""
    order = (
        np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    ).astype(np.int64)
    size = n if batch_size == 0 else batch_size
    batches = [order[i : i + size] for i in range(0, n, size)]
    if len(batches) > 1 and batches[-1].size < min_rows:
        batches[-2:] = [np.concatenate(batches[-2:])]
    return batches


def min_batch_rows(entries: Mapping[str, int]) -> int:
    """Fewest rows a batch may have: more than any party's gradient entries."""
    return max(entries.values()) + 1


class PartyModel:
    """One party's slice of the model: its features, weights, optimiser and quantised matrix.

    ``row_weights`` (guest only, class weights) are folded into the quantised matrix used for
    the guest's encrypted gradient. Quantisation: column ``j`` is divided by
    ``scale_j = max|x_j| / (2**(bits-1) - 1)`` and rounded; the scale never leaves the party.
    """

    def __init__(
        self,
        x: FloatArray,
        params: LRParams,
        *,
        intercept: bool,
        row_weights: FloatArray | None = None,
    ) -> None:
        self.params = params
        self.intercept = intercept
        self.x = np.hstack([x, np.ones((x.shape[0], 1))]) if intercept else x
        scaled = self.x if row_weights is None else self.x * row_weights[:, None]
        top = (1 << (params.grad_bits - 1)) - 1
        peak = np.max(np.abs(scaled), axis=0)
        self.scale = np.where(peak > 0, peak / top, 1.0)
        self.q: IntArray = np.rint(scaled / self.scale).astype(np.int64)
        self.w = np.zeros(self.x.shape[1])
        self.opt = Optimizer(params.optimizer, self.x.shape[1])
        self.penalised = np.ones(self.x.shape[1])
        if intercept:
            self.penalised[-1] = 0.0
        self.previous = self.w.copy()

    def forward(self, rows: IntArray) -> FloatArray:
        """``X[rows] @ w`` (the party's partial linear predictor)."""
        out: FloatArray = self.x[rows] @ self.w
        return out

    def gradient_from_ints(self, g_int: list[int], frac_bits: int, batch: int) -> FloatArray:
        """Real gradient from the decrypted integer products ``Q^T d``."""
        g = np.array([math.ldexp(float(v), -frac_bits) for v in g_int])
        out: FloatArray = g * self.scale / batch
        return out

    def step(self, grad: FloatArray, epoch: int) -> None:
        """One optimiser step with the penalty; L1 is applied as a proximal step."""
        p = self.params
        if p.penalty == "l2":
            grad = grad + p.alpha * self.w * self.penalised
        lr = learning_rate(p.lr_schedule, p.learning_rate, epoch, decay=p.lr_decay, step=p.lr_step)
        self.w = self.w - lr * self.opt.direction(grad)
        if p.penalty == "l1":
            shrunk = np.sign(self.w) * np.maximum(np.abs(self.w) - lr * p.alpha, 0.0)
            self.w = np.where(self.penalised > 0, shrunk, self.w)

    def epoch_norms(self) -> tuple[float, float]:
        """``(||w - w_prev||^2, ||w||^2)`` since the last call."""
        diff = float(np.sum((self.w - self.previous) ** 2))
        self.previous = self.w.copy()
        return diff, float(np.sum(self.w**2))

    @property
    def coef(self) -> FloatArray:
        return self.w[:-1] if self.intercept else self.w

    @property
    def bias(self) -> float:
        return float(self.w[-1]) if self.intercept else 0.0


def stop_now(diff_sq: float, params: LRParams) -> bool:
    """The early-stopping rule on the global squared weight change."""
    return params.early_stopping and math.sqrt(diff_sq) < params.tol


def _fixed(values: FloatArray, frac_bits: int) -> IntArray:
    """``round(x * 2**frac_bits)`` as int64 (values already bounded)."""
    out: IntArray = np.rint(np.ldexp(values, frac_bits)).astype(np.int64)
    return out


def plaintext_reference(
    x_guest: FloatArray,
    x_hosts: list[FloatArray],
    y: FloatArray,
    params: LRParams,
    seed: int,
) -> tuple[PartyModel, list[PartyModel], int]:
    """The computation the protocol performs, in floating point (same batches, same Taylor
    gradient, same quantised matrices). Returns the guest's and hosts' models and the number
    of epochs run."""
    s, _ = sample_weights(y, params)
    fourier = params.residual(len(x_hosts)) == "fourier"
    guest = PartyModel(
        x_guest, params, intercept=params.fit_intercept, row_weights=None if fourier else s
    )
    hosts = [PartyModel(x, params, intercept=False) for x in x_hosts]
    floor = max(guest.q.shape[1], *(h.q.shape[1] for h in hosts)) + 1
    f = params.frac_bits
    epochs = 0
    for epoch in range(params.max_iter):
        epochs += 1
        for rows in batch_plan(seed, y.size, params.batch_size, epoch, params.shuffle, floor):
            m = rows.size
            if fourier:
                # The protocol's fixed-point terms (weights folded into the residual), summed
                # in floating point (the integers can exceed int64).
                a = np.ldexp(
                    _fixed(fourier_weights(guest.forward(rows)), FOURIER_BITS), -FOURIER_BITS
                )
                b = np.ldexp(_fixed(fourier_features(hosts[0].forward(rows)), f), -f)
                r = 0.5 - y[rows] + np.sum(a * b, axis=0)
                if params.weighted:
                    r = r * s[rows]
                guest.step(guest.scale * (guest.q[rows].T @ r) / m, epoch)
                hosts[0].step(hosts[0].scale * (hosts[0].q[rows].T @ r) / m, epoch)
                continue
            quarter = [h.forward(rows) / 4 for h in hosts]
            u_total = np.sum(quarter, axis=0)
            v = 0.25 * guest.forward(rows) + 0.5 - y[rows]
            d = s[rows] * (v + u_total)
            grads = [h.scale * (h.q[rows].T @ d) / m for h in hosts]
            g_guest = guest.scale * (guest.q[rows].T @ (v + u_total)) / m
            guest.step(g_guest, epoch)
            for h, g in zip(hosts, grads, strict=True):
                h.step(g, epoch)
        diff = guest.epoch_norms()[0] + sum(h.epoch_norms()[0] for h in hosts)
        if stop_now(diff, params):
            break
    return guest, hosts, epochs
