"""Machine-learning building blocks shared by the federated protocols (plaintext, party-local).

Modules (in import order):

- :mod:`privfin.ml.metrics` — binary-classification evaluation used in credit risk: AUC, KS,
  lift and gain tables, confusion matrix at a threshold, population stability index (PSI), each
  with the curve data needed for plots.
- :mod:`privfin.ml.report` — ROC, KS and lift figures (matplotlib, the optional ``plots``
  extra) and a standalone HTML evaluation report with the figures inline; the only I/O is
  writing the file the caller names.
- :mod:`privfin.ml.optim` — element-wise optimisers (SGD, momentum, RMSprop, Adam, Adagrad) and
  learning-rate schedules; each party of a vertical model runs them on its own weights.
- :mod:`privfin.ml.binning` — quantile bins, chi-merge, WOE and IV from per-bin counts.
- :mod:`privfin.ml.he_linalg` — encrypted-vector times plaintext-matrix products over additively
  homomorphic ciphertexts (shared-base multi-exponentiation) and masked slot packing of the
  results (statistical masks, ``2**-stat_bits``).

Security: everything here computes on data the calling party already holds (plaintext) or on
ciphertexts it cannot decrypt; nothing here sends or receives. What a protocol reveals is stated
in the protocol's ``SPEC.md``, not here. Importing this package imports none of its modules.
"""

from __future__ import annotations

__all__: list[str] = []
