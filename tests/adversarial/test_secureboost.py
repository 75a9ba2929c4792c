"""[08] item 5 (and the item-2 audit): hetero SecureBoost against a deviating guest or host.

Each test plays one party maliciously by patching code only that party runs (the guest's
layout, its messages, or the host's histogram packing); the other party runs the honest code.
Keys are 1024-bit test keys (development settings).
"""

from __future__ import annotations

import random
from typing import Any

import gmpy2
import numpy as np
import pytest

from privfin.config import Settings, require_peer_ou_allowed
from privfin.errors import InsecureModeError, PrivfinError, ProtocolAbort
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.fl.vertical.secureboost import guest as guest_mod
from privfin.fl.vertical.secureboost import host as host_mod
from privfin.fl.vertical.secureboost.estimator import HeteroSecureBoost
from privfin.fl.vertical.secureboost.messages import (
    BuildHistograms,
    Histograms,
    SplitRequest,
    TreeStart,
)
from privfin.fl.vertical.secureboost.packing import GradientLayout
from privfin.fl.vertical.secureboost.params import BoostParams
from privfin.he import paillier
from privfin.ml.trees import fit_bins

DEV = Settings(mode="development")
SMALL = {"key_bits": 1024, "insecure_allow_small_keys": True}
N_BINS = 4


def _data(n: int, seed: int) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    xg = rng.normal(size=(n, 2))
    xh = rng.normal(size=(n, 3))
    y = (xg[:, 0] + xh[:, 0] + rng.normal(size=n) * 0.5 > 0).astype(np.int64)
    return xg, y, xh


def _fit(n: int = 48, seed: int = 1, hub: MemoryHub | None = None, **params: Any) -> Any:
    xg, y, xh = _data(n, seed)
    opts = {"n_trees": 1, "max_depth": 2, "n_bins": N_BINS, **SMALL, **params}
    return HeteroSecureBoost(seed=2, settings=DEV, timeout=30, **opts).fit(
        {"guest": xg, "host": xh}, y, hub=hub
    )


# ---------------------------------------------------------------- item 5: row-bit gradients


class _RowBits(GradientLayout):
    """A malicious guest's layout: row ``i``'s gradient slot holds ``2**i`` (a slot of
    ``n_rows`` bits), so each cumulative bin sum is the bitmap of the rows below the
    threshold — for every host feature, from one histogram."""

    @classmethod
    def make(cls, g: Any, h: Any, n_rows: int, precision: int, bounds: Any) -> GradientLayout:
        cb = int(n_rows).bit_length()
        return cls((cb + 1, n_rows + cb + 1, cb + 2), precision, np.zeros(1), np.zeros(1))

    def encode(self, g: Any, h: Any) -> list[int]:
        return [1 + (1 << (i + self.widths[0])) for i in range(g.shape[0])]


class _Captured(PrivfinError):
    def __init__(self, hists: Any) -> None:
        super().__init__("captured")
        self.hists = hists


def _row_bits_attack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guest_mod, "GradientLayout", _RowBits)  # the guest's code only
    real = guest_mod._Guest._host_hists

    def capture(self: Any, host: str, msg: Any, *args: Any) -> Any:
        raise _Captured(real(self, host, msg, *args))

    monkeypatch.setattr(guest_mod._Guest, "_host_hists", capture)


