"""Privacy accounting: composition of heterogeneous mechanisms, Poisson subsampling and
conversion to (epsilon, delta), by Rényi DP (RDP) or privacy-loss distributions (PLD).

Both accountants come from Google's ``dp-accounting`` library (0.6); this module adds the
mechanisms it has no event for (a generic pure epsilon-DP mechanism, zCDP) and one object for
both methods::

    acc = Accountant("pld")
    acc.gaussian(noise_multiplier=1.1, sampling_rate=0.01, count=1000)   # DP-SGD
    acc.pure(epsilon=0.5)                                                # a Laplace count
    acc.epsilon(delta=1e-5)

Privacy unit: every bound is for **add or remove one unit** (one customer, after the release
has bounded each customer's contribution), the neighbouring relation of ``dp-accounting``'s
defaults. What each mechanism contributes:

``gaussian``
    Gaussian noise of standard deviation ``noise_multiplier`` x L2 sensitivity, optionally
    Poisson-subsampled (RDP: Mironov, Talwar, Zhang 2019; PLD: connect-the-dots).
``laplace``
    Continuous Laplace noise of scale ``noise_multiplier`` x L1 sensitivity.
``discrete_gaussian``
    RDP: the curve ``alpha * rho`` with ``rho = Delta**2 / (2 sigma**2)`` (Canonne, Kamath,
    Steinke 2020, Thm. 4). PLD: the exact discrete Gaussian PLD.
``discrete_laplace``
    RDP: as a pure ``epsilon = Delta / scale`` mechanism. PLD: the exact discrete Laplace PLD.
``pure``
    Any epsilon-DP mechanism (exponential mechanism, randomized response): its worst case,
    the two-point randomized-response pair, in both methods (exact RDP curve; PLD from
    ``from_privacy_parameters``).
``zcdp``
    Any rho-zCDP mechanism (RDP only: the curve ``alpha * rho``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError

__all__ = ["DEFAULT_ORDERS", "Accountant", "Method", "pure_dp_rdp"]

Method = Literal["rdp", "pld"]

#: RDP orders (those of dp-accounting, plus a few large ones for small deltas).
DEFAULT_ORDERS: tuple[float, ...] = (
    *(1 + x / 10.0 for x in range(1, 100)),
    *(float(a) for a in range(11, 64)),
    128.0,
    256.0,
    512.0,
    1024.0,
)

_PLD_INTERVAL = 1e-4


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _count(count: int) -> int:
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ConfigError(f"count must be an integer >= 1, got {count!r}")
    return count


def _rate(q: float) -> float:
    if not (isinstance(q, (int, float)) and 0 < q <= 1):
        raise ConfigError(f"sampling_rate must be in (0, 1], got {q!r}")
    return float(q)


def pure_dp_rdp(epsilon: float, orders: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The RDP curve of the worst epsilon-DP mechanism (randomized response on two values):
    ``D_a = log(p**a q**(1-a) + q**a p**(1-a)) / (a - 1)``, ``p = e**eps / (1 + e**eps)``."""
    a = np.asarray(orders, dtype=np.float64)
    log_p = -np.logaddexp(0.0, -epsilon)
    log_q = -np.logaddexp(0.0, epsilon)
    s = np.logaddexp(a * log_p + (1 - a) * log_q, a * log_q + (1 - a) * log_p)
    return np.asarray(np.minimum(s / (a - 1), epsilon), dtype=np.float64)


