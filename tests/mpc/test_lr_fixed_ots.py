"""SS-LR with the ``ot`` provider and reused OTs (``reuse_ots``; the default when the job states a
``feature_bound``, asked for explicitly here): each computing
party's plaintext columns choose the OTs of the products with their own bits, extended once
for every row and reused by every product (forward, backward, every epoch), each use hashed
under fresh tweaks; only corrections travel per product."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from _datasets import breast_hetero
from privfin.config import Settings
from privfin.crypto import ot as otm
from privfin.errors import ConfigError, ProtocolAbort
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.federation.transport import MessageKey
from privfin.mpc import ot as mot
from privfin.mpc.lr import plaintext_logistic, ss_lr
from privfin.mpc.messages import InputHeader, OtCorrections
from privfin.mpc.providers.ot import OtProvider
from privfin.mpc.ring import encode_fixed, ring_matmul
from privfin.mpc.session import Session
from privfin.runtime import simulate

PROD = Settings(mode="production")
TRAIN = {"epochs": 4, "batch_size": 128, "learning_rate": 0.5}
ROLES = {"guest": ("data", "compute", "result"), "host": ("data", "compute")}
TWO = {"a": ("data", "compute", "result"), "b": ("data", "compute")}


def _breast() -> tuple[Any, Any, list[str], list[str], np.ndarray, np.ndarray]:
    g, h = breast_hetero()
    hc = [c for c in h.columns if c != "id"]
    h = h.rename(columns={c: f"h_{c}" for c in hc})
    gc = [c for c in g.columns if c not in ("id", "y")]
    hc = [f"h_{c}" for c in hc]
    x = np.hstack([g[gc].to_numpy(), h[hc].to_numpy()])
    return g, h, gc, hc, x, g["y"].to_numpy().astype(np.float64)


def _lr(extra: dict[str, Any], hub: MemoryHub | None = None, seed: int = 4) -> Any:
    g, h, gc, hc, _, _ = _breast()

    def program(ctx: Any, p: Any, inputs: Any) -> Any:
        return ss_lr(ctx, p, inputs), ctx.channel.stats.bytes_sent

    return simulate(
        program,
        ROLES,
        params={
            "features": {"guest": gc, "host": hc},
            "label": {"party": "guest", "column": "y"},
            "triples": "ot",
            "reuse_ots": True,
            **TRAIN,
            **extra,
        },
        inputs={"guest": {"table": g}, "host": {"table": h}},
        settings=PROD,
        seed=seed,
        timeout=300,
        hub=hub,
    )


@pytest.mark.parametrize("sigmoid", ["t1", "auto"])
def test_reused_ots_match_plaintext_and_the_fresh_orientation(
    sigmoid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, _, _, x, y = _breast()

    def no_fresh(*a: Any, **k: Any) -> None:
        raise AssertionError("a product took fresh OTs: the reuse path was not taken")

    old = _lr({"sigmoid": sigmoid, "reuse_ots": False})
    fresh = old["guest"]
    monkeypatch.setattr(OtProvider, "plain_cross", no_fresh)
    monkeypatch.setattr(OtProvider, "matmul_triple", no_fresh)
    new = _lr({"sigmoid": sigmoid})
    got = new["guest"][0]
    w, w_fresh = np.array(got["coef"]), np.array(fresh[0]["coef"])
    # the same model as the fresh orientation, truncation ulps apart (and the rate is now
    # exact instead of folded into X rounded)
    np.testing.assert_allclose(w, w_fresh, atol=2e-3)
    np.testing.assert_allclose(got["intercept"], fresh[0]["intercept"], atol=2e-3)
    # each party now sends the corrections of its peer's columns (guest 10, host 20):
    # fewer bytes in all (measured: -16 % with t1 over 4 epochs; -6 % with the piecewise
    # sigmoid, whose comparisons' material is unchanged)
    total = new["guest"][1] + new["host"][1]
    assert total < (0.9 if sigmoid == "t1" else 0.97) * (old["guest"][1] + old["host"][1])
    if sigmoid == "auto":  # the plaintext reference uses the exact sigmoid
        ref = plaintext_logistic(x, y, **TRAIN)  # type: ignore[arg-type]
        np.testing.assert_allclose(w, ref[:-1], atol=0.05)
        auc = roc_auc_score(y, x @ w + got["intercept"])
        assert abs(auc - roc_auc_score(y, x @ ref[:-1] + ref[-1])) <= 1e-3


def test_reused_ots_with_shuffled_batches_l2_and_averaging() -> None:
    """Shuffled batches select their OTs by index (not a whole stored block)."""
    extra = {"sigmoid": "t1", "shuffle_seed": 3, "l2": 0.05, "average": True}
    got = _lr(extra)["guest"][0]
    fresh = _lr({**extra, "reuse_ots": False})["guest"][0]
    np.testing.assert_allclose(np.array(got["coef"]), np.array(fresh["coef"]), atol=2e-3)
    np.testing.assert_allclose(got["intercept"], fresh["intercept"], atol=2e-3)


@pytest.mark.parametrize("kernel", [True, False])
@pytest.mark.parametrize("ring", [64, 48, 21])
def test_products_from_reused_ots_are_exact(kernel: bool, ring: int) -> None:
    """Forward and backward products of the same matrices from one extension, on whole
    blocks, a short last block and index selections: exact modulo ``2**ring``."""
    if kernel and not otm.KERNEL:
        pytest.skip("the compiled OT kernel is not built")
    rng = np.random.default_rng(ring)
    mats = {"a": rng.normal(size=(50, 3)) * 4, "b": rng.normal(size=(50, 5))}
    ws = {o: rng.normal(size=mats[o].shape[1]) for o in mats}
    e = rng.normal(size=50)
    sels: list[Any] = [slice(0, 16), slice(48, 64), np.array([3, 40, 17, 17, 0])]

    def program(ctx: Any, p: Any, inputs: Any) -> Any:
        prov = OtProvider(ctx, ("a", "b"), kernel=kernel)
        s = Session(ctx, provider=prov)
        full = {o: s.plain_input(o, mats[o] if ctx.party == o else None, bits=True) for o in mats}
        w = {o: s.share("b", ws[o] if ctx.party == "b" else None) for o in mats}
        es = s.share("a", e if ctx.party == "a" else None)
        fixed = s.plain_fix(list(full.values()), 16)
        assert prov.ot is not None
        extended = prov.ot.stats.received
        out = []
        for sel in sels:
            fw = s.plain_fixed_matmul(
                fixed,
                sel,
                [(full[o], full[o][sel], w[o]) for o in mats],
                transpose=False,
                ring_bits=ring,
            )
            bw = s.plain_fixed_matmul(
                fixed,
                sel,
                [(full[o], full[o][sel], es[sel]) for o in mats],
                transpose=True,
                ring_bits=ring,
            )
            out.append([t.share for t in fw + bw])
        return out, extended, {o: full[o].bits for o in mats}

    got = simulate(program, TWO, settings=PROD, seed=ring, timeout=60)
    # the announced bits: |x| < 2**(K - 1) in fixed point, from each owner's own data
    want_bits = {
        o: int(np.abs(encode_fixed(mats[o], 16).view(np.int64)).max()).bit_length() + 1
        for o in mats
    }
    assert got["a"][2] == got["b"][2] == want_bits
    # extended once: each owner received one OT per bit of every element of its matrix
    assert got["a"][1] == want_bits["a"] * 50 * 3 and got["b"][1] == want_bits["b"] * 50 * 5
    low = np.uint64((1 << ring) - 1) if ring < 64 else np.uint64(2**64 - 1)
    for sel, pa, pb in zip(sels, got["a"][0], got["b"][0], strict=True):
        want = []
        for o in mats:
            xs = encode_fixed(mats[o], 16)[sel]
            want.append(ring_matmul(xs, encode_fixed(ws[o], 16).reshape(-1, 1)).reshape(-1))
        for o in mats:
            xs = encode_fixed(mats[o], 16)[sel]
            want.append(ring_matmul(xs.T, encode_fixed(e, 16)[sel].reshape(-1, 1)).reshape(-1))
        for a, b, w in zip(pa, pb, want, strict=True):
            np.testing.assert_array_equal((a + b) & low, w & low)


class _Recording(MemoryHub):
    def __init__(self) -> None:
        super().__init__()
        self.senders: list[str] = []
        self.headers: list[Any] = []

    def _deliver(self, key: MessageKey, payload: bytes) -> None:
        self.senders.append(key.sender)
        if key.tag == "mpc.input":
            msg = codec.decode(payload)
            if isinstance(msg, InputHeader):
                self.headers.append((key.sender, msg))
        super()._deliver(key, payload)


def test_an_owner_beyond_the_stated_bound_refuses_before_sending_anything() -> None:
    hub = _Recording()
    with pytest.raises(ConfigError, match="feature_bound"):
        # breast features are standardised: the guest has |x| up to 6.8, the host 12.1
        _lr({"sigmoid": "t1", "feature_bound": 10.0}, hub=hub)
    assert "host" not in hub.senders  # not even the session's setup (base OTs)


def test_the_announced_bits_come_from_the_stated_bound_or_the_data() -> None:
    hub = _Recording()
    stated, _ = _lr({"sigmoid": "t1", "feature_bound": 64.0}, hub=hub)["guest"]
    # |x| < 64 at f = 16: |x·2**16| <= 2**22, so K = 24 for both owners
    assert {(p, h.bits) for p, h in hub.headers if len(h.shape) == 2} == {
        ("guest", 24),
        ("host", 24),
    }
    hub = _Recording()
    own, _ = _lr({"sigmoid": "t1"}, hub=hub)["guest"]
    # from each owner's data: max |x| 6.8 (guest) and 12.1 (host)
    assert {(p, h.bits) for p, h in hub.headers if len(h.shape) == 2} == {
        ("guest", 20),
        ("host", 21),
    }
    # more bits, more OTs, the same model (up to truncation ulps)
    np.testing.assert_allclose(np.array(stated["coef"]), np.array(own["coef"]), atol=2e-3)


class _Tamper(MemoryHub):
    """Replaces the ``index``-th message of ``tag`` from ``sender`` by ``forge(payload,
    earlier payloads)``."""

    def __init__(self, tag: str, sender: str, index: int, forge: Any) -> None:
        super().__init__()
        self.tag, self.sender, self.index, self.forge = tag, sender, index, forge
        self.seen: list[bytes] = []

    def _deliver(self, key: MessageKey, payload: bytes) -> None:
        if key.tag == self.tag and key.sender == self.sender:
            if len(self.seen) == self.index:
                forged = self.forge(payload, self.seen)
                self.seen.append(payload)
                payload = forged
            else:
                self.seen.append(payload)
        super()._deliver(key, payload)


def _short(payload: bytes, seen: list[bytes]) -> bytes:
    msg = codec.decode(payload)
    return codec.encode(OtCorrections(counter=msg.counter, data=msg.data[:-1]))


def _long(payload: bytes, seen: list[bytes]) -> bytes:
    msg = codec.decode(payload)
    return codec.encode(OtCorrections(counter=msg.counter, data=msg.data + b"\0"))


def _replayed(payload: bytes, seen: list[bytes]) -> bytes:
    return seen[-1]  # the previous product's corrections again (its counter is old)


def _next_counter(payload: bytes, seen: list[bytes]) -> bytes:
    msg = codec.decode(payload)
    return codec.encode(OtCorrections(counter=msg.counter + 1, data=msg.data))


def _fewer_bits(payload: bytes, seen: list[bytes]) -> bytes:
    msg = codec.decode(payload)
    assert isinstance(msg, InputHeader) and msg.bits is not None
    return codec.encode(InputHeader(shape=msg.shape, bits=msg.bits - 1))


@pytest.mark.parametrize(
    ("tag", "index", "forge"),
    [
        # the host (P1) sends no truncation-pair corrections: its corrections are products'
        ("mpc.ot.corr", 3, _short),
        ("mpc.ot.corr", 3, _long),
        ("mpc.ot.corr", 3, _replayed),
        ("mpc.ot.corr", 0, _next_counter),
        ("mpc.input", 0, _fewer_bits),
    ],
)
def test_a_deviating_party_is_detected_loudly(tag: str, index: int, forge: Any) -> None:
    extra = {"sigmoid": "t1", "epochs": 1}
    if forge is _fewer_bits:
        extra["feature_bound"] = 16.0  # the announced bits must be the bound's
    with pytest.raises(ProtocolAbort) as err:
        _lr(extra, hub=_Tamper(tag, "host", index, forge))
    assert err.value.party == "host"


@settings(max_examples=40, deadline=None)
@given(
    p=st.integers(1, 40),
    q=st.integers(1, 4),
    bits=st.integers(2, 24),
    block=st.integers(1, 17),
    data=st.data(),
)
def test_choice_bits_are_found_again_for_any_rows(
    p: int, q: int, bits: int, block: int, data: Any
) -> None:
    """The stored choice bits of the rows of a product, in the order (bit, row, column),
    add up to the unsigned matrix; a whole block is a slice."""
    seed = data.draw(st.integers(0, 2**32 - 1))
    x = np.random.default_rng(seed).integers(0, 1 << bits, size=(p, q), dtype=np.uint64)
    choices = OtProvider._fixed_choices(x, bits, block)
    assert choices.size == bits * p * q
    rows = data.draw(st.lists(st.integers(0, p - 1), min_size=1, max_size=12))
    lo = data.draw(st.integers(0, (p - 1) // block)) * block
    for sel in (np.array(rows), slice(lo, min(lo + block, p))):
        idx = OtProvider._fixed_rows(p, q, bits, block, sel, bits)
        if isinstance(sel, slice):
            assert isinstance(idx, slice)
        got = choices[idx].reshape(bits, -1, q).astype(np.uint64)
        value = np.sum(got << np.arange(bits, dtype=np.uint64).reshape(-1, 1, 1), axis=0)
        np.testing.assert_array_equal(value, x[sel])


@settings(max_examples=6, deadline=None)
@given(
    rows=st.integers(3, 40),
    batch=st.integers(2, 16),
    bits_a=st.integers(2, 8),
    uses=st.integers(1, 3),
)
def test_no_tweak_is_used_twice(rows: int, batch: int, bits_a: int, uses: int) -> None:
    """Every hashing call of an instance (the party's sending or receiving IKNP) gets a
    tweak base no other call of that instance got, the reused OTs' uses included: the
    (row, tweak) blocks of the correlation-robust hash never repeat."""
    calls: dict[tuple[str, str], list[tuple[int, int]]] = {}
    send, recv = mot.otm.cot_send_trimmed, mot.otm.cot_receive_trimmed

    def spy(role: str, fn: Any) -> Any:
        def inner(q: Any, *a: Any, **k: Any) -> Any:
            party = threading.current_thread().name
            tweak = a[2]  # (q, delta, h, tweak, ...) and (t, choices, h, tweak, ...)
            calls.setdefault((party, role), []).append((tweak, q.shape[0]))
            return fn(q, *a, **k)

        return inner

    rng = np.random.default_rng(rows)
    mats = {"a": rng.normal(size=(rows, 2)) * 2 ** (bits_a - 18), "b": rng.normal(size=(rows, 1))}

    def program(ctx: Any, p: Any, inputs: Any) -> Any:
        threading.current_thread().name = ctx.party
        s = Session(ctx, triples="ot")
        full = {o: s.plain_input(o, mats[o] if ctx.party == o else None, bits=True) for o in mats}
        w = {o: s.share("a", np.ones(mats[o].shape[1]) if ctx.party == "a" else None) for o in mats}
        fixed = s.plain_fix(list(full.values()), batch)
        s.engine.prefetch_trunc([(5, 16)])
        for _ in range(uses):
            for lo in range(0, rows, batch):
                sel = slice(lo, lo + batch)
                s.plain_fixed_matmul(
                    fixed, sel, [(full[o], full[o][sel], w[o]) for o in mats], transpose=False
                )
        return None

    mp = pytest.MonkeyPatch()
    mp.setattr(mot.otm, "cot_send_trimmed", spy("send", send))
    mp.setattr(mot.otm, "cot_receive_trimmed", spy("recv", recv))
    try:
        simulate(program, TWO, settings=PROD, seed=rows, timeout=60)
    finally:
        mp.undo()
    assert calls
    for (party, role), got in calls.items():
        bases = [t for t, _ in got]
        assert len(set(bases)) == len(bases), (party, role)
        spans = sorted(got)
        for (t0, n0), (t1, _) in itertools.pairwise(spans):
            assert t0 + n0 <= t1  # the intervals of (row, tweak) never overlap
        assert all(t < 1 << 44 for t in bases)
    # a's receiving instance is b's sending one: the same tweaks, in the same order
    assert [t for t, _ in calls[("a", "recv")]] == [t for t, _ in calls[("b", "send")]]


def test_beyond_the_memory_cap_products_take_fresh_ots(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored OTs are capped (``MAX_FIXED_OTS``, decided on public shapes and bits at
    both parties alike): a larger job falls back to fresh OTs per product."""
    from privfin.mpc import lr

    calls = []
    cross = OtProvider.plain_cross

    def spy(self: OtProvider, *a: Any, **k: Any) -> Any:
        calls.append(1)
        return cross(self, *a, **k)

    monkeypatch.setattr(OtProvider, "plain_cross", spy)
    monkeypatch.setattr(lr, "MAX_FIXED_OTS", 1000)
    capped = _lr({"sigmoid": "t1", "epochs": 1})["guest"][0]
    assert calls  # the fresh orientation ran
    monkeypatch.setattr(lr, "MAX_FIXED_OTS", 1 << 25)
    calls.clear()
    reused = _lr({"sigmoid": "t1", "epochs": 1})["guest"][0]
    assert not calls
    np.testing.assert_allclose(np.array(capped["coef"]), np.array(reused["coef"]), atol=2e-3)


def test_reuse_is_the_default_only_with_a_stated_bound() -> None:
    """Without ``feature_bound`` the default takes fresh OTs (no owner announces its data's
    bit count); with one, the reused OTs (nothing about the data is announced: the bound is
    the job's)."""
    from privfin.mpc.session import reuse_ots_wanted

    assert reuse_ots_wanted({}, None) is False
    assert reuse_ots_wanted({}, 8.0) is True
    assert reuse_ots_wanted({"reuse_ots": False}, 8.0) is False
    assert reuse_ots_wanted({"reuse_ots": True}, None) is True  # asked for: bits announced
    hub = _Recording()
    _lr({"sigmoid": "t1", "epochs": 1, "reuse_ots": None}, hub=hub)
    blocks = [h for _, h in hub.headers if len(h.shape) == 2]
    assert len(blocks) == 2 and all(not h.bits for h in blocks)  # nothing announced
    hub = _Recording()
    _lr({"sigmoid": "t1", "epochs": 1, "reuse_ots": None, "feature_bound": 64.0}, hub=hub)
    assert {h.bits for _, h in hub.headers if len(h.shape) == 2} == {24}  # the bound's
