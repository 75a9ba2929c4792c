"""Hetero feature engineering: WOE/IV binning (component ``hetero_binning``), hetero Pearson
correlation (component ``hetero_pearson``) and per-party scaling (``vertical_scaling``).

See ``SPEC.md`` in this folder for roles, messages and what each party learns.
"""

from __future__ import annotations

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
