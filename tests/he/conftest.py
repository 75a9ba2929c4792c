"""Session-wide small (insecure, test-only) keys for the HE tests."""

from __future__ import annotations

import random
from typing import Any

import pytest

from privfin.he import ou, paillier


@pytest.fixture(scope="session")
def paillier_keys() -> tuple[paillier.PublicKey, paillier.PrivateKey]:
    return paillier.generate_keypair(
        1024, rng=random.Random(20240501), insecure_allow_small_keys=True
    )


@pytest.fixture(scope="session")
def paillier_keys_other() -> tuple[paillier.PublicKey, paillier.PrivateKey]:
    return paillier.generate_keypair(512, rng=random.Random(7), insecure_allow_small_keys=True)


@pytest.fixture(scope="session")
def ou_keys() -> tuple[ou.PublicKey, ou.PrivateKey]:
    return ou.generate_keypair(768, rng=random.Random(20240502), insecure_allow_small_keys=True)


@pytest.fixture(scope="session", params=["paillier", "ou"])
def keys(request: pytest.FixtureRequest) -> Any:
    """Both schemes through the same interface."""
    name = "paillier_keys" if request.param == "paillier" else "ou_keys"
    return request.getfixturevalue(name)
