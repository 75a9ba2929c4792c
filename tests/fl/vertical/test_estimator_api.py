"""[10] item 3: one estimator convention for every vertical estimator, scikit-learn compatible.

``fit(X, y)`` takes one DataFrame with party-qualified columns (``bank.a``, ``telco.a``) or a
mapping ``{party: features}``; ``clone``, ``GridSearchCV``, ``cross_val_score`` and ``Pipeline``
work unchanged; a saved model predicts identically after ``load`` in a fresh process. Small data
and 1024-bit test keys (``insecure_allow_small_keys`` + development settings) keep this fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from privfin.config import Settings
from privfin.errors import ConfigError
from privfin.fl.vertical import HeteroLogisticRegression, HeteroScorecard, HeteroSecureBoost
from privfin.fl.vertical._estimator import FORMAT_VERSION, MANIFEST, MODEL_FORMAT
from privfin.fl.vertical.hetero_lr.common import LRParams
from privfin.fl.vertical.secureboost.params import BoostParams
from privfin.ml.trees import PlainGBDT, TreeParams

DEV = Settings(mode="development")
SMALL: dict[str, Any] = {"key_bits": 1024, "insecure_allow_small_keys": True}


def data(n: int = 80, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two parties, one local column name in common (``a``): the party keeps them apart."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=["bank.a", "bank.b", "telco.a", "telco.c"])
    logit = 3.0 * X["bank.a"] - 2.5 * X["telco.a"] + 2.0 * X["telco.c"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(np.int64)
    return X, y


def split(X: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The same features as ``{party: DataFrame}`` with the parties' own (unqualified) names."""
    out: dict[str, pd.DataFrame] = {}
    for party in ("bank", "telco"):
        cols = [c for c in X.columns if c.startswith(party + ".")]
        out[party] = X[cols].rename(columns=lambda c: c.split(".", 1)[1])
    return out


def lr(**kw: Any) -> HeteroLogisticRegression:
    opts = {"guest": "bank", "mode": "guest", "max_iter": 3, "batch_size": 0,
            "learning_rate": 0.3, "seed": 1, "settings": DEV, **SMALL, **kw}  # fmt: skip
    return HeteroLogisticRegression(**opts)


def boost(**kw: Any) -> HeteroSecureBoost:
    opts = {"guest": "bank", "n_trees": 2, "max_depth": 2, "n_bins": 8, "seed": 1,
            "settings": DEV, **SMALL, **kw}  # fmt: skip
    return HeteroSecureBoost(**opts)


def scorecard(**kw: Any) -> HeteroScorecard:
    keys = {"key_bits": 768, "insecure_allow_small_keys": True}
    return HeteroScorecard(
        guest="bank",
        binning={**keys, "n_bins": 4, "iv_threshold": 0.0},
        lr={**keys, "mode": "guest", "max_iter": 3, "batch_size": 0},
        seed=1,
        settings=DEV,
        **kw,
    )


# ------------------------------------------------------------------------------ parameters


@pytest.mark.parametrize("make", [lr, boost, scorecard])
def test_clone_get_params_deep_and_set_params(make: Any) -> None:
    est = make()
    params = est.get_params(deep=True)
    assert params["guest"] == "bank" and params["settings"] is DEV and params["seed"] == 1
    twin = clone(est)  # scikit-learn checks that __init__ stored every parameter as given
    assert type(twin) is type(est) and twin.get_params() == params
    assert twin.set_params(seed=5) is twin and twin.seed == 5 and est.seed == 1
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(no_such_parameter=1)
    assert is_classifier(est)


def test_every_protocol_parameter_is_an_estimator_parameter() -> None:
    """A parameter added to the protocol must be added to the estimator (the test says so)."""
    lr_params = set(HeteroLogisticRegression().get_params())
    assert {f.name for f in fields(LRParams)} - {"feature_counts", "extra"} <= lr_params
    boost_params = set(HeteroSecureBoost().get_params())
    assert {f.name for f in fields(BoostParams)} <= boost_params
    # Same defaults as the protocol's.
    assert HeteroLogisticRegression().max_iter == LRParams().max_iter
    assert HeteroSecureBoost().n_trees == BoostParams().n_trees


def test_parameters_are_validated_in_fit_not_in_init() -> None:
    X, y = data(40)
    est = lr(max_iter=0)  # accepted as given by the constructor (clone, set_params)
    with pytest.raises(ConfigError, match="max_iter"):
        est.fit(X, y)
    with pytest.raises(ConfigError, match="n_trees"):
        boost(n_trees=0).fit(X, y)
    with pytest.raises(ConfigError, match="lr must not set"):
        HeteroScorecard(guest="bank", lr={"guest": "telco"}, settings=DEV).fit(X, y)


def test_regression_boosting_is_a_regressor() -> None:
    assert is_regressor(HeteroSecureBoost(objective="regression"))
    assert not is_classifier(HeteroSecureBoost(objective="regression"))


# ------------------------------------------------------------------------------ input forms


