"""Unbalanced PSI inside the ``psi`` component."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from privfin.errors import ConfigError
from privfin.psi._prepare import PsiParams, aligned_output, nothing, prepare
from privfin.psi.unbalanced.client import run_client
from privfin.psi.unbalanced.filter import FilterCache
from privfin.psi.unbalanced.server import OprfServer, QueryPolicy, run_server
from privfin.runtime import Context

__all__ = ["run_unbalanced"]


def run_unbalanced(
    ctx: Context,
    p: PsiParams,
    params: Mapping[str, Any],
    inputs: Mapping[str, Any],
) -> dict[str, Any]:
    """Dispatch to the client or server role (see :func:`privfin.psi.psi_component`)."""
    servers = ctx.parties_with("server")
    clients = ctx.parties_with("client")
    if len(servers) != 1 or len(clients) != 1 or len(ctx.roles) != 2:
        raise ConfigError("unbalanced psi needs exactly one 'server' and one 'client'")
    if p.cardinality_only:
        raise ConfigError("unbalanced psi does not offer cardinality_only; use protocol 'ecdh'")
    agreed = p.agreed()
    if ctx.party == servers[0]:
        server = inputs.get("server")
        table = inputs.get("table")
        if server is None:
            prepared, table = prepare(inputs, p)
            defaults = QueryPolicy()
            policy = QueryPolicy(
                max_items_per_query=int(
                    params.get("max_items_per_query", defaults.max_items_per_query)
                ),
                max_items_per_window=int(
                    params.get("max_items_per_window", defaults.max_items_per_window)
                ),
            )
            server = OprfServer.setup(
                prepared.keys,
                random=ctx.random,
                normalize="exact",
                policy=policy,
                compute=ctx.compute,
                progress=ctx.progress,
                audit=lambda r: ctx.log.info("psi.oprf query %s", r.as_dict()),
            )
            server.prepared = prepared
        if not isinstance(server, OprfServer):
            raise ConfigError("the 'server' input must be an OprfServer")
        if server.prepared.normalize != p.normalize:
            raise ConfigError(
                f"the server's ids were normalised with {server.prepared.normalize!r}, "
                f"the job declares {p.normalize!r}"
            )
        got = run_server(ctx, server, clients[0], agreed, reveal_to_server=p.reveal_all)
        if got is None:
            return nothing()
        return aligned_output(server.prepared, got, table, p.output)
    prepared, table = prepare(inputs, p)
    cache = inputs.get("filter_cache") or FilterCache()
    if not isinstance(cache, FilterCache):
        raise ConfigError("the 'filter_cache' input must be a FilterCache")
    matched = run_client(ctx, prepared, servers[0], agreed, cache, reveal_to_server=p.reveal_all)
    return aligned_output(prepared, matched, table, p.output)
