"""Non-linear functions on shared tensors: comparison, ReLU, sigmoid, reciprocal, exp, log.

All functions keep their inputs and outputs secret-shared; they open only masked values (see
:mod:`privfin.mpc.protocol`). Accuracy is stated per function for the default 16 fractional
bits and is checked against numpy in ``tests/mpc``. Comparisons are exact.
"""

from __future__ import annotations

from privfin.mpc.tensor import SharedTensor, concatenate

__all__ = [
    "SIGMOID_BOUND",
    "SIGMOID_COEFFS",
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


def sigmoid(x: SharedTensor) -> SharedTensor:
    """The logistic function, max abs error < 2e-3 over all reals (16 fractional bits).

    ``g(t) = sum c_k t**k`` approximates ``sigmoid(8 t)`` on ``t in [0, 1]``; the protocol
    computes the sign ``s`` and ``|x|`` clipped to 8 with one batched comparison, then
    ``sigmoid(x) = s ? 1 - g : g``. Rounds: one comparison (8) + 6 multiplications.
    """
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