class Accountant:
    """Composes mechanisms and converts the total to (epsilon, delta).

    Parameters
    ----------
    method:
        ``"rdp"`` (Rényi DP, fast, a little loose) or ``"pld"`` (privacy-loss
        distributions, tight up to a discretisation of ``1e-4`` in the loss, pessimistic).
    orders:
        RDP orders (``"rdp"`` only).
    """

    def __init__(self, method: Method = "rdp", orders: tuple[float, ...] = DEFAULT_ORDERS):
        if method not in ("rdp", "pld"):
            raise ConfigError(f"accounting method must be 'rdp' or 'pld', got {method!r}")
        self.method: Method = method
        self._orders = np.asarray(orders, dtype=np.float64)
        self._rdp = np.zeros_like(self._orders)
        self._pld: Any = None
        self._pure_total: float | None = 0.0  # sum of pure epsilons; None once any is not
        self.entries: list[dict[str, Any]] = []

    def _pure_add(self, epsilon: float | None) -> None:
        if epsilon is None or self._pure_total is None:
            self._pure_total = None
        else:
            self._pure_total += epsilon

    # -- composing
    def _add_rdp(self, curve: npt.NDArray[np.float64], count: int) -> None:
        self._rdp = self._rdp + count * curve

    def _add_pld(self, pld: Any, count: int) -> None:
        if count > 1:
            pld = pld.self_compose(count)
        self._pld = pld if self._pld is None else self._pld.compose(pld)

    def _event_rdp(self, event: Any, count: int) -> None:
        from dp_accounting import rdp

        acc = rdp.RdpAccountant(list(self._orders))
        acc.compose(event, count)
        self._add_rdp(np.asarray(acc.rdp, dtype=np.float64), 1)

    def gaussian(
        self, noise_multiplier: float, *, sampling_rate: float = 1.0, count: int = 1
    ) -> Accountant:
        """``count`` runs of the Gaussian mechanism (std = ``noise_multiplier`` x L2
        sensitivity), each on a Poisson sample of rate ``sampling_rate``."""
        import dp_accounting as dpa
        from dp_accounting.pld import privacy_loss_distribution as pldlib

        nm, q, n = (
            _positive("noise_multiplier", noise_multiplier),
            _rate(sampling_rate),
            _count(count),
        )
        if self.method == "rdp":
            event: Any = dpa.GaussianDpEvent(nm)
            if q < 1:
                event = dpa.PoissonSampledDpEvent(q, event)
            self._event_rdp(event, n)
        else:
            self._add_pld(
                pldlib.from_gaussian_mechanism(
                    nm, sampling_prob=q, value_discretization_interval=_PLD_INTERVAL
                ),
                n,
            )
        self._pure_add(None)
        self.entries.append({"kind": "gaussian", "noise_multiplier": nm, "q": q, "count": n})
        return self

    def laplace(self, noise_multiplier: float, *, count: int = 1) -> Accountant:
        """``count`` runs of the continuous Laplace mechanism (scale = ``noise_multiplier`` x
        L1 sensitivity)."""
        import dp_accounting as dpa
        from dp_accounting.pld import privacy_loss_distribution as pldlib

        nm, n = _positive("noise_multiplier", noise_multiplier), _count(count)
        if self.method == "rdp":
            self._event_rdp(dpa.LaplaceDpEvent(nm), n)
        else:
            self._add_pld(
                pldlib.from_laplace_mechanism(nm, value_discretization_interval=_PLD_INTERVAL),
                n,
            )
        self._pure_add(n / nm)
        self.entries.append({"kind": "laplace", "noise_multiplier": nm, "count": n})
        return self

    def discrete_gaussian(
        self, sigma: float, sensitivity: int = 1, *, count: int = 1
    ) -> Accountant:
        """``count`` runs of the discrete Gaussian mechanism on integers (parameter
        ``sigma``, integer L2 sensitivity ``sensitivity`` in one coordinate)."""
        from dp_accounting.pld import privacy_loss_distribution as pldlib

        s, n = _positive("sigma", sigma), _count(count)
        if not isinstance(sensitivity, int) or sensitivity < 1:
            raise ConfigError(f"sensitivity must be an integer >= 1, got {sensitivity!r}")
        if self.method == "rdp":
            self._add_rdp(self._orders * (sensitivity**2 / (2 * s * s)), n)
        else:
            self._add_pld(
                pldlib.from_discrete_gaussian_mechanism(
                    s, sensitivity, value_discretization_interval=_PLD_INTERVAL
                ),
                n,
            )
        self._pure_add(None)
        self.entries.append(
            {"kind": "discrete_gaussian", "sigma": s, "sensitivity": sensitivity, "count": n}
        )
        return self

    def discrete_laplace(self, scale: float, sensitivity: int = 1, *, count: int = 1) -> Accountant:
        """``count`` runs of the discrete Laplace mechanism (P(x) ~ exp(-|x|/scale)) on an
        integer query of L1 sensitivity ``sensitivity``."""
        from dp_accounting.pld import privacy_loss_distribution as pldlib

        b, n = _positive("scale", scale), _count(count)
        if not isinstance(sensitivity, int) or sensitivity < 1:
            raise ConfigError(f"sensitivity must be an integer >= 1, got {sensitivity!r}")
        if self.method == "rdp":
            self._add_rdp(pure_dp_rdp(sensitivity / b, self._orders), n)
        else:
            self._add_pld(
                pldlib.from_discrete_laplace_mechanism(
                    1.0 / b, sensitivity, value_discretization_interval=_PLD_INTERVAL
                ),
                n,
            )
        self._pure_add(n * sensitivity / b)
        self.entries.append(
            {"kind": "discrete_laplace", "scale": b, "sensitivity": sensitivity, "count": n}
        )
        return self

    def pure(self, epsilon: float, *, count: int = 1) -> Accountant:
        """``count`` runs of any epsilon-DP mechanism (accounted as its worst case)."""
        from dp_accounting.pld import common
        from dp_accounting.pld import privacy_loss_distribution as pldlib

        eps, n = _positive("epsilon", epsilon), _count(count)
        if self.method == "rdp":
            self._add_rdp(pure_dp_rdp(eps, self._orders), n)
        else:
            self._add_pld(
                pldlib.from_privacy_parameters(
                    common.DifferentialPrivacyParameters(eps, 0.0),
                    value_discretization_interval=_PLD_INTERVAL,
                ),
                n,
            )
        self._pure_add(n * eps)
        self.entries.append({"kind": "pure", "epsilon": eps, "count": n})
        return self

    def zcdp(self, rho: float, *, count: int = 1) -> Accountant:
        """``count`` runs of a rho-zCDP mechanism (RDP only)."""
        r, n = _positive("rho", rho), _count(count)
        if self.method != "rdp":
            raise ConfigError("zCDP composes under RDP only; use Accountant('rdp')")
        self._add_rdp(self._orders * r, n)
        self._pure_add(None)
        self.entries.append({"kind": "zcdp", "rho": r, "count": n})
        return self

    # -- converting
    def epsilon(self, delta: float) -> float:
        """The smallest epsilon such that everything composed so far is (epsilon, delta)-DP
        (by this accountant's method; when only pure mechanisms were composed, never more
        than the sum of their epsilons)."""
        if not (0 <= delta < 1):
            raise ConfigError(f"delta must be in [0, 1), got {delta!r}")
        if not self.entries:
            return 0.0
        if self.method == "rdp":
            from dp_accounting.rdp import rdp_privacy_accountant as r

            eps, _order = r.compute_epsilon(self._orders, self._rdp, delta)
            out = float(eps)
        else:
            out = float(self._pld.get_epsilon_for_delta(delta))
        # only pure mechanisms so far: basic composition may be tighter than either method
        return out if self._pure_total is None else min(out, self._pure_total)

    def delta(self, epsilon: float) -> float:
        """The smallest delta such that everything composed so far is (epsilon, delta)-DP."""
        if not (epsilon >= 0 and math.isfinite(epsilon)):
            raise ConfigError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
        if not self.entries:
            return 0.0
        if self.method == "rdp":
            from dp_accounting.rdp import rdp_privacy_accountant as r

            d, _order = r.compute_delta(self._orders, self._rdp, epsilon)
            out = float(d)
        else:
            out = float(self._pld.get_delta_for_epsilon(epsilon))
        if self._pure_total is not None and epsilon >= self._pure_total:
            return 0.0
        return out
