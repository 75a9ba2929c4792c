"""Seeded synthetic multi-party financial data with a known generative model.

Six scenarios, one per use case of the platform (see ``docs/data.md`` for every column and
formula):

``credit``
    parties ``bank`` (label ``default``), ``telecom``, ``ecommerce``: vertical federated credit
    scoring. The label depends on three latent traits, one observed mainly by each party.
``fraud``
    parties ``bank_a``, ``bank_b``, ``bank_c`` with one transaction schema (label ``is_fraud``),
    non-IID fraud rates (0.6 %, 1.2 %, 2.0 %), amounts and merchant mixes: horizontal FL.
``blacklist``
    parties ``bank_a`` .. ``bank_c`` holding blacklists of ids; extras ``applicants`` (a stream
    of applications to screen) and ``applicants_truth`` (which list holds each applicant).
``idverify``
    parties ``telecom`` (registry of name, resident identity number, phone) and ``bank``
    (verification queries, 40 % of which do not match); extra ``truth`` with the ground truth.
``risk``
    parties ``lender_a`` .. ``lender_c`` with outstanding amounts per borrower; extra ``truth``
    with each borrower's total over all lenders (the answer of a joint MPC query).
``marketing``
    parties ``bank`` (label ``subscribed``) and ``merchant`` (behavioural features).

Every table of a scenario keys customers by ``id`` (``C`` + 8 digits) from one shared space.
The first party is the *anchor*: each other party holds ``rows`` customers of which a documented
share (:attr:`SyntheticDataset.overlap_design`) is drawn from the anchor's customers and the rest
are customers the anchor does not know, so aligning samples (PSI) matters.

The data are synthetic and reveal nothing about real people; the generator itself has no
security property. Output is a deterministic function of ``(scenario, rows, seed)`` for a given
NumPy version.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from privfin.data import identity
from privfin.errors import ConfigError

__all__ = [
    "FORMATS",
    "MAX_ROWS",
    "SCENARIOS",
    "SyntheticDataset",
    "generate",
    "join_parties",
    "write",
]

SCENARIOS: tuple[str, ...] = ("credit", "fraud", "blacklist", "idverify", "risk", "marketing")
"""Names accepted by :func:`generate`."""

FORMATS: tuple[str, ...] = ("csv", "parquet")
"""File formats accepted by :func:`write`."""

MAX_ROWS = 5_000_000
"""Largest ``rows`` accepted (per party); keeps every scenario inside the 8-digit id space."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class SyntheticDataset:
    """The tables of one generated scenario.

    Attributes
    ----------
    scenario : str
        One of :data:`SCENARIOS`.
    rows : int
        Rows per party requested (the transaction count per bank for ``fraud``).
    seed : int
        Seed the data were generated from.
    description : str
        One paragraph on what the parties hold and what the scenario is for.
    parties : dict of str to pandas.DataFrame
        One table per party, keyed by party name; the first party is the anchor. Every party
        table has an ``id`` column of customer ids.
    extras : dict of str to pandas.DataFrame
        Tables that belong to no party: evaluation ground truth (``truth``,
        ``applicants_truth``) or an input stream (``applicants``). Never feed a ground-truth
        table to a protocol.
    labels : dict of str to str
        Party name to the name of its label column (``{"bank": "default"}`` for ``credit``);
        empty when the scenario has no supervised label.
    overlap_design : dict of str to float
        For each non-anchor party, the share of its customers drawn from the anchor party's
        customers (the rest are unknown to the anchor).
    """

    scenario: str
    rows: int
    seed: int
    description: str
    parties: dict[str, pd.DataFrame]
    extras: dict[str, pd.DataFrame] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    overlap_design: dict[str, float] = field(default_factory=dict)

    @property
    def anchor(self) -> str:
        """Name of the anchor party (the first party)."""
        return next(iter(self.parties))

    def table(self, name: str) -> pd.DataFrame:
        """Return the party or extra table called ``name``.

        Raises
        ------
        ConfigError
            If there is no such table.
        """
        if name in self.parties:
            return self.parties[name]
        if name in self.extras:
            return self.extras[name]
        known = ", ".join([*self.parties, *self.extras])
        raise ConfigError(
            f"scenario {self.scenario!r} has no table {name!r}; choose one of {known}"
        )

    def overlap(self) -> pd.DataFrame:
        """Return the pairwise counts of distinct customer ids that two parties share.

        Returns
        -------
        pandas.DataFrame
            Square table indexed and labelled by party; the diagonal holds each party's number
            of distinct ids.
        """
        names = list(self.parties)
        ids = {p: pd.Index(self.parties[p]["id"].unique()) for p in names}
        counts = np.zeros((len(names), len(names)), dtype=np.int64)
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                if j >= i:
                    counts[i, j] = counts[j, i] = len(ids[a].intersection(ids[b]))
        return pd.DataFrame(counts, index=names, columns=names)

    def summary(self) -> pd.DataFrame:
        """Return one row per party: rows, columns, distinct ids and overlap shares.

        Returns
        -------
        pandas.DataFrame
            Columns ``rows``, ``columns``, ``ids`` (distinct customer ids),
            ``shared_with_anchor`` (share of the party's ids the anchor also holds) and
            ``shared_with_any`` (share held by at least one other party).
        """
        anchor_ids = pd.Index(self.parties[self.anchor]["id"].unique())
        records = []
        for name, df in self.parties.items():
            own = pd.Index(df["id"].unique())
            others = [pd.Index(o["id"].unique()) for p, o in self.parties.items() if p != name]
            union = others[0].append(others[1:]).unique() if others else pd.Index([])
            records.append(
                {
                    "party": name,
                    "rows": len(df),
                    "columns": df.shape[1],
                    "ids": len(own),
                    "shared_with_anchor": float(own.isin(anchor_ids).mean()),
                    "shared_with_any": float(own.isin(union).mean()) if len(union) else 0.0,
                }
            )
        return pd.DataFrame.from_records(records).set_index("party")


