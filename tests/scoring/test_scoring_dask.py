"""scikit-learn cross-validation on a Dask cluster of two worker processes gives the serial scores, bit for bit.

One ``distributed.LocalCluster`` (loopback only, no dashboard) for the whole module; every scorer and
its estimator's responses travel pickled between processes. The module checks that no process it
started outlives it.
"""

import pickle

import joblib
import numpy as np
import psutil
import pytest
from distributed import Client, LocalCluster, get_task_stream
from sklearn.datasets import load_iris, make_multilabel_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score, cross_validate
from sklearn.multioutput import MultiOutputClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from xent_metrics.scoring import d2_cross_entropy_scorer, get_scorer, neg_cross_entropy_scorer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TIMEOUT_S = 60


def _children() -> set[int]:
    """Child processes, less Python's own resource tracker (one per interpreter, started by the first spawn)."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if "multiprocessing.resource_tracker" not in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.fixture(scope="module")
def client():
    before = _children()
    cluster = LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_port=0,
        timeout=TIMEOUT_S,
    )
    try:
        with Client(cluster, timeout=TIMEOUT_S) as dask_client:
            dask_client.wait_for_workers(2, timeout=TIMEOUT_S)
            yield dask_client
    finally:
        # A worker that imported torch lingers in interpreter shutdown; the nanny kills it after 4 s.
        cluster.close(timeout=TIMEOUT_S)
    started = [psutil.Process(pid) for pid in _children() - before if psutil.pid_exists(pid)]
    _, alive = psutil.wait_procs(started, timeout=10)
    assert not alive, f"processes left behind by the Dask cluster: {[(p.pid, p.name()) for p in alive]}"


def _logreg():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def _on_dask(dask_client, fn, *args, **kwargs):
    """Run ``fn`` under joblib's dask backend; return its result and how many tasks the cluster ran."""
    with get_task_stream(dask_client) as stream, joblib.parallel_backend("dask", wait_for_workers_timeout=TIMEOUT_S):
        result = fn(*args, **kwargs)
    return result, len(stream.data)


def test_cross_val_score_on_dask_equals_n_jobs_1(client):
    X, y = load_iris(return_X_y=True)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    serial = cross_val_score(_logreg(), X, y, cv=cv, scoring=neg_cross_entropy_scorer, n_jobs=1)
    dask, tasks = _on_dask(client, cross_val_score, _logreg(), X, y, cv=cv, scoring=neg_cross_entropy_scorer, n_jobs=-1)
    assert tasks > 0, "nothing ran on the cluster"
    np.testing.assert_array_equal(dask, serial)
    assert np.all(np.isfinite(serial)) and np.all(serial < 0)


def test_every_scorer_and_response_kind_on_dask(client):
    X, y = load_iris(return_X_y=True)
    scoring = {
        "neg": neg_cross_entropy_scorer,
        "d2": d2_cross_entropy_scorer,
        "logits": get_scorer("neg_cross_entropy_logits"),
        "log_probs": get_scorer("neg_cross_entropy_log_probs"),
    }
    cv = StratifiedKFold(5, shuffle=True, random_state=1)
    serial = cross_validate(_logreg(), X, y, cv=cv, scoring=scoring, n_jobs=1)
    dask, _ = _on_dask(client, cross_validate, _logreg(), X, y, cv=cv, scoring=scoring, n_jobs=-1)
    for name in scoring:
        np.testing.assert_array_equal(dask[f"test_{name}"], serial[f"test_{name}"], err_msg=name)
    Xm, Ym = make_multilabel_classification(n_samples=120, n_features=6, n_classes=3, random_state=0)
    model = MultiOutputClassifier(GaussianNB())  # predict_proba: a list of per-output arrays
    multilabel = {"neg": neg_cross_entropy_scorer, "d2": d2_cross_entropy_scorer}
    serial = cross_validate(model, Xm, Ym, cv=KFold(3), scoring=multilabel, n_jobs=1)
    dask, _ = _on_dask(client, cross_validate, model, Xm, Ym, cv=KFold(3), scoring=multilabel, n_jobs=-1)
    for name in multilabel:
        np.testing.assert_array_equal(dask[f"test_{name}"], serial[f"test_{name}"], err_msg=name)


def test_scorer_and_responses_pickle_to_a_worker_and_back(client):
    X, y = load_iris(return_X_y=True)
    model = _logreg().fit(X[::2], y[::2])
    scorers = [neg_cross_entropy_scorer, d2_cross_entropy_scorer, get_scorer("d2_cross_entropy_logits")]
    local = [scorer(model, X[1::2], y[1::2]) for scorer in scorers]
    remote = client.gather([client.submit(scorer, model, X[1::2], y[1::2], pure=False) for scorer in scorers])
    assert remote == local
    proba = client.submit(model.predict_proba, X[1::2], pure=False).result(timeout=TIMEOUT_S)
    np.testing.assert_array_equal(proba, model.predict_proba(X[1::2]))
    assert [repr(pickle.loads(pickle.dumps(s))) for s in scorers] == [repr(s) for s in scorers]
