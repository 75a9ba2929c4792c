"""Process-wide settings, validated once at the boundary.

Nothing here is global state: a :class:`Settings` value is built from the environment (or a
node config) by the caller and passed down explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from privfin.errors import ConfigError, InsecureModeError

__all__ = ["Mode", "Settings", "require_insecure_allowed"]

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


def require_insecure_allowed(settings: Settings, what: str) -> None:
    """Raise :class:`InsecureModeError` unless ``what`` may run under ``settings``."""
    if settings.mode == "production" and not settings.allow_insecure:
        raise InsecureModeError(
            f"{what} is an insecure mode and is refused in production mode; "
            "set mode='development' or allow_insecure=True (PRIVFIN_ALLOW_INSECURE=1) "
            "to enable it explicitly"
        )
