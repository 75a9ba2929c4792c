"""Process-wide settings, validated once at the boundary.

Nothing here is global state: a :class:`Settings` value is built from a node config, or from
the environment (:meth:`Settings.from_env`, the default of simulations and estimators), by the
caller and passed down explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from privfin.errors import ConfigError, InsecureModeError

__all__ = [
    "HOW_TO_ALLOW_INSECURE",
    "Mode",
    "Settings",
    "require_insecure_allowed",
    "require_peer_ou_allowed",
]

Mode = str  # "production" or "development"
_MODES = ("production", "development")


@dataclass(frozen=True)
class Settings:
    """Settings that change behaviour across layers.

    Parameters
    ----------
    mode:
        ``"production"`` (default) refuses insecure modes unless ``allow_insecure`` is set;
        ``"development"`` allows them with a warning in the job log.
    allow_insecure:
        Explicit opt-in to insecure modes (trusted dealer, simulated enclave) in production.
    """

    mode: Mode = "production"
    allow_insecure: bool = False

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ConfigError(f"mode must be one of {_MODES}, got {self.mode!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``PRIVFIN_MODE`` and ``PRIVFIN_ALLOW_INSECURE`` (``1``/``true``)."""
        env = os.environ if env is None else env
        flag = env.get("PRIVFIN_ALLOW_INSECURE", "").strip().lower()
        if flag not in ("", "0", "1", "true", "false", "yes", "no"):
            raise ConfigError(f"PRIVFIN_ALLOW_INSECURE must be a boolean, got {flag!r}")
        return cls(
            mode=env.get("PRIVFIN_MODE", "production").strip().lower() or "production",
            allow_insecure=flag in ("1", "true", "yes"),
        )


#: Where the switches of :func:`require_insecure_allowed` live (named in its refusal).
HOW_TO_ALLOW_INSECURE = (
    "set mode='development' or allow_insecure=True (a node: 'mode'/'allow_insecure' in its "
    "config; a simulation or estimator: PRIVFIN_MODE=development or PRIVFIN_ALLOW_INSECURE=1 "
    "in the environment, or `privfin simulate --mode development`)"
)


def require_insecure_allowed(settings: Settings, what: str, secure: str | None = None) -> None:
    """Raise :class:`InsecureModeError` unless ``what`` may run under ``settings``.

    ``secure`` names the secure alternative, if there is one; the refusal says it first.
    """
    if settings.mode == "production" and not settings.allow_insecure:
        instead = f"; the secure alternative: {secure}" if secure else ""
        raise InsecureModeError(
            f"{what} is an insecure mode and is refused in production mode{instead}; "
            f"to enable it explicitly, {HOW_TO_ALLOW_INSECURE}"
        )


def require_peer_ou_allowed(settings: Settings, what: str) -> None:
    """Refuse to compute on a *peer's* Okamoto–Uchiyama key in production mode unless
    ``allow_insecure`` is set (same switch as :func:`require_insecure_allowed`).

    A Paillier key comes with a proof that its modulus is well formed
    (:func:`privfin.he.paillier.verify_modulus`); an OU modulus ``n = p**2 * q`` has none here
    (a ``p**2 q`` well-formedness proof is not implemented). A key owner that picks ``n`` with
    extra prime factors, or ``p`` and ``q`` of other sizes, gives Z*_n components that the
    encryption randomness and the masks of a party computing on its ciphertexts do not cover,
    and may read that party's values from the replies it decrypts. Use Paillier for a key held
    by another party; a party's use of its *own* OU key needs no such check.

    Parameters
    ----------
    what:
        What is refused, e.g. ``"SecureBoost host 'bank': the guest's OU key"``.

    Raises
    ------
    InsecureModeError
        In production mode without ``allow_insecure``.
    """
    if settings.mode == "production" and not settings.allow_insecure:
        raise InsecureModeError(
            f"{what}: computing on a peer's Okamoto-Uchiyama key is refused in production "
            "mode, because an OU modulus carries no proof that it is well formed and a key "
            "owner who chose a malformed one could read this party's values beyond the masks "
            "in the replies it decrypts; use the Paillier scheme (its keys carry a modulus "
            f"proof), or, to accept it explicitly, {HOW_TO_ALLOW_INSECURE}"
        )
