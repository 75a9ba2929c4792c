"""Non-linear functions on shared tensors: comparison, ReLU, sigmoid, reciprocal, exp, log.

All functions keep their inputs and outputs secret-shared; they open only masked values (see
:mod:`privfin.mpc.protocol`). Accuracy is stated per function for the default 16 fractional
bits and is checked against numpy in ``tests/mpc``. Comparisons are exact.
"""

from __future__ import annotations

import numpy as np

from privfin.mpc.ring import encode_fixed, ring_ops
from privfin.mpc.tensor import SharedTensor, concatenate

__all__ = [
    "SIGMOIDS",
    "SIGMOID_BOUND",
    "SIGMOID_COEFFS",
    "SIGMOID_PW_KNOTS",
    "abs_",
    "clip",
    "divide",
    "drelu",
    "exp",
    "greater",
    "inv_sqrt",
    "less",
    "log",
    "maximum",
    "minimum",
    "reciprocal",
    "relu",
    "sigmoid",
    "sigmoid_untruncated",
    "sqrt",
    "where",
]

#: sigmoid(x) for x in [0, 8] as a polynomial in t = x / 8 (weighted least squares, degree 6);
#: max |error| over the reals 1.05e-3 in floating point, < 2e-3 at 16 fractional bits.
SIGMOID_BOUND = 8.0
SIGMOID_COEFFS = (
    0.49895144,
    2.08447295,
    -0.96399874,
    -9.37880022,
    21.39664555,
    -18.30614829,
    5.66959045,
)


def _bits_not(b: SharedTensor) -> SharedTensor:
    return 1 - b


def less(x: SharedTensor, y: SharedTensor | float) -> SharedTensor:
    """Shared 0/1 bits of ``x < y`` (exact; ``x - y`` must stay within the ring)."""
    return x.session.msb(x - y)


def greater(x: SharedTensor, y: SharedTensor | float) -> SharedTensor:
    """Shared 0/1 bits of ``x > y`` (exact)."""
    d = -(x - y)
    return d.session.msb(d)


def drelu(x: SharedTensor) -> SharedTensor:
    """Shared 0/1 bits of ``x >= 0`` (the derivative of ReLU; exact)."""
    return _bits_not(x.session.msb(x))


def where(cond: SharedTensor, a: SharedTensor | float, b: SharedTensor | float) -> SharedTensor:
    """``cond ? a : b`` for shared 0/1 bits ``cond`` (one multiplication, no truncation)."""
    if isinstance(b, SharedTensor):
        return b + cond * (a - b)
    return cond * (a - b) + b if isinstance(a, SharedTensor) else cond * float(a - b) + b


def relu(x: SharedTensor) -> SharedTensor:
    """``max(x, 0) = x - msb(x) x`` (exact up to the encoding; one fused comparison)."""
    return x - x.session.msb_mul(x, x)