def test_row_bit_layout_reads_every_bin_without_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack is real: with the host's layout check switched off, the guest recovers the
    bin of every row for every host feature from the root histogram."""
    _row_bits_attack(monkeypatch)
    monkeypatch.setattr(host_mod, "check_tree_start", lambda *a: None)
    with pytest.raises(_Captured) as got:
        _fit()
    hg = got.value.hists[0][0]  # root node: (features, n_bins + 1, 1) cumulative g sums
    n = 48
    recovered = []
    for j in range(hg.shape[0]):
        sums = [round(float(hg[j, t, 0]) * 2.0**24) for t in range(N_BINS - 1)]
        rank = [next((t for t, s in enumerate(sums) if s >> i & 1), N_BINS - 1) for i in range(n)]
        recovered.append(tuple(np.unique(rank, return_inverse=True)[1]))
    _, bins = fit_bins(_data(n, 1)[2], N_BINS)
    truth = {tuple(np.unique(bins[:, f], return_inverse=True)[1]) for f in range(bins.shape[1])}
    assert set(recovered) == truth


def test_host_refuses_a_layout_wider_than_the_honest_one(monkeypatch: pytest.MonkeyPatch) -> None:
    _row_bits_attack(monkeypatch)
    with pytest.raises(ProtocolAbort, match="wider than the honest layout") as err:
        _fit()
    assert err.value.party == "guest"


def test_honest_widths_are_exactly_the_hosts_limit() -> None:
    for params in (
        BoostParams(),
        BoostParams(goss=True, top_rate=0.2, other_rate=0.1),
        BoostParams(objective="multiclass", n_classes=3),
    ):
        rng = np.random.default_rng(0)
        k = params.n_outputs
        g = rng.uniform(-1, 1, size=(1000, k)) * params.goss_scale
        h = rng.uniform(0, 0.25, size=(1000, k)) * params.goss_scale
        layout = GradientLayout.make(g, h, 1000, params.precision_bits, params.gradient_bounds())
        assert layout.widths == params.max_widths(1000)
    # n_rows and precision move the limit: one more row bit widens every slot by one
    p = BoostParams()
    assert [b - a for a, b in zip(p.max_widths(1000), p.max_widths(1024), strict=True)] == [1] * 3


def test_extra_output_slots_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def start(**kw: Any) -> TreeStart:
        return TreeStart(**{**kw, "widths": [*kw["widths"], 8, 8]})

    monkeypatch.setattr(guest_mod, "TreeStart", start)
    with pytest.raises(ProtocolAbort, match="slots") as err:
        _fit()
    assert err.value.party == "guest"


# ---------------------------------------------------------------- item 5: instance spaces


def _forge_nodes(depth: int, forge: Any) -> Any:
    def make(**kw: Any) -> BuildHistograms:
        if kw["depth"] == depth:
            kw["node_of_row"], kw["nodes"] = forge(kw["node_of_row"], kw["nodes"])
        return BuildHistograms(**kw)

    return make


def _i32(values: Any) -> Any:
    return np.asarray(values, dtype=np.int32)


@pytest.mark.parametrize(
    ("depth", "forge", "match"),
    [
        # one node per row: each histogram would give one row's bins
        (0, lambda nor, nodes: (_i32(np.arange(nor.size)), _i32(np.arange(nor.size))), "beyond"),
        # rows left out of the root
        (0, lambda nor, nodes: (_i32(np.where(np.arange(nor.size) % 2, 0, -1)), nodes), "root"),
        # a single-row node at depth 1 (below 2 * min_samples_leaf)
        (1, lambda nor, nodes: (_i32([1] + [2] * (nor.size - 1)), _i32([1])), "fewer than"),
        # node ids beyond the depth (2**17 ids would allow one node per row)
        (1, lambda nor, nodes: (_i32(np.where(nor >= 0, 7, -1)), _i32([7])), "beyond depth"),
        # a row back in a node after its parent became a leaf / moved across the tree
        (2, lambda nor, nodes: (_i32(np.where(nor >= 0, 6 - nor % 2, -1)), nodes), "child"),
    ],
    ids=["rows-as-nodes", "root-subset", "single-row-node", "deep-node-ids", "not-a-child"],
)
def test_host_refuses_instance_spaces_no_honest_guest_sends(
    monkeypatch: pytest.MonkeyPatch, depth: int, forge: Any, match: str
) -> None:
    monkeypatch.setattr(guest_mod, "BuildHistograms", _forge_nodes(depth, forge))
    with pytest.raises(ProtocolAbort, match=match) as err:
        _fit(n=200, max_depth=3)
    assert err.value.party == "guest"


# ---------------------------------------------------------------- item-2 audit: what returns


def _split_requests(hub: MemoryHub) -> list[SplitRequest]:
    out = []
    for key, payload in hub.wire:
        if key.receiver == "host" and key.tag == "cmd":
            msg = codec.decode(payload)
            if isinstance(msg, SplitRequest):
                out.append(msg)
    return out


def test_no_decryption_derived_gain_reaches_a_host_by_default() -> None:
    """The only values the guest computes from decrypted host histograms and sends back are
    the split gains; they stay at the guest unless ``share_gains_with_hosts``."""
    hub = MemoryHub()
    _fit(n=200, max_depth=3, hub=hub)
    reqs = _split_requests(hub)
    assert sum(r.nodes.size for r in reqs) > 0
    assert all(not r.gains.any() for r in reqs)
    hub = MemoryHub()
    _fit(n=200, max_depth=3, hub=hub, share_gains_with_hosts=True)
    assert any(r.gains.any() for r in _split_requests(hub))


def test_ou_guest_refuses_a_chosen_histogram_ciphertext(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host sends an OU encryption of a chosen ``M`` far above ``p`` (its decryption
    ``M mod p`` would reveal ``p = gcd(M - reply, n)``): the guest's decryption refuses it and
    the guest aborts naming the host; no decryption is sent anywhere."""

    real = host_mod.compress

    def chosen(cts: Any, pk: Any, width: int, per_ct: int, executor: Any = None) -> Any:
        out = real(cts, pk, width, per_ct, executor)
        m = int(pk.n) // 3 + 12345  # a chosen M > p (n - x would be -x mod p: in bound)
        evil = int(gmpy2.powmod(pk.g, m, pk.n) * gmpy2.powmod(pk.h, 777, pk.n) % pk.n)
        return [evil, *out[1:]]

    monkeypatch.setattr(host_mod, "compress", chosen)
    with pytest.raises(ProtocolAbort, match="plaintext bound") as err:
        _fit(n=120, he_scheme="ou")
    assert err.value.party == "host"


