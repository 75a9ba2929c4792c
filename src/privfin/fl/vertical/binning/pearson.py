"""Hetero Pearson correlation over Paillier (component ``hetero_pearson``).

Flow (wire names ``vfl.bin.*``): the guest sends its Paillier key; each host announces its
feature count ``d_h`` (``PearsonSetup``); the guest standardises its columns and sends them
encrypted, each entry as ``2**16 * z[i, a] + K * rho_a`` with a secret random 64-bit
``rho_a`` per column and ``K = 2**(B + 1)`` above the honest product bound ``2**B``. The host
standardises its columns, clips them to ±32 standard deviations, quantises them with the
*public* scale ``32 / (2**19 - 1)`` and corrects the rounding so that every quantised column
sums to exactly zero; it computes every encrypted cross product ``sum_i q[i, b] * Enc(...)``
with the shared-base matrix product — the ``K * rho_a`` terms cancel — packs the
``d_guest * d_h`` results in the public layout and returns them re-randomised.

The guest decrypts exactly ``d_guest * d_h`` products and checks, before it uses or returns
anything: the public packing, every slot below ``2**B`` (a product whose weights on a guest
column do not sum to zero — e.g. a guest ciphertext packed back as is — carries ``K * rho_a``
and fails, except with probability below ``2**-63`` per slot) and every correlation in
``[-1.01, 1.01]``. A host that fails a check is named in a :class:`ProtocolAbort`. The guest
sends the matrix to the host only if ``reveal_to_hosts`` (default false).

What each party learns: the guest — the cross-correlation matrix (and the host's feature
count); a host — nothing (ciphertexts only), or, with ``reveal_to_hosts``, the matrix, i.e. up
to ``d_guest * d_h`` zero-sum linear combinations of the guest's standardised columns that a
malicious host may choose (see SPEC.md). With as many guest columns as rows the guest could
solve for a host column from the correlations: the component refuses ``d_guest >= n / 2``, and
``d_h`` must be below ``n / 2`` and ``max_features``. Both counts are public, AGREED parameters
(``feature_counts``, required): the guest refuses a host announcing another ``d_h`` and the host
refuses a guest sending another number of columns (or ``2 * d_g >= n``), ``ProtocolAbort``
naming the sender. What a guest can still do with its agreed ``d_g`` columns (crafted values)
is stated in SPEC.md. Accuracy: within 1e-4 of numpy (tested).
Paillier only (an Okamoto-Uchiyama key would decrypt chosen ciphertexts modulo its secret prime).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.fl.vertical.binning.common import (
    BinParams,
    feature_matrix,
    guest_key,
    new_keypair,
    reply_for_owner,
)
from privfin.fl.vertical.binning.messages import (
    BinKey,
    Correlations,
    EncryptedColumns,
    PearsonSetup,
)
from privfin.he._packed import PackedEncryptedVector
from privfin.he._vector import EncryptedVector
from privfin.he.errors import OverflowDetected
from privfin.ml.he_linalg import encrypted_matvec
from privfin.runtime import Context

__all__ = ["hetero_pearson_component", "standardise"]

FRAC_BITS = 16
QUANT_BITS = 20
CLIP = 32.0
#: Bits of the guest's secret per-column weights ``rho_a``.
RHO_BITS = 64
#: Largest |correlation| the guest accepts (honest values lie in [-1, 1] up to rounding).
CORR_LIMIT = 1.01


def standardise(x: np.ndarray) -> np.ndarray:
    """Columns with mean 0 and (population) standard deviation 1; constant columns -> 0."""
    std = x.std(axis=0)
    out: np.ndarray = np.where(std > 0, (x - x.mean(axis=0)) / np.where(std > 0, std, 1), 0.0)
    return out


def _bound_bits(n: int) -> int:
    z_bits = math.ceil(0.5 * math.log2(max(n, 2))) + 1
    return z_bits + FRAC_BITS + QUANT_BITS + math.ceil(math.log2(n + 1)) + 1


def _column_bits(n: int) -> int:
    """Public bound (bits) of an encrypted guest entry ``2**16 z + K rho`` (K = 2**(B + 1))."""
    return _bound_bits(n) + 1 + RHO_BITS + 1


def quantise(z: np.ndarray) -> np.ndarray:
    """The host's public quantisation: clip to ±CLIP, scale, round, then move the rounding
    residue of every column onto its entries (those with the largest rounding error first) so
    that each column sums to exactly zero (the guest's mask check needs it)."""
    scaled = np.clip(z, -CLIP, CLIP) * (2 ** (QUANT_BITS - 1) - 1) / CLIP
    q = np.rint(scaled).astype(np.int64)
    n = q.shape[0]
    for b in range(q.shape[1]):
        r = int(q[:, b].sum())
        if r == 0:
            continue
        step = -1 if r > 0 else 1
        base, extra = divmod(abs(r), n)
        q[:, b] += step * base
        # Entries rounded furthest in the direction of the residue move first.
        order = np.argsort(step * (scaled[:, b] - q[:, b]), kind="stable")[::-1]
        q[order[:extra], b] += step
    out: np.ndarray = q
    return out


def _agreed_counts(value: Any, parties: list[str]) -> dict[str, int]:
    """The public, agreed ``feature_counts`` ({party: feature columns}), one per party."""
    if value is None:
        raise ConfigError(
            "hetero_pearson needs the parameter 'feature_counts' ({party: number of feature "
            "columns}, agreed by all parties, e.g. from the approved schemas): each side "
            "refuses a peer that sends another number of columns"
        )
    if not isinstance(value, Mapping) or set(value) != set(parties):
        raise ConfigError(f"feature_counts must name exactly the parties {sorted(parties)}")
    out: dict[str, int] = {}
    for party, count in value.items():
        if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= 4096:
            raise ConfigError(f"feature_counts[{party!r}] must be an integer in [1, 4096]")
        out[str(party)] = count
    return out


def _guest_products(
    ctx: Context, pk: Any, sk: Any, host: str, n: int, d_g: int, d_h: int
) -> np.ndarray:
    """Receive, check and decrypt one host's products (exactly ``d_g * d_h``)."""
    msg: Correlations = ctx.channel.recv(host, "products", expect=Correlations)
    if msg.packed is None or msg.matrix is not None:
        raise ProtocolAbort("expected the encrypted products only", party=host)
    try:
        packed = PackedEncryptedVector.from_wire(pk, msg.packed)
    except DecodeError as exc:
        raise DecodeError(f"products from {host!r}: {exc}") from None
    bound, count = _bound_bits(n), d_g * d_h
    slots = pk.capacity_bits // (bound + 1)
    if (
        packed.bound_bits != bound
        or packed.slot_bits != bound + 1
        or packed.frac_bits != 0
        or packed.is_float
        or packed.flat_length != count
        or packed.layout.slots != slots
        or packed.cols != min(slots, count)
        or len(packed) != -(-count // slots)
    ):
        raise ProtocolAbort(
            f"products are not {d_g} x {d_h} values in the public packing", party=host
        )
    try:
        values = sk.decrypt(packed)
    except OverflowDetected:
        raise ProtocolAbort(
            "a product lies outside the honest range (not a zero-sum combination of the "
            "guest's columns)",
            party=host,
        ) from None
    flat = np.asarray(values, dtype=np.float64)
    if flat.size != count:
        raise ProtocolAbort(f"{flat.size} products, not {count}", party=host)
    corr: np.ndarray = (
        flat.reshape(d_g, d_h) * (CLIP / (2 ** (QUANT_BITS - 1) - 1)) / (2.0**FRAC_BITS * n)
    )
    if not np.all(np.abs(corr) <= CORR_LIMIT):
        raise ProtocolAbort(f"a correlation lies outside [-{CORR_LIMIT}, {CORR_LIMIT}]", party=host)
    return corr


def hetero_pearson_component(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Pearson correlation between the guest's and each host's features (see module doc).

    Returns at the guest ``{"corr": {host: matrix (d_guest x d_host)}, "features": ...}``, at a
    host ``{"corr": matrix or None}``. Parameters: ``feature_counts`` (required: ``{party:
    feature columns}``, public and agreed), ``key_bits``, ``insecure_allow_small_keys``,
    ``max_features`` (most host features, default 256), ``reveal_to_hosts`` (default false).
    """
    reveal = bool(params.get("reveal_to_hosts", False))
    own = ("reveal_to_hosts", "feature_counts")
    p = BinParams.from_mapping({k: v for k, v in params.items() if k not in own})
    guests, hosts = ctx.parties_with("guest"), ctx.parties_with("host")
    if len(guests) != 1 or not hosts:
        raise ConfigError("hetero_pearson needs exactly one guest and at least one host")
    agreed = _agreed_counts(params.get("feature_counts"), [guests[0], *hosts])
    x, names = feature_matrix(inputs, params)
    if np.any(np.isnan(x)):
        raise ConfigError("impute missing values before computing correlations")
    n = x.shape[0]
    if x.shape[1] != agreed[ctx.party]:
        raise ConfigError(
            f"this party's data has {x.shape[1]} feature columns, feature_counts"
            f"[{ctx.party!r}] agreed {agreed[ctx.party]}: fix the data or the job parameters"
        )
    for party, count in agreed.items():
        # Public values, the same check at every party: with as many columns as half the
        # rows a party could solve for the other side's columns from the correlations.
        if 2 * count >= n or (party != guests[0] and count > p.max_features):
            raise ConfigError(
                f"feature_counts[{party!r}] = {count}: hetero_pearson needs fewer columns than "
                f"half the {n} rows (and at most max_features={p.max_features} per host)"
            )
    z = standardise(x)
    if ctx.has_role("guest"):
        d_g = z.shape[1]
        if 2 * d_g >= n:
            raise ConfigError("hetero_pearson needs more than twice as many rows as guest features")
        pk, sk = new_keypair(ctx, p)
        ctx.channel.broadcast("key", BinKey(key=pk.to_wire()), peers=hosts)
        widths: dict[str, int] = {}
        for host in hosts:
            setup: PearsonSetup = ctx.channel.recv(host, "setup", expect=PearsonSetup)
            if setup.n_features != agreed[host]:
                raise ProtocolAbort(
                    f"{host!r} announced {setup.n_features} features, {agreed[host]} were "
                    "agreed (feature_counts): refused, nothing decrypted",
                    party=host,
                )
            if setup.n_features > p.max_features or 2 * setup.n_features >= n:
                raise ProtocolAbort(
                    f"{setup.n_features} host features: more than max_features="
                    f"{p.max_features} or not below half the rows",
                    party=host,
                )
            widths[host] = setup.n_features
        fixed = np.rint(np.ldexp(z, FRAC_BITS)).astype(np.int64)
        k = 1 << (_bound_bits(n) + 1)
        cols = []
        for a in range(d_g):
            rho = (1 << (RHO_BITS - 1)) + ctx.random.below(1 << (RHO_BITS - 1))
            entries = [int(v) + k * rho for v in fixed[:, a].tolist()]
            cols.append(pk.encrypt(entries, value_bits=_column_bits(n)).to_wire())
        for host in hosts:
            ctx.channel.send(host, "columns", EncryptedColumns(columns=cols))
        out = {host: _guest_products(ctx, pk, sk, host, n, d_g, widths[host]) for host in hosts}
        if reveal:
            for host in hosts:
                ctx.channel.send(host, "corr", Correlations(matrix=out[host]))
        return {"role": "guest", "features": names, "corr": out}
    guest = guests[0]
    key: BinKey = ctx.channel.recv(guest, "key", expect=BinKey)
    pk = guest_key(key.key, p, guest)
    d_h = z.shape[1]
    if d_h > p.max_features or 2 * d_h >= n:
        raise ConfigError(f"{d_h} features: more than max_features or not below half the rows")
    ctx.channel.send(guest, "setup", PearsonSetup(n_features=d_h))
    cols_msg: EncryptedColumns = ctx.channel.recv(guest, "columns", expect=EncryptedColumns)
    d_g = len(cols_msg.columns)
    if d_g != agreed[guest] or not 0 < 2 * d_g < n:
        # A guest sending n/2 - 1 crafted "columns" e_i * 2**16 read that many rows of this
        # host's standardised matrix: the count is the agreed one, below half the rows.
        raise ProtocolAbort(
            f"{guest!r} sent {d_g} encrypted columns, {agreed[guest]} were agreed "
            f"(feature_counts) and fewer than half the {n} rows are allowed: refused",
            party=guest,
        )
    q = quantise(z)
    bits = QUANT_BITS if int(np.abs(q).max(initial=0)) < 1 << (QUANT_BITS - 1) else QUANT_BITS + 1
    products: list[Any] = []
    for col in cols_msg.columns:
        try:
            enc = EncryptedVector.from_wire(pk, col)
        except DecodeError as exc:
            raise DecodeError(f"encrypted column from {guest!r}: {exc}") from None
        if len(enc) != n:
            raise ProtocolAbort(f"an encrypted column has {len(enc)} rows, not {n}", party=guest)
        if enc.bound_bits != _column_bits(n) or enc.frac_bits != 0 or enc.is_float:
            raise ProtocolAbort(
                "an encrypted column does not have the public encoding", party=guest
            )
        products += encrypted_matvec(pk, enc.ciphertexts_raw, q, bits)
    vec = EncryptedVector(pk, products, frac_bits=0, bound_bits=_bound_bits(n), is_float=False)
    # Uniform re-randomisation (r**n) as the last operation: the guest chose the randomness
    # of its columns, the DJN randomiser would let it read q from the products' random part.
    ctx.channel.send(guest, "products", Correlations(packed=reply_for_owner(ctx, vec)))
    corr = None
    if reveal:
        msg2: Correlations = ctx.channel.recv(guest, "corr", expect=Correlations)
        if msg2.matrix is None or msg2.matrix.shape != (len(cols_msg.columns), d_h):
            raise ProtocolAbort("the correlation matrix has the wrong shape", party=guest)
        corr = msg2.matrix
    return {"role": "host", "features": names, "corr": corr}
