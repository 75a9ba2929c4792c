"""privfin: a privacy-preserving computing platform for finance.

Importing this package has no side effects: no files, threads, sockets or global state are
created. Sub-packages form layers, bottom first; imports only go down (the import-linter
contracts in pyproject.toml enforce it; docs/architecture.md and docs/index.md describe them)::

    privfin.errors, privfin.config,      exceptions, validated settings (secure or development
    privfin.procwatch                    mode), pool workers that die with their parent
    privfin.crypto, privfin.he,          pure math (randomness, PRG, key exchange, ristretto255;
    privfin.federation, privfin.compute, Paillier, OU, CKKS); wire codec and transports; compute
    privfin.store                        backends; the node's database and its migrations
    privfin.data, privfin.ml             datasets (registry, synthetic generator, loaders);
                                         metrics, reports, optimisers, trees, binning
    privfin.runtime                      the Context handed to every protocol component
    privfin.dp                           differential privacy: mechanisms, accounting, the
                                         budget ledger, DP releases, DP-SGD
    privfin.psi, privfin.mpc, privfin.fl protocols (PSI, MPC, vertical and horizontal FL,
    privfin.tee                          confidential computing): one module per role,
                                         sans-I/O, each with its SPEC.md
    privfin.jobs, privfin.audit          pipelines (spec, negotiation, scheduler); audit log
    privfin.node, privfin.cli            nodes (federation and operator APIs); the command

Planned, not written yet: privfin.assess and privfin.scenarios (platform).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