def test_qualified_frame_and_mapping_give_identical_models() -> None:
    X, y = data()
    a, b = lr().fit(X, y), lr().fit(split(X), y)
    assert a.feature_names_in_ == b.feature_names_in_
    for party in ("bank", "telco"):
        np.testing.assert_array_equal(a.coef_[party], b.coef_[party])
    assert a.intercept_ == b.intercept_
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(split(X)))
    np.testing.assert_array_equal(a.predict_proba(X), a.predict_proba(split(X)))
    g, h = boost().fit(X, y), boost().fit(split(X), y)
    assert g.model_.to_json() == h.model_.to_json()
    assert g.host_models_["telco"].to_json() == h.host_models_["telco"].to_json()
    np.testing.assert_array_equal(g.predict_proba(X), h.predict_proba(split(X)))


def test_column_names_keep_their_party() -> None:
    X, y = data()
    est = boost().fit(X, y)
    names = {"bank": ["bank.a", "bank.b"], "telco": ["telco.a", "telco.c"]}
    assert est.feature_names_in_ == names and est.n_features_in_ == 4
    assert est.guest_ == "bank" and est.hosts_ == ["telco"]
    assert est.classes_.tolist() == [0, 1]
    assert set(est.feature_importance()) <= {"bank.a", "bank.b", "host:telco"}
    assert set(est.host_models_["telco"].feature_names) == {"telco.a", "telco.c"}
    assert set(est.metrics_) == {"bank", "telco"}
    assert est.metrics_["bank"]["secureboost.guest.keygen_s"] > 0
    # Reordered columns are taken by name; a party's array columns are called party.x<j>.
    np.testing.assert_array_equal(est.predict_proba(X[X.columns[::-1]]), est.predict_proba(X))
    arrays = lr().fit({"bank": X.iloc[:, :2].to_numpy(), "telco": X.iloc[:, 2:].to_numpy()}, y)
    assert arrays.feature_names_in_ == {"bank": ["bank.x0", "bank.x1"],
                                        "telco": ["telco.x0", "telco.x1"]}  # fmt: skip
    card = scorecard().fit(X, y)
    rows = card.scorecard_.rows()
    assert {r["feature"] for r in rows[1:]} <= {*names["bank"], *names["telco"]}
    assert {r["party"] for r in rows[1:]} == {"bank", "telco"}
    assert set(card.model_.feature_names_in_["telco"]) <= {
        f"{c}#{k}" for c in names["telco"] for k in [*range(5), "missing"]
    }


def test_labels_keep_their_values() -> None:
    X, y = data()
    words = np.where(y == 1, "bad", "good")
    est = lr().fit(X, words)
    assert est.classes_.tolist() == ["bad", "good"]
    pred = est.predict(X)
    assert set(pred) <= {"bad", "good"}
    assert est.score(X, words) == pytest.approx(np.mean(pred == words))
    assert est.score(X, words) > 0.7  # classes_[1] = "good" = y == 0: the model learnt it


def test_inputs_without_parties_are_refused_with_what_to_do() -> None:
    X, y = data(40)
    with pytest.raises(ConfigError, match="set_output"):
        lr().fit(X.to_numpy(), y)
    with pytest.raises(ConfigError, match="'age' is not qualified"):
        lr().fit(X.assign(age=1.0), y)
    with pytest.raises(ConfigError, match="no features of the guest 'shop'"):
        lr(guest="shop").fit(X, y)
    with pytest.raises(ConfigError, match="at least one host"):
        lr().fit(X[["bank.a", "bank.b"]], y)
    with pytest.raises(ConfigError, match="different numbers of rows"):
        lr().fit({"bank": X.iloc[:, :2], "telco": X.iloc[:30, 2:]}, y)
    with pytest.raises(ConfigError, match="40 labels"):
        lr().fit(X, y[:30])
    with pytest.raises(NotFittedError):
        lr().predict(X)
    est = lr().fit(X, y)
    with pytest.raises(ConfigError, match=r"'telco' lacks the fitted columns \['telco.c'\]"):
        est.predict(X.drop(columns=["telco.c"]))
    with pytest.raises(ConfigError, match="40 labels"):
        est.fit(X, y[:30])
    with pytest.raises(NotFittedError):  # a failed refit leaves no stale model behind
        est.predict(X)


# ------------------------------------------------------------------------------ model selection


def test_grid_search_over_a_vertical_estimator() -> None:
    X, y = data()
    search = GridSearchCV(
        lr(), {"max_iter": [1, 4], "learning_rate": [0.3]}, cv=2, n_jobs=1, scoring="roc_auc"
    )
    search.fit(X, y)
    results = search.cv_results_
    assert [p["max_iter"] for p in results["params"]] == [1, 4]
    assert search.best_score_ == max(results["mean_test_score"]) > 0.8
    best = search.best_estimator_
    assert best.max_iter == search.best_params_["max_iter"] and best.n_iter_ == best.max_iter
    refit = lr(max_iter=best.max_iter).fit(X, y)  # the same seed: the same model
    for party in ("bank", "telco"):
        np.testing.assert_array_equal(best.coef_[party], refit.coef_[party])
    assert search.score(X, y) > 0.8  # AUC of the refitted model


