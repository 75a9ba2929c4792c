"""``privfin.psi.simulate``: run the real protocol between in-process parties."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from privfin.errors import ConfigError
from privfin.federation.memory import MemoryHub
from privfin.federation.transport import validate_name
from privfin.psi.roles import psi_roles
from privfin.runtime import simulate as run_simulation

__all__ = ["simulate"]


def simulate(
    sets: dict[str, list[str]],
    protocol: str = "ecdh",
    cardinality_only: bool = False,
    *,
    reveal_to: str = "both",
    normalize: str = "exact",
    duplicates: str = "first",
    seed: int | None = None,
    hub: MemoryHub | None = None,
    params: Mapping[str, Any] | None = None,
) -> dict[str, list[str] | int | dict[str, Any]]:
    """Run PSI between in-process parties over the memory transport; return what each learns.

    Parameters
    ----------
    sets:
        Party name -> its ids. Two parties: the first receives, the second sends (for
        ``"unbalanced"``: the first is the client, the second the server). Three or more
        parties: n-party ECDH-PSI with the first party as leader.
    protocol:
        ``"ecdh"``, ``"kkrt"``, ``"rr22"`` (two parties) or ``"unbalanced"``.
    cardinality_only:
        Reveal only the intersection size.
    reveal_to:
        ``"both"`` (default here): every party learns the result; ``"receiver"``: only the
        first party does (the others are then absent from the returned dict).
    normalize:
        Id rule; ``"exact"`` (default here) matches Python ``set`` semantics exactly.

    Returns
    -------
    dict
        Party -> its own intersecting ids (each once, as it spelled them, in the agreed order:
        ascending normalised id), or the intersection size if ``cardinality_only``, or (with
        ``params={"dp_epsilon": ...}``) the receiver's DP release of the size.
    """
    if not isinstance(sets, Mapping) or len(sets) < 2:
        raise ConfigError("psi.simulate needs a dict of at least two party -> ids")
    parties = list(sets)
    for party in parties:
        try:
            validate_name("party", party)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    roles = psi_roles(parties, protocol)
    job_params = {
        "protocol": protocol,
        "reveal_to": reveal_to,
        "cardinality_only": cardinality_only,
        "normalize": normalize,
        "duplicates": duplicates,
        **(params or {}),
    }
    inputs = {p: {"ids": list(ids)} for p, ids in sets.items()}
    from privfin.psi.component import psi_component

    outputs = run_simulation(
        psi_component,
        roles,
        params=job_params,
        inputs=inputs,
        component_name="psi",
        seed=seed,
        hub=hub,
    )
    result: dict[str, list[str] | int | dict[str, Any]] = {}
    for party in parties:
        out = outputs[party]
        if out.get("dp") is not None:
            result[party] = dict(out["dp"])
        elif out["ids"] is not None:
            result[party] = list(out["ids"])
        elif out["size"] is not None:
            result[party] = int(out["size"])
    return result
