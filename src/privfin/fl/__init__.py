"""Federated learning: :mod:`privfin.fl.vertical` (same customers, different features) and
:mod:`privfin.fl.horizontal` (same features, different customers).
Importing this package imports none of its sub-packages."""

from __future__ import annotations

__all__: list[str] = []
