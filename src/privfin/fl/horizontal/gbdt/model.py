"""The federated GBDT model every party ends with (server and clients hold the same one)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError
from privfin.ml.trees import PlainGBDT, TreeParams

__all__ = ["FedGBDTModel", "Heap"]

FloatArray = npt.NDArray[np.float64]
#: One tree in heap numbering: node -> ``(feature, bin, missing_left)`` or its leaf weights.
Heap = dict[int, tuple[int, int, bool] | FloatArray]

MODEL_KIND = "privfin.hfl_gbdt.Model"


@dataclass
class FedGBDTModel:
    """Bin edges, initial score and trees; predictions by :class:`privfin.ml.trees.PlainGBDT`
    (the same arithmetic as the plaintext reference)."""

    edges: list[FloatArray]
    init: float
    n_bins: int
    learning_rate: float
    max_depth: int
    trees: list[Heap] = field(default_factory=list)

    def gbdt(self) -> PlainGBDT:
        return PlainGBDT.from_trees(
            self.edges,
            np.array([self.init]),
            self.trees,
            n_bins=self.n_bins,
            learning_rate=self.learning_rate,
            tree=TreeParams(max_depth=self.max_depth),
        )

    def decision_function(self, X: Any) -> FloatArray:
        """Raw scores (log-odds), shape ``(n,)``."""
        return np.asarray(self.gbdt().decision_function(X)[:, 0], dtype=np.float64)

    def predict_proba(self, X: Any) -> FloatArray:
        """``(n, 2)``: probabilities of class 0 and 1."""
        return np.asarray(self.gbdt().predict_proba(X), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": MODEL_KIND,
            "v": 1,
            "edges": [e.tolist() for e in self.edges],
            "init": self.init,
            "n_bins": self.n_bins,
            "learning_rate": self.learning_rate,
            "max_depth": self.max_depth,
            "trees": [
                [
                    [k, list(v)] if isinstance(v, tuple) else [k, v.tolist()]
                    for k, v in sorted(t.items())
                ]
                for t in self.trees
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FedGBDTModel:
        if data.get("kind") != MODEL_KIND or data.get("v") != 1:
            raise ConfigError("not a version-1 federated GBDT model")
        trees: list[Heap] = []
        for t in data["trees"]:
            heap: Heap = {}
            for k, v in t:
                if len(v) == 3 and isinstance(v[2], bool):
                    heap[int(k)] = (int(v[0]), int(v[1]), bool(v[2]))
                else:
                    heap[int(k)] = np.asarray(v, dtype=np.float64)
            trees.append(heap)
        return cls(
            edges=[np.asarray(e, dtype=np.float64) for e in data["edges"]],
            init=float(data["init"]),
            n_bins=int(data["n_bins"]),
            learning_rate=float(data["learning_rate"]),
            max_depth=int(data["max_depth"]),
            trees=trees,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> FedGBDTModel:
        return cls.from_dict(json.loads(text))
