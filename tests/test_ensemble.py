"""The soft-voting ensemble of the families' bests: what it predicts, what its transfer estimate
is, and that everything reading a logged static model reads it."""

import numpy as np
import pandas as pd
import pytest
from conftest import log_static_model

from gesturelab import config
from gesturelab.datasets.landmarks import LABEL_COLUMN
from gesturelab.datasets.splits import grouped_folds, source_groups
from gesturelab.datasets.static_data import prepare
from gesturelab.evaluation.metrics import classification_metrics
from gesturelab.models.predictor import StaticPredictor, load_predictor
from gesturelab.models.static_ensemble import member_distribution
from gesturelab.models.static_families import (
    ENSEMBLE,
    FEATURE_SETS,
    build_pipeline,
    ensemble_configuration,
    run_name,
)
from gesturelab.training.sweep_transfer import cross_val_oof, transfer_estimate

MEMBERS = [
    ("svm", {"kernel": "linear", "C": 0.1}, "xy+dist+angles"),
    ("random_forest", {"n_estimators": 20, "max_depth": 8}, "xy+dist"),
    ("knn", {"n_neighbors": 3}, "xy+dist"),
]


@pytest.fixture(scope="module")
def prepared():
    return prepare(config.HAGRID_SAMPLE_CSV, quarantine_dir=None, verbose=False)


def test_the_ensemble_predicts_the_mean_of_its_members_distributions(prepared):
    X, y = prepared.Xy("train")
    X_test, _ = prepared.Xy("test")
    ensemble = build_pipeline(ENSEMBLE, ensemble_configuration(MEMBERS)).fit(X, y)
    assert (
        run_name(ENSEMBLE, ensemble_configuration(MEMBERS))
        == "ensemble of svm + random_forest + knn"
    )
    members = [build_pipeline(f, p, FEATURE_SETS[features]).fit(X, y) for f, p, features in MEMBERS]
    mean = sum(member_distribution(m, X_test) for m in members) / len(members)
    got = ensemble.predict_proba(X_test)
    assert np.allclose(got, mean) and np.allclose(got.sum(axis=1), 1.0)
    assert list(ensemble.predict(X_test)) == list(ensemble.classes_[mean.argmax(axis=1)])
    # the SVM, which has no probabilities, counts as the predictor's softmax of its scores
    svm = StaticPredictor(members[0]).predict_distribution(X_test)
    assert np.abs(member_distribution(members[0], X_test) - svm).max() < 1e-9
    with pytest.raises(ValueError, match="two or more members"):
        build_pipeline(ENSEMBLE, ensemble_configuration(MEMBERS[:1])).fit(X, y)


def test_its_transfer_estimate_is_its_members_held_out_distributions_averaged(prepared):
    """The estimate is built from the members' held-out predictions (no second round of fits);
    it must equal the ensemble itself fitted and scored group by group."""
    configuration = ensemble_configuration(MEMBERS)
    candidates = [(f, f, p, features) for f, p, features in MEMBERS]
    candidates.append(("ensemble", ENSEMBLE, configuration, "xy+dist"))
    rows = transfer_estimate(prepared, candidates, max_groups=5).set_index("name")
    data = prepared.data
    groups = source_groups(data, 20)
    labels = data[LABEL_COLUMN].to_numpy(dtype=object)
    per_class = pd.Series(groups).groupby(labels).nunique()
    keep = np.isin(labels, per_class[per_class >= 2].index)
    folds = grouped_folds(labels[keep], groups[keep], 5, config.SEED)
    X = data.loc[keep, prepared.columns]
    predicted = cross_val_oof(build_pipeline(ENSEMBLE, configuration), X, labels[keep], folds)[0]
    direct = classification_metrics(labels[keep], predicted)["f1_macro"]
    assert rows.loc["ensemble", "transfer_f1_macro"] == pytest.approx(direct, abs=1e-12)
    assert rows.loc["ensemble", "seconds"] == pytest.approx(
        rows.loc[list(rows.index[:3]), "seconds"].sum()
    )
    # asked alone, the ensemble trains its members itself
    (alone,) = transfer_estimate(prepared, candidates[-1:], max_groups=5).to_dict("records")
    assert alone["transfer_f1_macro"] == pytest.approx(direct, abs=1e-12)


def test_a_logged_ensemble_loads_predicts_and_knows_its_input(prepared, mlflow_store):
    X, y = prepared.Xy("train")
    X_test, y_test = prepared.Xy("test")
    ensemble = build_pipeline(ENSEMBLE, ensemble_configuration(MEMBERS[:2])).fit(X, y)
    predictor = load_predictor(log_static_model(ensemble, X))
    assert predictor.dims == 3 and predictor.classes == [str(c) for c in ensemble.classes_]
    probabilities = predictor.predict_distribution(X_test.to_numpy())
    assert np.allclose(probabilities, ensemble.predict_proba(X_test))
    labels = [label for label, _ in predictor.predict_batch(X_test.to_numpy(), reject=False)]
    assert np.mean(np.asarray(labels) == y_test) > 0.9
    assert predictor.get_model_info()["classifier"] == "SoftVotingEnsemble"
    # members fitted on 2-D landmarks make a 2-D ensemble: the predictor then reads x, y only
    flat = X.drop(columns=[c for c in X.columns if c.startswith("z")])
    two_d = build_pipeline(ENSEMBLE, ensemble_configuration(MEMBERS[1:])).fit(flat, y)
    assert StaticPredictor(two_d).dims == 2
