"""Hetero Pearson correlation over Paillier (component ``hetero_pearson``).

The guest standardises its columns, encrypts them (fixed point, 16 fractional bits) under its
own key and sends them to each host. A host standardises its columns, clips them to ±32 standard
deviations and quantises them with the *public* scale ``8 / 2**15``, computes every encrypted
cross product ``sum_i z_g[i, a] * z_h[i, b]`` with the shared-base matrix product, packs the
results and returns them re-randomised. The guest decrypts the correlation matrix
``corr[a, b]`` and (unless ``reveal_to_hosts`` is false) sends it to the host.

What each party learns: the guest — the cross-correlation matrix (and the host's feature
count); a host — the same matrix if revealed, else nothing (ciphertexts only). With as many
guest columns as rows the guest could solve for a host column from the correlations: the
component refuses ``d_guest >= n / 2``. Accuracy: quantisation error below ``1e-3``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.fl.vertical.binning.common import BinParams, feature_matrix, new_keypair
from privfin.fl.vertical.binning.messages import BinKey, Correlations, EncryptedColumns
from privfin.he import paillier
from privfin.he._base import EncryptedVector, PackedEncryptedVector
from privfin.ml.he_linalg import encrypted_matvec
from privfin.runtime import Context

__all__ = ["hetero_pearson_component", "standardise"]

FRAC_BITS = 16
QUANT_BITS = 20
CLIP = 32.0


def standardise(x: np.ndarray) -> np.ndarray:
    """Columns with mean 0 and (population) standard deviation 1; constant columns -> 0."""
    std = x.std(axis=0)
    out: np.ndarray = np.where(std > 0, (x - x.mean(axis=0)) / np.where(std > 0, std, 1), 0.0)
    return out


def _bound_bits(n: int) -> int:
    z_bits = math.ceil(0.5 * math.log2(max(n, 2))) + 1
    return z_bits + FRAC_BITS + QUANT_BITS + math.ceil(math.log2(n + 1)) + 1


def hetero_pearson_component(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Pearson correlation between the guest's and each host's features (see module doc).

    Returns at the guest ``{"corr": {host: matrix (d_guest x d_host)}, "features": ...}``, at a
    host ``{"corr": matrix or None}``. Parameters: ``key_bits``, ``insecure_allow_small_keys``,
    ``reveal_to_hosts`` (default true).
    """
    reveal = bool(params.get("reveal_to_hosts", True))
    p = BinParams.from_mapping({k: v for k, v in params.items() if k != "reveal_to_hosts"})
    guests, hosts = ctx.parties_with("guest"), ctx.parties_with("host")
    if len(guests) != 1 or not hosts:
        raise ConfigError("hetero_pearson needs exactly one guest and at least one host")
    x, names = feature_matrix(inputs, params)
    if np.any(np.isnan(x)):
        raise ConfigError("impute missing values before computing correlations")
    n = x.shape[0]
    z = standardise(x)
    if ctx.has_role("guest"):
        if 2 * x.shape[1] >= n:
            raise ConfigError("hetero_pearson needs more than twice as many rows as guest features")
        pk, sk = new_keypair(ctx, p)
        ctx.channel.broadcast("key", BinKey(key=pk.to_wire()), peers=hosts)
        fixed = np.rint(np.ldexp(z, FRAC_BITS)).astype(np.int64)
        cols = [pk.encrypt(fixed[:, a].tolist()).to_wire() for a in range(z.shape[1])]
        for host in hosts:
            ctx.channel.send(host, "columns", EncryptedColumns(columns=cols))
        out: dict[str, Any] = {}
        for host in hosts:
            msg: Correlations = ctx.channel.recv(host, "products", expect=Correlations)
            if msg.packed is None:
                raise ProtocolAbort("missing encrypted products", party=host)
            try:
                values = sk.decrypt(PackedEncryptedVector.from_wire(pk, msg.packed))
            except DecodeError as exc:
                raise DecodeError(f"products from {host!r}: {exc}") from None
            flat = np.asarray(values, dtype=np.float64)
            if flat.size == 0 or flat.size % z.shape[1]:
                raise ProtocolAbort("wrong number of products", party=host)
            corr = (
                flat.reshape(z.shape[1], -1)
                * (CLIP / (2 ** (QUANT_BITS - 1) - 1))
                / (2.0**FRAC_BITS * n)
            )
            out[host] = corr
            if reveal:
                ctx.channel.send(host, "corr", Correlations(matrix=corr))
        return {"role": "guest", "features": names, "corr": out}
    guest = guests[0]
    key: BinKey = ctx.channel.recv(guest, "key", expect=BinKey)
    pk = paillier.PublicKey.from_wire(
        key.key, insecure_allow_small_keys=p.insecure_allow_small_keys
    )
    cols_msg: EncryptedColumns = ctx.channel.recv(guest, "columns", expect=EncryptedColumns)
    if not 0 < len(cols_msg.columns) < n / 2:
        raise ProtocolAbort("too many or no guest columns", party=guest)
    q = np.rint(np.clip(z, -CLIP, CLIP) * (2 ** (QUANT_BITS - 1) - 1) / CLIP).astype(np.int64)
    products: list[Any] = []
    for col in cols_msg.columns:
        try:
            enc = EncryptedVector.from_wire(pk, col)
        except DecodeError as exc:
            raise DecodeError(f"encrypted column from {guest!r}: {exc}") from None
        if len(enc) != n:
            raise ProtocolAbort(f"an encrypted column has {len(enc)} rows, not {n}", party=guest)
        products += encrypted_matvec(pk, enc.ciphertexts_raw, q, QUANT_BITS)
    vec = EncryptedVector(pk, products, frac_bits=0, bound_bits=_bound_bits(n), is_float=False)
    ctx.channel.send(guest, "products", Correlations(packed=vec.pack().to_wire()))
    corr = None
    if reveal:
        msg2: Correlations = ctx.channel.recv(guest, "corr", expect=Correlations)
        corr = msg2.matrix
    return {"role": "host", "features": names, "corr": corr}
