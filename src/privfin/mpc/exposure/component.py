"""The ``exposure`` component: wires the roles to a job's parameters and inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from privfin.data.validate import check_column, check_ids, column_of
from privfin.errors import ConfigError, InputError
from privfin.mpc.exposure.lender import run_lender
from privfin.mpc.exposure.messages import MAX_AMOUNT
from privfin.mpc.exposure.result import run_result
from privfin.runtime import Context

__all__ = ["exposure_component", "lender_amounts", "plaintext_exposure"]

LENDER = "lender"
RESULT = "result"


def lender_amounts(ids: Sequence[str], loans: Any) -> np.ndarray:
    """Align a lender's loans to the agreed ids: amount in integer minor units, 0 if absent.

    ``loans`` is a mapping id -> amount, or a table with columns ``id`` and
    ``outstanding_cents`` (several rows of one borrower are added up).

    Raises
    ------
    InputError
        If an id is missing, or an amount is not a number, missing (NaN), infinite, not a whole
        number of minor units, or outside ``[0, 2**56)`` (also for the sum of a borrower's
        loans). The message names the column and the number of rows, never a value or an id.
    """
    source = "input 'loans'"
    if hasattr(loans, "columns"):
        for col in ("id", "outstanding_cents"):
            column_of(loans, col, source=source)
        check_ids(loans["id"].tolist(), "id", source=source)
        cents = check_column(
            loans["outstanding_cents"],
            "outstanding_cents",
            source=source,
            integral=True,
            low=0,
            high=MAX_AMOUNT,
            unit=" of minor units",
        )
        keys = loans["id"].astype(str).to_numpy()
        grouped = pd.Series(cents.astype(object), index=keys).groupby(level=0).sum()
        table: Mapping[str, Any] = {str(k): int(v) for k, v in grouped.items()}
        over = sum(1 for v in table.values() if v >= MAX_AMOUNT)
        if over:
            raise InputError(
                f"{source}, column 'outstanding_cents': the loans of {over} borrower(s) add up "
                "to 2**56 minor units or more (the declared bound per lender)",
                column="outstanding_cents",
                rows=over,
            )
    elif isinstance(loans, Mapping):
        table = loans
    else:
        raise ConfigError("loans must be a mapping id -> amount or a table (id, outstanding_cents)")
    out = np.zeros(len(ids), dtype=np.uint64)
    not_int = out_of_range = 0
    for i, borrower in enumerate(ids):
        value = table.get(borrower, 0)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            not_int += 1
        elif not 0 <= int(value) < MAX_AMOUNT:
            out_of_range += 1
        else:
            out[i] = int(value)
    if not_int or out_of_range:
        raise InputError(
            f"{source}: {not_int} amount(s) of agreed borrowers are not integers (minor units) "
            f"and {out_of_range} lie outside [0, 2**56); correct them (no value is shown here)",
            column="outstanding_cents",
            rows=not_int + out_of_range,
        )
    return out


def exposure_component(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Cross-lender exposure.

    Parameters (``params``): ``ids`` — the agreed borrower ids, in order. Roles: ``lender``
    (input ``loans``) and exactly one ``result`` party. Returns, at the result party,
    ``{"ids": [...], "totals": [int, ...]}``; at other parties ``{"ids": [...], "totals": None}``.
    """
    ids = [str(i) for i in params.get("ids", [])]
    if not ids:
        raise ConfigError("exposure needs a non-empty list of agreed borrower ids ('ids')")
    if len(set(ids)) != len(ids):
        raise ConfigError("the agreed borrower ids must be unique")
    lenders = ctx.parties_with(LENDER)
    results = ctx.parties_with(RESULT)
    if len(lenders) < 2 or len(results) != 1:
        raise ConfigError("exposure needs at least two lenders and exactly one result party")
    if len(lenders) > 256:
        raise ConfigError("exposure supports at most 256 lenders")
    result = results[0]
    own = None
    task = ctx.progress.task("exposure", total=1)
    if ctx.has_role(LENDER):
        if "loans" not in inputs:
            raise ConfigError(f"lender {ctx.party!r} has no 'loans' input")
        own = run_lender(ctx, lender_amounts(ids, inputs["loans"]), lenders, result)
    totals = None
    if ctx.party == result:
        totals = [int(v) for v in run_result(ctx, len(ids), lenders, own)]
    task.advance()
    return {"ids": ids, "totals": totals}


def plaintext_exposure(ids: Sequence[str], loans_by_lender: Mapping[str, Any]) -> list[int]:
    """The plaintext reference: what the protocol must compute, exactly."""
    total = np.zeros(len(ids), dtype=object)
    for loans in loans_by_lender.values():
        total = total + lender_amounts(ids, loans).astype(object)
    return [int(v) for v in total]
