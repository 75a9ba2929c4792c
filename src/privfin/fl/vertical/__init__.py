"""Vertical federated learning: same customers, different features (bank x telecom).

Every component starts from PSI-aligned data ([04]): all parties hold their rows in the same
order of intersecting ids. Sub-packages (each with a ``SPEC.md``: roles, messages, what each
party learns, threat model):

- :mod:`privfin.fl.vertical.hetero_lr` — hetero logistic regression over Paillier, with an
  arbiter (key holder) or without (the guest holds the key); component ``hetero_lr``.
- :mod:`privfin.fl.vertical.secureboost` — hetero SecureBoost (gradient-boosted trees).
- :mod:`privfin.fl.vertical.binning` — hetero WOE/IV binning, IV selection, hetero Pearson.
- :mod:`privfin.fl.vertical.scorecard` — scorecard points from a hetero LR on WOE features.
- :mod:`privfin.fl.vertical.scoring` — joint scoring of new applicants (the guest learns the
  score only).

The estimators are exported here: ``from privfin.fl.vertical import HeteroSecureBoost``. They
share one convention (:mod:`privfin.fl.vertical._estimator`): hyper-parameters in the
constructor, ``fit(X, y)`` with one DataFrame of party-qualified columns (``bank.x0``) or a
mapping ``{party: features}``, scikit-learn's ``get_params``/``set_params``/``clone``, and
``save(path)``/``load(path)``.

Importing this package imports none of them (no side effects, no heavy imports): each name is
imported on first use (module ``__getattr__``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from privfin._lazy import lazy_exports

if TYPE_CHECKING:  # the names below, for type checkers and IDEs
    from privfin.fl.vertical.hetero_lr.estimator import HeteroLogisticRegression
    from privfin.fl.vertical.scorecard import HeteroScorecard
    from privfin.fl.vertical.secureboost.estimator import HeteroSecureBoost

__all__ = ["HeteroLogisticRegression", "HeteroScorecard", "HeteroSecureBoost"]

_EXPORTS = {
    "HeteroLogisticRegression": "privfin.fl.vertical.hetero_lr.estimator",
    "HeteroScorecard": "privfin.fl.vertical.scorecard",
    "HeteroSecureBoost": "privfin.fl.vertical.secureboost.estimator",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, __all__)
