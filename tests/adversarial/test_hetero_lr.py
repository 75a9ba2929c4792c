"""[08] items 1 and 2 for hetero LR: no key holder is a decryption oracle.

Each test plays one malicious party by wrapping its honest ``masked_gradient`` (the other
parties run the unchanged code): it smuggles ciphertexts it holds — the guest's ``Enc(v)`` or
``Enc(d)``, a host's ``Enc(u/4)``, a chosen OU plaintext beyond ``p`` — into the request it
sends for decryption. Before [08] the key holder decrypted up to 4096 ciphertexts of any
content and returned them all (residuals, labels in the first batch, the OU prime). Now it
decrypts exactly the announced packed size, checks every slot before replying, and stops the
run with a ``ProtocolAbort`` naming the requester; the requester gets no reply at all.

Further down (red team 3): a key owner with smooth ``p - 1`` reads nothing from the random part
of what is sent back to it (a2, a3; an audit of every send), the arbiter takes the row count
from no single party (a6b), an oversized key is refused before its proof is checked (a4).

Small keys through the explicit insecure flag and a development-mode ``Settings`` (tests only).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import gmpy2
import numpy as np
import pytest

from privfin.config import Settings
from privfin.errors import InsecureModeError, ProtocolAbort
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.fl.vertical.hetero_lr import LRParams, hetero_lr_component
from privfin.fl.vertical.hetero_lr import arbiter as arbiter_role
from privfin.fl.vertical.hetero_lr import guest as guest_role
from privfin.fl.vertical.hetero_lr import host as host_role
from privfin.fl.vertical.hetero_lr.common import PartyModel, sample_weights
from privfin.he import ou, paillier
from privfin.he._vector import EncryptedVector
from privfin.runtime import Context, simulate

from ._smooth import Dlog, ct_with_randomiser, recover_lambda, smooth_keypair

SMALL = {"key_bits": 768, "insecure_allow_small_keys": True, "max_iter": 1, "batch_size": 0}
STAT_BITS = 48  # LRParams.stat_bits default

Packed = tuple[list[Any], list[int], int]
#: (ctx, pk, the ciphertexts the party multiplies by its features, honest packed request,
#: public bound B) -> the request actually sent.
Attack = Callable[[Context, Any, list[Any], Packed, int], Packed]


def _data(n: int = 30) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    xg, xh = rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    z = xg @ [1.0, -0.5, 0.2] + xh.sum(axis=1) * 0.7 - 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    return xg, xh, y


def _run(mode: str, hub: MemoryHub, *, hosts: int = 1, **extra: Any) -> dict[str, Any]:
    xg, xh, y = _data()
    roles = {"bank": ["guest"], **{f"host{k}": ["host"] for k in range(hosts)}}
    inputs = {"bank": {"X": xg, "y": y}, **{f"host{k}": {"X": xh + k} for k in range(hosts)}}
    if mode == "arbiter":
        roles["arb"] = ["arbiter"]
    agreed = {"bank": 3, **{f"host{k}": 2 for k in range(hosts)}}  # public, in the job spec
    params = {**SMALL, "mode": mode, "feature_counts": agreed, **extra}
    return simulate(
        hetero_lr_component, roles, params=params, inputs=inputs,
        seed=5, hub=hub, settings=Settings(mode="development"), timeout=60,
    )  # fmt: skip


def _malicious(
    monkeypatch: pytest.MonkeyPatch, role: Any, party: str, attack: Attack
) -> list[bool]:
    """Make ``party`` run ``attack`` on its first masked request; returns a flag list that
    records that the attack really ran."""
    honest = role.masked_gradient
    ran: list[bool] = []

    def wrapped(
        ctx: Context, pk: Any, cts: Any, model: Any, rows: Any, shift: Any, bound: int, p: Any
    ) -> Packed:
        out: Packed = honest(ctx, pk, cts, model, rows, shift, bound, p)
        if ctx.party != party or ran:
            return out
        ran.append(True)
        return attack(ctx, pk, list(cts), out, bound)

    monkeypatch.setattr(role, "masked_gradient", wrapped)
    return ran


def _received(monkeypatch: pytest.MonkeyPatch, party: str, tag: str) -> dict[str, list[Any]]:
    """Record the ciphertexts ``party`` (a host) receives under ``tag``, as they arrived."""
    honest = host_role.recv_cts
    seen: dict[str, list[Any]] = {}

    def wrapped(ctx: Context, peer: str, t: str, pk: Any, count: int) -> list[Any]:
        out: list[Any] = honest(ctx, peer, t, pk, count)
        if ctx.party == party and t == tag and tag not in seen:
            seen[tag] = list(out)
        return out

    monkeypatch.setattr(host_role, "recv_cts", wrapped)
    return seen


def _replies(hub: MemoryHub, sender: str, receiver: str, tag: str) -> list[Any]:
    return [k for k, _ in hub.wire if (k.sender, k.receiver, k.tag) == (sender, receiver, tag)]


def _expect_abort(
    mode: str,
    offender: str,
    match: str,
    hub: MemoryHub,
    ran: list[bool],
    *,
    hosts: int = 1,
    **extra: Any,
) -> None:
    """The run stops with a ProtocolAbort naming ``offender``, which got no decryption."""
    with pytest.raises(ProtocolAbort, match=match) as info:
        _run(mode, hub, hosts=hosts, **extra)
    assert ran, "the attack did not run"
    assert info.value.party == offender
    keyholder = "arb" if mode == "arbiter" else ("host0" if offender == "bank" else "bank")
    reply = "gplain" if (mode, offender) == ("guest", "bank") else "plain"
    assert _replies(hub, keyholder, offender, reply) == []


@pytest.mark.parametrize("mode", ["arbiter", "guest"])
def test_host_appending_the_guests_ciphertexts_gets_nothing(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack of the issue: host0 appends ``Enc(v)`` as the guest sent it (first batch,
    zero weights: ``v = 0.5 - y``, every label) to its packed gradient — too many
    ciphertexts for its announced feature count."""
    seen = _received(monkeypatch, "host0", "d")

    def attack(ctx: Context, pk: Any, cts: list[Any], out: Packed, bound: int) -> Packed:
        packed, masks, slot_bits = out
        assert len(seen["d"]) == 30
        return packed + seen["d"], masks, slot_bits

    ran = _malicious(monkeypatch, host_role, "host0", attack)
    _expect_abort(mode, "host0", "exactly", MemoryHub(), ran)


