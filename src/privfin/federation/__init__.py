"""Federation: the wire codec and the transports that carry messages between parties.

Nothing that crosses a party boundary is pickled: every message goes through
:mod:`privfin.federation.codec`, whose decoder checks sizes, types, dtypes and shapes.
"""
