"""Helpers shared by the roles: keys, ciphertext messages, the decryption service, masks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from privfin.config import require_insecure_allowed, require_peer_ou_allowed
from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.fl.vertical.hetero_lr.common import (
    VALUE_BITS,
    WEIGHT_BITS,
    WEIGHT_FRAC_BITS,
    LRParams,
    PartyModel,
    stop_now,
)
from privfin.fl.vertical.hetero_lr.messages import (
    MAX_FEATURES,
    Ciphertexts,
    FeatureCount,
    KeyAnnouncement,
    Plaintexts,
    Verdict,
    WeightNorms,
)
from privfin.he import ou, paillier
from privfin.he._keys import PrivateKeyBase, PublicKeyBase
from privfin.he._vector import EncryptedVector
from privfin.he.errors import OverflowDetected
from privfin.ml.he_linalg import (
    check_masked_packed,
    encrypted_matvec,
    mask_and_pack,
    packed_size,
    unmask_reduced,
)
from privfin.runtime import Context

__all__ = [
    "announce_features",
    "announce_key",
    "decrypt_for",
    "masked_gradient",
    "new_keypair",
    "receive_features",
    "receive_key",
    "recv_cts",
    "send_cts",
    "sync_stop",
    "weight_blinds",
    "wide_masks",
]


def wide_masks(params: LRParams) -> bool:
    """Mode ``guest`` with Paillier: masks uniform over the whole plaintext space, one
    ciphertext per gradient entry.

    In mode ``guest`` every key holder also supplies an encrypted input of the product it later
    decrypts (the guest's ``Enc_g(v)``, a host's ``Enc_k(u_k/4)``) and nobody can check its
    range: with ``B + σ``-bit masks a key holder that sent ``Enc(2**K e_i)`` read row ``i`` of the
    requester's quantised features in the bits above ``K``. A mask ``r`` uniform in
    ``[2**B, n - 2**B)`` makes ``g + r mod n`` statistically independent of ``g`` whatever the
    key holder put in (distance ``< 2**(B + 2 - |n|)``). OU decrypts modulo a secret prime, so it
    keeps the narrow, packed masks (and a peer's OU key is an insecure mode anyway)."""
    return params.mode == "guest" and params.scheme == "paillier"


def weight_blinds(ctx: Context, key: PublicKeyBase, params: LRParams, count: int) -> list[int]:
    """Mode ``guest`` with class weights: the guest's blinds ``rho`` for ``s * u_k / 4`` under
    host ``k``'s key ``key``.

    Host ``k`` decrypts ``s * u_k/4 + rho`` with its own key; its own ciphertexts ``Enc_k(u_k/4)``
    are of its choosing, so ``rho`` must hide any ``s * x``: Paillier — uniform in
    ``[2**W, n - 2**W)`` (``s * x + rho mod n`` within ``2**(W + 2 - |n|)`` of uniform); OU —
    uniform in ``[2**W, 2**capacity_bits - 2**W)`` (honest values; a host choosing ``x`` beyond
    the bound can read ``s``: OU peer keys are an insecure mode). ``W`` bounds the honest
    ``|s * u/4|`` (values, fraction and weight bits)."""
    low = 1 << (VALUE_BITS + params.frac_bits + WEIGHT_BITS + WEIGHT_FRAC_BITS + 1)
    top = int(key.n) if key.scheme == "paillier" else 1 << key.capacity_bits
    span = top - 2 * low
    if span <= low:
        raise ConfigError("the key is too small for class weights in mode 'guest'")
    return [low + ctx.random.below(span) for _ in range(count)]


def new_keypair(ctx: Context, params: LRParams) -> tuple[PublicKeyBase, PrivateKeyBase]:
    """A fresh key pair (``params.scheme``: Paillier or OU) of ``params.key_bits`` bits (small
    keys need both the explicit parameter and a settings mode that allows insecure modes)."""
    if params.key_bits < 2048:
        if not params.insecure_allow_small_keys:
            raise ConfigError(
                f"key_bits={params.key_bits} is below {paillier.MIN_SECURE_KEY_BITS}; set "
                "insecure_allow_small_keys only in tests"
            )
        require_insecure_allowed(ctx.settings, f"a {params.key_bits}-bit Paillier key")
    gen = ou.generate_keypair if params.scheme == "ou" else paillier.generate_keypair
    return gen(params.key_bits, insecure_allow_small_keys=params.insecure_allow_small_keys)


def announce_key(ctx: Context, pk: PublicKeyBase, peers: Sequence[str]) -> None:
    ctx.channel.broadcast("pk", KeyAnnouncement(key=pk.to_wire()), peers=list(peers))


def receive_key(ctx: Context, params: LRParams, owner: str) -> PublicKeyBase:
    """Load ``owner``'s public key; refuses another scheme or a size other than the agreed
    ``key_bits`` (OU moduli may be a few bits shorter).

    The key always comes from a peer. Paillier: ``from_wire`` checks the agreed size
    (``expect_bits``) first — a huge modulus is refused before any exponentiation — then
    verifies the owner's proof that the modulus is well formed; a wrong size, a malformed key
    or a missing or invalid proof →
    :class:`ProtocolAbort` naming ``owner``. OU: the key carries no such proof (a malicious
    owner could read this party's values beyond the masks from the replies it decrypts), so
    it is refused in production mode unless ``allow_insecure`` (:func:`require_peer_ou_allowed`).
    """
    if params.scheme == "ou":
        require_peer_ou_allowed(ctx.settings, f"hetero LR party {ctx.party!r}: {owner!r}'s OU key")
    msg = ctx.channel.recv(owner, "pk", expect=KeyAnnouncement)
    try:
        pk: PublicKeyBase
        if params.scheme == "ou":
            pk = ou.PublicKey.from_wire(
                msg.key, insecure_allow_small_keys=params.insecure_allow_small_keys
            )
        else:  # the agreed size is checked before the (costly) proof check
            pk = paillier.PublicKey.from_wire(
                msg.key,
                insecure_allow_small_keys=params.insecure_allow_small_keys,
                expect_bits=params.key_bits,
            )
    except DecodeError as exc:
        raise ProtocolAbort(
            f"{owner!r} sent a public key that is not well formed: {exc}", party=owner
        ) from None
    slack = 8 if params.scheme == "ou" else 0
    if not params.key_bits - slack <= pk.n_bits <= params.key_bits:
        raise ProtocolAbort(
            f"{owner!r} announced a {pk.n_bits}-bit key, {params.key_bits} were agreed",
            party=owner,
        )
    return pk


def send_cts(
    ctx: Context,
    peer: str,
    tag: str,
    pk: PublicKeyBase,
    cts: Sequence[Any],
    *,
    fresh: bool,
    for_owner: bool = False,
    n_jobs: int = 1,
) -> None:
    """Send ciphertexts under ``pk`` to ``peer``.

    ``for_owner``: ``peer`` owns ``pk`` (it will decrypt them) — the last operation before
    the send is a re-randomisation with a UNIFORM encryption of zero
    (:meth:`~privfin.he._raw.RawPublicKey.raw_obfuscate_for_owner`, ``r**n`` with ``r``
    uniform in ``Z*_n``), fresh or not. The cheap short-exponent randomiser ``h_s**a`` hides
    a ciphertext's history from third parties only: a key owner with a smooth ``p - 1`` (a
    well-formed key, it passes the modulus proof) recovers the random part of a reply, takes
    discrete logs modulo ``p`` and reads the scalars this party multiplied into ciphertexts
    whose randomness the owner chose (its features, the class weights). Otherwise non-fresh
    ciphertexts are re-randomised with the cheap randomiser (``to_wire``).
    """
    if for_owner:
        cts = pk.raw_obfuscate_for_owner(cts, rng=paillier.bits_from(ctx.random), n_jobs=n_jobs)
        fresh = True
    vec = EncryptedVector(
        pk, cts, frac_bits=0, bound_bits=pk.capacity_bits, is_float=False, fresh=fresh
    )
    ctx.channel.send(peer, tag, Ciphertexts(vec=vec.to_wire()))


def recv_cts(ctx: Context, peer: str, tag: str, pk: PublicKeyBase, count: int) -> list[Any]:
    """Receive ``count`` ciphertexts under ``pk``; :class:`DecodeError` if malformed."""
    msg = ctx.channel.recv(peer, tag, expect=Ciphertexts)
    try:
        vec = EncryptedVector.from_wire(pk, msg.vec)
    except DecodeError as exc:
        raise DecodeError(f"ciphertexts from {peer!r} ({tag}): {exc}") from None
    if len(vec) != count:
        raise ProtocolAbort(f"{peer!r} sent {len(vec)} ciphertexts for {tag}, {count} expected",
                            party=peer)  # fmt: skip
    return vec.ciphertexts_raw


def announce_features(ctx: Context, keyholders: Sequence[str], count: int) -> None:
    """Tell the key holder(s) of our masked requests how many gradient entries we have (once,
    at setup: the size of every later request follows from it)."""
    if not 0 < count <= MAX_FEATURES:
        raise ConfigError(f"hetero_lr supports 1 to {MAX_FEATURES} features per party, got {count}")
    for keyholder in keyholders:
        ctx.channel.send(keyholder, "features", FeatureCount(count=count))


def receive_features(ctx: Context, peer: str, agreed: int) -> int:
    """Check the number of gradient entries ``peer`` announced at setup against the ``agreed``
    (public) one; returns it (fixed for the run).

    A requester's count is never self-declared: a host that announced ``d_h + m`` entries could
    fill the extra slots with ``[Q | I_m]ᵀ Enc(d)`` and read every residual of every batch
    (a guest likewise the hosts' partial predictors). Any other count → :class:`ProtocolAbort`
    naming ``peer``, before anything is decrypted for it.
    """
    msg: FeatureCount = ctx.channel.recv(peer, "features", expect=FeatureCount)
    if msg.count != agreed:
        raise ProtocolAbort(
            f"{peer!r} announced {msg.count} gradient entries, {agreed} were agreed "
            "(feature_counts): refused, nothing will be decrypted for it",
            party=peer,
        )
    return agreed


def decrypt_for(
    ctx: Context,
    peer: str,
    sk: PrivateKeyBase,
    params: LRParams,
    *,
    count: int,
    bound_bits: int,
    tag: str = "masked",
    reply: str = "plain",
) -> None:
    """Key holder's service: decrypt ``peer``'s masked packed gradient and send it back.

    Trust no peer: the request must hold exactly the number of ciphertexts that ``count``
    entries (announced by ``peer`` at setup) pack into for this step's public ``bound_bits``,
    and every decrypted slot must be a masked value (:func:`check_masked_packed`; an OU
    residue beyond the plaintext bound is refused by the key itself). Everything is checked
    before anything is sent: on a violation ``peer`` gets no decryption at all and the run
    stops with :class:`ProtocolAbort` naming it. The reply holds only the low
    ``bound_bits + 1`` bits of each slot (all an honest peer needs), so a deviating peer learns
    at most ``count * (bound_bits + 1)`` bits per request (SPEC.md).
    """
    msg = ctx.channel.recv(peer, tag, expect=Ciphertexts)
    pk = sk.public_key
    try:
        vec = EncryptedVector.from_wire(pk, msg.vec)
    except DecodeError as exc:
        raise DecodeError(f"masked gradient from {peer!r}: {exc}") from None
    wide = wide_masks(params)
    expected = count if wide else packed_size(pk, count, bound_bits, params.stat_bits)
    if len(vec) != expected:
        raise ProtocolAbort(
            f"{peer!r} sent {len(vec)} ciphertexts for decryption ({tag}); its {count} "
            f"announced gradient entries pack into exactly {expected}: refused, nothing decrypted",
            party=peer,
        )
    try:
        values = sk.raw_decrypt(vec.ciphertexts_raw, n_jobs=params.n_jobs)
    except OverflowDetected:
        raise ProtocolAbort(
            f"{peer!r} sent a ciphertext beyond the plaintext bound for decryption ({tag}): "
            "refused, nothing returned",
            party=peer,
        ) from None
    if wide:
        # Every residue in [0, n) is a possible masked value: nothing to check beyond the
        # exact count; the reply is still the low B + 1 bits of each entry.
        reply_mod = 1 << (bound_bits + 1)
        ctx.channel.send(peer, reply, Plaintexts(values=[int(v) % reply_mod for v in values]))
        ctx.metrics.add("hetero_lr.decryptions", float(len(values)))
        return
    try:
        reduced = check_masked_packed(pk, values, count, bound_bits, stat_bits=params.stat_bits)
    except ProtocolAbort as exc:
        raise ProtocolAbort(
            f"{peer!r} sent a request for decryption ({tag}) that is not a masked gradient: "
            f"{exc}; refused, nothing returned",
            party=peer,
        ) from None
    ctx.channel.send(peer, reply, Plaintexts(values=reduced))
    ctx.metrics.add("hetero_lr.decryptions", float(len(values)))


def masked_gradient(
    ctx: Context,
    pk: PublicKeyBase,
    cts: Sequence[Any],
    model: PartyModel,
    rows: Any,
    plain_shift: list[int] | None,
    bound_bits: int,
    params: LRParams,
) -> tuple[list[Any], list[int], int]:
    """``Enc(Q[rows]^T d (+ Q[rows]^T plain_shift))``, masked and packed for the key holder
    (mode ``guest`` with Paillier: one ciphertext per entry under a full-width mask,
    :func:`wide_masks`)."""
    q = model.q[rows]
    g = encrypted_matvec(pk, cts, q, params.grad_bits, n_jobs=params.n_jobs)
    if plain_shift is not None:
        extra = [int(v) for v in _int_matvec(q, plain_shift)]
        g = pk.raw_add_plain(g, extra)
    ctx.metrics.add("hetero_lr.matvec_cells", float(q.size))
    if wide_masks(params):
        low = 1 << bound_bits
        span = int(pk.n) - 2 * low
        masks = [low + ctx.random.below(span) for _ in g]
        return pk.raw_add_plain(g, masks), masks, 0
    return mask_and_pack(pk, g, bound_bits, ctx.random.below, stat_bits=params.stat_bits)


def _int_matvec(q: Any, vec: list[int]) -> list[int]:
    cols = q.T.tolist()
    return [sum(a * b for a, b in zip(col, vec, strict=True)) for col in cols]


def gradient_reply(
    ctx: Context, keyholder: str, masks: list[int], bound_bits: int, *, tag: str = "plain"
) -> list[int]:
    """Receive the key holder's reply to our masked packed gradient (each slot modulo
    ``2**(bound_bits + 1)``) and unmask it."""
    msg = ctx.channel.recv(keyholder, tag, expect=Plaintexts)
    try:
        return unmask_reduced(msg.values, masks, bound_bits)
    except ProtocolAbort as exc:
        raise ProtocolAbort(str(exc), party=keyholder) from None


def sync_stop(
    ctx: Context, params: LRParams, coordinator: str, parties: Sequence[str], diff_sq: float
) -> bool:
    """End-of-epoch early-stopping vote: parties send their squared weight change to the
    coordinator, which broadcasts the verdict (no messages at all if early stopping is off)."""
    if not params.early_stopping:
        return False
    if ctx.party == coordinator:
        total = diff_sq
        others = [p for p in parties if p != coordinator]
        for msg in ctx.channel.gather("norms", peers=others, expect=WeightNorms).values():
            total += msg.diff_sq
        stop = stop_now(total, params)
        ctx.channel.broadcast("verdict", Verdict(stop=stop), peers=others)
        return stop
    ctx.channel.send(coordinator, "norms", WeightNorms(diff_sq=diff_sq))
    verdict: Verdict = ctx.channel.recv(coordinator, "verdict", expect=Verdict)
    return verdict.stop
