"""Hetero feature engineering: WOE/IV binning (component ``hetero_binning``), hetero Pearson
correlation (component ``hetero_pearson``) and per-party scaling (``vertical_scaling``).

See ``SPEC.md`` in this folder for roles, messages and what each party learns.

Each name is imported on first use (module ``__getattr__``): importing the package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from privfin._lazy import lazy_exports

if TYPE_CHECKING:  # the names below, for type checkers and IDEs
    from privfin.fl.vertical.binning.common import BinParams, woe_transform
    from privfin.fl.vertical.binning.component import hetero_binning_component
    from privfin.fl.vertical.binning.pearson import hetero_pearson_component
    from privfin.fl.vertical.binning.scaling import Scaler, vertical_scaling_component

__all__ = [
    "BinParams",
    "Scaler",
    "hetero_binning_component",
    "hetero_pearson_component",
    "vertical_scaling_component",
    "woe_transform",
]

_EXPORTS = {
    "BinParams": "privfin.fl.vertical.binning.common",
    "woe_transform": "privfin.fl.vertical.binning.common",
    "hetero_binning_component": "privfin.fl.vertical.binning.component",
    "hetero_pearson_component": "privfin.fl.vertical.binning.pearson",
    "Scaler": "privfin.fl.vertical.binning.scaling",
    "vertical_scaling_component": "privfin.fl.vertical.binning.scaling",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, __all__)
