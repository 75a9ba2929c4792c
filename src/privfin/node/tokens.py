"""The operator API's bearer token: where it lives, created once (0600), read back.

Its own module, so that a client of a node (the CLI, :mod:`privfin.node.cluster`) finds the
token without importing the operator API itself (FastAPI, the job runner).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from privfin.errors import ConfigError
from privfin.node.config import NodeConfig

__all__ = ["TOKEN_FILE", "ensure_token", "read_token", "token_path"]

TOKEN_FILE = "operator.token"  # noqa: S105 (a file name, not a secret)


def token_path(config: NodeConfig) -> Path:
    return Path(config.operator.token_file or Path(config.state_dir) / TOKEN_FILE)


def ensure_token(config: NodeConfig) -> Path:
    """Create the operator token file (0600) if it does not exist; returns its path."""
    path = token_path(config)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    return path


def read_token(path: str | Path) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the operator token {path}: {exc.strerror or exc}") from None
    if len(token) < 32:
        raise ConfigError(f"the operator token in {path} is too short")
    return token
