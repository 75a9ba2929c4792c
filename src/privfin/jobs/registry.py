"""The registry of job components: a name in a job spec -> the function that runs it.

Components are resolved lazily (``module:function``) so importing the registry imports no
protocol. Each protocol package adds its line here when it lands.

:func:`get_component` returns the component behind its input check (:data:`INPUT_CHECKS`):
the party's own tables are validated with :mod:`privfin.data.validate` before the component
sends its first message, so a NaN, an infinite value, a non-number or a label outside its set
stops the job locally with an :class:`~privfin.errors.InputError` naming the column and the
number of bad rows (never a value). Components that read typed columns themselves (``exposure``,
``mpc_stats``, ``ss_lr``, ``psi``) check them where they read them.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from privfin.data.validate import check_column, check_features, check_labels
from privfin.errors import ConfigError
from privfin.runtime import Component, Context

__all__ = ["COMPONENTS", "RESTARTS", "get_component"]

COMPONENTS: dict[str, str] = {
    "ping": "privfin.jobs.diagnostics:ping_component",
    "exposure": "privfin.mpc.exposure.component:exposure_component",
    "psi": "privfin.psi.component:psi_component",
    "mpc_stats": "privfin.mpc.stats:mpc_stats",
    "ss_lr": "privfin.mpc.lr:ss_lr",
    "hetero_lr": "privfin.fl.vertical.hetero_lr.component:hetero_lr_component",
    "hetero_binning": "privfin.fl.vertical.binning.component:hetero_binning_component",
    "hetero_pearson": "privfin.fl.vertical.binning.pearson:hetero_pearson_component",
    "vertical_scaling": "privfin.fl.vertical.binning.scaling:vertical_scaling_component",
    "vertical_lr_scoring": "privfin.fl.vertical.scoring:vertical_lr_scoring",
    "secureboost": "privfin.fl.vertical.secureboost.component:secureboost_component",
    "tee": "privfin.tee.component:tee_component",
    "secagg": "privfin.fl.horizontal.secagg.component:secagg_component",
    "hfl": "privfin.fl.horizontal.fedavg.component:hfl_component",
    "hfl_gbdt": "privfin.fl.horizontal.gbdt.component:hfl_gbdt_component",
    "secureboost_predict": (
        "privfin.fl.vertical.secureboost.component:secureboost_predict_component"
    ),
}

#: Components of single-component jobs, not pipeline components, that rerun from the start
#: after a crash rather than resume (pipeline components declare it: ``resumable``): their
#: messages are never read again after a crash, so the node holds their payloads in memory
#: only (``JobRunner.volatile``). ``ping`` measures what a protocol's rounds cost, and every
#: many-round protocol runs this way.
RESTARTS: frozenset[str] = frozenset({"ping"})


InputCheck = Callable[[Context, Mapping[str, Any], Mapping[str, Any]], None]


def _features(inputs: Mapping[str, Any], params: Mapping[str, Any], *, allow_missing: bool) -> None:
    """Check the feature matrix a vertical component will read: ``X``, or the aligned
    ``table`` without its id and label columns."""
    if inputs.get("X") is not None:
        x = inputs["X"]
        names = inputs.get("feature_names")
        check_features(x, source="input 'X'", names=names, allow_missing=allow_missing)
        return
    table = inputs.get("table")
    if table is not None and hasattr(table, "columns"):
        drop = {str(params.get("id_column", "id")), str(params.get("label", "y"))}
        cols = [c for c in table.columns if str(c) not in drop]
        check_features(table[cols], source="input 'table'", allow_missing=allow_missing)


def _labels(
    inputs: Mapping[str, Any], params: Mapping[str, Any], allowed: tuple[float, ...] | None
) -> None:
    """Check the labels (``y``, or the label column of ``table``) if this party holds them:
    in ``allowed``, or finite numbers if ``allowed`` is None."""
    label = str(params.get("label", "y"))
    if inputs.get("y") is not None:
        values, source, column = inputs["y"], "input 'y'", "y"
    else:
        table = inputs.get("table")
        if table is None or not hasattr(table, "columns") or label not in table.columns:
            return
        values, source, column = table[label], "input 'table'", label
    if allowed is None:
        check_column(values, column, source=source)
    else:
        check_labels(values, column, allowed=allowed, source=source)


def _binary_features(allow_missing: bool) -> InputCheck:
    def check(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> None:
        _features(inputs, params, allow_missing=allow_missing)
        _labels(inputs, params, (0, 1))

    return check


def _features_only(allow_missing: bool) -> InputCheck:
    def check(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> None:
        _features(inputs, params, allow_missing=allow_missing)

    return check


def _secureboost(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> None:
    _features(inputs, params, allow_missing=True)  # NaN = missing (its own branch)
    objective = params.get("objective", "binary")
    if objective == "binary":
        _labels(inputs, params, (0, 1))
    elif objective == "multiclass" and isinstance(params.get("n_classes"), int):
        _labels(inputs, params, tuple(range(int(params["n_classes"]))))
    else:
        _labels(inputs, params, None)


def _scoring(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> None:
    _features(inputs, params, allow_missing=False)
    if inputs.get("coef") is not None:
        check_column(inputs["coef"], "coef", source="input 'coef'")


#: Input checks run before the component (by component name).
INPUT_CHECKS: dict[str, InputCheck] = {
    "hetero_lr": _binary_features(allow_missing=False),
    "hetero_binning": _binary_features(allow_missing=True),  # NaN gets the missing bin
    "hetero_pearson": _features_only(allow_missing=False),
    "vertical_scaling": _features_only(allow_missing=True),  # NaN stays NaN
    "vertical_lr_scoring": _scoring,
    "secureboost": _secureboost,
    "secureboost_predict": _features_only(allow_missing=True),
    "hfl": _binary_features(allow_missing=False),
    "hfl_gbdt": _binary_features(allow_missing=True),  # NaN = missing (its own branch)
}


def get_component(name: str) -> Component:
    """The component registered under ``name``, behind its input check (if it has one);
    :class:`ConfigError` if there is none."""
    target = COMPONENTS.get(name)
    if target is None:
        known = ", ".join(sorted(COMPONENTS))
        raise ConfigError(f"unknown component {name!r}; known components: {known}")
    module, _, attr = target.partition(":")
    fn: Component = getattr(importlib.import_module(module), attr)
    check = INPUT_CHECKS.get(name)
    if check is None:
        return fn

    @functools.wraps(fn)
    def checked(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
        check(ctx, params, inputs)
        return fn(ctx, params, inputs)

    return checked
