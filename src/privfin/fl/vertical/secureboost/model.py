"""The trained SecureBoost model as each party holds it.

- :class:`GuestModel` — tree structure, the guest's own split rules, every leaf weight, and for
  each host-owned node only the owner's name (no feature, no threshold).
- :class:`HostModel` — the host's lookup table ``(tree, node) -> (feature, threshold,
  missing_left)`` for the nodes it owns, and its own feature importance.

Neither model contains the other parties' data; both serialise to JSON (``to_json`` /
``from_json``) for the party's private artifact store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError

__all__ = ["GuestModel", "GuestNode", "HostModel", "HostSplit"]

GUEST = ""


@dataclass
class GuestNode:
    """One node as the guest sees it. ``owner == ""``: the guest's split (or a leaf);
    otherwise the name of the host that holds the rule."""

    owner: str = GUEST
    feature: int = -1
    threshold: float = float("inf")
    missing_left: bool = False
    weight: list[float] | None = None

    @property
    def is_leaf(self) -> bool:
        return self.weight is not None


@dataclass
class GuestModel:
    """Trees in heap numbering (children of ``i``: ``2i+1``, ``2i+2``), one dict per tree."""

    objective: str
    n_outputs: int
    n_classes: int | None
    init_score: list[float]
    max_depth: int
    trees: list[dict[int, GuestNode]] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    #: Guest feature -> (number of splits, total gain); host -> (number of splits, total gain).
    guest_importance: dict[int, tuple[int, float]] = field(default_factory=dict)
    host_importance: dict[str, tuple[int, float]] = field(default_factory=dict)

    def to_json(self) -> str:
        data = {
            "kind": "privfin.secureboost.GuestModel",
            "v": 1,
            "objective": self.objective,
            "n_outputs": self.n_outputs,
            "n_classes": self.n_classes,
            "init_score": self.init_score,
            "max_depth": self.max_depth,
            "feature_names": self.feature_names,
            "hosts": self.hosts,
            "trees": [
                {
                    str(i): [n.owner, n.feature, _f(n.threshold), n.missing_left, n.weight]
                    for i, n in sorted(tree.items())
                }
                for tree in self.trees
            ],
            "guest_importance": {str(k): list(v) for k, v in self.guest_importance.items()},
            "host_importance": {k: list(v) for k, v in self.host_importance.items()},
        }
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> GuestModel:
        data = json.loads(text)
        if data.get("kind") != "privfin.secureboost.GuestModel" or data.get("v") != 1:
            raise ConfigError("not a version-1 SecureBoost guest model")
        trees = [
            {
                int(i): GuestNode(o, int(f), _unf(t), bool(m), None if w is None else list(w))
                for i, (o, f, t, m, w) in tree.items()
            }
            for tree in data["trees"]
        ]
        return cls(
            objective=data["objective"],
            n_outputs=int(data["n_outputs"]),
            n_classes=data["n_classes"],
            init_score=[float(x) for x in data["init_score"]],
            max_depth=int(data["max_depth"]),
            trees=trees,
            feature_names=list(data["feature_names"]),
            hosts=list(data["hosts"]),
            guest_importance={
                int(k): (int(v[0]), float(v[1])) for k, v in data["guest_importance"].items()
            },
            host_importance={
                k: (int(v[0]), float(v[1])) for k, v in data["host_importance"].items()
            },
        )

    def feature_importance(self, kind: str = "split") -> dict[str, float]:
        """Guest features by name and each host as a whole (``"host:<name>"``): number of
        splits (``kind="split"``) or total gain (``kind="gain"``)."""
        idx = 0 if kind == "split" else 1
        if kind not in ("split", "gain"):
            raise ConfigError("kind must be 'split' or 'gain'")
        out: dict[str, float] = {}
        for f, v in sorted(self.guest_importance.items()):
            name = self.feature_names[f] if f < len(self.feature_names) else f"x{f}"
            out[name] = float(v[idx])
        for host, v in sorted(self.host_importance.items()):
            out[f"host:{host}"] = float(v[idx])
        return out


@dataclass(frozen=True)
class HostSplit:
    """A host's rule: row goes left iff ``x[feature] < threshold`` (NaN: ``missing_left``)."""

    feature: int
    threshold: float
    missing_left: bool


@dataclass
class HostModel:
    """A host's lookup table and its feature importance (split count and total gain)."""

    party: str
    n_features: int
    splits: dict[tuple[int, int], HostSplit] = field(default_factory=dict)
    feature_names: list[str] = field(default_factory=list)
    importance: dict[int, tuple[int, float]] = field(default_factory=dict)

    def go_left(
        self,
        X: npt.NDArray[np.float64],
        trees: npt.NDArray[Any],
        nodes: npt.NDArray[Any],
        rows: npt.NDArray[Any],
    ) -> npt.NDArray[np.bool_]:
        """Evaluate the rules of nodes ``(trees[i], nodes[i])`` on rows ``rows[i]``.

        Raises
        ------
        ConfigError
            If a queried node is not one of this host's, or a row is out of range.
        """
        out = np.zeros(rows.size, dtype=bool)
        if rows.size and int(rows.max()) >= X.shape[0]:
            raise ConfigError("a queried row is out of range")
        keys = trees.astype(np.int64) * (1 << 20) + nodes.astype(np.int64)
        for key in np.unique(keys):
            sel = keys == key
            t, n = divmod(int(key), 1 << 20)
            rule = self.splits.get((t, n))
            if rule is None:
                raise ConfigError(f"node {n} of tree {t} is not owned by {self.party!r}")
            x = X[rows[sel], rule.feature]
            out[sel] = np.where(np.isnan(x), rule.missing_left, x < rule.threshold)
        return out

    def feature_importance(self, kind: str = "split") -> dict[str, float]:
        """This host's features by name: split count or total gain (visible to this host only;
        the gains are zero unless the guest shared them, ``share_gains_with_hosts``)."""
        if kind not in ("split", "gain"):
            raise ConfigError("kind must be 'split' or 'gain'")
        idx = 0 if kind == "split" else 1
        out: dict[str, float] = {}
        for f, v in sorted(self.importance.items()):
            name = self.feature_names[f] if f < len(self.feature_names) else f"x{f}"
            out[name] = float(v[idx])
        return out

    def to_json(self) -> str:
        data = {
            "kind": "privfin.secureboost.HostModel",
            "v": 1,
            "party": self.party,
            "n_features": self.n_features,
            "feature_names": self.feature_names,
            "splits": [
                [t, n, s.feature, _f(s.threshold), s.missing_left]
                for (t, n), s in sorted(self.splits.items())
            ],
            "importance": {str(k): list(v) for k, v in self.importance.items()},
        }
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> HostModel:
        data = json.loads(text)
        if data.get("kind") != "privfin.secureboost.HostModel" or data.get("v") != 1:
            raise ConfigError("not a version-1 SecureBoost host model")
        return cls(
            party=str(data["party"]),
            n_features=int(data["n_features"]),
            splits={
                (int(t), int(n)): HostSplit(int(f), _unf(th), bool(m))
                for t, n, f, th, m in data["splits"]
            },
            feature_names=list(data["feature_names"]),
            importance={int(k): (int(v[0]), float(v[1])) for k, v in data["importance"].items()},
        )


def _f(x: float) -> float | str:
    return "inf" if x == float("inf") else float(x)


def _unf(x: float | str) -> float:
    return float("inf") if x == "inf" else float(x)