# --------------------------------------------------------------------------------------------
# public entry points


def _check_scenario(scenario: str) -> None:
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}")


def _rng(scenario: str, seed: int) -> np.random.Generator:
    """One independent stream per (scenario, seed); stable across processes and platforms."""
    tag = zlib.crc32(scenario.encode("ascii"))
    return np.random.default_rng(np.random.SeedSequence([seed, tag]))


def generate(scenario: str, rows: int, seed: int = 0) -> SyntheticDataset:
    """Generate the tables of one scenario.

    Parameters
    ----------
    scenario : str
        One of :data:`SCENARIOS`.
    rows : int
        Rows per party, ``1 <= rows <= MAX_ROWS`` (transactions per bank for ``fraud``,
        blacklist entries per bank for ``blacklist``; the ``applicants`` stream also has
        ``rows`` rows).
    seed : int, default 0
        Non-negative seed; the same ``(scenario, rows, seed)`` gives identical tables.

    Returns
    -------
    SyntheticDataset
        Party tables in :attr:`SyntheticDataset.parties`, non-party tables in
        :attr:`SyntheticDataset.extras`.

    Raises
    ------
    ConfigError
        For an unknown scenario, a ``rows`` outside ``[1, MAX_ROWS]`` or a negative seed.
    """
    _check_scenario(scenario)
    if isinstance(rows, bool) or not isinstance(rows, int | np.integer):
        raise ConfigError(f"rows must be an integer, got {rows!r}")
    if not 1 <= rows <= MAX_ROWS:
        raise ConfigError(f"rows must be between 1 and {MAX_ROWS:,} per party, got {rows}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    builder = _BUILDERS[scenario]
    return builder(_rng(scenario, int(seed)), int(rows), int(seed))


def write(
    dataset: SyntheticDataset,
    out_dir: str | Path,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Write every table of ``dataset`` to ``out_dir`` plus a ``manifest.json``.

    Each table ``name`` (party or extra) goes to ``<out_dir>/<name>.csv`` and/or
    ``<out_dir>/<name>.parquet``; the manifest records the scenario, seed, rows, which tables
    are parties and which are extras, the label columns and the overlap design.

    Parameters
    ----------
    dataset : SyntheticDataset
        Output of :func:`generate`.
    out_dir : str or pathlib.Path
        Directory; created if missing. Existing files of the same names are overwritten.
    formats : sequence of str, default ``("csv", "parquet")``
        Any non-empty subset of :data:`FORMATS`.

    Returns
    -------
    list of pathlib.Path
        The files written, the manifest last.

    Raises
    ------
    ConfigError
        For an unknown or empty format list, or an ``out_dir`` that is an existing file.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    fmts = list(dict.fromkeys(formats))
    if not fmts or any(f not in FORMATS for f in fmts):
        raise ConfigError(f"formats must be a non-empty subset of {FORMATS}, got {formats!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path {out} exists and is not a directory; choose a directory")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    tables = {**dataset.parties, **dataset.extras}
    for name, df in tables.items():
        arrow = pa.Table.from_pandas(df, preserve_index=False)
        for fmt in fmts:
            path = out / f"{name}.{fmt}"
            if fmt == "csv":
                pa_csv.write_csv(arrow, path)
            else:
                pq.write_table(arrow, path)
            written.append(path)
    manifest = {
        "scenario": dataset.scenario,
        "rows": dataset.rows,
        "seed": dataset.seed,
        "description": dataset.description,
        "parties": {p: list(df.columns) for p, df in dataset.parties.items()},
        "extras": {p: list(df.columns) for p, df in dataset.extras.items()},
        "labels": dataset.labels,
        "overlap_design": dataset.overlap_design,
        "formats": fmts,
    }
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    written.append(path)
    return written


def join_parties(dataset: SyntheticDataset, parties: Sequence[str] | None = None) -> pd.DataFrame:
    """Inner-join party tables on ``id`` (the plaintext reference of a vertical job).

    Parameters
    ----------
    dataset : SyntheticDataset
        A scenario with one row per customer per party (``credit``, ``marketing``, ``risk``).
    parties : sequence of str, optional
        Parties to join, in order; all parties by default. Columns other than ``id`` are
        prefixed with ``<party>.``.

    Returns
    -------
    pandas.DataFrame
        One row per customer held by every listed party, sorted by ``id``.

    Raises
    ------
    ConfigError
        For an unknown party name.
    """
    names = list(dataset.parties) if parties is None else list(parties)
    unknown = [p for p in names if p not in dataset.parties]
    if unknown or not names:
        raise ConfigError(
            f"unknown parties {unknown} for scenario {dataset.scenario!r}; "
            f"choose from {list(dataset.parties)}"
        )
    joined: pd.DataFrame | None = None
    for name in names:
        df = dataset.parties[name]
        renamed = df.rename(columns={c: f"{name}.{c}" for c in df.columns if c != "id"})
        joined = renamed if joined is None else joined.merge(renamed, on="id", how="inner")
    assert joined is not None  # names is non-empty
    return joined.sort_values("id", ignore_index=True)


# --------------------------------------------------------------------------------------------
# shared building blocks


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def _bernoulli(rng: np.random.Generator, p: FloatArray) -> npt.NDArray[np.int8]:
    return (rng.random(p.shape) < p).astype(np.int8)


def _correlated_normals(rng: np.random.Generator, n: int, k: int, rho: float) -> FloatArray:
    """``n`` draws of ``k`` standard normals with pairwise correlation ``rho``."""
    cov = np.full((k, k), rho) + np.eye(k) * (1.0 - rho)
    chol = np.linalg.cholesky(cov)
    return np.asarray(rng.standard_normal((n, k)) @ chol.T, dtype=np.float64)


def _weighted_sample(
    rng: np.random.Generator, n: int, k: int, weights: FloatArray | None = None
) -> IntArray:
    """``k`` distinct indices of ``range(n)``, with probability increasing in ``weights``.

    Uses exponential keys (``Exp(1) / w``, keep the ``k`` smallest), which samples without
    replacement proportionally to ``w`` in one vectorised pass.
    """
    if k >= n:
        return np.arange(n, dtype=np.int64)
    if weights is None:
        return rng.choice(n, size=k, replace=False).astype(np.int64)
    keys = rng.exponential(size=n) / weights
    return np.argpartition(keys, k)[:k].astype(np.int64)


@dataclass(frozen=True)
class _Layout:
    """Customer population and which members each party holds (indices into the population)."""

    numbers: IntArray
    members: dict[str, IntArray]

    @property
    def size(self) -> int:
        return int(self.numbers.size)

    def ids(self, party: str) -> npt.NDArray[np.str_]:
        return identity.format_customer_ids(self.numbers[self.members[party]])


def _layout(
    rng: np.random.Generator,
    sizes: dict[str, int],
    overlaps: dict[str, float],
    weight_fn: Callable[[IntArray], FloatArray] | None = None,
) -> _Layout:
    """Assign customers to parties.

    The first party of ``sizes`` (the anchor) holds population members ``0 .. n_anchor - 1``.
    Each other party ``p`` holds ``round(overlaps[p] * sizes[p])`` of the anchor's members (drawn
    with probability increasing in ``weight_fn`` of the anchor members, if given) plus fresh
    members no other party holds. Each party's members are returned sorted by id number.
    """
    names = list(sizes)
    anchor_n = sizes[names[0]]
    shared = {p: min(anchor_n, round(overlaps.get(p, 0.0) * sizes[p])) for p in names[1:]}
    fresh = {p: sizes[p] - shared[p] for p in names[1:]}
    total = anchor_n + sum(fresh.values())
    numbers = identity.unique_integers(rng, identity.ID_SPACE, total)
    anchor_members = np.arange(anchor_n, dtype=np.int64)
    w = None if weight_fn is None else weight_fn(anchor_members)
    members: dict[str, IntArray] = {names[0]: anchor_members}
    start = anchor_n
    for p in names[1:]:
        picked = _weighted_sample(rng, anchor_n, shared[p], w)
        own = np.arange(start, start + fresh[p], dtype=np.int64)
        start += fresh[p]
        members[p] = np.concatenate([picked, own])
    for p, idx in members.items():
        members[p] = idx[np.argsort(numbers[idx], kind="stable")]
    return _Layout(numbers=numbers, members=members)


def _frame(columns: dict[str, Any]) -> pd.DataFrame:
    """Build a DataFrame with a default index from equal-length arrays (no copies of labels)."""
    return pd.DataFrame(columns)


def _pick(values: dict[str, Any], idx: IntArray) -> dict[str, Any]:
    return {k: v[idx] for k, v in values.items()}


def _categories(
    rng: np.random.Generator, names: Sequence[str], probs: Sequence[float], n: int
) -> npt.NDArray[np.str_]:
    p = np.asarray(probs, dtype=np.float64)
    codes = rng.choice(len(names), size=n, p=p / p.sum())
    return np.asarray(names)[codes]


def _dates(rng: np.random.Generator, start: str, end: str, n: int) -> npt.NDArray[np.str_]:
    lo = np.datetime64(start, "D")
    span = int((np.datetime64(end, "D") - lo).astype(np.int64)) + 1
    days = lo + rng.integers(0, span, size=n).astype("timedelta64[D]")
    return days.astype("U10")


# --------------------------------------------------------------------------------------------
# credit


CREDIT_OVERLAP = {"telecom": 0.70, "ecommerce": 0.60}
CREDIT_INTERCEPT = -3.3


def _credit(rng: np.random.Generator, rows: int, seed: int) -> SyntheticDataset:
    lay = _layout(rng, {"bank": rows, "telecom": rows, "ecommerce": rows}, CREDIT_OVERLAP)
    m = lay.size
    u = _correlated_normals(rng, m, 3, 0.3)
    u_f, u_s, u_c = u[:, 0], u[:, 1], u[:, 2]
    e = rng.standard_normal((m, 8))

    age = rng.integers(20, 66, size=m)
    income = np.round(np.exp(11.0 + 0.45 * u_f + 0.01 * (age - 40) + 0.3 * e[:, 0]), 2)
    loan = np.round(income * np.exp(-0.7 + 0.5 * e[:, 1]), -2) + 1000.0
    term = rng.choice(np.array([12, 24, 36, 60]), size=m, p=[0.2, 0.3, 0.35, 0.15])
    history = np.floor((age - 18) * 12 * rng.uniform(0.1, 1.0, size=m)).astype(np.int64)
    late = rng.poisson(np.exp(-1.4 - 0.8 * u_f))
    util = np.round(_sigmoid(-0.6 - 0.9 * u_f + 0.6 * e[:, 2]), 4)

    tenure = np.ceil(rng.gamma(2.0, np.exp(2.6 + 0.5 * u_s))).astype(np.int64)
    spend_m = np.round(np.exp(4.2 + 0.2 * u_f + 0.25 * u_s + 0.35 * e[:, 3]), 2)
    arrears = rng.poisson(np.exp(-1.6 - 0.9 * u_s))
    roaming = rng.poisson(np.exp(0.2 + 0.5 * u_f + 0.3 * e[:, 4]))
    postpaid = _bernoulli(rng, _sigmoid(0.3 + 0.9 * u_s))
    sim_changes = rng.poisson(np.exp(-1.5 - 0.7 * u_s))

    orders = rng.poisson(np.exp(2.6 + 0.3 * u_f + 0.4 * e[:, 5]))
    spend_y = np.round(orders * np.exp(5.0 + 0.3 * u_f + 0.3 * e[:, 6]), 2)
    returns = rng.binomial(orders, _sigmoid(-2.4 - 0.6 * u_c))
    bnpl = np.round(_sigmoid(-1.4 - 1.0 * u_c + 0.5 * e[:, 7]), 4)
    night = np.round(_sigmoid(-1.8 - 0.5 * u_c + 0.5 * rng.standard_normal(m)), 4)

    eta = (
        CREDIT_INTERCEPT
        - 0.9 * u_f
        - 0.8 * u_s
        - 0.8 * u_c
        + 0.3 * np.log(loan / income)
        + 0.015 * (term - 36) / 12
    )
    default = _bernoulli(rng, _sigmoid(eta))

    bank_cols = {
        "age": age,
        "income": income,
        "loan_amount": loan,
        "loan_term_months": term,
        "credit_history_months": history,
        "late_payments_12m": late,
        "card_utilization": util,
        "default": default,
    }
    tel_cols = {
        "tenure_months": tenure,
        "monthly_spend": spend_m,
        "arrears_12m": arrears,
        "roaming_days_12m": roaming,
        "postpaid": postpaid,
        "sim_changes_12m": sim_changes,
    }
    ecom_cols = {
        "orders_12m": orders,
        "returns_12m": returns,
        "spend_12m": spend_y,
        "bnpl_share": bnpl,
        "night_order_share": night,
    }
    parties = {}
    for name, cols in (("bank", bank_cols), ("telecom", tel_cols), ("ecommerce", ecom_cols)):
        idx = lay.members[name]
        parties[name] = _frame({"id": lay.ids(name), **_pick(cols, idx)})
    return SyntheticDataset(
        scenario="credit",
        rows=rows,
        seed=seed,
        description=(
            "Vertical credit scoring: a bank holds loans and the label `default`; a telecom "
            "operator and an e-commerce platform hold behavioural features of partly the same "
            "customers. Default depends on financial strength (seen by the bank), stability "
            "(telecom) and consumption discipline (e-commerce)."
        ),
        parties=parties,
        labels={"bank": "default"},
        overlap_design=dict(CREDIT_OVERLAP),
    )


# --------------------------------------------------------------------------------------------
# fraud


MERCHANTS: tuple[str, ...] = (
    "grocery",
    "restaurant",
    "fuel",
    "retail",
    "electronics",
    "travel",
    "online_services",
    "jewelry",
    "atm_cash",
)
"""Merchant categories of the ``fraud`` scenario."""

FRAUD_OVERLAP = {"bank_b": 0.2, "bank_c": 0.2}


@dataclass(frozen=True)
class _BankProfile:
    fraud_rate: float
    amount_mu: float
    online: float
    foreign: float
    merchant_mix: tuple[float, ...]


FRAUD_BANKS: dict[str, _BankProfile] = {
    "bank_a": _BankProfile(0.006, 5.0, 0.20, 0.02, (30, 20, 12, 20, 5, 3, 6, 1, 3)),
    "bank_b": _BankProfile(0.012, 5.6, 0.45, 0.04, (15, 15, 6, 22, 12, 10, 15, 2, 3)),
    "bank_c": _BankProfile(0.020, 6.1, 0.30, 0.10, (12, 12, 8, 18, 10, 22, 8, 5, 5)),
}
_FRAUD_MERCHANT_MIX = (4, 3, 3, 12, 28, 12, 20, 12, 6)


def _fraud(rng: np.random.Generator, rows: int, seed: int) -> SyntheticDataset:
    n_cust = max(1, rows // 5)
    lay = _layout(rng, dict.fromkeys(FRAUD_BANKS, n_cust), FRAUD_OVERLAP)
    parties = {}
    for b, (name, prof) in enumerate(FRAUD_BANKS.items()):
        cust_ids = lay.ids(name)
        n_fraud = min(rows, max(1, round(prof.fraud_rate * rows)))
        fraud = np.zeros(rows, dtype=np.int8)
        fraud[rng.choice(rows, size=n_fraud, replace=False)] = 1
        is_f = fraud == 1
        legit_mix = np.asarray(prof.merchant_mix, dtype=np.float64)
        fraud_mix = np.asarray(_FRAUD_MERCHANT_MIX, dtype=np.float64) + 2.0 * legit_mix
        m_legit = rng.choice(len(MERCHANTS), size=rows, p=legit_mix / legit_mix.sum())
        m_fraud = rng.choice(len(MERCHANTS), size=rows, p=fraud_mix / fraud_mix.sum())
        merchant = np.where(is_f, m_fraud, m_legit)
        amount = np.exp(prof.amount_mu + 0.9 * rng.standard_normal(rows))
        amount = amount * np.where(is_f, np.exp(0.35 + 0.5 * rng.standard_normal(rows)), 1.0)
        amount = np.round(np.maximum(amount, 1.0), 2)
        day_hour = np.round(rng.normal(14.0, 4.0, size=rows))
        night_hour = np.round(rng.normal(2.5, 2.0, size=rows))
        use_night = is_f & (rng.random(rows) < 0.25)
        hour = (np.where(use_night, night_hour, day_hour).astype(np.int64)) % 24
        p_online = np.where(is_f, prof.online + 0.2, prof.online)
        online = rng.random(rows) < p_online
        atm = merchant == MERCHANTS.index("atm_cash")
        channel = np.where(atm, "atm", np.where(online, "online", "pos"))
        foreign = _bernoulli(rng, np.where(is_f, 2.5 * prof.foreign, prof.foreign))
        distance = rng.exponential(np.where(is_f, 20.0, 8.0)) + foreign * rng.exponential(
            1500.0, size=rows
        )
        velocity = 1 + rng.poisson(np.where(is_f, 2.3, 1.5))
        new_device = _bernoulli(rng, np.where(is_f, 0.15, 0.05))
        customer = rng.integers(0, cust_ids.size, size=rows)
        parties[name] = _frame(
            {
                "txn_id": identity.format_codes(np.arange(1, rows + 1), f"T{b}", 9),
                "id": cust_ids[customer],
                "amount": amount,
                "hour": hour,
                "merchant_category": np.asarray(MERCHANTS)[merchant],
                "channel": channel,
                "is_foreign": foreign,
                "distance_km": np.round(distance, 1),
                "txn_count_24h": velocity,
                "new_device": new_device,
                "is_fraud": fraud,
            }
        )
    return SyntheticDataset(
        scenario="fraud",
        rows=rows,
        seed=seed,
        description=(
            "Horizontal fraud detection: three banks hold card transactions with the same schema "
            "and label `is_fraud`, but different fraud rates (0.6 %, 1.2 %, 2.0 %), amount "
            "levels and merchant/channel mixes (non-IID). Some customers bank at several banks."
        ),
        parties=parties,
        labels=dict.fromkeys(FRAUD_BANKS, "is_fraud"),
        overlap_design=dict(FRAUD_OVERLAP),
    )


# --------------------------------------------------------------------------------------------
# blacklist


BLACKLIST_OVERLAP = {"bank_b": 0.25, "bank_c": 0.25}
BLACKLIST_APPLICANT_HIT_RATE = 0.08
_REASONS = ("fraud", "loan_default", "aml", "identity_theft")
_REASON_MIX = {
    "bank_a": (0.30, 0.45, 0.10, 0.15),
    "bank_b": (0.40, 0.35, 0.05, 0.20),
    "bank_c": (0.25, 0.50, 0.15, 0.10),
}


def _blacklist(rng: np.random.Generator, rows: int, seed: int) -> SyntheticDataset:
    names = list(_REASON_MIX)
    n_hit = round(BLACKLIST_APPLICANT_HIT_RATE * rows)
    sizes = {**dict.fromkeys(names, rows), "applicants": rows - n_hit}
    lay = _layout(rng, sizes, BLACKLIST_OVERLAP)
    on_list = np.zeros(lay.size, dtype=np.bool_)
    for p in names:
        on_list[lay.members[p]] = True
    listed = np.flatnonzero(on_list)
    hit = listed[_weighted_sample(rng, listed.size, min(n_hit, listed.size))]
    applicants = np.concatenate([hit, lay.members["applicants"]])
    applicants = applicants[rng.permutation(applicants.size)]
    parties = {}
    severity_of = np.array([3, 2, 3, 2])
    for name in names:
        reason = rng.choice(len(_REASONS), size=rows, p=np.asarray(_REASON_MIX[name]))
        severity = np.clip(severity_of[reason] - (rng.random(rows) < 0.3), 1, 3)
        parties[name] = _frame(
            {
                "id": lay.ids(name),
                "reason": np.asarray(_REASONS)[reason],
                "severity": severity.astype(np.int64),
                "listed_on": _dates(rng, "2019-01-01", "2024-12-31", rows),
            }
        )
    n_app = applicants.size
    app_ids = identity.format_customer_ids(lay.numbers[applicants])
    app_no = identity.format_codes(np.arange(1, n_app + 1), "A", 9)
    product = _categories(
        rng, ("credit_card", "consumer_loan", "mortgage", "account"), (4, 3, 1, 2), n_app
    )
    amount = np.round(np.exp(rng.normal(10.0, 1.0, size=n_app)), -2)
    amount = np.where(product == "account", 0.0, amount)
    member_of = {}
    for p in names:
        mask = np.zeros(lay.size, dtype=np.bool_)
        mask[lay.members[p]] = True
        member_of[p] = mask[applicants]
    n_lists = np.sum([member_of[p] for p in names], axis=0).astype(np.int64)
    code = np.sum([member_of[p] << i for i, p in enumerate(names)], axis=0)
    combos = [
        ";".join(p for i, p in enumerate(names) if c >> i & 1) for c in range(2 ** len(names))
    ]
    by = np.asarray(combos)[code]
    extras = {
        "applicants": _frame(
            {
                "application_id": app_no,
                "id": app_ids,
                "product": product,
                "amount": amount,
                "applied_on": _dates(rng, "2025-01-01", "2025-06-30", n_app),
            }
        ),
        "applicants_truth": _frame(
            {
                "application_id": app_no,
                "id": app_ids,
                "on_blacklist": (n_lists > 0).astype(np.int8),
                "n_blacklists": n_lists,
                "blacklisted_by": by,
            }
        ),
    }
    return SyntheticDataset(
        scenario="blacklist",
        rows=rows,
        seed=seed,
        description=(
            "Joint blacklist query: three banks each keep a blacklist of customer ids (reason, "
            "severity, date); `applicants` is a stream of applications to screen against all "
            "lists (about 8 % are listed somewhere), `applicants_truth` says which lists."
        ),
        parties=parties,
        extras=extras,
        overlap_design=dict(BLACKLIST_OVERLAP),
    )


# --------------------------------------------------------------------------------------------
# idverify

IDVERIFY_MIX: dict[str, float] = {
    "genuine": 0.60,
    "phone_mismatch": 0.15,
    "name_mismatch": 0.10,
    "id_typo": 0.05,
    "unregistered": 0.10,
}
"""Share of each kind of verification query in the ``idverify`` scenario."""


def _idverify(rng: np.random.Generator, rows: int, seed: int) -> SyntheticDataset:
    kinds = list(IDVERIFY_MIX)
    counts = np.floor(np.asarray(list(IDVERIFY_MIX.values())) * rows).astype(np.int64)
    counts[0] += rows - counts.sum()
    n_unreg = int(counts[kinds.index("unregistered")])
    n_reg_q = rows - n_unreg
    lay = _layout(rng, {"telecom": rows, "outsiders": n_unreg}, {})
    n_people = rows + n_unreg
    nid, _ = identity.national_ids(rng, n_people)
    n_new_phone = int(counts[kinds.index("phone_mismatch")])
    phones = identity.phone_numbers(rng, n_people + n_new_phone).astype(str)
    names = identity.person_names(rng, n_people)
    people = np.concatenate([lay.members["telecom"], lay.members["outsiders"]])
    ids = identity.format_customer_ids(lay.numbers[people])
    # people 0..rows-1 are registered (telecom), rows.. are outsiders
    registry = _frame(
        {"id": ids[:rows], "name": names[:rows], "national_id": nid[:rows], "phone": phones[:rows]}
    )
    kind = np.repeat(np.arange(len(kinds)), counts)
    who = np.empty(rows, dtype=np.int64)
    reg = kind != kinds.index("unregistered")
    who[reg] = rng.choice(rows, size=n_reg_q, replace=False)
    who[~reg] = rows + np.arange(n_unreg)
    q_name = names[who].copy()
    q_nid = nid[who].copy()
    q_phone = phones[who].copy()
    is_phone = kind == kinds.index("phone_mismatch")
    q_phone[is_phone] = phones[n_people:]
    is_name = kind == kinds.index("name_mismatch")
    q_name[is_name] = identity.person_names(rng, int(is_name.sum()))
    is_typo = np.flatnonzero(kind == kinds.index("id_typo"))
    if is_typo.size:
        raw = q_nid[is_typo].astype("S18").view(np.uint8).reshape(is_typo.size, 18).copy()
        pos = rng.integers(6, 17, size=is_typo.size)
        rows_ix = np.arange(is_typo.size)
        raw[rows_ix, pos] = (raw[rows_ix, pos] - 48 + 1) % 10 + 48
        q_nid[is_typo] = raw.view("S18").ravel().astype("U18")
    order = rng.permutation(rows)
    kind, who = kind[order], who[order]
    q_name, q_nid, q_phone = q_name[order], q_nid[order], q_phone[order]
    query_id = identity.format_codes(np.arange(1, rows + 1), "Q", 9)
    queries = _frame(
        {
            "query_id": query_id,
            "id": ids[who],
            "name": q_name,
            "national_id": q_nid,
            "phone": q_phone,
        }
    )
    lookup = pd.Series(np.arange(rows), index=pd.Index(nid[:rows]))
    hit = lookup.reindex(q_nid).to_numpy()
    registered = ~np.isnan(hit)
    hit_ix = np.where(registered, hit, 0).astype(np.int64)
    name_match = registered & (names[hit_ix] == q_name)
    phone_match = registered & (phones[hit_ix] == q_phone)
    truth = _frame(
        {
            "query_id": query_id,
            "kind": np.asarray(kinds)[kind],
            "registered": registered.astype(np.int8),
            "name_match": name_match.astype(np.int8),
            "phone_match": phone_match.astype(np.int8),
            "verified": (name_match & phone_match).astype(np.int8),
        }
    )
    return SyntheticDataset(
        scenario="idverify",
        rows=rows,
        seed=seed,
        description=(
            "Identity verification: a telecom operator holds a registry of (name, resident "
            "identity number, mobile number); a bank sends verification queries for applicants, "
            "40 % of which mismatch (wrong phone, wrong name, mistyped identity number, not a "
            "subscriber). The answer key is the extra table `truth`."
        ),
        parties={"telecom": registry, "bank": queries},
        extras={"truth": truth},
        overlap_design={"bank": 1.0 - IDVERIFY_MIX["unregistered"]},
    )


# --------------------------------------------------------------------------------------------
# risk

RISK_OVERLAP = {"lender_b": 0.40, "lender_c": 0.35}
_PRODUCTS = ("mortgage", "auto", "consumer", "credit_card", "microloan")
_PRODUCT_MU = np.array([13.0, 11.5, 10.3, 9.0, 8.3])
_PRODUCT_MIX = {
    "lender_a": (0.30, 0.15, 0.25, 0.30, 0.00),
    "lender_b": (0.00, 0.20, 0.40, 0.30, 0.10),
    "lender_c": (0.00, 0.00, 0.35, 0.05, 0.60),
}
_DPD = np.array([15, 45, 75, 120])


def _risk(rng: np.random.Generator, rows: int, seed: int) -> SyntheticDataset:
    names = list(_PRODUCT_MIX)
    m_anchor = rows
    leverage_anchor = rng.standard_normal(m_anchor)
    lay = _layout(
        rng,
        dict.fromkeys(names, rows),
        RISK_OVERLAP,
        weight_fn=lambda idx: np.exp(0.8 * leverage_anchor[idx]),
    )
    leverage = np.concatenate([leverage_anchor, rng.standard_normal(lay.size - m_anchor)])
    parties = {}
    for name in names:
        idx = lay.members[name]
        n = idx.size
        lev = leverage[idx]
        product = rng.choice(len(_PRODUCTS), size=n, p=np.asarray(_PRODUCT_MIX[name]))
        n_loans = 1 + rng.poisson(0.3 + 0.3 * np.log1p(np.exp(lev)))
        amount = np.exp(_PRODUCT_MU[product] + 0.3 * lev + 0.6 * rng.standard_normal(n))
        amount = amount * (1.0 + 0.5 * (n_loans - 1))
        cents = np.round(amount * 100.0).astype(np.int64)
        late = rng.random(n) < _sigmoid(-3.0 + 0.8 * lev)
        dpd = np.where(late, _DPD[rng.integers(0, _DPD.size, size=n)], 0).astype(np.int64)
        parties[name] = _frame(
            {
                "id": lay.ids(name),
                "product": np.asarray(_PRODUCTS)[product],
                "n_loans": n_loans,
                "outstanding_cents": cents,
                "outstanding": cents / 100.0,
                "days_past_due": dpd,
            }
        )
    stacked = pd.concat(
        [df[["id", "outstanding_cents", "days_past_due"]] for df in parties.values()],
        ignore_index=True,
    )
    truth = (
        stacked.groupby("id", sort=True)
        .agg(
            n_lenders=("outstanding_cents", "size"),
            total_outstanding_cents=("outstanding_cents", "sum"),
            max_days_past_due=("days_past_due", "max"),
        )
        .reset_index()
    )
    return SyntheticDataset(
        scenario="risk",
        rows=rows,
        seed=seed,
        description=(
            "Joint risk query: three lenders hold each borrower's outstanding balance (integer "
            "cents and amount), product and arrears; more leveraged borrowers borrow from more "
            "lenders. `truth` holds each borrower's total over all lenders."
        ),
        parties=parties,
        extras={"truth": truth},
        overlap_design=dict(RISK_OVERLAP),
    )


# --------------------------------------------------------------------------------------------
# marketing

MARKETING_OVERLAP = {"merchant": 0.60}
MARKETING_INTERCEPT = -3.0


def _marketing(rng: np.random.Generator, rows: int, seed: int) -> SyntheticDataset:
    lay = _layout(rng, {"bank": rows, "merchant": rows}, MARKETING_OVERLAP)
    m = lay.size
    v = _correlated_normals(rng, m, 2, 0.2)
    v_w, v_a = v[:, 0], v[:, 1]
    e = rng.standard_normal((m, 5))
    age = rng.integers(18, 76, size=m)
    balance = np.round(np.exp(9.0 + 1.0 * v_w + 0.5 * e[:, 0]), 2)
    n_products = 1 + rng.poisson(np.exp(-0.2 + 0.3 * v_w))
    tenure = np.floor(rng.random(m) * np.minimum(age - 17, 30)).astype(np.int64)
    mortgage = _bernoulli(rng, _sigmoid(-1.0 + 0.5 * v_w))
    salary = _bernoulli(rng, np.full(m, 0.45))
    contacts = 1 + rng.poisson(1.0, size=m)

    visits = rng.poisson(np.exp(1.5 + 0.7 * v_a + 0.3 * e[:, 1]))
    spend = np.round(visits * np.exp(4.5 + 0.4 * v_w + 0.3 * e[:, 2]), 2)
    cats = np.minimum(np.maximum(visits, 1), 1 + rng.poisson(np.exp(0.5 + 0.4 * v_a)))
    online = np.round(_sigmoid(0.6 * v_a + 0.5 * e[:, 3]), 4)
    last_visit = np.ceil(rng.exponential(90.0 / (1.0 + visits))).astype(np.int64)
    coupons = rng.binomial(visits, _sigmoid(-1.5 + 0.8 * v_a))
    premium = _bernoulli(rng, _sigmoid(-1.5 + 0.8 * v_a + 0.4 * v_w))

    eta = (
        MARKETING_INTERCEPT
        + 0.7 * v_w
        + 1.1 * v_a
        + 0.3 * salary
        + 0.2 * mortgage
        - 0.15 * (contacts - 1)
    )
    subscribed = _bernoulli(rng, _sigmoid(eta))
    bank_cols = {
        "age": age,
        "balance": balance,
        "n_products": n_products,
        "tenure_years": tenure,
        "has_mortgage": mortgage,
        "salary_account": salary,
        "campaign_contacts": contacts,
        "subscribed": subscribed,
    }
    merchant_cols = {
        "visits_90d": visits,
        "spend_90d": spend,
        "distinct_categories": cats,
        "online_share": online,
        "days_since_last_visit": last_visit,
        "coupon_redemptions_90d": coupons,
        "premium_member": premium,
    }
    parties = {
        name: _frame({"id": lay.ids(name), **_pick(cols, lay.members[name])})
        for name, cols in (("bank", bank_cols), ("merchant", merchant_cols))
    }
    return SyntheticDataset(
        scenario="marketing",
        rows=rows,
        seed=seed,
        description=(
            "Joint marketing: a bank holds customers and the label `subscribed` (took up a "
            "product after a campaign); a merchant holds shopping behaviour of partly the same "
            "customers. Uptake depends on wealth (seen mostly by the bank) and engagement "
            "(seen by the merchant)."
        ),
        parties=parties,
        labels={"bank": "subscribed"},
        overlap_design=dict(MARKETING_OVERLAP),
    )


_BUILDERS: dict[str, Callable[[np.random.Generator, int, int], SyntheticDataset]] = {
    "credit": _credit,
    "fraud": _fraud,
    "blacklist": _blacklist,
    "idverify": _idverify,
    "risk": _risk,
    "marketing": _marketing,
}
