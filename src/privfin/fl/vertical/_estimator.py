"""The one convention of every federated (vertical) estimator, and its saved-model format.

Every estimator of :mod:`privfin.fl.vertical` (:class:`HeteroLogisticRegression`,
:class:`HeteroSecureBoost`, :class:`HeteroScorecard`) follows scikit-learn:

- the constructor takes hyper-parameters only (plus ``guest``, the name of the party holding
  the labels, ``settings``, ``seed`` and ``timeout``) and stores them as given; they are
  validated in :meth:`fit`. ``get_params(deep=True)``, ``set_params`` and
  ``sklearn.base.clone`` work, hence ``cross_val_score``, ``GridSearchCV`` and ``Pipeline``.
- ``fit(X, y)``, ``predict_proba(X)``, ``predict(X)``, ``decision_function(X)`` (where
  meaningful) and ``score(X, y)`` (accuracy, scikit-learn's convention for classifiers) accept
  the features of every party in either of two forms:

  * one DataFrame whose columns are qualified by party: ``bank.x0``, ``telco.x5`` (the party
    is the text before the first dot), rows PSI-aligned. This is the form model selection
    uses: scikit-learn splits it by rows.
  * a mapping ``{party: DataFrame or 2-D array}`` (rows aligned across parties). A column
    ``x0`` of party ``bank`` is called ``bank.x0``; an array's columns are ``bank.x0``,
    ``bank.x1``, ...

  Both give the same model. Column names keep their party in every output
  (``feature_names_in_``, feature importances, scorecard rows).
- ``feature_names_in_`` is a dict: party -> its qualified column names (guest first);
  ``n_features_in_`` counts every party's columns; ``classes_`` holds the labels.
- ``save(path)`` writes a directory: ``manifest.json`` (format name and version, estimator,
  hyper-parameters, parties and their columns) and one JSON file per party holding that
  party's slice of the model (never a pickle); ``Estimator.load(path)`` reads it back and
  predicts exactly as before, in any process.

A scikit-learn transformer in a ``Pipeline`` returns arrays, which carry no party: configure it
with ``.set_output(transform="pandas")`` so the qualified column names reach the estimator. Such
a transformer sees every party's columns at once: that is a simulation convenience, not a
federated step.

Security: in simulation the estimator holds every party's data and every party's slice of the
model; in a deployment each node keeps its own slice and the same components run as jobs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from privfin import __version__
from privfin.config import Settings
from privfin.errors import ConfigError
from privfin.federation.memory import MemoryHub

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "MODEL_FORMAT",
    "VerticalEstimator",
    "party_frames",
]

#: Name of a saved model's format, in its manifest.
MODEL_FORMAT = "privfin-vertical-model"
#: Version of the saved-model format this code writes and reads.
FORMAT_VERSION = 1
#: The manifest's file name inside a saved model's directory.
MANIFEST = "manifest.json"

_ARRAY_HINT = (
    "pass one DataFrame with columns qualified by party ('bank.x0', 'telco.x5') or a mapping "
    "{party: features}; in a Pipeline, configure the transformers with "
    "set_output(transform='pandas')"
)


def _party_of(column: object) -> str | None:
    """The party qualifying a column name (text before the first dot), or ``None``."""
    name = str(column)
    party, dot, rest = name.partition(".")
    return party if dot and party and rest else None


def _frame(party: str, x: Any, parties: Mapping[str, Any]) -> pd.DataFrame:
    """One party's features as a DataFrame with qualified column names."""
    if isinstance(x, pd.DataFrame):
        names = []
        for c in x.columns:
            owner = _party_of(c)
            if owner is not None and owner != party and owner in parties:
                raise ConfigError(
                    f"column {str(c)!r} of party {party!r} is qualified by party {owner!r}"
                )
            names.append(str(c) if owner == party else f"{party}.{c}")
        if len(set(names)) != len(names):
            raise ConfigError(f"the columns of party {party!r} are not unique: {names}")
        out = x.copy(deep=False)
        out.columns = pd.Index(names)
        return out
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ConfigError(f"the features of party {party!r} must be 2-D, got shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"{party}.x{j}" for j in range(arr.shape[1])])


def party_frames(
    X: Any, guest: str, *, expected: Mapping[str, list[str]] | None = None
) -> dict[str, pd.DataFrame]:
    """Split features into one DataFrame per party (qualified column names), guest first.

    Parameters
    ----------
    X:
        One DataFrame with columns ``party.feature`` or a mapping ``{party: DataFrame or
        2-D array}``.
    guest:
        The guest's name: it must hold features, and at least one other party (a host) too.
    expected:
        The fitted parties and their columns (``feature_names_in_``): the parties must be the
        same, each party's columns are taken in the fitted order (extra columns are ignored,
        missing ones named).

    Raises
    ------
    ConfigError
        An unqualified column, a plain array, a missing guest or host, rows that differ in
        number across parties, or columns that differ from the fitted ones.
    """
    if isinstance(X, pd.DataFrame):
        groups: dict[str, list[Any]] = {}
        for c in X.columns:
            party = _party_of(c)
            if party is None:
                raise ConfigError(
                    f"column {str(c)!r} is not qualified by a party (name it 'party.{c}'); "
                    + _ARRAY_HINT
                )
            groups.setdefault(party, []).append(c)
        parts = {p: _frame(p, X[cols], groups) for p, cols in groups.items()}
    elif isinstance(X, Mapping):
        if not all(isinstance(p, str) and p for p in X):
            raise ConfigError("the parties of a feature mapping must be non-empty names")
        parts = {p: _frame(p, x, X) for p, x in X.items()}
    else:
        raise ConfigError(f"features of type {type(X).__name__} name no party: " + _ARRAY_HINT)
    if guest not in parts:
        raise ConfigError(f"no features of the guest {guest!r}; parties: {sorted(parts)}")
    if len(parts) < 2:
        raise ConfigError(f"features of at least one host besides the guest {guest!r} needed")
    rows = {p: len(df) for p, df in parts.items()}
    if len(set(rows.values())) != 1:
        raise ConfigError(f"parties hold different numbers of rows {rows}: align them by PSI")
    ordered = {guest: parts[guest], **{p: df for p, df in parts.items() if p != guest}}
    if expected is None:
        return ordered
    if set(ordered) != set(expected):
        raise ConfigError(
            f"the model was fitted on the parties {sorted(expected)}, got {sorted(ordered)}"
        )
    out = {}
    for party, names in expected.items():
        df = ordered[party]
        missing = [c for c in names if c not in df.columns]
        if missing:
            raise ConfigError(f"party {party!r} lacks the fitted columns {missing}")
        out[party] = df[list(names)]
    return out


class VerticalEstimator(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Base of the vertical estimators: input forms, labels, fitted checks, save/load.

    Subclasses declare every hyper-parameter in ``__init__`` (scikit-learn reads them from its
    signature), including ``guest``, ``settings``, ``seed`` and ``timeout``, and implement
    ``fit``, ``_party_slice`` (one party's JSON slice of the fitted model) and ``_restore``.
    """

    #: Hyper-parameters that are not saved with a model (the running party's, not the model's).
    _unsaved: ClassVar[tuple[str, ...]] = ("settings",)
    #: The attribute a successful ``fit`` (or ``load``) sets last: the model is fitted.
    _fitted_attr: ClassVar[str]

    guest: str
    settings: Settings | None
    seed: int | None
    timeout: float

    # ------------------------------------------------------------------ inputs

    def _settings(self) -> Settings:
        """The settings every simulated party runs with (default: from the environment)."""
        if self.settings is None:
            return Settings.from_env()
        if not isinstance(self.settings, Settings):
            raise ConfigError("settings must be a privfin.config.Settings or None")
        return self.settings

    def _fit_frames(self, X: Any) -> dict[str, pd.DataFrame]:
        """Split the training features and record the parties and their columns."""
        if not isinstance(self.guest, str) or not self.guest:
            raise ConfigError("guest must name the party holding the labels")
        parts = party_frames(X, self.guest)
        for name in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, name)  # a failed refit leaves no stale model behind
        self.feature_names_in_ = {p: [str(c) for c in df.columns] for p, df in parts.items()}
        self.n_features_in_ = sum(len(v) for v in self.feature_names_in_.values())
        self.guest_ = self.guest
        self.hosts_ = [p for p in parts if p != self.guest]
        return parts

    def _frames(self, X: Any) -> dict[str, pd.DataFrame]:
        """Split features for prediction: the fitted parties and columns, fitted order."""
        self._check_fitted()
        return party_frames(X, self.guest_, expected=self.feature_names_in_)

    def _check_fitted(self) -> None:
        if not hasattr(self, self._fitted_attr):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit()")

    def _binary_labels(self, y: Any, n_rows: int) -> npt.NDArray[np.float64]:
        """Set ``classes_`` (exactly two) and return ``y`` as 0/1 (1 = ``classes_[1]``)."""
        yv = self._label_vector(y, n_rows)
        classes = np.unique(yv)
        if classes.size != 2:
            raise ConfigError(f"y must hold exactly two classes, got {classes.size}")
        self.classes_ = classes
        y01: npt.NDArray[np.float64] = (yv == classes[1]).astype(np.float64)
        return y01

    @staticmethod
    def _label_vector(y: Any, n_rows: int) -> npt.NDArray[Any]:
        yv = np.asarray(y)
        if yv.ndim == 2 and yv.shape[1] == 1:
            yv = yv[:, 0]
        if yv.ndim != 1 or yv.shape[0] != n_rows:
            raise ConfigError(f"y must be a vector of {n_rows} labels, got shape {np.shape(y)}")
        if yv.dtype.kind == "f" and not np.all(np.isfinite(yv)):
            raise ConfigError("y holds NaN or infinite values")
        return yv

    # ------------------------------------------------------------------ predictions

    def predict(self, X: Any, *, hub: MemoryHub | None = None) -> npt.NDArray[Any]:
        """The most probable class of every row (``hub``: to inspect the messages)."""
        proba = self.predict_proba(X, hub=hub)
        out: npt.NDArray[Any] = self.classes_[np.argmax(proba, axis=1)]
        return out

    def predict_proba(
        self, X: Any, *, hub: MemoryHub | None = None
    ) -> npt.NDArray[np.float64]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.dict = True
        tags.input_tags.string = False
        return tags

    # ------------------------------------------------------------------ save / load

    def _party_slice(self, party: str) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _extra_manifest(self) -> dict[str, Any]:
        """Public facts of the fitted model beyond parties and classes (subclasses)."""
        return {}

    def _restore(
        self, manifest: Mapping[str, Any], slices: Mapping[str, Mapping[str, Any]]
    ) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the fitted model to the directory ``path``: ``manifest.json`` plus one JSON
        file per party (``party-0.json`` is the guest's slice, then the hosts' in order).

        In a deployment each party keeps only its own file; the manifest holds public
        information only (hyper-parameters, party names, column names, classes). Settings are
        not saved. An existing non-empty directory is refused unless ``overwrite``.
        """
        self._check_fitted()
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise ConfigError(f"{root} exists and is not a directory")
        if root.is_dir() and any(root.iterdir()) and not overwrite:
            raise ConfigError(f"{root} is not empty; pass overwrite=True to replace the model")
        params = {k: v for k, v in self.get_params(deep=False).items() if k not in self._unsaved}
        parties = list(self.feature_names_in_)
        manifest: dict[str, Any] = {
            "format": MODEL_FORMAT,
            "version": FORMAT_VERSION,
            "estimator": type(self).__name__,
            "privfin": __version__,
            "params": params,
            "guest": self.guest_,
            "parties": [
                {"name": p, "file": f"party-{i}.json", "features": self.feature_names_in_[p]}
                for i, p in enumerate(parties)
            ],
            "classes": self.classes_.tolist() if hasattr(self, "classes_") else None,
            **self._extra_manifest(),
        }
        try:
            texts = {f"party-{i}.json": _dumps(self._party_slice(p)) for i, p in enumerate(parties)}
            texts[MANIFEST] = _dumps(manifest)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"the model cannot be saved as JSON: {exc}") from None
        root.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (root / name).write_text(text, encoding="utf-8")
        return root

    @classmethod
    def load(cls, path: str | Path, *, settings: Settings | None = None) -> Self:
        """Read a model written by :meth:`save` (any process, any machine).

        ``settings`` become the loaded estimator's ``settings`` (they are never saved).

        Raises
        ------
        ConfigError
            Not a saved model, another format version, another estimator, or a missing or
            malformed party file.
        """
        root = Path(path)
        manifest = _load_json(root / MANIFEST)
        if manifest.get("format") != MODEL_FORMAT:
            raise ConfigError(f"{root} holds no privfin vertical model ({MANIFEST} format)")
        if manifest.get("version") != FORMAT_VERSION:
            raise ConfigError(
                f"{root} is a model of format version {manifest.get('version')!r}; this privfin "
                f"reads version {FORMAT_VERSION}"
            )
        if manifest.get("estimator") != cls.__name__:
            raise ConfigError(
                f"{root} holds a {manifest.get('estimator')!r}, not a {cls.__name__}: "
                f"use {manifest.get('estimator')}.load"
            )
        try:
            est = cls(**manifest["params"], settings=settings)
            parties = manifest["parties"]
            names = {str(p["name"]): [str(c) for c in p["features"]] for p in parties}
            slices = {
                str(p["name"]): _load_json(root / f"party-{i}.json") for i, p in enumerate(parties)
            }
            guest = str(manifest["guest"])
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{root / MANIFEST} is malformed: {exc}") from None
        if list(names)[:1] != [guest] or len(names) < 2:
            raise ConfigError(f"{root / MANIFEST} is malformed: the guest must come first")
        est.feature_names_in_ = names
        est.n_features_in_ = sum(len(v) for v in names.values())
        est.guest_ = guest
        est.hosts_ = [p for p in names if p != guest]
        if manifest.get("classes") is not None:
            est.classes_ = np.asarray(manifest["classes"])
        try:
            est._restore(manifest, slices)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{root} holds a malformed party file: {exc}") from None
        return est


def _dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, allow_nan=True) + "\n"


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist (not a saved model?)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data