def test_host_refuses_a_key_larger_than_agreed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A larger key than agreed multiplies the host's work: refused before any work."""
    real = guest_mod.paillier.generate_keypair

    def bigger(n_bits: int, **kw: Any) -> Any:
        return real(n_bits + 256, **kw)

    monkeypatch.setattr(guest_mod.paillier, "generate_keypair", bigger)
    with pytest.raises(ProtocolAbort, match="not the agreed") as err:
        _fit()
    assert err.value.party == "guest"


def test_guest_decrypts_only_the_agreed_packing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that packs one bin per ciphertext would make the key holder decrypt ``per_ct``
    times more plaintexts than the step needs: the guest refuses before decrypting."""
    real = host_mod.compress
    seen: dict[str, int] = {}

    def one_per_ct(cts: Any, pk: Any, width: int, per_ct: int, executor: Any = None) -> Any:
        seen["bytes"] = pk.ciphertext_bytes
        return real(cts, pk, width, 1, executor)

    def hist(**kw: Any) -> Histograms:
        total = len(kw["ct"]) // seen["bytes"]
        return Histograms(**{**kw, "per_ct": 1, "cts_per_node": total // kw["nodes"].size})

    monkeypatch.setattr(host_mod, "compress", one_per_ct)
    monkeypatch.setattr(host_mod, "Histograms", hist)
    with pytest.raises(ProtocolAbort, match="packing") as err:
        _fit()
    assert err.value.party == "host"


# ------------------------------------------------- the guest's key: modulus proof, OU refusal


def _p2q(bits: int = 1024, seed: int = 5) -> int:
    """``n = p**2 * q``: passes size, parity, power and trial-division checks, but
    ``gcd(n, phi(n)) = p`` (Z*_{n^2} has a part the host's randomness does not cover)."""
    rnd = random.Random(seed)
    while True:
        p = int(gmpy2.next_prime(rnd.getrandbits(341) | (1 << 340)))
        q = int(gmpy2.next_prime(rnd.getrandbits(342) | (1 << 341)))
        if (p * p * q).bit_length() == bits:
            return p * p * q


def _wire_as(pk: Any, edit: Any) -> Any:
    """The guest's key object, sending ``edit(honest wire dict)`` instead of its wire form."""
    honest = pk.to_wire()
    pk.to_wire = lambda: edit(dict(honest))
    return pk


def _flip_root(w: dict[str, Any]) -> dict[str, Any]:
    w["proof"] = [bytes([w["proof"][0][0] ^ 1]) + w["proof"][0][1:], *w["proof"][1:]]
    return w


def _malformed_with_replayed_proof(pk: Any) -> Any:
    # The guest can prove nothing for this n: it sends the (valid) proof of its honest key.
    return paillier.PublicKey(
        _p2q(), insecure_allow_small_keys=True, modulus_proof=pk.modulus_proof
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda pk: _wire_as(pk, lambda w: {k: v for k, v in w.items() if k != "proof"}),
        lambda pk: _wire_as(pk, _flip_root),
        _malformed_with_replayed_proof,
    ],
    ids=["no-proof", "tampered-proof", "p2q-modulus"],
)
def test_host_refuses_a_guest_key_without_a_valid_modulus_proof(
    monkeypatch: pytest.MonkeyPatch, make: Any
) -> None:
    """A Paillier key must come with the guest's proof that gcd(n, phi(n)) = 1; otherwise a
    guest could pick a modulus whose hidden components survive the host's re-randomisation
    and read which rows fell in each bin. Refused at key receipt, before any work."""
    real = paillier.generate_keypair  # the module the guest uses

    def keys(n_bits: int, **kw: Any) -> Any:
        pk, sk = real(n_bits, **kw)
        return make(pk), sk

    monkeypatch.setattr(paillier, "generate_keypair", keys)
    with pytest.raises(ProtocolAbort, match="proof") as err:
        _fit()
    assert err.value.party == "guest"