@pytest.mark.parametrize("mode", ["arbiter", "guest"])
def test_host_appending_the_completed_residuals_gets_nothing(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same with the residual ``Enc(d)`` the host completed, one ciphertext more only."""

    def attack(ctx: Context, pk: Any, cts: list[Any], out: Packed, bound: int) -> Packed:
        packed, masks, slot_bits = out
        return [*packed, cts[0]], masks, slot_bits

    ran = _malicious(monkeypatch, host_role, "host0", attack)
    _expect_abort(mode, "host0", "exactly", MemoryHub(), ran)


def test_host_appending_another_hosts_partial_predictor_gets_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mode guest, two hosts: host0 appends ``Enc_g(u_1/4)`` that host1 sent it (under the
    guest's key) to its request to the guest; with class weights it would be
    ``Enc_g(s)^{u_1/4}``, and ``Enc_g(s)`` itself (per-row class weights: the labels)."""
    seen = _received(monkeypatch, "host0", "peer_u")

    def attack(ctx: Context, pk: Any, cts: list[Any], out: Packed, bound: int) -> Packed:
        packed, masks, slot_bits = out
        return packed + seen["peer_u"], masks, slot_bits

    ran = _malicious(monkeypatch, host_role, "host0", attack)
    _expect_abort("guest", "host0", "exactly", MemoryHub(), ran, hosts=2)


def test_host_hiding_a_residual_above_its_slots_gets_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stealthy variant: an honest request (right size, right gradient, model unchanged)
    plus ``Enc(d_0 + 2**B)`` shifted into the free slot above the host's two gradient
    entries. (Mode guest packs nothing: next tests.)"""
    mode = "arbiter"

    def attack(ctx: Context, pk: Any, cts: list[Any], out: Packed, bound: int) -> Packed:
        packed, masks, slot_bits = out
        assert len(packed) == 1 and len(masks) == 2  # one ciphertext, free slots above
        hidden = pk.raw_add_plain([cts[0]], [1 << bound])
        hidden = pk.raw_mul(hidden, [1 << (2 * slot_bits)])
        return pk.raw_add(packed, hidden), masks, slot_bits

    ran = _malicious(monkeypatch, host_role, "host0", attack)
    _expect_abort(mode, "host0", "above its last used slot", MemoryHub(), ran)


def test_a_residual_above_the_low_bits_of_a_slot_is_cut_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What passes every check yields only the low ``B + 1`` bits of each slot: host0 sends
    one well-formed request (right size, both slots in range) whose first slot is
    ``2**(B+1) * (d_0 + 2**46) + 1``. The reply is ``1`` there: nothing of ``d_0`` (with the
    whole slot returned, as before [08], it read ``d_0`` from the bits above ``B + 1``)."""

    def attack(ctx: Context, pk: Any, cts: list[Any], out: Packed, bound: int) -> Packed:
        packed, masks, slot_bits = out
        assert len(packed) == 1 and len(masks) == 2
        high = pk.raw_mul([cts[0]], [1 << (bound + 1)])
        const = (1 << (bound + 1 + 46)) + 1 + (1 << (slot_bits + bound))  # slot 1 = 2**B
        return pk.raw_add_plain(high, [const]), masks, slot_bits

    ran = _malicious(monkeypatch, host_role, "host0", attack)
    hub = MemoryHub()
    _run("arbiter", hub)  # nothing to detect: the request is a valid masked one
    assert ran
    (reply,) = [
        codec.decode(p)
        for k, p in hub.wire
        if (k.sender, k.receiver, k.tag) == ("arb", "host0", "plain")
    ]
    bound = LRParams.from_mapping(SMALL).bound_bits(1, 30, guest=False)
    assert reply.values == [1, 1 << bound]


def test_mode_guest_entries_return_only_their_low_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mode guest (Paillier): one ciphertext per entry under a full-width mask, so the key
    holder can check only the count; what it returns is the low ``B + 1`` bits of each entry.
    host0 sends ``Enc(2**(B+1) * d_0 + 1)`` and ``Enc(2**B)``: it gets ``1`` (or, for a
    negative ``d_0``, which wraps modulo ``n``, ``(n + 1) mod 2**(B+1)``) and ``2**B``: the sign
    of ``d_0`` at most, within the ``B + 1`` bits per entry of the stated bound."""
    state: dict[str, int] = {}

    def attack(ctx: Context, pk: Any, cts: list[Any], out: Packed, bound: int) -> Packed:
        packed, masks, slot_bits = out
        assert len(packed) == len(masks) == 2 and slot_bits == 0
        high = pk.raw_add_plain(pk.raw_mul([cts[0]], [1 << (bound + 1)]), [1])
        state["n"] = int(pk.n)
        return [*high, *pk.raw_encrypt([1 << bound])], masks, slot_bits

    ran = _malicious(monkeypatch, host_role, "host0", attack)
    hub = MemoryHub()
    _run("guest", hub)
    assert ran
    (reply,) = [
        codec.decode(p)
        for k, p in hub.wire
        if (k.sender, k.receiver, k.tag) == ("bank", "host0", "plain")
    ]
    bound = LRParams.from_mapping({**SMALL, "mode": "guest"}).bound_bits(1, 30, guest=False)
    n = state["n"]
    assert reply.values[0] in (1, (n + 1) % (1 << (bound + 1)))
    assert reply.values[1] == 1 << bound


@pytest.mark.parametrize(
    ("keyholder", "role", "requester"), [("bank", "guest", "host0"), ("host0", "host", "bank")]
)
def test_mode_guest_key_holder_choosing_the_input_reads_nothing(
    keyholder: str, role: str, requester: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mode guest: the key holder also supplies the encrypted input of the product it
    decrypts. With ``B + σ``-bit masks a guest that sent ``Enc(2**K e_0)`` instead of
    ``Enc(v)`` read row 0 of the host's quantised features in the bits above ``K`` of the
    request it decrypted (and a host sending ``Enc_k(2**K e_0)`` as its ``u`` read the guest's).
    Under full-width masks the decrypted request is uniform mod ``n``: nothing above ``K``."""
    params = LRParams.from_mapping(SMALL)
    slot = params.bound_bits(1, 30, guest=requester == "bank") + 48 + 1
    entries = 4 if requester == "bank" else 2  # the guest: 3 features + intercept
    k_bits = entries * slot  # above every masked slot of the old packed request
    module = guest_role if role == "guest" else host_role
    honest_encode = module.encode_fixed
    seen: dict[str, list[int]] = {}

    def chosen(values: Any, frac_bits: int) -> list[int]:
        out: list[int] = honest_encode(values, frac_bits)
        if "sent" in seen:
            return out
        seen["sent"] = []
        return [(1 << k_bits) if i == 0 else 0 for i in range(len(out))]

    def reader(ctx: Context, peer: str, sk: Any, params: Any, **kw: Any) -> None:
        from privfin.fl.vertical.hetero_lr.messages import Ciphertexts
        from privfin.he._vector import EncryptedVector

        msg = ctx.channel.recv(peer, kw.get("tag", "masked"), expect=Ciphertexts)
        vec = EncryptedVector.from_wire(sk.public_key, msg.vec)
        seen["plain"] = [int(v) for v in sk.raw_decrypt(vec.ciphertexts_raw)]
        seen["n"] = [int(sk.public_key.n)]
        raise ProtocolAbort("the malicious key holder stops here", party=ctx.party)

    monkeypatch.setattr(module, "encode_fixed", chosen)
    monkeypatch.setattr(module, "decrypt_for", reader)
    with pytest.raises(ProtocolAbort, match="malicious key holder stops"):
        _run("guest", MemoryHub(), key_bits=1024)  # room for the shifted row above the slots
    xg, xh, _ = _data()
    if requester == "host0":
        q = PartyModel(xh, params, intercept=False).q
    else:
        q = PartyModel(xg, params, intercept=True).q
    # What the attack read: each decrypted value centred mod n, shifted down by K, split into
    # the request's slots (narrow masks: all entries in one ciphertext; wide: one each).
    n = seen["n"][0]
    read: list[int] = []
    for v in seen["plain"]:
        t = (v if v < n // 2 else v - n) >> k_bits
        for _ in range(q.shape[1] if len(seen["plain"]) == 1 else 1):
            e = ((t + (1 << (slot - 1))) % (1 << slot)) - (1 << (slot - 1))
            read.append(e)
            t = (t - e) >> slot
    # With the old B + σ-bit masks this equals the row (the test fails); now it is noise.
    assert read != [int(v) for v in q[0]]
    assert max(v.bit_length() for v in seen["plain"]) > k_bits + 200  # uniform mod n


def test_host_widening_a_slot_beyond_the_mask_range_gets_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slot pushed beyond ``2**(B+s) + 2**B`` (room to carry more than one masked value)."""

    def attack(ctx: Context, pk: Any, cts: list[Any], out: Packed, bound: int) -> Packed:
        packed, masks, slot_bits = out
        assert slot_bits == bound + STAT_BITS + 1
        top = (1 << (bound + STAT_BITS)) + (1 << bound)
        return pk.raw_add_plain(packed[:1], [top]) + packed[1:], masks, slot_bits

    ran = _malicious(monkeypatch, host_role, "host0", attack)
    _expect_abort("arbiter", "host0", "outside the masked range", MemoryHub(), ran)


@pytest.mark.parametrize("mode", ["arbiter", "guest"])
def test_guest_stuffing_the_hosts_partial_predictors_gets_nothing(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The symmetric attack: the guest appends host0's ``Enc(u/4)`` (arbiter mode: under the
    arbiter's key; mode guest: under host0's own key, which host0 decrypts for the guest)."""

    def attack(ctx: Context, pk: Any, cts: list[Any], out: Packed, bound: int) -> Packed:
        packed, masks, slot_bits = out
        assert len(cts) == 30
        return packed + cts[:8], masks, slot_bits

    ran = _malicious(monkeypatch, guest_role, "bank", attack)
    _expect_abort(mode, "bank", "exactly", MemoryHub(), ran)


@pytest.mark.parametrize("mode", ["arbiter", "guest"])
def test_ou_chosen_plaintext_beyond_p_gets_no_reply(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 2: host0 replaces its request with an OU encryption of a chosen ``M > p`` (right
    count). Returning ``M mod p`` would give it ``p = gcd(M - reply, n)``, the whole key."""
    rng = random.Random(11)

    def attack(ctx: Context, pk: Any, cts: list[Any], out: Packed, bound: int) -> Packed:
        packed, masks, slot_bits = out
        assert isinstance(pk, ou.PublicKey)
        big = rng.randrange(1 << (pk.p_bits + 1), pk.n)  # beyond p (|p| = p_bits)
        chosen = gmpy2.powmod(pk.g, big, pk.n) * gmpy2.powmod(pk.h, 977, pk.n) % pk.n
        return [chosen, *packed[1:]], masks, slot_bits

    ran = _malicious(monkeypatch, host_role, "host0", attack)
    _expect_abort(mode, "host0", "beyond the plaintext bound", MemoryHub(), ran, scheme="ou")


def test_honest_run_is_unchanged_by_the_harness(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wrappers are transparent for an attack that changes nothing (the tests above fail
    because of what the attack sends, not because of the harness)."""
    ran = _malicious(monkeypatch, host_role, "host0", lambda ctx, pk, cts, out, bound: out)
    hub = MemoryHub()
    out = _run("arbiter", hub)
    assert ran and out["host0"]["n_iter"] == 1
    assert len(_replies(hub, "arb", "host0", "plain")) == 1


def _inflate(monkeypatch: pytest.MonkeyPatch, role: Any, party: str, extra: int) -> list[bool]:
    """``party`` announces ``extra`` more gradient entries than it has, and (as the red team's
    attack) fills the extra slots of every request with ``[Q | I_m]ᵀ Enc(·)``: with a
    self-declared count the key holder returned every residual (a host) or every partial
    predictor ``u_i`` (the guest) of every batch exactly, model unchanged."""
    honest_announce, honest_mg = role.announce_features, role.masked_gradient
    ran: list[bool] = []

    def announce(ctx: Context, keyholders: list[str], count: int) -> None:
        if ctx.party == party:
            ran.append(True)
            count += extra
        honest_announce(ctx, keyholders, count)

    class _Stuffed:
        def __init__(self, q: np.ndarray) -> None:
            self.q = q

    def stuffed(
        ctx: Context, pk: Any, cts: Any, model: Any, rows: Any, shift: Any, bound: int, p: Any
    ) -> Packed:
        if ctx.party != party:
            return honest_mg(ctx, pk, cts, model, rows, shift, bound, p)  # type: ignore[no-any-return]
        d = model.q.shape[1]
        q = np.zeros((model.q.shape[0], d + extra), dtype=np.int64)
        q[:, :d] = model.q
        q[rows, d + np.arange(len(rows))] = 1
        return honest_mg(ctx, pk, cts, _Stuffed(q), rows, shift, bound, p)  # type: ignore[no-any-return]

    monkeypatch.setattr(role, "announce_features", announce)
    monkeypatch.setattr(role, "masked_gradient", stuffed)
    return ran


@pytest.mark.parametrize("mode", ["arbiter", "guest"])
def test_host_inflating_its_feature_count_is_refused(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team 1C/1D: host0 (2 features) announces ``2 + m`` entries. The key holder compares
    the announcement with the AGREED ``feature_counts`` and stops at setup, naming host0,
    before anything is decrypted for it."""
    ran = _inflate(monkeypatch, host_role, "host0", 30)
    _expect_abort(mode, "host0", "announced 32 gradient entries, 2 were agreed", MemoryHub(), ran)


@pytest.mark.parametrize("mode", ["arbiter", "guest"])
def test_guest_inflating_its_feature_count_is_refused(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Red team 1E: the guest (3 features + intercept) announces ``4 + m`` entries to read the
    host's partial predictors ``u_i = X_h[i] w_h`` of every row; the key holder (arbiter, or in
    mode guest host0 itself) refuses it at setup, naming the guest."""
    ran = _inflate(monkeypatch, guest_role, "bank", 30)
    _expect_abort(mode, "bank", "announced 34 gradient entries, 4 were agreed", MemoryHub(), ran)


def test_class_weights_give_hosts_no_per_row_encryption_of_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Red team 1B/1D: in mode guest with class weights each host held ``Enc_g(s_i)`` for
    every row (``s_i`` takes two values: the label) and, within its agreed entries, packed
    ``2**B + sum_k y_i 2**k`` into its request: ``d_h * B`` labels of rows of its choice in
    every batch. Now the guest sends ``Enc_g(s*v - rho)`` and, under the host's own key,
    ``Enc_k(s*u/4 + rho)`` with a blind ``rho`` uniform mod ``n``: no ``Enc(s)`` exists at any
    host, and a host that feeds a chosen ``Enc_k(2**K)`` as its ``u`` (to get ``s_i * 2**K``
    back) reads a uniform value: nothing of ``s``."""
    k_bits = 200
    n = 30
    hub = MemoryHub()
    su = _received(monkeypatch, "host0", "su")
    keys: dict[str, Any] = {}
    honest_keypair, honest_encode = host_role.new_keypair, host_role.encode_fixed

    def keypair(ctx: Context, params: Any) -> Any:
        out = honest_keypair(ctx, params)
        keys[ctx.party] = out[1]
        return out

    def chosen(values: Any, frac_bits: int) -> list[int]:
        out: list[int] = honest_encode(values, frac_bits)
        return [1 << k_bits] * len(out) if "sent" not in keys and len(out) == n else out

    monkeypatch.setattr(host_role, "new_keypair", keypair)
    monkeypatch.setattr(host_role, "encode_fixed", chosen)
    _run("guest", hub, class_weight={0: 1.0, 1: 3.0})
    assert not [k for k, _ in hub.wire if k.tag == "s"]  # no Enc(s) at setup any more
    plain = [int(v) for v in keys["host0"].raw_decrypt(su["su"])]
    s_int = np.where(_data()[2] == 1, 768, 256)
    read = [v >> k_bits for v in plain]
    # With a blind below 2**K the host would read s_i (the label) exactly; now: noise.
    assert not any(r == s for r, s in zip(read, s_int, strict=True))
    assert min(v.bit_length() for v in plain) > k_bits + 100


class _ForgedKeyHub(MemoryHub):
    """Replaces one value of the modulus proof in the key ``owner`` announces."""

    def __init__(self, owner: str) -> None:
        super().__init__()
        self.owner = owner

    def _deliver(self, key: Any, payload: bytes) -> None:
        if key.sender == self.owner and key.tag == "pk":
            msg = codec.decode(payload)
            wire = dict(msg.key)
            proof = list(wire["proof"])
            proof[0] = (int.from_bytes(proof[0], "big") + 1).to_bytes(len(proof[0]), "big")
            wire["proof"] = proof
            payload = codec.encode(type(msg)(key=wire))
        super()._deliver(key, payload)


@pytest.mark.parametrize(("mode", "owner"), [("arbiter", "arb"), ("guest", "bank")])
def test_a_paillier_key_without_a_valid_modulus_proof_is_refused(mode: str, owner: str) -> None:
    """Item 6 for hetero LR: the key owner's proof that its modulus is well formed is checked
    on receipt; a forged one stops the run with a ProtocolAbort naming the owner (not a bare
    DecodeError), before anything is encrypted under that key."""
    hub = _ForgedKeyHub(owner)
    with pytest.raises(ProtocolAbort, match="not well formed") as info:
        _run(mode, hub)
    assert info.value.party == owner
    assert not [k for k, _ in hub.wire if k.tag in ("u", "d", "masked", "gmasked")]


@pytest.mark.parametrize("mode", ["arbiter", "guest"])
def test_a_peers_ou_key_is_refused_in_production(mode: str) -> None:
    """An OU key carries no proof of well-formedness: computing on a peer's OU key is refused
    in production mode unless allow_insecure is set (2048-bit keys: no other insecure mode)."""
    xg, xh, y = _data()
    roles = {
        "bank": ["guest"],
        "host0": ["host"],
        **({"arb": ["arbiter"]} if mode == "arbiter" else {}),
    }
    params = {"scheme": "ou", "mode": mode, "max_iter": 1, "batch_size": 0,
              "feature_counts": {"bank": 3, "host0": 2}}  # fmt: skip
    with pytest.raises(InsecureModeError, match="Okamoto-Uchiyama key is refused in production"):
        simulate(
            hetero_lr_component, roles, params=params,
            inputs={"bank": {"X": xg, "y": y}, "host0": {"X": xh}},
            seed=5, settings=Settings(), timeout=60,
        )  # fmt: skip


def test_ou_host_key_a_chosen_blind_beyond_p_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mode guest, OU keys, class weights: host0 decrypts the guest's blinded ``s*u/4 + rho``
    with its own key. A guest that picks ``rho >= p`` would get ``(s*u/4 + rho) mod p`` folded
    into host0's request (and, from it, ``p``): host0's OU key refuses the residue and the run
    stops naming the guest."""
    rng = random.Random(3)

    def beyond_p(ctx: Context, key: Any, params: Any, count: int) -> list[int]:
        assert isinstance(key, ou.PublicKey)
        return [rng.randrange(1 << (key.p_bits + 1), key.n) for _ in range(count)]

    monkeypatch.setattr(guest_role, "weight_blinds", beyond_p)
    with pytest.raises(ProtocolAbort, match="beyond the plaintext bound") as info:
        _run("guest", MemoryHub(), scheme="ou", class_weight={0: 1.0, 1: 3.0})
    assert info.value.party == "bank"


# --------------------------------------------------------------------------------------------
# A key owner with smooth p - 1 (red team a2, a3): the random part of what comes back to the
# owner must carry nothing. 1536-bit keys: the smallest size at which the lattice step of the
# attack (256-bit DJN exponents) finds log h_s, so both tests fail on the old randomiser.

SMOOTH_BITS = 1536
W_LOW = 264  # above the 256-bit DJN exponent: the attacker's data sits from bit W_LOW up
K_DIGIT = 12  # one signed 10-bit quantised feature value (plus carries) per digit


def _smooth_run(hub: MemoryHub, n: int = 60, **extra: Any) -> tuple[dict[str, Any], Any]:
    rng = np.random.default_rng(0)
    xg, xh = rng.normal(size=(n, 2)), rng.normal(size=(n, 3))
    y = (rng.random(n) < 1 / (1 + np.exp(-(xg[:, 0] + xh[:, 1])))).astype(float)
    params = {"mode": "guest", "key_bits": SMOOTH_BITS, "insecure_allow_small_keys": True,
              "max_iter": 1, "batch_size": 20, "feature_counts": {"bank": 2, "host0": 3},
              **extra}  # fmt: skip
    out = simulate(
        hetero_lr_component, {"bank": ["guest"], "host0": ["host"]}, params=params,
        inputs={"bank": {"X": xg, "y": y}, "host0": {"X": xh}},
        seed=5, hub=hub, settings=Settings(mode="development"), timeout=120,
    )  # fmt: skip
    return out, (xg, xh, y, LRParams.from_mapping(params))


def _last_cts(hub: MemoryHub, sender: str, receiver: str, tag: str, pk: Any) -> list[Any]:
    payload = [p for k, p in hub.wire if (k.sender, k.receiver, k.tag) == (sender, receiver, tag)]
    msg = codec.decode(payload[-1])
    return EncryptedVector.from_wire(pk, msg.vec).ciphertexts_raw


def test_smooth_key_guest_reads_no_host_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    """Red team a2 (mode guest, Paillier): the guest's key has smooth ``p - 1`` (valid modulus
    proof). It sends ``Enc(v)`` whose random parts have logs ``lam * 2**(W + K*i)`` (row ``i``
    of the batch); host0's request ``Enc(Q^T d + r)`` then had a random part with log
    ``lam * (a + sum_i q_ij 2**(W + K*i))`` (``a``: the 256-bit DJN exponent, ``lam = log
    h_s`` learned by lattice reduction from batch 0) and the guest read every quantised host
    feature of batches 1 and 2 (120/120 with the old randomiser). host0 now re-randomises its
    request with a uniform ``r**n``: the logs are uniform, ``lam`` is never found and no value
    is read."""
    pk, sk, p, q, ls = smooth_keypair(SMOOTH_BITS, seed=1)
    dlog = Dlog(p, ls, int(pk.n))
    t = int(dlog.T)
    cap = (t.bit_length() - W_LOW - 16) // K_DIGIT
    rnd = random.Random(7)
    hub = MemoryHub()
    st: dict[str, Any] = {"lam": None, "ys": [], "batch": -1, "read": {}, "requests": 0}
    honest_send, honest_decrypt = guest_role.send_cts, guest_role.decrypt_for

    def send_cts(ctx: Context, peer: str, tag: str, key: Any, cts: Any, **kw: Any) -> None:
        if tag != "d":
            return honest_send(ctx, peer, tag, key, cts, **kw)
        st["batch"] += 1
        lam = st["lam"]
        plain = sk.raw_decrypt(cts)
        logs = [
            0 if lam is None or i >= cap else lam * (1 << (W_LOW + K_DIGIT * i)) % t
            for i in range(len(plain))
        ]
        rs = [dlog.element(e, q, rnd) for e in logs]
        forged = [ct_with_randomiser(pk, int(m), r) for m, r in zip(plain, rs, strict=True)]
        return honest_send(ctx, peer, tag, key, forged, fresh=True)

    def decrypt_for(ctx: Context, peer: str, skey: Any, params: Any, **kw: Any) -> None:
        honest_decrypt(ctx, peer, skey, params, **kw)  # the request has arrived: read it
        st["requests"] += 1
        logs = [dlog.rand_log(c) for c in _last_cts(hub, peer, ctx.party, "masked", pk)]
        if st["lam"] is None:
            st["ys"] += logs
            st["lam"] = recover_lambda(st["ys"], t)
            return
        linv = pow(st["lam"], -1, t)
        first = 20 * st["batch"]
        for j, y in enumerate(logs):
            v = y * linv % t
            v = v - t if v > t // 2 else v
            s = v >> W_LOW
            for i in range(min(cap, 20)):
                digit = s % (1 << K_DIGIT)
                digit = digit - (1 << K_DIGIT) if digit >= 1 << (K_DIGIT - 1) else digit
                st["read"][(first + i, j)] = digit
                s = (s - digit) >> K_DIGIT

    monkeypatch.setattr(guest_role, "new_keypair", lambda ctx, params: (pk, sk))
    monkeypatch.setattr(guest_role, "send_cts", send_cts)
    monkeypatch.setattr(guest_role, "decrypt_for", decrypt_for)
    _, (_, xh, _, params) = _smooth_run(hub)
    assert st["requests"] == 3, "the attack did not run"  # 60 rows, batches of 20
    qh = PartyModel(xh, params, intercept=False).q
    correct = sum(int(qh[r, j]) == v for (r, j), v in st["read"].items())
    assert (correct, len(st["read"])) == (0, 0)  # old randomiser: (120, 120)
    assert st["lam"] is None  # the request's randomness has no short-exponent structure


def test_smooth_key_host_reads_no_label(monkeypatch: pytest.MonkeyPatch) -> None:
    """Red team a3 (mode guest, class weights): host0's key has smooth ``p - 1`` (valid
    proof). It sends ``Enc_k(u/4)`` with random parts of log ``lam * 2**W``; the guest's
    ``Enc_k(s*u/4 + rho) = Enc_k(u/4)**s * (1+n)**rho`` (the full-width blind ``rho`` hides
    ``s`` in the plaintext) then had a random part with log ``lam * (a + s * 2**W)`` and the
    host read ``s`` — the label — of every row of batches 1 and 2 (40/40 with the old
    randomiser). The guest now re-randomises the blinded terms with a uniform ``r**n``."""
    pk, sk, p, q, ls = smooth_keypair(SMOOTH_BITS, seed=2)
    dlog = Dlog(p, ls, int(pk.n))
    t = int(dlog.T)
    rnd = random.Random(8)
    st: dict[str, Any] = {"lam": None, "ys": [], "batch": -1, "read": {}, "blinds": 0}
    honest_send, honest_recv = host_role.send_cts, host_role.recv_cts

    def send_cts(ctx: Context, peer: str, tag: str, key: Any, cts: Any, **kw: Any) -> None:
        if tag != "u":
            return honest_send(ctx, peer, tag, key, cts, **kw)
        st["batch"] += 1
        e = 0 if st["lam"] is None else st["lam"] * (1 << W_LOW) % t
        plain = sk.raw_decrypt(cts)
        forged = [ct_with_randomiser(pk, int(m), dlog.element(e, q, rnd)) for m in plain]
        return honest_send(ctx, peer, tag, key, forged, fresh=True)

    def recv_cts(ctx: Context, peer: str, tag: str, key: Any, count: int) -> list[Any]:
        cts: list[Any] = honest_recv(ctx, peer, tag, key, count)
        if tag != "su":
            return cts
        st["blinds"] += 1
        logs = [dlog.rand_log(c) for c in cts]
        if st["lam"] is None:
            st["ys"] += logs[:4]
            st["lam"] = recover_lambda(st["ys"], t)
        else:
            linv = pow(st["lam"], -1, t)
            for i, y in enumerate(logs):
                st["read"][20 * st["batch"] + i] = (y * linv % t) >> W_LOW
        return cts

    monkeypatch.setattr(host_role, "new_keypair", lambda ctx, params: (pk, sk))
    monkeypatch.setattr(host_role, "send_cts", send_cts)
    monkeypatch.setattr(host_role, "recv_cts", recv_cts)
    _, (_, _, y, params) = _smooth_run(MemoryHub(), class_weight="balanced")
    assert st["blinds"] == 3, "the attack did not run"
    _, s_int = sample_weights(y, params)
    correct = sum(int(s_int[r]) == v for r, v in st["read"].items())
    assert (correct, len(st["read"])) == (0, 0)  # old randomiser: (40, 40)
    assert st["lam"] is None


# --------------------------------------------------------------------------------------------
# The arbiter's row count (red team a6, a6b) and the key size checked before the proof (a4).


class _RewriteHub(MemoryHub):
    """Rewrites the message ``sender`` sends under ``tag`` with ``edit``."""

    def __init__(self, sender: str, tag: str, edit: Callable[[Any], Any]) -> None:
        super().__init__()
        self.sender, self.tag, self.edit = sender, tag, edit

    def _deliver(self, key: Any, payload: bytes) -> None:
        if key.sender == self.sender and key.tag == self.tag:
            payload = codec.encode(self.edit(codec.decode(payload)))
        super()._deliver(key, payload)


@pytest.mark.parametrize("hosts", [1, 2])
def test_guest_lying_to_the_arbiter_about_rows_is_named(
    monkeypatch: pytest.MonkeyPatch, hosts: int
) -> None:
    """a6b: the guest tells the arbiter 10**6 rows (hosts get the true count) and packs its own
    request with the inflated bound, so that the honest arbiter would refuse the honest hosts'
    requests in their name. Every host now reports its row count to the arbiter, which stops
    the run at setup naming the guest (the majority with two hosts; the one count the hosts
    check with one host); nothing is decrypted."""
    fake = 10**6
    real_plan = guest_role.Plan
    monkeypatch.setattr(
        guest_role, "Plan",
        lambda n_rows, seed: real_plan(n_rows=fake if seed == 0 else n_rows, seed=seed),
    )  # fmt: skip
    honest = guest_role.masked_gradient

    def inflated(ctx: Context, pk: Any, cts: Any, model: Any, rows: Any, shift: Any,
                 bound: int, p: Any) -> Packed:  # fmt: skip
        return honest(ctx, pk, cts, model, rows, shift, p.bound_bits(hosts, fake, guest=True), p)

    monkeypatch.setattr(guest_role, "masked_gradient", inflated)
    hub = MemoryHub()
    with pytest.raises(ProtocolAbort, match="different row counts") as info:
        _run("arbiter", hub, hosts=hosts)
    assert info.value.party == "bank"
    assert [k for k, _ in hub.wire if k.sender == "bank" and k.tag == "plan"]  # it lied
    assert not [k for k, _ in hub.wire if k.tag == "plain"]  # nothing decrypted


def test_host_lying_to_the_arbiter_about_rows_is_named() -> None:
    """With two hosts, a host that reports another row count than the guest and the other host
    is the one named (strict majority); the run stops at setup."""
    hub = _RewriteHub("host1", "rows", lambda msg: type(msg)(n_rows=msg.n_rows + 1))
    with pytest.raises(ProtocolAbort, match="different row counts") as info:
        _run("arbiter", hub, hosts=2)
    assert info.value.party == "host1"
    assert not [k for k, _ in hub.wire if k.tag == "plain"]  # nothing decrypted


@pytest.mark.parametrize(("mode", "owner"), [("arbiter", "arb"), ("guest", "host0")])
def test_an_oversized_paillier_key_is_refused_before_its_proof_is_checked(
    monkeypatch: pytest.MonkeyPatch, mode: str, owner: str
) -> None:
    """a4: a key owner announcing a larger modulus than the agreed ``key_bits`` (red team: a
    16384-bit, 16-prime modulus with a valid proof) made every peer verify the proof — and
    would make all later work slower — before the size was checked. ``from_wire`` now gets
    ``expect_bits``: refused naming the owner, and the proof of that key is never checked."""
    big, _ = paillier.generate_keypair(1024, insecure_allow_small_keys=True)
    checked: list[int] = []
    honest = paillier.verify_modulus

    def spy(n: int, proof: Any) -> None:
        checked.append(int(n))
        honest(n, proof)

    monkeypatch.setattr(paillier, "verify_modulus", spy)
    hub = _RewriteHub(owner, "pk", lambda msg: type(msg)(key=big.to_wire()))
    with pytest.raises(ProtocolAbort, match="1024 bits, not the agreed 768") as info:
        _run(mode, hub)
    assert info.value.party == owner
    assert int(big.n) not in checked


@pytest.mark.parametrize("hosts", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("scheme", ["paillier", "ou"])
@pytest.mark.parametrize("mode", ["arbiter", "guest"])
def test_every_ciphertext_to_its_keys_owner_is_uniformly_rerandomised(
    monkeypatch: pytest.MonkeyPatch, mode: str, scheme: str, weighted: bool, hosts: int
) -> None:
    """The audit of every send (SPEC, threat model): a ciphertext goes out with the uniform
    ``r**n`` randomiser exactly when its receiver owns the key it is under (``masked``,
    ``gmasked``, ``su``), and with the cheap one otherwise (``u``, ``d``, ``peer_u``). One
    host (mode arbiter: the Fourier residual) and two, both modes and schemes, with and
    without class weights."""
    owners: dict[int, str] = {}
    sends: list[tuple[str, str, str, bool]] = []

    def keygen(honest: Any) -> Any:
        def wrapped(ctx: Context, params: Any) -> Any:
            pk, sk = honest(ctx, params)
            owners[int(pk.n)] = ctx.party
            return pk, sk

        return wrapped

    def sender(honest: Any) -> Any:
        def wrapped(ctx: Context, peer: str, tag: str, key: Any, cts: Any, **kw: Any) -> None:
            owner = owners[int(key.n)]
            sends.append((tag, ctx.party, peer, kw.get("for_owner", False) == (owner == peer)))
            honest(ctx, peer, tag, key, cts, **kw)

        return wrapped

    for role in (guest_role, host_role, arbiter_role):
        monkeypatch.setattr(role, "new_keypair", keygen(role.new_keypair))
    for role in (guest_role, host_role):
        monkeypatch.setattr(role, "send_cts", sender(role.send_cts))
    extra = {"scheme": scheme, **({"class_weight": {0: 1.0, 1: 3.0}} if weighted else {})}
    _run(mode, MemoryHub(), hosts=hosts, **extra)
    assert all(ok for *_, ok in sends), [s for s in sends if not s[3]]
    tags = {tag for tag, *_ in sends}
    expected = {"u", "d", "masked"}
    if mode == "guest":
        expected |= {"gmasked"} | ({"peer_u"} if hosts > 1 else set())
        expected |= {"su"} if weighted else set()
    assert tags == expected
