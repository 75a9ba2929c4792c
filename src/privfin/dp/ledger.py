"""The privacy-budget ledger: what each dataset (and each party it releases to) may still
spend, enforced across jobs, in the node's store (SQLite or PostgreSQL; migration
``0006_dp_ledger``).

Budgets. A dataset's total (epsilon, delta) is set by its data owner: epsilon is the
``dp_budget`` of its usage policy in the data registry (:class:`privfin.data.registry.
UsagePolicy`); :meth:`BudgetLedger.set_budget` sets it there and keeps delta (default
:data:`DEFAULT_DELTA`) in the ledger. A dataset the registry does not know can get a budget in
the ledger alone (tests, a stand-alone release). A per-party budget caps what one receiving
party may get out of a dataset, inside the dataset's total. **No budget set means no release**.

Spending. Every release reserves its cost before it touches the data
(:meth:`BudgetLedger.reserve`, or the :meth:`BudgetLedger.spend` context manager):
the check and the reservation happen in one transaction that holds the dataset's lock (SQLite
``BEGIN IMMEDIATE``, a PostgreSQL advisory lock), so concurrent reservations from threads or
processes never overspend. A release that would exceed a budget raises :class:`BudgetExceeded`
and writes nothing. After computing, the release is committed; if it failed before anything
left the node, the reservation is released. A reservation neither committed nor released (the
node crashed) keeps counting as spent: the noisy value may have left; only the operator can
release it (:meth:`BudgetLedger.release`) once sure it did not.

Composition across releases is basic (epsilons add up, deltas add up): valid for any
mechanisms, in any order, adaptively chosen. A release made of many steps (DP-SGD) charges the
(epsilon, delta) its own accountant computed.

Audit. Every row keeps who asked, for which job and step, the mechanism, the cost, when it was
reserved and settled. This package does not write the audit log itself (it sits below
:mod:`privfin.audit`): ``on_event`` receives a :class:`LedgerEvent` after each change is
committed, and the node/jobs layer writes it as an audit entry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from privfin.data.registry import DatasetRegistry
from privfin.dp.mechanisms import PrivacyCost
from privfin.errors import BudgetExceededError, ConfigError

__all__ = [
    "ALL_PARTIES",
    "DEFAULT_DELTA",
    "Budget",
    "BudgetExceeded",
    "BudgetLedger",
    "LedgerEvent",
    "Spend",
    "metadata",
]

#: The exception a release that would exceed its budget raises (before touching data).
BudgetExceeded = BudgetExceededError

#: ``party`` of a dataset-wide budget.
ALL_PARTIES = "*"
#: A dataset's delta budget when its owner set only epsilon (in the registry).
DEFAULT_DELTA = 1e-6
#: Relative slack of the budget check (float sums of epsilons).
_SLACK = 1e-9

State = Literal["reserved", "committed", "released"]
_COUNTED = ("reserved", "committed")

metadata = sa.MetaData()

budgets_table = sa.Table(
    "dp_budgets",
    metadata,
    sa.Column("dataset", sa.String(64), primary_key=True),
    sa.Column("party", sa.String(64), primary_key=True),
    sa.Column("epsilon", sa.Float, nullable=False),
    sa.Column("delta", sa.Float, nullable=False),
    sa.Column("set_by", sa.String(64), nullable=False),
    sa.Column("set_at", sa.Float, nullable=False),
)

spends_table = sa.Table(
    "dp_spends",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("dataset", sa.String(64), nullable=False),
    sa.Column("party", sa.String(64), nullable=False),
    sa.Column("job", sa.String(64), nullable=False),
    sa.Column("step", sa.String(128), nullable=True),
    sa.Column("mechanism", sa.String(64), nullable=False),
    sa.Column("epsilon", sa.Float, nullable=False),
    sa.Column("delta", sa.Float, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("who", sa.String(64), nullable=False),
    sa.Column("reserved_at", sa.Float, nullable=False),
    sa.Column("settled_at", sa.Float, nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Index("ix_dp_spends_dataset", "dataset", "state"),
)


@dataclass(frozen=True)
class Budget:
    """A budget and what is spent of it (reserved or committed)."""

    dataset: str
    party: str
    epsilon: float
    delta: float
    spent_epsilon: float
    spent_delta: float

    @property
    def remaining_epsilon(self) -> float:
        return max(0.0, self.epsilon - self.spent_epsilon)

    @property
    def remaining_delta(self) -> float:
        return max(0.0, self.delta - self.spent_delta)

    def to_json(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "remaining_epsilon": self.remaining_epsilon,
            "remaining_delta": self.remaining_delta,
        }


@dataclass(frozen=True)
class Spend:
    """One row of the ledger."""

    id: str
    dataset: str
    party: str
    job: str
    step: str | None
    mechanism: str
    epsilon: float
    delta: float
    state: State
    who: str
    reserved_at: float
    settled_at: float | None
    note: str | None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LedgerEvent:
    """What changed in the ledger, for the audit log: ``kind`` is ``budget`` (a budget was
    set), ``reserve``, ``commit``, ``release`` or ``refuse`` (a reservation over budget)."""

    kind: Literal["budget", "reserve", "commit", "release", "refuse"]
    dataset: str
    party: str
    job: str | None
    who: str
    epsilon: float
    delta: float
    mechanism: str | None = None
    spend_id: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _name(what: str, value: str, size: int = 64) -> str:
    if not isinstance(value, str) or not value or len(value) > size:
        raise ConfigError(f"{what} must be a non-empty text of at most {size} characters")
    return value


def _budget_value(what: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} budget must be a number >= 0, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{what} budget must be a finite number >= 0, got {value!r}")
    return float(value)


class BudgetLedger:
    """Privacy budgets and spends of this node's datasets (see the module docstring).

    Parameters
    ----------
    engine:
        The node's store, migrated (:func:`privfin.store.upgrade`).
    registry:
        The node's data registry (its datasets' ``dp_budget``); ``None``: budgets live in the
        ledger only.
    on_event:
        Called with each :class:`LedgerEvent` after its change is committed (the audit hook).
    clock:
        Seconds since the epoch (injectable for tests).
    """

    def __init__(
        self,
        engine: Engine,
        registry: DatasetRegistry | None = None,
        *,
        on_event: Callable[[LedgerEvent], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self._on_event = on_event
        self._clock = clock

    # -- locking
    @contextlib.contextmanager
    def _locked(self, dataset: str) -> Iterator[Connection]:
        """A transaction holding ``dataset``'s write lock until it commits."""
        with self.engine.connect() as conn:
            dialect = conn.dialect.name
            if dialect == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif dialect == "postgresql":
                key = int.from_bytes(
                    hashlib.sha256(b"privfin.dp.ledger:" + dataset.encode()).digest()[:8],
                    "big",
                    signed=True,
                )
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def _emit(self, event: LedgerEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    # -- budgets
    def set_budget(
        self,
        dataset: str,
        epsilon: float,
        delta: float = DEFAULT_DELTA,
        *,
        party: str = ALL_PARTIES,
        who: str,
    ) -> None:
        """Set ``dataset``'s total budget (``party="*"``) or one receiving party's cap.

        The total's epsilon is also written to the dataset's usage policy when the registry
        knows the dataset. Lowering a budget below what is spent stops further releases; it
        never erases the history.
        """
        _name("dataset", dataset)
        _name("party", party)
        _name("who", who)
        eps = _budget_value("epsilon", epsilon)
        dlt = _budget_value("delta", delta)
        if dlt >= 1:
            raise ConfigError(f"delta budget must be < 1, got {delta!r}")
        if party == ALL_PARTIES and self.registry is not None:
            info = self._registered(dataset)
            if info is not None and info.policy.dp_budget != eps:
                self.registry.set_policy(dataset, dataclasses.replace(info.policy, dp_budget=eps))
        t = budgets_table
        with self._locked(dataset) as conn:
            conn.execute(sa.delete(t).where((t.c.dataset == dataset) & (t.c.party == party)))
            conn.execute(
                t.insert().values(
                    dataset=dataset,
                    party=party,
                    epsilon=eps,
                    delta=dlt,
                    set_by=who,
                    set_at=self._clock(),
                )
            )
        self._emit(LedgerEvent("budget", dataset, party, None, who, eps, dlt))

    def _registered(self, dataset: str) -> Any:
        if self.registry is None:
            return None
        try:
            return self.registry.get(dataset)
        except ConfigError:
            return None

    def _limits(self, conn: Connection, dataset: str, party: str) -> tuple[float, float] | None:
        """(epsilon, delta) budget of ``dataset`` for ``party`` (``"*"``: the total), or
        ``None`` if none is set."""
        t = budgets_table
        row = conn.execute(
            sa.select(t.c.epsilon, t.c.delta).where((t.c.dataset == dataset) & (t.c.party == party))
        ).first()
        if party != ALL_PARTIES:
            return None if row is None else (float(row[0]), float(row[1]))
        info = self._registered(dataset)
        if info is not None and info.policy.dp_budget is not None:
            # the registry's epsilon is authoritative; delta from the ledger or the default
            return float(info.policy.dp_budget), float(row[1]) if row else DEFAULT_DELTA
        return None if row is None else (float(row[0]), float(row[1]))

    def _spent(self, conn: Connection, dataset: str, party: str | None) -> tuple[float, float]:
        s = spends_table
        where = (s.c.dataset == dataset) & s.c.state.in_(_COUNTED)
        if party is not None:
            where = where & (s.c.party == party)
        rows = conn.execute(sa.select(s.c.epsilon, s.c.delta).where(where)).all()
        return math.fsum(r[0] for r in rows), math.fsum(r[1] for r in rows)

    def budget(self, dataset: str, party: str = ALL_PARTIES) -> Budget | None:
        """The budget of ``dataset`` (or of one ``party``'s cap on it) and what is spent of
        it; ``None`` if none is set."""
        with self.engine.connect() as conn:
            limits = self._limits(conn, dataset, party)
            if limits is None:
                return None
            spent = self._spent(conn, dataset, None if party == ALL_PARTIES else party)
        return Budget(dataset, party, limits[0], limits[1], spent[0], spent[1])

    def spent(self, dataset: str, party: str | None = None) -> tuple[float, float]:
        """(epsilon, delta) reserved or committed on ``dataset`` (by ``party`` if given)."""
        with self.engine.connect() as conn:
            return self._spent(conn, dataset, party)

    # -- spending
    def reserve(
        self,
        dataset: str,
        cost: PrivacyCost,
        *,
        party: str,
        job: str,
        mechanism: str,
        who: str,
        step: str | None = None,
        note: str | None = None,
    ) -> Spend:
        """Reserve ``cost`` on ``dataset`` for a release to ``party``; call before touching
        the data.

        Raises
        ------
        BudgetExceeded
            No budget is set for ``dataset``, or the release would exceed the dataset's
            total or ``party``'s cap (nothing is written; the message says what remains).
        """
        for what, value in (("dataset", dataset), ("party", party), ("job", job)):
            _name(what, value)
        _name("who", who)
        _name("mechanism", mechanism)
        if step is not None:
            _name("step", step, 128)
        if not isinstance(cost, PrivacyCost):
            raise ConfigError("cost must be a PrivacyCost")
        spend_id = secrets.token_hex(16)
        now = self._clock()
        refusal: str | None = None
        with self._locked(dataset) as conn:
            total = self._limits(conn, dataset, ALL_PARTIES)
            if total is None:
                refusal = (
                    f"no differential-privacy budget is set for dataset {dataset!r}: its data "
                    f"owner sets one with `privfin data budget {dataset} --epsilon E` before "
                    "any DP release"
                )
            else:
                refusal = self._over(conn, dataset, None, total, cost)
                cap = self._limits(conn, dataset, party)
                if refusal is None and cap is not None:
                    refusal = self._over(conn, dataset, party, cap, cost)
            if refusal is None:
                conn.execute(
                    spends_table.insert().values(
                        id=spend_id,
                        dataset=dataset,
                        party=party,
                        job=job,
                        step=step,
                        mechanism=mechanism,
                        epsilon=cost.epsilon,
                        delta=cost.delta,
                        state="reserved",
                        who=who,
                        reserved_at=now,
                        settled_at=None,
                        note=note,
                    )
                )
        event = LedgerEvent(
            "refuse" if refusal else "reserve",
            dataset,
            party,
            job,
            who,
            cost.epsilon,
            cost.delta,
            mechanism,
            None if refusal else spend_id,
            refusal,
        )
        self._emit(event)
        if refusal is not None:
            raise BudgetExceeded(refusal)
        return Spend(
            spend_id, dataset, party, job, step, mechanism, cost.epsilon, cost.delta,
            "reserved", who, now, None, note,
        )  # fmt: skip

    def _over(
        self,
        conn: Connection,
        dataset: str,
        party: str | None,
        limits: tuple[float, float],
        cost: PrivacyCost,
    ) -> str | None:
        eps_spent, delta_spent = self._spent(conn, dataset, party)
        whose = f"dataset {dataset!r}" if party is None else f"party {party!r} on {dataset!r}"
        eps_left = max(0.0, limits[0] - eps_spent)
        delta_left = max(0.0, limits[1] - delta_spent)
        if eps_spent + cost.epsilon > limits[0] * (1 + _SLACK):
            return (
                f"privacy budget of {whose} exceeded: this release needs epsilon "
                f"{cost.epsilon:.6g}, {eps_left:.6g} of {limits[0]:.6g} remains"
            )
        if delta_spent + cost.delta > limits[1] * (1 + _SLACK):
            return (
                f"privacy budget of {whose} exceeded: this release needs delta "
                f"{cost.delta:.3g}, {delta_left:.3g} of {limits[1]:.3g} remains"
            )
        return None

    def _settle(self, spend_id: str, state: State, who: str) -> Spend:
        s = spends_table
        row = self._get(spend_id)
        with self._locked(row.dataset) as conn:
            done = conn.execute(
                sa.update(s)
                .where((s.c.id == spend_id) & (s.c.state == "reserved"))
                .values(state=state, settled_at=self._clock())
            ).rowcount
        if not done:
            raise ConfigError(
                f"DP reservation {spend_id} is {self._get(spend_id).state}, not reserved"
            )
        out = self._get(spend_id)
        kind: Literal["commit", "release"] = "commit" if state == "committed" else "release"
        self._emit(
            LedgerEvent(
                kind, out.dataset, out.party, out.job, who, out.epsilon, out.delta,
                out.mechanism, out.id,
            )
        )  # fmt: skip
        return out

    def commit(self, spend_id: str, *, who: str) -> Spend:
        """Mark a reservation spent (its release left, or may have left, the node)."""
        return self._settle(spend_id, "committed", who)

    def release(self, spend_id: str, *, who: str) -> Spend:
        """Give a reservation back: only when nothing computed under it left the node."""
        return self._settle(spend_id, "released", who)

    @contextlib.contextmanager
    def spend(
        self,
        dataset: str,
        cost: PrivacyCost,
        *,
        party: str,
        job: str,
        mechanism: str,
        who: str,
        step: str | None = None,
        note: str | None = None,
    ) -> Iterator[Spend]:
        """Reserve, run the body, commit; release if the body raises (it must raise only
        before its result left the node)."""
        r = self.reserve(
            dataset, cost, party=party, job=job, mechanism=mechanism, who=who, step=step,
            note=note,
        )  # fmt: skip
        try:
            yield r
        except BaseException:
            self.release(r.id, who=who)
            raise
        self.commit(r.id, who=who)

    # -- reading
    def _get(self, spend_id: str) -> Spend:
        s = spends_table
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(s).where(s.c.id == spend_id)).mappings().first()
        if row is None:
            raise ConfigError(f"no DP reservation {spend_id!r} in this node's ledger")
        return Spend(**dict(row))

    def history(self, dataset: str | None = None) -> list[Spend]:
        """Every spend (reserved, committed or released), oldest first."""
        s = spends_table
        q = sa.select(s).order_by(s.c.reserved_at, s.c.id)
        if dataset is not None:
            q = q.where(s.c.dataset == dataset)
        with self.engine.connect() as conn:
            return [Spend(**dict(r)) for r in conn.execute(q).mappings()]

    def status(self, dataset: str, last: int = 20) -> dict[str, Any]:
        """What ``privfin data show`` and the dashboard show of a dataset's budget: the
        budget (None if unset), what is spent of it, how many releases hold a charge and the
        ``last`` spends (newest last)."""
        budget = self.budget(dataset)
        eps, delta = self.spent(dataset)
        history = self.history(dataset)
        return {
            "budget": None if budget is None else budget.to_json(),
            "spent_epsilon": eps,
            "spent_delta": delta,
            "releases": sum(h.state != "released" for h in history),
            "spends": [h.to_json() for h in history[-last:]] if last > 0 else [],
        }
