"""[08] item 3: a malicious host in hetero WOE/IV binning.

Each test plays the host by monkeypatching a host-only piece of the honest role (the guest runs
the honest code) and asserts the guest aborts naming the host **before any reply** (no
``verdict`` message on the wire), or that the reply carries nothing the host may not have.
Before [08] a host that declared one-row bins received one WOE per row (two values: every
label); a host that summed single rows under honest-looking bin sizes did the same.
"""

from __future__ import annotations

import dataclasses
import random
import types
from collections.abc import Mapping
from typing import Any

import gmpy2
import numpy as np
import pandas as pd
import pytest

from privfin.config import Settings
from privfin.crypto.random import SeededRandom
from privfin.errors import ConfigError, ProtocolAbort
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.fl.vertical.binning import (
    common,
    hetero_binning_component,
    hetero_pearson_component,
    host,
    pearson,
)
from privfin.fl.vertical.binning.common import BinParams, LocalBins, reply_for_owner
from privfin.fl.vertical.binning.messages import BinKey, Verdicts
from privfin.he import ou, paillier
from privfin.he._packed import PackedEncryptedVector
from privfin.he._vector import EncryptedVector
from privfin.ml.binning import apply_bins
from privfin.runtime import Context, simulate

KEYS = {"key_bits": 768, "insecure_allow_small_keys": True}
DEV = Settings(mode="development")
ROLES = {"bank": ["guest"], "telco": ["host"]}
N = 400


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xg = rng.normal(size=(N, 2))
    xh = rng.normal(size=(N, 3))
    y = (xh[:, 0] + 0.5 * xg[:, 0] + rng.normal(size=N) > 0.3).astype(float)
    return xg, xh, y


def run(params: Mapping[str, Any] | None = None, *, y: np.ndarray | None = None) -> MemoryHub:
    xg, xh, y0 = data()
    hub = MemoryHub()
    simulate(
        hetero_binning_component, ROLES, params={**KEYS, **(params or {})},
        inputs={"bank": {"X": xg, "y": y0 if y is None else y}, "telco": {"X": xh}},
        settings=DEV, hub=hub,
    )  # fmt: skip
    return hub


def verdicts(hub: MemoryHub) -> list[Verdicts]:
    return [codec.decode(b) for k, b in hub.wire if k.tag == "verdict"]


def assert_aborts_naming_host(match: str, params: Mapping[str, Any] | None = None) -> None:
    hub = MemoryHub()
    xg, xh, y = data()
    with pytest.raises(ProtocolAbort, match=match) as info:
        simulate(
            hetero_binning_component, ROLES, params={**KEYS, **(params or {})},
            inputs={"bank": {"X": xg, "y": y}, "telco": {"X": xh}}, settings=DEV, hub=hub,
        )  # fmt: skip
    assert info.value.party == "telco"
    assert verdicts(hub) == []  # the host got no reply at all


def one_row_bins(col: np.ndarray, p: BinParams, name: str) -> LocalBins:
    """The issue's attack: one value bin per row (edges between consecutive values)."""
    v = np.sort(col)
    edges = (v[:-1] + v[1:]) / 2
    return LocalBins(edges, apply_bins(col, edges), None)


def test_one_row_bins_abort_before_any_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "local_bins", one_row_bins)
    assert_aborts_naming_host("value bins plus a missing bin", {"reveal_woe_to_hosts": True})


def test_few_small_bins_abort(monkeypatch: pytest.MonkeyPatch) -> None:
    """Within the bin count, but nine one-row bins and one big bin: under the floor."""

    def small(col: np.ndarray, p: BinParams, name: str) -> LocalBins:
        v = np.sort(col)
        edges = (v[:9] + v[1:10]) / 2
        return LocalBins(edges, apply_bins(col, edges), None)

    monkeypatch.setattr(host, "local_bins", small)
    assert_aborts_naming_host("fewer than 20 rows", {"reveal_woe_to_hosts": True})


def test_one_row_missing_bin_aborts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that puts one chosen row in its 'missing' bin (the missing bin is never merged)."""

    def lonely(col: np.ndarray, p: BinParams, name: str) -> LocalBins:
        lb = common.local_bins(col, p, name)
        idx = lb.idx.copy()
        idx[5] = lb.n_bins - 1
        return LocalBins(lb.edges, idx, None)

    monkeypatch.setattr(host, "local_bins", lonely)
    assert_aborts_naming_host("missing")


def test_declared_sizes_bind_the_encrypted_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    """Honest-looking bin sizes, but each encrypted 'bin sum' is one row's label: the secret
    rho mass of the sum (rho * 1) does not match the declared size."""
    real = paillier.PublicKey.raw_sum
    monkeypatch.setattr(paillier.PublicKey, "raw_sum", lambda self, cts: real(self, cts[:1]))
    assert_aborts_naming_host("not the sum of the labels")


def test_weighted_sums_with_the_right_mass_break_the_event_total(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host aware of the mass check weights row 0 once and row 1 (T - 1) times: the mass
    matches, but the feature's bins no longer hold exactly the guest's events."""
    real = paillier.PublicKey.raw_sum

    def weighted(self: paillier.PublicKey, cts: list[Any]) -> Any:
        if len(cts) < 2:
            return real(self, cts)
        return real(self, [cts[0]] + [cts[1]] * (len(cts) - 1))

    monkeypatch.setattr(paillier.PublicKey, "raw_sum", weighted)
    assert_aborts_naming_host("hold all the events")


