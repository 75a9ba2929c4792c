"""privfin: a privacy-preserving computing platform for finance.

Importing this package has no side effects: no files, threads, sockets or global state are
created. Sub-packages follow the layers of DESIGN.md (imports only go down)::

    errors, config                     bottom: exceptions and validated settings
    crypto, he, federation, compute    pure math; wire codec and transports; compute backends
    data, ml                           datasets (synthetic generator, loaders), learning utilities
    runtime                            Context handed to every protocol component
    psi, mpc, fl, tee, dp              protocols: one module per role, sans-I/O
    jobs, audit, assess, scenarios     platform
    cli, node                          people and other nodes
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
