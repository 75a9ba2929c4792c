"""Hetero SecureBoost: gradient-boosted trees over vertically partitioned data.

Modules: :mod:`.params` (hyper-parameters), :mod:`.messages` (typed wire messages),
:mod:`.packing` (fixed-point gradient packing), :mod:`.model` (each party's model),
:mod:`.guest` and :mod:`.host` (one module per role), :mod:`.component` (job components
``secureboost`` and ``secureboost_predict``), :mod:`.estimator` (:class:`HeteroSecureBoost`).
The plaintext tree arithmetic lives in :mod:`privfin.ml.trees`. See ``SPEC.md`` for roles,
message flow, what each party learns, and the threat model.

Importing this package imports none of its modules.
"""

from __future__ import annotations

__all__: list[str] = []