def test_wider_packing_aborts(monkeypatch: pytest.MonkeyPatch) -> None:
    real = host.EncryptedVector

    class Wide(real):  # type: ignore[misc,valid-type]
        def pack(self, **kw: Any) -> Any:
            return super().pack(slot_bits=self.bound_bits + 40)

    monkeypatch.setattr(host, "EncryptedVector", Wide)
    assert_aborts_naming_host("public packing")


def test_too_many_features_abort(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host lifts its own cap (the guest's stays at max_features=2)."""
    real = host.run_host

    def greedy(ctx: Context, p: BinParams, *args: Any) -> Any:
        return real(ctx, dataclasses.replace(p, max_features=4096), *args)

    monkeypatch.setattr("privfin.fl.vertical.binning.component.run_host", greedy)
    assert_aborts_naming_host("more than max_features=2", {"max_features": 2})


def test_woe_reaches_hosts_only_when_asked_and_rounded() -> None:
    (v,) = verdicts(run())
    assert v.woe == []  # on the wire, not just ignored by the honest host
    (v,) = verdicts(run({"reveal_woe_to_hosts": True, "woe_decimals": 1}))
    assert len(v.woe) == 3 and all(w == round(w, 1) for t in v.woe for w in t)


def test_honest_bins_hold_at_least_the_floor() -> None:
    """What the honest host sends passes the guest's checks: every declared bin has no rows or
    at least 5 % of them (20 of 400), ties and a few missing values included."""
    xg, xh, y = data()
    xh = xh.copy()
    xh[:, 1] = np.round(xh[:, 1])  # heavy ties
    xh[:7, 2] = np.nan  # 7 missing values: below the floor, counted in a value bin
    hub = MemoryHub()
    out = simulate(
        hetero_binning_component, ROLES, params={**KEYS, "reveal_woe_to_hosts": True},
        inputs={"bank": {"X": xg, "y": y}, "telco": {"X": xh}}, settings=DEV, hub=hub,
    )  # fmt: skip
    (bins,) = [codec.decode(b) for k, b in hub.wire if k.tag == "bins"]
    assert np.all((bins.totals == 0) | (bins.totals >= 20))
    edges, woe = out["telco"]["edges"][2], out["telco"]["woe"][2]
    counts = np.bincount(apply_bins(xh[7:, 2], edges), minlength=len(edges) + 1)
    k = int(np.argmax(counts))  # the largest value bin
    assert woe[-1] == woe[k]  # missing values get the WOE of the bin they were counted in
    assert out["telco"]["missing_to"] == [None, None, k]


@pytest.mark.parametrize("component", [hetero_binning_component, hetero_pearson_component])
def test_ou_is_refused(component: Any) -> None:
    """Both protocols reply with values computed from ciphertexts a peer chose: OU, whose
    decryption of a chosen ciphertext reveals the key, is refused up front."""
    with pytest.raises(ConfigError, match="Paillier only"):
        simulate(
            component, ROLES, params={**KEYS, "scheme": "ou"},
            inputs={"bank": {"X": data()[0], "y": data()[2]}, "telco": {"X": data()[1]}},
            settings=DEV,
        )  # fmt: skip


def test_host_refuses_an_ou_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A guest that sends an OU key instead of its Paillier key is refused by the host."""
    pk, _ = ou.generate_keypair(768, insecure_allow_small_keys=True)
    real = BinKey

    def ou_key(*, key: dict[str, Any]) -> BinKey:
        return real(key=pk.to_wire())

    monkeypatch.setattr("privfin.fl.vertical.binning.guest.BinKey", ou_key)
    with pytest.raises(ProtocolAbort, match="not a Paillier public key") as info:
        run()
    assert info.value.party == "bank"


@pytest.mark.parametrize("component", ["binning", "pearson"])
def test_host_refuses_a_guest_key_without_a_valid_modulus_proof(
    monkeypatch: pytest.MonkeyPatch, component: str
) -> None:
    """A guest key whose modulus proof does not verify (here: one root replaced) could hide a
    crafted modulus; the host refuses it naming the guest and encrypts or computes nothing."""
    honest_to_wire = paillier.PublicKey.to_wire

    def tampered(self: paillier.PublicKey) -> dict[str, Any]:  # only the guest sends a key
        key = honest_to_wire(self)
        proof = list(key["proof"])
        proof[3] = (int.from_bytes(proof[3], "big") ^ 1).to_bytes(len(proof[3]), "big")
        return {**key, "proof": proof}

    monkeypatch.setattr(paillier.PublicKey, "to_wire", tampered)
    hub = MemoryHub()
    xg, xh, y = data()
    comp = hetero_binning_component if component == "binning" else hetero_pearson_component
    extra = {} if component == "binning" else {"feature_counts": {"bank": 2, "telco": 3}}
    inputs = {"bank": {"X": xg, "y": y}, "telco": {"X": xh}}
    if component == "pearson":
        inputs["bank"] = {"X": xg}
    with pytest.raises(ProtocolAbort, match=r"key of 'bank' is refused: .*proof") as info:
        simulate(
            comp, ROLES, params={**KEYS, **extra}, inputs=inputs, settings=DEV, hub=hub,
        )  # fmt: skip
    assert info.value.party == "bank"
    assert not [k for k, _ in hub.wire if k.sender == "telco" and k.tag != "setup"]


def test_an_honest_host_gets_nothing_either_when_another_cheats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two hosts; only ``telco`` deviates (patched by party). The guest names ``telco`` and no
    host, honest ``lender`` included, receives a verdict."""
    real = host.local_bins

    def by_party(col: np.ndarray, p: BinParams, name: str) -> LocalBins:
        return one_row_bins(col, p, name) if name.startswith("t") else real(col, p, name)

    monkeypatch.setattr(host, "local_bins", by_party)
    xg, xh, y = data()
    hub = MemoryHub()
    with pytest.raises(ProtocolAbort) as info:
        simulate(
            hetero_binning_component,
            {"bank": ["guest"], "telco": ["host"], "lender": ["host"]},
            params={**KEYS, "reveal_woe_to_hosts": True},
            inputs={
                "bank": {"X": xg, "y": y},
                "telco": {"X": pd.DataFrame(xh[:, :2], columns=["t0", "t1"])},
                "lender": {"X": pd.DataFrame(xh[:, 2:], columns=["l0"])},
            },
            settings=DEV,
            hub=hub,
        )
    assert info.value.party == "telco"
    assert verdicts(hub) == []


# ------------------------------------------- randomness toward the key owner (red team 3)


def _key_1_mod_4(bits: int = 768) -> tuple[Any, Any]:
    """An ordinary key with ``p = q = 1 (mod 4)``: the DJN ``h_s = (-x**2)**n`` is then a
    square mod ``p``, so a DJN-re-randomised reply keeps the Legendre symbol of the random part
    the guest chose (one bit per ciphertext, e.g. "is row 0 in this bin")."""
    rnd = random.Random(5)
    while True:
        pk, sk = paillier.generate_keypair(bits, rng=rnd, insecure_allow_small_keys=True)
        if int(sk._p) % 4 == 1 and int(sk._q) % 4 == 1:
            return pk, sk


def test_replies_to_the_guest_get_uniform_randomness() -> None:
    """``reply_for_owner`` (binning sums, Pearson products): the factor it multiplies in is an
    encryption of zero whose Legendre symbol mod ``p`` is a coin flip — with the DJN
    randomiser it is +1 every time, which is what lets the key owner read its chosen
    randomness back — and the plaintexts are unchanged."""
    pk, sk = _key_1_mod_4()
    p = int(sk._p)
    vec = EncryptedVector(
        pk, pk.raw_encrypt(list(range(64))), frac_bits=0, bound_bits=700, is_float=False
    )  # one value per packed ciphertext
    before = vec.pack().ciphertexts
    ctx = types.SimpleNamespace(random=SeededRandom(3))
    after = PackedEncryptedVector.from_wire(pk, reply_for_owner(ctx, vec)).ciphertexts  # type: ignore[arg-type]
    assert len(before) == len(after) == 64
    assert sk.raw_decrypt(after) == sk.raw_decrypt(before) == list(range(64))

    def symbols(cts: list[Any]) -> list[int]:
        return [
            int(gmpy2.legendre(int(a) * pow(int(b), -1, p) % p, p))
            for a, b in zip(cts, before, strict=True)
        ]

    assert symbols(pk.raw_obfuscate(before)) == [1] * 64  # DJN: the owner's bit survives
    minus = symbols(after).count(-1)
    assert 16 <= minus <= 48, minus  # uniform: 32 expected (sd 4)


def test_binning_and_pearson_hosts_send_exactly_the_uniform_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The re-randomisation is the last operation: what leaves the host is byte for byte the
    output of ``reply_for_owner``."""
    made: list[Any] = []

    def recording(ctx: Any, vec: Any) -> Any:
        made.append(reply_for_owner(ctx, vec))
        return made[-1]

    monkeypatch.setattr(host, "reply_for_owner", recording)
    monkeypatch.setattr(pearson, "reply_for_owner", recording)
    hub = run()
    sent = [codec.decode(b).sums for k, b in hub.wire if k.tag == "bins"]
    assert sent == made and len(made) == 1
    made.clear()
    xg, xh, _ = data()
    hub = MemoryHub()
    simulate(
        hetero_pearson_component, ROLES,
        params={**KEYS, "feature_counts": {"bank": 2, "telco": 3}},
        inputs={"bank": {"X": xg}, "telco": {"X": xh}}, settings=DEV, hub=hub,
    )  # fmt: skip
    sent = [codec.decode(b).packed for k, b in hub.wire if k.tag == "products"]
    assert sent == made and len(made) == 1
