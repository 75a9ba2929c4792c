"""What a failing party tells its peers ([08] item 7): a fixed vocabulary chosen by the
exception's class, never the exception's text."""

from __future__ import annotations

import pytest

from privfin.errors import (
    AuthenticationError,
    BudgetExceededError,
    ConfigError,
    DecodeError,
    PeerTimeout,
    ProtocolAbort,
)
from privfin.node.runner import peer_reason

ROLES = {"bank": ["guest"], "telecom": ["host"], "lender_b": ["host"]}
SECRET = "invalid literal for int(): '175788512k' in /srv/data/loans_ACME.csv"


@pytest.mark.parametrize(
    ("exc", "kwargs", "expected"),
    [
        (ValueError(SECRET), {}, "lender_b: input rejected"),
        (OSError(SECRET), {"loading": True}, "lender_b: input rejected"),
        (ConfigError(SECRET), {}, "lender_b: input rejected"),
        (KeyError(SECRET), {}, "lender_b: input rejected"),
        (ProtocolAbort(SECRET, party="telecom"), {}, "lender_b: protocol violation by telecom"),
        (ProtocolAbort(SECRET, party="stranger"), {}, "lender_b: protocol aborted"),
        (ProtocolAbort(SECRET, party="lender_b"), {}, "lender_b: protocol aborted"),
        (PeerTimeout("bank", "pk", 3), {}, "lender_b: no message from bank in time"),
        (DecodeError(SECRET), {}, "lender_b: malformed message from a peer"),
        (AuthenticationError(SECRET), {}, "lender_b: authentication of a peer failed"),
        (BudgetExceededError(SECRET), {}, "lender_b: privacy budget exceeded"),
        (RuntimeError(SECRET), {}, "lender_b: internal error"),
        (MemoryError(), {}, "lender_b: internal error"),
        (ProtocolAbort(SECRET), {"cancelled": True}, "lender_b: cancelled by its operator"),
        (
            ProtocolAbort(SECRET),
            {"cancelled": True, "timed_out": True},
            "lender_b: the job's time limit was reached",
        ),
        (
            ProtocolAbort(SECRET, party="bank"),
            {"aborted_by": "bank"},
            "lender_b: stopped because bank aborted the job",
        ),
    ],
)
def test_peer_reason_vocabulary(exc: BaseException, kwargs: dict, expected: str) -> None:
    got = peer_reason("lender_b", exc, roles=ROLES, **kwargs)
    assert got == expected
    assert "175788512" not in got and "/srv" not in got
