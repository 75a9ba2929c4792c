"""Fixtures of the MPC tests: every protocol test runs against each provider setup."""

from __future__ import annotations

import pytest

from ._setups import SETUPS, Setup


@pytest.fixture(params=SETUPS, ids=[s.name for s in SETUPS])
def setup(request: pytest.FixtureRequest) -> Setup:
    s: Setup = request.param
    return s
