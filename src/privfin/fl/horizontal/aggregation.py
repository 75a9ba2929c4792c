"""The two ways a horizontal protocol sums its clients' vectors, behind one interface:
``"secagg"`` (masking secure aggregation, :mod:`privfin.fl.horizontal.secagg`) and ``"ckks"``
(additive CKKS under a key the clients share, :mod:`privfin.fl.horizontal.ckksagg`). Their
trust models differ; see the two SPEC.md files."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from privfin.errors import ConfigError
from privfin.fl.horizontal.ckksagg import (
    CKKSAggClient,
    CKKSAggParams,
    CKKSAggServer,
    CKKSClientKey,
    client_setup,
    server_setup,
)
from privfin.fl.horizontal.secagg import SecAggClient, SecAggParams, SecAggResult, SecAggServer
from privfin.he.ckks import CKKSContext
from privfin.runtime import Context

__all__ = ["AGGREGATIONS", "ClientAggregation", "ServerAggregation"]

AGGREGATIONS = ("secagg", "ckks")


def _ckks_params(sa: SecAggParams) -> CKKSAggParams:
    return CKKSAggParams(
        dim=sa.dim,
        min_clients=sa.threshold,
        stage_timeout=sa.stage_timeout,
        client_timeout=sa.client_timeout,
    )


def _check(how: str) -> None:
    if how not in AGGREGATIONS:
        raise ConfigError(f"aggregation must be one of {AGGREGATIONS}, got {how!r}")


class ServerAggregation:
    """The server's side: :meth:`setup` once per job (CKKS: receive the public context), then
    :meth:`run` per round. ``threshold`` of the :class:`SecAggParams` is CKKS's
    ``min_clients``; its quantiser is not used by CKKS."""

    def __init__(
        self, ctx: Context, how: str, clients: Sequence[str], *, prefix: str, timeout: float
    ) -> None:
        _check(how)
        self.ctx, self.how, self.clients = ctx, how, sorted(clients)
        self.prefix, self.timeout = prefix, timeout
        self.public: CKKSContext | None = None

    def setup(self) -> None:
        if self.how == "ckks":
            self.public = server_setup(
                self.ctx, self.clients, prefix=f"{self.prefix}.ck", timeout=self.timeout
            )

    def run(self, participants: Sequence[str], sa: SecAggParams, round_id: int) -> SecAggResult:
        if self.how == "secagg":
            return SecAggServer(self.ctx, participants, sa, round_id, prefix=self.prefix).run()
        if self.public is None:
            raise ConfigError("CKKS aggregation needs setup() first")
        return CKKSAggServer(
            self.ctx, participants, _ckks_params(sa), round_id, self.public,
            prefix=f"{self.prefix}.ck",
        ).run()  # fmt: skip


class ClientAggregation:
    """A client's side: :meth:`setup` once per job (CKKS: the key set-up, with every client),
    then :meth:`run` per round it takes part in (``True`` if its vector is in the sum)."""

    def __init__(
        self,
        ctx: Context,
        how: str,
        server: str,
        clients: Sequence[str],
        *,
        prefix: str,
        timeout: float,
    ) -> None:
        _check(how)
        self.ctx, self.how, self.server = ctx, how, server
        self.clients = sorted(clients)
        self.prefix, self.timeout = prefix, timeout
        self.key: CKKSClientKey | None = None

    def setup(self) -> None:
        if self.how == "ckks":
            self.key = client_setup(
                self.ctx, self.server, self.clients, prefix=f"{self.prefix}.ck",
                timeout=self.timeout,
            )  # fmt: skip

    def run(self, sa: SecAggParams, round_id: int, x: np.ndarray) -> bool:
        if self.how == "secagg":
            return SecAggClient(self.ctx, self.server, sa, round_id, x, prefix=self.prefix).run()
        if self.key is None:
            raise ConfigError("CKKS aggregation needs setup() first")
        return CKKSAggClient(
            self.ctx, self.server, _ckks_params(sa), round_id, x, self.key,
            prefix=f"{self.prefix}.ck",
        ).run()  # fmt: skip
