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

Importing this package imports none of them (no side effects, no heavy imports).
"""

from __future__ import annotations

__all__: list[str] = []
