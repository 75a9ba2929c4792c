"""Label inference by a passive host in vertical learning (Li et al., "Label Leakage and
Protection in Two-party Split Learning", ICLR 2022).

The host holds features, not labels; the guest (the bank) holds the labels. Whatever the host
receives **per row** during training is what it can attack:

- **norm attack**: score a row by the size of what it received (a plaintext gradient's L2
  norm; for the rarer positive class the gradient ``p − y`` is larger, so the norm separates
  the classes);
- **direction attack**: score a row by the cosine similarity of what it received with what
  it received for one row whose label it knows (assumed: one known positive, as in Li et
  al.); rows of the same class point the same way.

Targets:

- ``naive-split`` (the unprotected control): a split logistic model where the host computes a
  4-dimensional embedding of its features and receives the plaintext gradient of the loss
  with respect to each row's embedding, as a naive split-learning deployment does.
- ``hetero-lr`` (privfin.fl.vertical.hetero_lr, mode arbiter) and ``secureboost``
  (privfin.fl.vertical.secureboost): the real protocols, run in-process; every message the host
  receives is captured on the memory hub. Per row the host receives only Paillier
  ciphertexts: the residuals ``Enc(d_i)`` (tag ``d``) or the packed gradients and hessians
  (``TreeStart``). The same two attacks run on them, a ciphertext read as an integer (norm:
  its value over ``n²``) or as a vector of its bytes (direction). Everything else it receives
  (its own aggregated gradient, split requests) is not per row. **Keys are 1024 bits here, a
  test-only size** (``insecure_allow_small_keys``); production keys are 2048 bits, and the
  ciphertexts' look does not depend on the size.

One trial per row; the truth is the row's label (1 = positive).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.assess.attacks._metrics import roc_result
from privfin.assess.model import AttackResult
from privfin.config import Settings
from privfin.errors import ConfigError
from privfin.federation import codec
from privfin.federation.memory import MemoryHub
from privfin.runtime import simulate

__all__ = ["TARGETS", "direction_scores", "label_inference", "norm_scores"]

Arr = npt.NDArray[np.float64]

TARGETS = ("naive-split", "hetero-lr", "secureboost")
#: Test-only Paillier size (fast); stated in every result's detail.
TEST_KEY_BITS = 1024
POSITIVE_RATE = 0.2


def vertical_data(n: int, seed: int) -> tuple[Arr, Arr, Arr]:
    """Guest features, host features, imbalanced labels (about 20 % positive)."""
    rng = np.random.default_rng(seed)
    xg = rng.normal(size=(n, 3))
    xh = rng.normal(size=(n, 4))
    z = xg @ [0.8, -0.5, 0.3] + xh @ [0.6, 0.4, -0.3, 0.2]
    z += np.log(POSITIVE_RATE / (1 - POSITIVE_RATE)) - np.mean(z)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.float64)
    y[:2] = [1.0, 0.0]  # both classes present; row 0 is the attacker's known positive
    return xg, xh, y


def norm_scores(received: Arr) -> Arr:
    """Li et al.'s norm attack: the L2 norm of each row's received vector."""
    return np.asarray(np.linalg.norm(received, axis=1), dtype=np.float64)


def direction_scores(received: Arr, known_positive: int = 0, *, centre: bool = False) -> Arr:
    """Li et al.'s direction attack: cosine similarity with a row known to be positive.

    ``centre``: subtract the mean row first (for ciphertext bytes, whose raw vectors all point
    the same way because every byte is non-negative; gradients are used as they are)."""
    v = received - received.mean(axis=0) if centre else received
    norms = np.maximum(np.linalg.norm(v, axis=1), 1e-300)
    return np.asarray((v @ v[known_positive]) / (norms * norms[known_positive]), dtype=np.float64)


# -- the naive split (control)


def naive_split_gradients(xg: Arr, xh: Arr, y: Arr, seed: int, epochs: int = 60) -> Arr:
    """Train a split logistic model (host: ``e = X_h W``, 4-dim; guest: ``z = e·v + X_g w_g``)
    by full-batch gradient descent; return what the host received in the last epoch: the
    per-row gradient ``dL/de_i = (σ(z_i) − y_i) v`` (once the model has learnt the class prior,
    the rarer positives get the larger gradients)."""
    rng = np.random.default_rng(seed)
    wh = rng.normal(scale=0.1, size=(xh.shape[1], 4))
    v = rng.normal(scale=0.5, size=4)
    wg = np.zeros(xg.shape[1])
    b = 0.0
    last = np.zeros((len(y), 4))
    for _ in range(epochs):
        e = xh @ wh
        p = 1 / (1 + np.exp(-(e @ v + xg @ wg + b)))
        r = (p - y) / len(y)
        grad_e = np.outer(r, v) * len(y)  # per-row gradient the host receives
        last = grad_e
        wh -= 0.5 * xh.T @ (grad_e / len(y))
        v -= 0.5 * e.T @ r
        wg -= 0.5 * xg.T @ r
        b -= 0.5 * float(r.sum())
    return last


# -- the real protocols


def _ints_as_rows(blob: bytes, count: int) -> tuple[Arr, Arr]:
    """``count`` fixed-width big-endian ciphertexts -> (integer value over 256^width, bytes)."""
    width = len(blob) // count
    raw = np.frombuffer(blob, dtype=np.uint8).reshape(count, width).astype(np.float64)
    top = min(width, 7)  # the leading bytes fix the value over 256^width to 2^-56
    frac = np.array(
        [
            int.from_bytes(blob[i * width : i * width + top], "big") / 256.0**top
            for i in range(count)
        ]
    )
    return frac, raw


def _hetero_lr_view(xg: Arr, xh: Arr, y: Arr, seed: int) -> tuple[Arr, Arr]:
    from privfin.fl.vertical.hetero_lr import hetero_lr_component

    hub = MemoryHub()
    params: dict[str, Any] = {
        "mode": "arbiter",
        "key_bits": TEST_KEY_BITS,
        "insecure_allow_small_keys": True,
        "max_iter": 1,
        "batch_size": len(y),
        "feature_counts": {"bank": xg.shape[1], "host": xh.shape[1]},
    }
    simulate(
        hetero_lr_component,
        {"bank": ["guest"], "host": ["host"], "arb": ["arbiter"]},
        params=params,
        inputs={"bank": {"X": xg, "y": y}, "host": {"X": xh}},
        seed=seed, hub=hub, settings=Settings(mode="development"), timeout=300,
    )  # fmt: skip
    for key, payload in hub.wire:
        if key.receiver == "host" and key.tag == "d":
            vec = codec.decode(payload).vec
            if int(vec["count"]) != len(y):
                raise RuntimeError("expected one ciphertext per row in the host's first batch")
            return _ints_as_rows(bytes(vec["ct"]), len(y))
    raise RuntimeError("the host received no residual ciphertexts")


def _secureboost_view(xg: Arr, xh: Arr, y: Arr, seed: int) -> tuple[Arr, Arr]:
    from privfin.fl.vertical.secureboost import HeteroSecureBoost
    from privfin.fl.vertical.secureboost.messages import TreeStart

    hub = MemoryHub()
    HeteroSecureBoost(
        n_trees=1, max_depth=2, key_bits=TEST_KEY_BITS, insecure_allow_small_keys=True,
        settings=Settings(mode="development"), seed=seed, timeout=300,
    ).fit({"guest": xg, "host": xh}, y.astype(np.int64), hub=hub)  # fmt: skip
    for key, payload in hub.wire:
        if key.receiver == "host":
            msg = codec.decode(payload)
            if isinstance(msg, TreeStart):
                if msg.rows.size != len(y):
                    raise RuntimeError("expected every row's gradients in the first tree")
                return _ints_as_rows(bytes(msg.ct), len(y))
    raise RuntimeError("the host received no gradient ciphertexts")


def label_inference(target: str, *, quick: bool = True, seed: int = 0) -> list[AttackResult]:
    """Run the norm and direction attacks on what the host receives from ``target``."""
    if target not in TARGETS:
        raise ConfigError(f"unknown label-inference target {target!r}; one of {TARGETS}")
    n = 400 if quick else 2000
    xg, xh, y = vertical_data(n, seed)
    if target == "naive-split":
        grads = naive_split_gradients(xg, xh, y, seed)
        norm, direction = norm_scores(grads), direction_scores(grads)
        name = "naive split learning (host receives plaintext per-row gradients)"
        protected, what = False, "plaintext gradient w.r.t. the host's 4-dim embedding"
    else:
        view = _hetero_lr_view if target == "hetero-lr" else _secureboost_view
        value, raw = view(xg, xh, y, seed)
        norm, direction = value, direction_scores(raw, centre=True)
        name = (
            "hetero LR (privfin.fl.vertical.hetero_lr, Paillier)"
            if target == "hetero-lr"
            else "SecureBoost (privfin.fl.vertical.secureboost, Paillier)"
        )
        protected = True
        what = f"Paillier ciphertexts (test-only {TEST_KEY_BITS}-bit key) of each row's residual"
    detail = f"{n} rows, {int(y.sum())} positive; host observes: {what}"
    # Row 0 is the known positive: it is not a trial of the direction attack.
    rest = np.arange(1, n)
    return [
        roc_result(
            "label-inference/norm", name, protected=protected, members=y, scores=norm,
            detail=f"norm attack; {detail}",
        ),
        roc_result(
            "label-inference/direction", name, protected=protected, members=y[rest],
            scores=direction[rest], detail=f"direction attack (one known positive); {detail}",
        ),
    ]  # fmt: skip
