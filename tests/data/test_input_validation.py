"""[08] item 10: bad input data stops a component locally, with the column and the number of
bad rows, and no value of the data in the message (nothing silently summed as 0 or truncated)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from privfin.data.validate import check_column, check_features, check_ids, check_labels
from privfin.errors import ConfigError, InputError
from privfin.jobs.registry import get_component
from privfin.mpc.exposure import exposure_component
from privfin.mpc.exposure.component import lender_amounts
from privfin.psi import psi_component
from privfin.runtime import simulate

LENDERS = ["bank_a", "bank_b", "bank_c"]
SECRET_VALUES = ("1757885.9", "1757885", "175788512k", "C000001", "C000002")


def _no_values(message: str) -> None:
    for v in SECRET_VALUES:
        assert v not in message


def test_exposure_refuses_nan_fraction_inf_and_text_with_counts() -> None:
    loans = pd.DataFrame(
        {
            "id": ["C000001", "C000002", "C000003", "C000004", "C000005", "C000006"],
            "outstanding_cents": [np.nan, 1757885.9, np.inf, 100.0, 5.0, np.nan],
        }
    )
    with pytest.raises(InputError) as info:
        lender_amounts(["C000001", "C000002"], loans)
    msg = str(info.value)
    assert "'outstanding_cents'" in msg
    assert "missing (NaN or empty) in 2 rows" in msg
    assert "infinite in 1 row" in msg
    assert "not a whole number of minor units in 1 row" in msg
    assert info.value.column == "outstanding_cents" and info.value.rows == 4
    _no_values(msg)
    text = pd.DataFrame({"id": ["C000001", "C000002"], "outstanding_cents": ["175788512k", "7"]})
    with pytest.raises(InputError, match="not a number in 1 row") as info:
        lender_amounts(["C000001"], text)
    _no_values(str(info.value))


def test_exposure_before_the_fix_would_have_summed_nan_as_zero() -> None:
    """The previous code grouped and summed: NaN counted as 0 and 1757885.9 became 1757885."""
    loans = pd.DataFrame({"id": ["a", "a", "b"], "outstanding_cents": [np.nan, 10.0, 1757885.9]})
    assert int(loans.groupby("id")["outstanding_cents"].sum()["a"]) == 10  # the silent bug
    with pytest.raises(InputError):
        lender_amounts(["a", "b"], loans)


def test_exposure_valid_float_column_of_whole_cents_is_exact() -> None:
    loans = pd.DataFrame({"id": ["a", "a", "b"], "outstanding_cents": [1.0, 2.0, 2.0**52]})
    assert lender_amounts(["a", "b", "c"], loans).tolist() == [3, 2**52, 0]


def test_exposure_negative_amount_and_sum_over_the_bound() -> None:
    with pytest.raises(
        InputError, match=r"outside the declared range \[0, 2\*\*56\) of minor units in 1 row"
    ):
        lender_amounts(["a"], pd.DataFrame({"id": ["a"], "outstanding_cents": [-1]}))
    big = pd.DataFrame({"id": ["a", "a"], "outstanding_cents": [2**55, 2**55]})
    with pytest.raises(InputError, match="1 borrower"):
        lender_amounts(["a"], big)
    with pytest.raises(InputError, match="missing or empty id"):
        lender_amounts(["a"], pd.DataFrame({"id": ["a", None], "outstanding_cents": [1, 2]}))


def test_exposure_job_fails_at_the_bad_lender_before_it_sends_anything() -> None:
    ids = ["C000001", "C000002"]
    good = pd.DataFrame({"id": ids, "outstanding_cents": [10, 20]})
    bad = pd.DataFrame({"id": ids, "outstanding_cents": [np.nan, 1757885.9]})
    roles = {p: ["lender"] for p in LENDERS}
    roles["bank_a"].append("result")
    inputs = {"bank_a": {"loans": good}, "bank_b": {"loans": bad}, "bank_c": {"loans": good}}
    with pytest.raises(InputError) as info:
        simulate(exposure_component, roles, params={"ids": ids}, inputs=inputs)
    assert "outstanding_cents" in str(info.value)
    _no_values(str(info.value))


def test_mpc_stats_and_ss_lr_name_the_column() -> None:
    from privfin.mpc.lr import _labels
    from privfin.mpc.stats import _table

    table = pd.DataFrame({"income": [1.0, np.nan, np.inf, 4.0], "y": [0, 1, 2, 1]})
    with pytest.raises(
        InputError, match=r"column 'income': missing \(NaN or empty\) in 1 row; infinite in 1 row"
    ):
        _table({"table": table}, ["income"], "p")
    with pytest.raises(
        InputError, match=r"column 'y': not one of the allowed labels \{0, 1\} in 1 row"
    ):
        _labels({"table": table}, "y", "p")
    assert _labels({"table": table.iloc[[0, 1, 3]]}, "y", "p").tolist() == [0.0, 1.0, 1.0]


def test_psi_refuses_missing_and_empty_ids_unless_dropped() -> None:
    ta = pd.DataFrame({"cid": ["c1", None, "  ", "c2", np.nan]})
    tb = pd.DataFrame({"cid": ["c1", "c2"]})
    roles: dict[str, Any] = {"bank": ("receiver",), "telco": ("sender",)}
    with pytest.raises(InputError, match=r"column 'cid': a missing or empty id in 3 row\(s\)"):
        simulate(
            psi_component,
            roles,
            params={"id_column": "cid"},
            inputs={"bank": {"table": ta}, "telco": {"table": tb}},
        )
    out = simulate(
        psi_component,
        roles,
        params={"id_column": "cid", "missing": "drop"},
        inputs={"bank": {"table": ta}, "telco": {"table": tb}},
    )
    assert out["bank"]["keys"] == ["c1", "c2"]
    # an empty cell under "exact" is no id either
    te = pd.DataFrame({"cid": ["c1", ""]})
    with pytest.raises(InputError, match=r"in 1 row"):
        simulate(
            psi_component,
            roles,
            params={"id_column": "cid", "normalize": "exact"},
            inputs={"bank": {"table": te}, "telco": {"table": tb}},
        )


def _check(component: str, params: dict[str, Any], inputs: dict[str, Any]) -> InputError:
    """Run a registered component's input check (it raises before the component runs)."""
    fn = get_component(component)
    with pytest.raises(InputError) as info:
        fn(None, params, inputs)  # type: ignore[arg-type]
    return info.value


