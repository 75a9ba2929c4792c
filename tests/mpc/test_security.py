"""Roles, insecure-mode refusal and tampering: failures must be loud."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from privfin.config import Settings
from privfin.errors import DecodeError, InsecureModeError, ProtocolAbort
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.federation.transport import MessageKey
from privfin.mpc.messages import Opening
from privfin.mpc.roles import RevealDenied
from privfin.mpc.session import Session
from privfin.runtime import simulate

from ._setups import DEV, TWO

X = np.arange(12, dtype=np.float64).reshape(3, 4) - 5.5


def _reveal_to(target: str) -> Any:
    def program(ctx: Any, params: Any, inputs: Any) -> Any:
        s = Session.from_params(ctx, params)
        x = s.share("a", inputs.get("x"))
        return (x * x).reveal(target)

    return program


@pytest.mark.parametrize("target", ["a", "b", "nobody"])
def test_an_intermediate_cannot_be_revealed_to_a_non_result_party(target: str) -> None:
    hub = MemoryHub()
    with pytest.raises(RevealDenied, match="not a result party"):
        simulate(_reveal_to(target), TWO, inputs={"a": {"x": X}}, settings=DEV, hub=hub)
    assert not [k for k, _ in hub.wire if k.tag == "mpc.reveal"]  # refused before sending


def test_reveal_to_the_result_party_only() -> None:
    out = simulate(_reveal_to("r"), TWO, inputs={"a": {"x": X}}, settings=DEV)
    assert out["a"] is None and out["b"] is None
    assert np.abs(out["r"] - X * X).max() < 1e-3


def test_dealer_is_refused_in_production_mode() -> None:
    dealer = {"triples": "dealer"}
    with pytest.raises(InsecureModeError, match=r"trusted dealer.*triples='ot'"):
        simulate(_reveal_to("r"), TWO, params=dealer, inputs={"a": {"x": X}}, settings=Settings())
    out = simulate(
        _reveal_to("r"),
        TWO,
        params=dealer,
        inputs={"a": {"x": X}},
        settings=Settings(mode="production", allow_insecure=True),
    )
    assert out["r"] is not None


def test_production_mode_uses_dealer_free_ot_triples_by_default() -> None:
    def program(ctx: Any, params: Any, inputs: Any) -> Any:
        s = Session.from_params(ctx, params)
        x = s.share("a", inputs.get("x"))
        return {"name": s.provider.name, "trusted": s.provider.trusted, "y": (x * x).reveal("r")}

    out = simulate(program, TWO, inputs={"a": {"x": X}}, settings=Settings(), seed=4)
    assert out["a"]["name"] == "ot" and out["a"]["trusted"] == ()
    assert np.abs(out["r"]["y"] - X * X).max() < 1e-3
    # development mode keeps the (faster, insecure) dealer as its default
    dev = simulate(program, TWO, inputs={"a": {"x": X}}, settings=DEV, seed=4)
    assert dev["a"]["name"] == "dealer"
    # three computing parties: replicated sharing; four: only the dealer, refused
    three = {**TWO, "c": ("compute",)}
    out3 = simulate(program, three, inputs={"a": {"x": X}}, settings=Settings(), seed=4)
    assert out3["a"]["name"] == "rss3" and out3["a"]["trusted"] == ()
    assert np.abs(out3["r"]["y"] - X * X).max() < 1e-3
    four = {**three, "d": ("compute",)}
    with pytest.raises(InsecureModeError, match=r"triples='ot'.*triples='rss3'"):
        simulate(program, four, inputs={"a": {"x": X}}, settings=Settings())


def test_a_party_without_data_role_cannot_provide_input() -> None:
    roles = {"a": ("compute",), "b": ("data", "compute"), "r": ("result",)}
    with pytest.raises(Exception, match="has no role 'data'"):
        simulate(_reveal_to("r"), roles, inputs={"a": {"x": X}}, settings=DEV)


def test_no_input_value_crosses_the_wire_in_clear() -> None:
    hub = MemoryHub()
    simulate(_reveal_to("r"), TWO, inputs={"a": {"x": X}}, settings=DEV, hub=hub)
    encoded = (np.rint(X * 2**16).astype(np.int64)).tobytes()
    for key, payload in hub.wire:
        assert encoded not in payload, key


class TamperingHub(MemoryHub):
    """A hub that replaces the first message with a given tag by ``forge(key, payload)``."""

    def __init__(self, tag: str, forge: Any) -> None:
        super().__init__()
        self.tag = tag
        self.forge = forge
        self.done = False

    def _deliver(self, key: MessageKey, payload: bytes) -> None:
        if key.tag == self.tag and not self.done:
            self.done = True
            payload = self.forge(key, payload)
        super()._deliver(key, payload)


def _float_opening(key: MessageKey, payload: bytes) -> bytes:
    # a well-formed message frame whose array has the wrong dtype
    body = codec.encode(Opening(values=np.zeros(3, np.uint64)))
    return body.replace(b"<u8", b"<f8")


def _short_opening(key: MessageKey, payload: bytes) -> bytes:
    return codec.encode(Opening(values=np.zeros(1, np.uint64)))


def _garbage(key: MessageKey, payload: bytes) -> bytes:
    return payload[:-7]


@pytest.mark.parametrize(
    ("tag", "forge", "error"),
    [
        ("mpc.open", _float_opening, DecodeError),
        ("mpc.open", _garbage, DecodeError),
        ("mpc.input", _garbage, DecodeError),
        ("mpc.open", _short_opening, ProtocolAbort),
        ("mpc.reveal", _garbage, DecodeError),
    ],
)
def test_tampered_share_messages_fail_loudly(tag: str, forge: Any, error: type) -> None:
    hub = TamperingHub(tag, forge)
    with pytest.raises(error):
        simulate(_reveal_to("r"), TWO, inputs={"a": {"x": X}}, settings=DEV, hub=hub, timeout=5)


def test_semi_honest_limit_a_consistent_wrong_share_is_not_detected() -> None:
    """Additive sharing has no MAC: a computing party that adds an offset to its (well-formed)
    share shifts the output undetected. Documented in SPEC.md (semi-honest threat model)."""

    def shift(key: MessageKey, payload: bytes) -> bytes:
        msg = codec.decode(payload)
        return codec.encode(type(msg)(label=msg.label, values=msg.values + np.uint64(1 << 16)))

    hub = TamperingHub("mpc.reveal", shift)
    out = simulate(_reveal_to("r"), TWO, inputs={"a": {"x": X}}, settings=DEV, hub=hub)
    assert np.abs(out["r"] - (X * X + 1)).max() < 1e-3
