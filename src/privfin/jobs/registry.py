"""The registry of job components: a name in a job spec -> the function that runs it.

Components are resolved lazily (``module:function``) so importing the registry imports no
protocol. Each protocol package adds its line here when it lands.
"""

from __future__ import annotations

import importlib

from privfin.errors import ConfigError
from privfin.runtime import Component

__all__ = ["COMPONENTS", "get_component"]

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
    "secureboost_predict": (
        "privfin.fl.vertical.secureboost.component:secureboost_predict_component"
    ),
}


def get_component(name: str) -> Component:
    """The component registered under ``name``; :class:`ConfigError` if there is none."""
    target = COMPONENTS.get(name)
    if target is None:
        known = ", ".join(sorted(COMPONENTS))
        raise ConfigError(f"unknown component {name!r}; known components: {known}")
    module, _, attr = target.partition(":")
    fn: Component = getattr(importlib.import_module(module), attr)
    return fn
