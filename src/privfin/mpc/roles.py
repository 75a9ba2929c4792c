"""JR/T 0196-2020 roles of an MPC job: data parties, computing parties, result parties.

``data``
    provides inputs; it secret-shares them to the computing parties and learns nothing else.
``compute``
    holds additive shares and runs the online protocol; it sees only uniformly masked values.
``result``
    receives the values the job names as outputs, and nothing else.
``dealer`` (optional, insecure against itself)
    generates correlated randomness (Beaver triples, truncation pairs, random bits).

One party may hold several roles (a bank is typically data, compute and result party).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from privfin.errors import ConfigError

__all__ = ["COMPUTE", "DATA", "DEALER", "RESULT", "MPCRoles", "RevealDenied"]

DATA = "data"
COMPUTE = "compute"
RESULT = "result"
DEALER = "dealer"

MAX_COMPUTE_PARTIES = 8


class RevealDenied(ConfigError):
    """A program tried to reveal a secret-shared value to a party the job does not name as a
    result party (or to open a value that only result parties may see)."""


@dataclass(frozen=True)
class MPCRoles:
    """The parties of one MPC job by role, in an order every party agrees on (sorted)."""

    data: tuple[str, ...]
    compute: tuple[str, ...]
    result: tuple[str, ...]
    dealer: str | None = None

    def __post_init__(self) -> None:
        if not 2 <= len(self.compute) <= MAX_COMPUTE_PARTIES:
            raise ConfigError(
                f"an MPC job needs 2 to {MAX_COMPUTE_PARTIES} parties with role 'compute', "
                f"got {list(self.compute)}"
            )
        if not self.result:
            raise ConfigError("an MPC job needs at least one party with role 'result'")

    @classmethod
    def from_roles(
        cls, roles: Mapping[str, tuple[str, ...]] | Mapping[str, Any], dealer: str | None = None
    ) -> MPCRoles:
        """Build from a job's ``party -> roles`` map. The dealer is ``dealer`` if given, else
        the party with role ``dealer`` if there is one, else ``None``."""

        def having(role: str) -> tuple[str, ...]:
            return tuple(sorted(p for p, rs in roles.items() if role in tuple(rs)))

        dealers = having(DEALER)
        if dealer is None and len(dealers) > 1:
            raise ConfigError(f"at most one party may have role 'dealer', got {list(dealers)}")
        chosen = dealer if dealer is not None else (dealers[0] if dealers else None)
        if chosen is not None and chosen not in roles:
            raise ConfigError(f"dealer {chosen!r} is not a party of the job")
        return cls(data=having(DATA), compute=having(COMPUTE), result=having(RESULT), dealer=chosen)

    def check_result_party(self, party: str) -> None:
        """Raise :class:`RevealDenied` unless ``party`` is a result party of the job."""
        if party not in self.result:
            raise RevealDenied(
                f"party {party!r} is not a result party of this job (result parties: "
                f"{list(self.result)}); a secret-shared value can only be revealed to them"
            )