def test_cross_val_score_with_secureboost_equals_the_plaintext_reference() -> None:
    X, y = data()
    cv = StratifiedKFold(2)
    scores = cross_val_score(boost(), X, y, cv=cv)  # accuracy, scikit-learn's default
    expected = []
    for train, test in cv.split(X, y):
        ref = PlainGBDT(n_trees=2, n_bins=8, learning_rate=0.3, tree=TreeParams(max_depth=2))
        ref.fit(X.iloc[train].to_numpy(), y[train])
        pred = ref.predict_proba(X.iloc[test].to_numpy()).argmax(axis=1)
        expected.append(np.mean(pred == y[test]))
    np.testing.assert_array_equal(scores, expected)


def test_pipeline_with_a_scikit_learn_scaler() -> None:
    X, y = data()
    X = X * [1.0, 10.0, 100.0, 0.1] + 5.0
    pipe = Pipeline([("scale", StandardScaler().set_output(transform="pandas")), ("lr", lr())])
    pipe.fit(X, y)
    assert pipe.named_steps["lr"].feature_names_in_["telco"] == ["telco.a", "telco.c"]
    scaled = StandardScaler().set_output(transform="pandas").fit_transform(X)
    np.testing.assert_array_equal(pipe.predict_proba(X), lr().fit(scaled, y).predict_proba(scaled))
    plain = Pipeline([("scale", StandardScaler()), ("lr", lr())])
    with pytest.raises(ConfigError, match=r"set_output\(transform='pandas'\)"):
        plain.fit(X, y)


# ------------------------------------------------------------------------------ save / load

LOAD_AND_PREDICT = textwrap.dedent(
    """
    import sys

    import numpy as np
    import pandas as pd

    from privfin.fl import vertical

    cls = getattr(vertical, sys.argv[1])
    est = cls.load(sys.argv[2])
    values = np.load(sys.argv[3])
    applicants = pd.DataFrame(values, columns=["bank.a", "bank.b", "telco.a", "telco.c"])
    np.save(sys.argv[4], est.predict_proba(applicants))
    """
)


def lr_weighted() -> HeteroLogisticRegression:
    return lr(class_weight={0: 1.0, 1: 2.0})


@pytest.mark.parametrize("make", [lr_weighted, boost, scorecard])
def test_saved_model_predicts_identically_after_load_in_a_fresh_process(
    make: Any, tmp_path: Path
) -> None:
    X, y = data()
    est = make().fit(X.iloc[:60], y[:60])
    applicants, _ = data(n=25, seed=9)  # new applicants, never seen in training
    expected = est.predict_proba(applicants)
    model = est.save(tmp_path / "model")

    manifest = json.loads((model / MANIFEST).read_text())
    assert manifest["format"] == MODEL_FORMAT and manifest["version"] == FORMAT_VERSION
    assert manifest["estimator"] == type(est).__name__ and manifest["guest"] == "bank"
    assert [(p["name"], p["file"]) for p in manifest["parties"]] == [
        ("bank", "party-0.json"), ("telco", "party-1.json")
    ]  # fmt: skip
    assert "settings" not in manifest["params"]
    assert sorted(f.name for f in model.iterdir()) == [MANIFEST, "party-0.json", "party-1.json"]
    for name in ("party-0.json", "party-1.json"):
        assert json.loads((model / name).read_text())["party"] in ("bank", "telco")  # JSON

    (tmp_path / "predict.py").write_text(LOAD_AND_PREDICT)
    frame = tmp_path / "applicants.npy"
    assert list(applicants.columns) == ["bank.a", "bank.b", "telco.a", "telco.c"]
    np.save(frame, applicants.to_numpy())
    run = subprocess.run(
        [sys.executable, str(tmp_path / "predict.py"), type(est).__name__, str(model),
         str(frame), str(tmp_path / "proba.npy")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "proba.npy"), expected)

    again = type(est).load(model, settings=DEV)
    assert again.get_params() == est.get_params()
    assert again.feature_names_in_ == est.feature_names_in_
    np.testing.assert_array_equal(again.classes_, est.classes_)
    np.testing.assert_array_equal(again.predict(applicants), est.predict(applicants))


def test_load_refuses_other_formats_and_estimators(tmp_path: Path) -> None:
    X, y = data(40)
    model = lr().fit(X, y).save(tmp_path / "m")
    with pytest.raises(ConfigError, match="not empty"):
        lr().fit(X, y).save(model)
    with pytest.raises(ConfigError, match=r"HeteroLogisticRegression\.load"):
        HeteroSecureBoost.load(model)
    manifest = json.loads((model / MANIFEST).read_text())
    (model / MANIFEST).write_text(json.dumps({**manifest, "version": FORMAT_VERSION + 1}))
    with pytest.raises(ConfigError, match="format version"):
        HeteroLogisticRegression.load(model)
    (model / MANIFEST).write_text(json.dumps(manifest))
    (model / "party-1.json").unlink()
    with pytest.raises(ConfigError, match=r"party-1\.json does not exist"):
        HeteroLogisticRegression.load(model)
    with pytest.raises(ConfigError, match="does not exist"):
        HeteroLogisticRegression.load(tmp_path / "nothing")