def test_host_refuses_a_peer_ou_key_in_production() -> None:
    """No well-formedness proof exists for an OU modulus: a host refuses to compute on the
    guest's OU key in production mode (unless allow_insecure), naming OU and Paillier."""
    xg, y, xh = _data(48, 1)
    est = HeteroSecureBoost(
        n_trees=1, max_depth=2, n_bins=N_BINS, he_scheme="ou", key_bits=2048, seed=2,
        settings=Settings(), timeout=30,
    )  # fmt: skip
    with pytest.raises(InsecureModeError, match=r"Okamoto-Uchiyama.*Paillier") as err:
        est.fit({"guest": xg, "host": xh}, y)
    assert "key of guest 'guest'" in str(err.value)


def test_peer_ou_keys_are_allowed_only_by_explicit_opt_in() -> None:
    with pytest.raises(InsecureModeError, match="peer's Okamoto-Uchiyama key"):
        require_peer_ou_allowed(Settings(), "x")
    require_peer_ou_allowed(Settings(allow_insecure=True), "x")
    require_peer_ou_allowed(DEV, "x")


# ------------------------------------------- randomness toward the key owner (red team 3)


def test_guest_reads_no_bin_membership_from_the_histogram_randomness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A guest with an ordinary key with ``p = q = 1 mod 4`` encrypts row 0's gradients with a
    randomiser that is a quadratic non-residue mod ``p`` (all other rows honest: the DJN
    ``h_s**a``, a residue). The Legendre symbol mod ``p`` of a packed histogram ciphertext's
    randomiser is then ``-1`` exactly when row 0 is in the cumulative bin of its first slot —
    and the DJN re-randomisation ``h_s**a`` keeps it: the guest read that membership for
    every ciphertext. With the uniform ``r**n`` it reads a coin flip. (A guest with smooth
    ``p - 1`` reads whole bitmaps the same way, see ``test_mpc_paillier.py``.)"""
    real_keygen = guest_mod.paillier.generate_keypair
    keys: list[Any] = []

    def keygen(n_bits: int, **kw: Any) -> Any:
        while True:
            pk, sk = real_keygen(n_bits, **kw)
            if int(sk._p) % 4 == 1 and int(sk._q) % 4 == 1:
                keys.append((pk, sk))
                return pk, sk

    real_rand = guest_mod._Guest._randomizers

    def crafted(self: Any, count: int) -> list[Any]:
        out = list(real_rand(self, count))
        p, n = int(self.sk._p), int(self.pk.n)
        x = next(v for v in range(2, p) if gmpy2.legendre(v, p) == -1)
        out[0] = out[0] * gmpy2.powmod(x, n, n * n) % (n * n)
        return out

    packed: list[Any] = []
    sent: list[tuple[list[Any], list[Any]]] = []
    real_compress, real_to_bytes = host_mod.compress, host_mod.ciphertexts_to_bytes

    def compress(*args: Any, **kw: Any) -> Any:
        out = real_compress(*args, **kw)
        packed.extend(out)
        return out

    def to_bytes(cts: Any, pk: Any) -> bytes:
        sent.append((list(packed), list(cts)))
        packed.clear()
        return real_to_bytes(cts, pk)

    monkeypatch.setattr(guest_mod.paillier, "generate_keypair", keygen)
    monkeypatch.setattr(guest_mod._Guest, "_randomizers", crafted)
    monkeypatch.setattr(host_mod, "compress", compress)
    monkeypatch.setattr(host_mod, "ciphertexts_to_bytes", to_bytes)
    _fit(n=200, n_trees=12, max_depth=3)
    ((pk, sk),) = keys
    p, n = int(sk._p), int(pk.n)

    def symbol(c: Any) -> int:  # Legendre symbol mod p of the ciphertext's randomiser
        return int(gmpy2.legendre(gmpy2.powmod(int(c) % p, pow(n, -1, p - 1), p), p))

    truth = [symbol(c) for before, _ in sent for c in before]
    read = [symbol(c) for _, after in sent for c in after]
    assert len(truth) == len(read) >= 40
    # Row 0's membership varies over the ciphertexts (the attack had something to read) ...
    assert 0 < truth.count(-1) < len(truth)
    # ... and the guest's reading agrees with it like a coin flip (DJN: every time).
    agree = sum(t == r for t, r in zip(truth, read, strict=True))
    assert agree <= 0.8 * len(truth), (agree, len(truth))
    # Each reply still decrypts to what the host packed (only the random part changed).
    for before, after in sent:
        assert sk.raw_decrypt(before) == sk.raw_decrypt(after)


# ---------------------------------------------------------------- prediction routing


def _route_attack(monkeypatch: pytest.MonkeyPatch, how: str) -> Any:
    """Train honestly, then predict with a guest whose routing queries deviate: ``twice``
    asks about every queried row at two host nodes in one query; ``replay`` repeats a query
    after its answer (the same rows at nodes the answers already passed)."""
    est = _fit(n=60, n_trees=2, max_depth=3)
    xg, _y, xh = _data(60, 1)
    real = guest_mod.RouteQuery
    sent: list[Any] = []

    def deviating(*, trees: Any, nodes: Any, rows: Any) -> Any:
        if how == "twice":
            trees, nodes, rows = (np.concatenate([a, a]) for a in (trees, nodes, rows))
        elif how == "replay" and sent:
            trees, nodes, rows = sent[0]
        sent.append((trees, nodes, rows))
        return real(trees=trees, nodes=nodes, rows=rows)

    monkeypatch.setattr(guest_mod, "RouteQuery", deviating)
    return est, xg, xh


@pytest.mark.parametrize("how", ["twice", "replay"])
def test_host_answers_routing_queries_only_along_the_path(
    monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A guest asking about rows off their prediction path (every (row, node) pair would give
    the left/right bit of each row at every host split) is refused naming it."""
    est, xg, xh = _route_attack(monkeypatch, how)
    assert est.host_models_["host"].splits, "the model must have host splits for this test"
    with pytest.raises(ProtocolAbort) as info:
        est.predict_proba({"guest": xg, "host": xh})
    assert info.value.party == "guest"
    assert "routing query" in str(info.value)


def test_honest_routing_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    est, xg, xh = _route_attack(monkeypatch, "honest")
    proba = est.predict_proba({"guest": xg, "host": xh})
    assert np.allclose(proba[:, 1], est.train_scores_[:, 1], atol=1e-9)