def maximum(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """Element-wise maximum ``x - msb(x - y) (x - y)`` (exact)."""
    d = x - y
    return x - d.session.msb_mul(d, d)


def minimum(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """Element-wise minimum ``y + msb(x - y) (x - y)`` (exact)."""
    d = x - y
    return y + d.session.msb_mul(d, d)


def abs_(x: SharedTensor) -> SharedTensor:
    """``|x| = x - 2 msb(x) x`` (exact)."""
    return x - x.session.msb_mul(x, x) * 2


def clip(x: SharedTensor, lo: float, hi: float) -> SharedTensor:
    """``min(max(x, lo), hi)`` for public bounds (one batched comparison, two products)."""
    flags = x.session.msb(concatenate([x - lo, (-x) + hi], axis=0).reshape(2, *x.shape))
    below, above = flags[0], flags[1]  # x < lo, x > hi (exclusive when lo < hi)
    inside = 1 - below - above
    return x * inside + below * lo + above * hi


def _sigmoid_lines() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Knots and per-segment lines of the piecewise-linear sigmoid: on each segment the chord
    shifted by half its largest deviation (minimax for a chord-parallel line)."""
    knots = np.array(SIGMOID_PW_KNOTS, dtype=np.float64) / 64.0

    def sig(v: np.ndarray) -> np.ndarray:
        out: np.ndarray = 1.0 / (1.0 + np.exp(-v))
        return out

    slopes = np.zeros(len(knots) + 1)
    consts = np.zeros(len(knots) + 1)
    consts[-1] = 1.0  # z >= last knot: 1; z < first knot: 0
    for j in range(len(knots) - 1):
        a, b = knots[j], knots[j + 1]
        slope = (sig(np.array(b)) - sig(np.array(a))) / (b - a)
        const = sig(np.array(a)) - slope * a
        grid = np.linspace(a, b, 257)
        dev = sig(grid) - (slope * grid + const)
        slopes[j + 1] = slope
        consts[j + 1] = const + (dev.max() + dev.min()) / 2
    return knots, slopes, consts


#: Knots (in 1/64) of the piecewise-linear sigmoid: 21 knots on [-8, 8], spaced by the
#: square root of the curvature; max |error| 1.0e-3 over the reals in floating point.
_HALF = (41, 67, 92, 117, 144, 175, 213, 262, 339, 512)
SIGMOID_PW_KNOTS = (*tuple(-k for k in reversed(_HALF)), 0, *_HALF)
SIGMOIDS = ("auto", "piecewise", "poly", "t1", "t3")


def sigmoid(x: SharedTensor, method: str = "auto", *, fast_compare: bool = False) -> SharedTensor:
    """The logistic function of ``x`` (at any scale ``x.frac_bits``; result at the session's
    ``f``).

    ``method``:

    * ``"piecewise"``: 22 linear pieces on 21 knots in [-8, 8] (0 below, 1 above); max abs
      error 1.0e-3 in floats, < 1.1e-3 at f = 16. All 21 comparisons of an element run in one
      batched comparison whose bits multiply the segment lines in the same round
      (:meth:`~privfin.mpc.session.Session.msb_mul`), then one truncation: 9 rounds. Accepts
      an untruncated product (``x.frac_bits = 2 f``) without a truncation of its own.
    * ``"poly"``: sign and |x| clipped to 8 (one batched comparison of 3 values), degree-6
      polynomial in |x|/8, mirrored: max abs error 1.05e-3 in floats, < 2e-3 at f = 16.
    * ``"t1"``: ``0.5 + 0.125 x`` (SecretFlow's ``t1``; no comparison, one truncation).
      Unbounded: error 0.13 at |x| = 2, growing linearly; for SS-LR on standardised data.
    * ``"t3"``: ``0.5 + 0.197 x - 0.004 x**3`` (SecretFlow ``t3``): error < 0.05 on |x| <= 4,
      diverges beyond.
    * ``"auto"``: ``piecewise`` when the provider offers packed-bit material (the dealer),
      else ``poly`` (fewer comparisons on 0/1 ring elements).

    ``fast_compare`` (piecewise only, with packed bits): compare ``x`` with the outer knots
    on the 32-bit window of resolution ``2**-10`` and with the inner ones on 16-bit lanes of
    resolution ``2**-6``, guarded by the outer ones
    (:meth:`~privfin.mpc.session.Session.msb_select_knots`: one edaBit per element for all
    knots, about a fifth of the AND material of the exact comparison), max abs error 1.25e-3
    (a value just below a knot may use the next segment's line), **valid only for
    |x| < 2**21** (beyond, the result is garbage). SS-LR uses it for its logits ``x_b . w``.
    """
    s = x.session
    if method == "auto":
        method = "piecewise" if s.engine.packed_bits else "poly"
    if method == "piecewise":
        return _sigmoid_piecewise(x, fast_compare)
    if method == "t1" and x.frac_bits > s.frac_bits:
        # 0.125 x is a shift: one truncation from the product's scale straight to f
        cut = s.truncate(x, x.frac_bits - s.frac_bits + 3)  # labelled at scale f - 3
        return SharedTensor(s, cut.share, cut.shape, s.frac_bits) + 0.5  # it is x/8 at f
    if x.frac_bits > s.frac_bits:
        x = x.rescale(s.frac_bits)
    if method == "poly":
        return _sigmoid_poly(x)
    if method == "t1":
        return x * 0.125 + 0.5
    if method == "t3":
        return x * 0.197 - x * x.square() * 0.004 + 0.5
    raise ValueError(f"sigmoid method must be one of {SIGMOIDS}, got {method!r}")


_PW = _sigmoid_lines()
_SLOPE_BITS = 16


def sigmoid_untruncated(x: SharedTensor, *, fast_compare: bool = False) -> SharedTensor:
    """The ``piecewise`` sigmoid of :func:`sigmoid` before its final truncation: at scale
    ``x.frac_bits + 16`` (values in [0, 1] up to the lines' error), for a caller that fuses
    that truncation with the next step (SS-LR with a masked design,
    :meth:`~privfin.mpc.protocol.Engine.design_backward`): 7 rounds with ``fast_compare``
    and the dealer (5 with ``and_fan_in: 4``), 8 otherwise."""
    return _sigmoid_piecewise(x, fast_compare, truncate=False)


@ring_ops
def _sigmoid_piecewise(z: SharedTensor, fast_compare: bool, truncate: bool = True) -> SharedTensor:
    s = z.session
    knots, slopes, consts = _PW
    k = len(knots)
    scale = z.frac_bits + _SLOPE_BITS
    col = (k, *([1] * z.ndim))
    # p = sum_j [z >= knot_j] (L_j - L_{j-1}) = 1 - sum_j [z < knot_j] (dA_j z + dC_j)
    d_slope = encode_fixed(np.diff(slopes), _SLOPE_BITS).reshape(col)
    d_const = encode_fixed(np.diff(consts), scale).reshape(col)
    if fast_compare and s.engine.packed_bits:
        # outer knots at resolution 2**-10 (|z| < 2**21), inner ones at 2**-6 on 16-bit lanes
        mz, m = s.msb_select_knots(
            z,
            knots,
            z.reshape(1, *z.shape),
            low=max(z.frac_bits - 10, 0),
            inner_low=max(z.frac_bits - 6, 0),
        )
    else:
        diffs = z.reshape(1, *z.shape) - knots.reshape(col)  # broadcast: (k, *shape)
        diffs = diffs.broadcast_to((k, *z.shape))
        mz, m = s.msb_select(diffs, z.reshape(1, *z.shape))
    below = None
    if mz.share is not None and m.share is not None:
        below = np.sum(mz.share * d_slope + m.share * d_const, axis=0, dtype=np.uint64)
    one = s.engine.public_share(encode_fixed(np.ones(z.shape), scale))
    share = None if below is None or one is None else one - below
    if not truncate:
        return SharedTensor(s, share, z.shape, scale)
    return s.truncate(SharedTensor(s, share, z.shape, scale), scale - s.frac_bits)


def _sigmoid_poly(x: SharedTensor) -> SharedTensor:
    s = x.session
    flags = s.msb(
        concatenate([x, x - SIGMOID_BOUND, (-x) - SIGMOID_BOUND], axis=0).reshape(3, *x.shape)
    )
    neg, small_hi, small_lo = flags[0], flags[1], flags[2]  # x<0, x<B, -x<B
    out_of_range = 2 - small_hi - small_lo  # |x| >= B
    sign = 1 - 2 * neg
    keep = sign * (1 - out_of_range)  # int bits product: +-1 inside, 0 outside
    t = (x * keep + out_of_range * SIGMOID_BOUND) * (1.0 / SIGMOID_BOUND)  # |x| clipped / B
    g = _poly(t, SIGMOID_COEFFS)
    return where(neg, 1 - g, g)


def _poly(t: SharedTensor, coeffs: tuple[float, ...]) -> SharedTensor:
    """``sum coeffs[k] * t**k`` with powers computed in log depth."""
    powers: dict[int, SharedTensor] = {1: t}
    for k in range(2, len(coeffs)):
        half = k // 2
        powers[k] = powers[half] * powers[k - half]
    out = t * coeffs[1] + coeffs[0]
    for k in range(2, len(coeffs)):
        out = out + powers[k] * coeffs[k]
    return out


def exp(x: SharedTensor, iterations: int = 9) -> SharedTensor:
    """``e**x`` by the limit ``(1 + x / 2**n) ** (2**n)``, ``n = iterations`` squarings.

    Relative error below 10% for x in [-10, 5] at n=9 (below 1% for |x| <= 2); intended for
    moderate arguments (softmax-like uses, Newton initialisations). Inputs above ~12 overflow
    the fixed-point range.
    """
    y = x * (1.0 / (1 << iterations)) + 1.0
    for _ in range(iterations):
        y = y * y
    return y


def reciprocal(x: SharedTensor, iterations: int = 12) -> SharedTensor:
    """``1 / x`` for **positive** ``x`` in [0.05, 200] by Newton's iteration
    ``y <- y (2 - x y)`` from ``y0 = 3 exp(0.5 - x) + 0.003``; relative error < 1e-3 there
    (dominated by fixed-point resolution for large x)."""
    y = exp(0.5 - x) * 3.0 + 0.003
    for _ in range(iterations):
        y = y * (2.0 - x * y)
    return y


def divide(x: SharedTensor, y: SharedTensor) -> SharedTensor:
    """``x / y`` for positive ``y`` in the range of :func:`reciprocal`."""
    return x * reciprocal(y)


def inv_sqrt(x: SharedTensor, iterations: int = 12) -> SharedTensor:
    """``1 / sqrt(x)`` for positive ``x`` in [0.05, 200] by Newton's iteration
    ``y <- y (3 - x y**2) / 2`` from ``y0 = 2.2 exp(-(x/2 + 0.2)) + 0.2 - x/1024``."""
    y = exp(-(x * 0.5 + 0.2)) * 2.2 + 0.2 - x * (1.0 / 1024)
    for _ in range(iterations):
        y = y * (3.0 - x * y.square()) * 0.5
    return y


def sqrt(x: SharedTensor, iterations: int = 12) -> SharedTensor:
    """``sqrt(x) = x / sqrt(x)`` for positive ``x`` in the range of :func:`inv_sqrt`."""
    return x * inv_sqrt(x, iterations)


def log(x: SharedTensor, iterations: int = 8) -> SharedTensor:
    """Natural logarithm of positive ``x`` in [0.1, 100] by Householder-style iteration
    ``y <- y - 1 + x exp(-y)`` from ``y0 = x/120 - 20 exp(-2x - 1) + 3``."""
    y = x * (1.0 / 120) - exp(-(x * 2.0) - 1.0) * 20.0 + 3.0
    for _ in range(iterations):
        y = y - 1.0 + x * exp(-y)
    return y
