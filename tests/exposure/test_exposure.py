"""Cross-lender exposure over the memory transport: exactness, leakage, tampering."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.mpc.exposure import exposure_component, plaintext_exposure
from privfin.mpc.exposure.messages import MAX_AMOUNT, MaskedAmounts
from privfin.runtime import simulate

LENDERS = ["bank_a", "bank_b", "bank_c"]


def make_loans(seed: int, n_ids: int = 60) -> tuple[list[str], dict[str, dict[str, int]]]:
    rng = random.Random(seed)
    ids = [f"C{i:06d}" for i in range(n_ids)]
    loans = {p: {i: rng.randrange(1, 10**9) for i in ids if rng.random() < 0.6} for p in LENDERS}
    return ids, loans


def roles(result: str = "bank_a", separate: bool = False) -> dict[str, list[str]]:
    r = {p: ["lender"] for p in LENDERS}
    if separate:
        r[result] = ["result"]
    else:
        r[result] = [*r[result], "result"]
    return r


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("separate", [False, True])
def test_totals_equal_plaintext_sum_exactly(seed: int, separate: bool) -> None:
    ids, loans = make_loans(seed)
    r = roles("bureau" if separate else "bank_a", separate)
    out = simulate(
        exposure_component,
        r,
        params={"ids": ids},
        inputs={p: {"loans": loans[p]} for p in LENDERS},
        seed=seed,
    )
    result = "bureau" if separate else "bank_a"
    assert out[result]["totals"] == plaintext_exposure(ids, loans)
    assert all(out[p]["totals"] is None for p in out if p != result)


def test_extreme_amounts_do_not_wrap() -> None:
    ids = ["x", "y"]
    loans = {p: {"x": MAX_AMOUNT - 1, "y": 0} for p in LENDERS}
    out = simulate(
        exposure_component,
        roles(),
        params={"ids": ids},
        inputs={p: {"loans": loans[p]} for p in LENDERS},
    )
    assert out["bank_a"]["totals"] == [3 * (MAX_AMOUNT - 1), 0]


def test_no_raw_amount_in_any_lender_byte() -> None:
    ids, loans = make_loans(9, n_ids=200)
    hub = MemoryHub()
    simulate(
        exposure_component,
        roles("bureau", separate=True),
        params={"ids": ids},
        inputs={p: {"loans": loans[p]} for p in LENDERS},
        hub=hub,
    )
    assert hub.wire
    for key, payload in hub.wire:
        if key.sender not in LENDERS:
            continue
        for amount in loans[key.sender].values():
            for width, order in ((8, "little"), (8, "big"), (4, "little")):
                if amount < 2 ** (8 * width):
                    assert amount.to_bytes(width, order) not in payload
            assert str(amount).encode() not in payload


def test_rejects_bad_parameters_and_inputs() -> None:
    ids, loans = make_loans(1)
    inputs = {p: {"loans": loans[p]} for p in LENDERS}
    with pytest.raises(ConfigError, match="non-empty"):
        simulate(exposure_component, roles(), params={"ids": []}, inputs=inputs)
    with pytest.raises(ConfigError, match="unique"):
        simulate(exposure_component, roles(), params={"ids": ["a", "a"]}, inputs=inputs)
    bad = dict(inputs, bank_b={"loans": {ids[0]: -5}})
    with pytest.raises(ConfigError, match=r"\[0, 2\*\*56\)"):
        simulate(exposure_component, roles(), params={"ids": ids}, inputs=bad)
    with pytest.raises(ConfigError, match="exactly one result"):
        simulate(
            exposure_component, {p: ["lender"] for p in LENDERS}, params={"ids": ids}, inputs=inputs
        )


def _tampering(mutate: Any) -> Any:
    """A lender that sends a mutated masked vector to the result party."""

    def component(ctx: Any, params: Any, inputs: Any) -> Any:
        if ctx.party == "bank_c":
            ctx.channel.broadcast("pk", _pk(ctx), peers=["bank_a", "bank_b"])
            ctx.channel.gather("pk", peers=["bank_a", "bank_b"])
            ctx.channel.send("bureau", "masked", mutate(len(params["ids"])))
            return None
        return exposure_component(ctx, params, inputs)

    return component


def _pk(ctx: Any) -> Any:
    from privfin.crypto.kex import KeyPair
    from privfin.mpc.exposure.messages import PublicKey

    return PublicKey(key=KeyPair.generate(ctx.random).public)


def test_wrong_length_share_fails_loudly() -> None:
    ids, loans = make_loans(2)
    comp = _tampering(lambda n: MaskedAmounts(values=np.zeros(n - 1, dtype=np.uint64)))
    with pytest.raises(ProtocolAbort, match="bank_c"):
        simulate(
            comp,
            roles("bureau", True),
            params={"ids": ids},
            inputs={p: {"loans": loans[p]} for p in LENDERS},
            timeout=10,
        )


def test_wrong_dtype_share_fails_loudly() -> None:
    ids, loans = make_loans(3)
    # A raw dict that claims to be a MaskedAmounts but carries float64: refused by the decoder.
    fields = codec._to_wire({"values": np.zeros(len(ids))}, 0)
    import msgspec

    raw = (
        codec.MAGIC
        + bytes([codec.VERSION])
        + msgspec.msgpack.encode(
            msgspec.msgpack.Ext(3, msgspec.msgpack.encode(["exposure.MaskedAmounts", fields]))
        )
    )

    class Raw:
        pass

    def component(ctx: Any, params: Any, inputs: Any) -> Any:
        if ctx.party == "bank_c":
            ctx.channel.broadcast("pk", _pk(ctx), peers=["bank_a", "bank_b"])
            ctx.channel.gather("pk", peers=["bank_a", "bank_b"])
            from privfin.federation.transport import MessageKey

            ctx.channel.transport.send(
                MessageKey(ctx.job, ctx.component, "masked", "bank_c", "bureau", 0), raw
            )
            return None
        return exposure_component(ctx, params, inputs)

    with pytest.raises(DecodeError, match="uint64"):
        simulate(
            component,
            roles("bureau", True),
            params={"ids": ids},
            inputs={p: {"loans": loans[p]} for p in LENDERS},
            timeout=10,
        )


def test_low_order_public_key_is_refused() -> None:
    ids, loans = make_loans(4)
    from privfin.mpc.exposure.messages import PublicKey

    def component(ctx: Any, params: Any, inputs: Any) -> Any:
        if ctx.party == "bank_c":
            ctx.channel.broadcast("pk", PublicKey(key=bytes(32)), peers=["bank_a", "bank_b"])
            return None
        return exposure_component(ctx, params, inputs)

    with pytest.raises(ProtocolAbort, match="bad public key"):
        simulate(
            component,
            roles(),
            params={"ids": ids},
            inputs={p: {"loans": loans[p]} for p in LENDERS},
            timeout=10,
        )
