"""Secure aggregation: the sum against the plaintext sum within the quantisation bound,
dropouts at every step, the threshold, deviating clients and servers, what the server sees."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privfin.config import Settings
from privfin.crypto import shamir
from privfin.crypto.random import SeededRandom
from privfin.errors import ConfigError, DecodeError, InputError, ProtocolAbort
from privfin.federation.memory import MemoryHub
from privfin.fl.horizontal.secagg import (
    Quantizer,
    SecAggClient,
    SecAggServer,
    SecAggThresholdError,
    secagg_component,
)
from privfin.fl.horizontal.secagg.component import params_from_mapping
from privfin.fl.horizontal.secagg.messages import MaskedInput, UnmaskRequest
from privfin.runtime import Context, simulate

DEV = Settings(mode="development")


def roles(n: int) -> dict[str, list[str]]:
    return {"server": ["server"], **{f"c{i:02d}": ["client"] for i in range(n)}}


def vectors(n: int, dim: int, seed: int = 0, scale: float = 3.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"c{i:02d}": rng.normal(scale=scale, size=dim) for i in range(n)}


def dropping(stop_after: Mapping[str, str]) -> Any:
    """The secagg component, except that the clients named in ``stop_after`` go silent after
    the given step (``"nothing"``: before advertising)."""

    def component(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
        stop = stop_after.get(ctx.party)
        if stop is None:
            return secagg_component(ctx, params, inputs)
        c = SecAggClient(ctx, "server", params_from_mapping(params), 0, inputs["x"])
        if stop == "nothing":
            return {"included": False}
        for name, step in [
            ("advertise", c.advertise),
            ("share", c.share),
            ("masked", c.send_masked),
        ]:
            step()
            if name == stop:
                return {"included": False}
        raise AssertionError(stop)

    return component


def run(
    n: int,
    dim: int,
    threshold: int,
    stop_after: Mapping[str, str] | None = None,
    timeout: float = 1.5,
    hub: MemoryHub | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    xs = vectors(n, dim)
    params = {"dim": dim, "threshold": threshold, "stage_timeout": timeout, "client_timeout": 30}
    out = simulate(
        dropping(stop_after or {}),
        roles(n),
        params=params,
        inputs={p: {"x": x} for p, x in xs.items()},
        seed=1,
        settings=DEV,
        hub=hub,
    )
    return out, xs


def test_sum_equals_plain_sum_within_bound() -> None:
    out, xs = run(5, 200, 3)
    res = out["server"]
    exact = np.sum(list(xs.values()), axis=0)
    bound = Quantizer().error_bound(5, exact)
    assert res["error_bound"] <= 1e-6
    np.testing.assert_allclose(res["sum"], exact, rtol=0, atol=bound)
    assert res["survivors"] == sorted(xs) and res["dropped"] == {}
    assert all(out[p]["included"] for p in xs)


@pytest.mark.parametrize("stage", ["nothing", "advertise", "share", "masked"])
def test_ten_clients_three_drop_at_each_stage(stage: str) -> None:
    gone = {"c01": stage, "c04": stage, "c08": stage}
    out, xs = run(10, 64, 6, gone)
    res = out["server"]
    # Clients that dropped before sending their masked input are not in the sum; those that
    # dropped after it are.
    alive = [p for p in xs if p not in gone or stage == "masked"]
    exact = np.sum([xs[p] for p in alive], axis=0)
    bound = Quantizer().error_bound(len(alive), exact)
    np.testing.assert_allclose(res["sum"], exact, rtol=0, atol=bound)
    assert res["survivors"] == alive
    missed = {"nothing": "advertise", "advertise": "share", "share": "masked", "masked": "unmask"}
    # A client that advertised nothing or stopped after advertising misses the next step.
    assert set(res["dropped"]) == set(gone)
    assert set(res["dropped"].values()) == {missed[stage]}


def test_dropouts_spread_over_stages() -> None:
    gone = {"c00": "nothing", "c03": "advertise", "c05": "share", "c07": "masked"}
    out, xs = run(10, 32, 6, gone)
    alive = [p for p in xs if gone.get(p, "masked") == "masked"]
    exact = np.sum([xs[p] for p in alive], axis=0)
    np.testing.assert_allclose(out["server"]["sum"], exact, rtol=0, atol=1e-6)
    assert out["server"]["survivors"] == alive


def test_too_many_dropouts_fail_cleanly() -> None:
    gone = {f"c0{i}": "share" for i in range(5)}  # 5 of 10 left after sharing, t = 6
    with pytest.raises(SecAggThresholdError, match="below the threshold 6"):
        run(10, 16, 6, gone)


def test_threshold_must_exceed_half() -> None:
    with pytest.raises(ConfigError, match="exceed half"):
        run(10, 16, 5)
    with pytest.raises(ConfigError, match="cannot reach"):
        run(3, 16, 4)


def test_value_beyond_bound_is_refused() -> None:
    q = Quantizer(frac_bits=16, bound=10.0)
    with pytest.raises(InputError, match="exceeds the agreed bound"):
        q.encode(np.array([1.0, -10.5]))
    with pytest.raises(InputError, match="NaN"):
        q.encode(np.array([np.nan]))
    with pytest.raises(ConfigError, match="overflow"):
        Quantizer(frac_bits=40, bound=2.0**20).check(10)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(-100, 100, allow_nan=False), min_size=4, max_size=4),
        min_size=1,
        max_size=20,
    )
)
def test_quantised_sum_within_bound(rows: list[list[float]]) -> None:
    q = Quantizer(frac_bits=20, bound=100.0)
    total = np.zeros(4, dtype=np.uint64)
    for r in rows:
        total += q.encode(np.array(r))
    exact = np.sum(np.array(rows), axis=0)
    assert np.all(np.abs(q.decode_sum(total) - exact) <= q.error_bound(len(rows), exact))


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=64), st.integers(1, 7), st.integers(0, 6), st.integers(0, 2**32))
def test_shamir_any_t_shares_recombine(secret: bytes, t: int, extra: int, seed: int) -> None:
    n = t + extra
    shares = shamir.split(secret, n, t, SeededRandom(seed))
    rng = np.random.default_rng(seed)
    pick = [shares[i] for i in rng.permutation(n)[:t]]
    assert shamir.recombine(pick, t) == secret
    if t > 1:
        with pytest.raises(ValueError, match="need"):
            shamir.recombine(pick[:-1], t)


def test_server_sees_masked_vectors_only() -> None:
    hub = MemoryHub()
    _, xs = run(4, 512, 3, hub=hub)
    q = Quantizer()
    from privfin.federation import codec

    seen = 0
    for key, payload in hub.wire:
        if key.receiver == "server" and key.tag.endswith(".masked"):
            y = codec.decode(payload, expect=MaskedInput).y
            enc = q.encode(xs[key.sender])
            # The masked vector is unrelated to the update: no coordinate agrees, and its
            # bytes look uniform (the top bit is set about half of the time).
            assert np.mean(y == enc) < 0.01
            assert 0.4 < np.mean(y >> np.uint64(63)) < 0.6
            raw = enc.tobytes()
            assert raw[:16] not in payload
            seen += 1
    assert seen == 4


def test_wrong_length_vector_is_detected() -> None:
    def component(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
        if ctx.party != "c02":
            return secagg_component(ctx, params, inputs)
        c = SecAggClient(ctx, "server", params_from_mapping(params), 0, inputs["x"])
        c.advertise()
        c.share()
        ctx.channel.recv("server", "sa.0.fwd")
        y = np.arange(9, dtype=np.uint64)  # one coordinate too many
        ctx.channel.send("server", "sa.0.masked", MaskedInput(round=0, y=y))
        return None

    xs = vectors(4, 8)
    with pytest.raises(ProtocolAbort, match="'c02' sent a masked vector of length 9, not 8"):
        simulate(
            component,
            roles(4),
            params={"dim": 8, "threshold": 3, "stage_timeout": 10},
            inputs={p: {"x": x} for p, x in xs.items()},
            seed=2,
            settings=DEV,
        )


def test_server_asking_for_both_shares_is_refused() -> None:
    class Greedy(SecAggServer):
        def run(self) -> Any:
            # Behave honestly up to the masked inputs, then claim c01 both survived and dropped.
            ch = self.ctx.channel
            adv = self._collect(self.clients, "adv", "advertise", object)
            from privfin.fl.horizontal.secagg.messages import ForwardedShares, KeyList

            u1 = sorted(adv)
            keys = KeyList(
                round=0,
                parties=u1,
                c_pks=[adv[u].c_pk for u in u1],
                s_pks=[adv[u].s_pk for u in u1],
            )
            for u in u1:
                ch.send(u, "sa.0.keys", keys)
            sh = self._collect(u1, "shares", "share", object)
            for v in u1:
                senders = [u for u in u1 if u != v]
                cts = [sh[u].ciphertexts[sh[u].to.index(v)] for u in senders]
                ch.send(v, "sa.0.fwd", ForwardedShares(round=0, senders=senders, ciphertexts=cts))
            self._collect(u1, "masked", "masked", object)
            req = UnmaskRequest(round=0, survivors=u1, dropped=["c01"])
            for u in u1:
                ch.send(u, "sa.0.unmask", req)
            return self._collect(u1, "shares2", "unmask", object)

    def component(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
        p = params_from_mapping(params)
        if ctx.party == "server":
            return Greedy(ctx, ctx.parties_with("client"), p, 0).run()
        return SecAggClient(ctx, "server", p, 0, inputs["x"]).run()

    xs = vectors(4, 8)
    with pytest.raises(ProtocolAbort, match=r"asked for both secrets of \['c01'\]"):
        simulate(
            component,
            roles(4),
            params={"dim": 8, "threshold": 3, "stage_timeout": 10},
            inputs={p: {"x": x} for p, x in xs.items()},
            seed=3,
            settings=DEV,
        )


def test_wrong_share_is_detected() -> None:
    """A client that sends a corrupted share of a dropped client's mask key is caught (the
    recovered key does not match the published one, or the extra shares disagree)."""

    def component(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
        p = params_from_mapping(params)
        if ctx.party == "server":
            return SecAggServer(ctx, ctx.parties_with("client"), p, 0).run()
        c = SecAggClient(ctx, "server", p, 0, inputs["x"])
        if ctx.party == "c00":
            c.advertise()
            c.share()
            return None  # drops after sharing
        if ctx.party == "c01":
            c.advertise()
            c.share()
            c.send_masked()
            own = c._held["c00"]
            c._held["c00"] = (bytes(65) + b"\x07", own[1])
            return c.unmask()
        return c.run()

    xs = vectors(5, 8)
    with pytest.raises(ProtocolAbort, match=r"'c00'.*mask key"):
        simulate(
            component,
            roles(5),
            params={"dim": 8, "threshold": 3, "stage_timeout": 1.5},
            inputs={p: {"x": x} for p, x in xs.items()},
            seed=4,
            settings=DEV,
        )


def test_decoders_refuse_forged_messages() -> None:
    """Valid messages edited on the wire: a float vector where uint64 is agreed, and an
    unmask answer carrying both secrets of one client, are refused when decoded."""
    from privfin.federation import codec
    from privfin.fl.horizontal.secagg.messages import UnmaskShares

    wire = codec.encode(MaskedInput(round=0, y=np.arange(4, dtype=np.uint64)))
    assert wire.count(b"<u8") == 1
    with pytest.raises(DecodeError):
        codec.decode(wire.replace(b"<u8", b"<f8"), expect=MaskedInput)
    share = bytes(shamir.SHARE_BYTES)
    wire = codec.encode(UnmaskShares(round=0, b_shares={"c01": share}, s_shares={"c02": share}))
    codec.decode(wire, expect=UnmaskShares)
    with pytest.raises(DecodeError):
        codec.decode(wire.replace(b"c02", b"c01"), expect=UnmaskShares)
    with pytest.raises(DecodeError):
        codec.decode(wire.replace(share, share[:-1] + b"\x00\x00"), expect=UnmaskShares)


@settings(max_examples=25, deadline=None)
@given(st.sets(st.from_regex(r"[a-z]{1,6}", fullmatch=True), min_size=2, max_size=6))
def test_pairwise_masks_cancel(names: set[str]) -> None:
    """Sum over every client of its pairwise masks with every other client is zero."""
    from privfin.crypto.kex import KeyPair
    from privfin.fl.horizontal.secagg.common import mask_seed, pairwise_mask

    keys = {n: KeyPair.generate(SeededRandom(n)) for n in names}
    total = np.zeros(16, dtype=np.uint64)
    for a in names:
        for b in names - {a}:
            seed = mask_seed(keys[a].exchange(keys[b].public), "job/c/sa", 3, a, b)
            total += pairwise_mask(seed, 16, a, b)
    assert not total.any()


def test_quantizer_refuses_an_overflowing_scale() -> None:
    with pytest.raises(ConfigError, match="below 2\\*\\*62"):
        Quantizer(frac_bits=50, bound=2.0**20)
