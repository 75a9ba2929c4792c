"""Providers of correlated randomness (Beaver triples, truncation pairs, random bits).

One interface (:class:`~privfin.mpc.providers.base.CorrelatedRandomness`), several
implementations: :mod:`~privfin.mpc.providers.dealer` (trusted dealer) and
:mod:`~privfin.mpc.providers.paillier` (dealer-free, 2 parties, Paillier),
:mod:`~privfin.mpc.providers.ot` (dealer-free, 2 parties, IKNP OT extension) and
:mod:`~privfin.mpc.providers.rss3` (3 parties, replicated sharing: no triples at all).
"""

from privfin.mpc.providers.base import CorrelatedRandomness, Shape

__all__ = ["CorrelatedRandomness", "Shape"]