@pytest.mark.parametrize("component", ["hetero_lr", "hetero_pearson", "vertical_lr_scoring"])
def test_vertical_components_refuse_nan_and_inf_features(component: str) -> None:
    table = pd.DataFrame({"id": ["a", "b", "c"], "age": [1.0, np.nan, 3.0], "inc": [1, 2, 3]})
    err = _check(component, {}, {"table": table, "X": None})
    assert err.column == "age" and err.rows == 1
    x = np.array([[1.0, np.inf], [2.0, 3.0]])
    err = _check(component, {}, {"X": x, "feature_names": ["f0", "debt"]})
    assert err.column == "debt" and "infinite in 1 row" in str(err)


@pytest.mark.parametrize("component", ["hetero_lr", "hetero_binning", "secureboost"])
def test_vertical_components_refuse_labels_outside_0_1(component: str) -> None:
    table = pd.DataFrame({"id": ["a", "b", "c"], "f": [1.0, 2.0, 3.0], "bad": [0, 1, 2]})
    err = _check(component, {"label": "bad"}, {"table": table})
    assert err.column == "bad" and err.rows == 1
    assert "allowed labels {0, 1}" in str(err)


def test_missing_values_allowed_where_declared() -> None:
    """Binning and SecureBoost give NaN its own bin/branch: NaN passes, inf does not."""
    x = np.array([[np.nan, 1.0], [2.0, 3.0]])
    check_features(x, allow_missing=True)
    err = _check("secureboost", {}, {"X": np.array([[np.inf]]), "y": [1]})
    assert "infinite" in str(err)
    err = _check("secureboost", {"objective": "regression"}, {"X": x, "y": [1.0, np.nan]})
    assert err.column == "y"


def test_helpers() -> None:
    assert check_column([1, 2, 3], "c", integral=True).dtype == np.int64
    assert check_column(pd.Series(["1", "2.5"]), "c").tolist() == [1.0, 2.5]
    assert check_labels([0, 1.0], "y").tolist() == [0.0, 1.0]
    with pytest.raises(InputError, match=r"column 'c': not a whole number in 1 row"):
        check_column([1.0, 1.5], "c", integral=True)
    with pytest.raises(InputError, match="a missing or empty id in 2 rows"):
        check_ids(["a", "", None], "id")
    assert issubclass(InputError, ConfigError)
