"""Unbalanced PSI (ECDH-OPRF + a filter of the server's OPRF outputs). See SPEC.md §5.

The server (10M+ items) runs :meth:`OprfServer.setup` once (offline); clients fetch its
:class:`OprfFilter` once per version and then each query costs work proportional to the
query: one blinding, one server evaluation and one unblinding per item.
"""

from privfin.psi.unbalanced.filter import FilterCache, OprfFilter
from privfin.psi.unbalanced.server import AuditRecord, OprfServer, QueryPolicy

__all__ = ["AuditRecord", "FilterCache", "OprfFilter", "OprfServer", "QueryPolicy"]
