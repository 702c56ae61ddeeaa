"""Small lineage stores built through the recording API."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


def _record_pipeline(store):
    """raw dataset -> clean dataset (derived_from); run 1 uses clean + code + env and
    produces model v1; run 2 uses clean and produces model v2; an unrelated run 3."""
    with store.start_run(experiment="exp", name="prep", capture=False) as prep:
        raw = prep.use_asset(b"raw rows", kind="dataset", name="raw")
        clean = prep.log_asset(b"clean rows", kind="dataset", name="clean", derived_from=[raw])
    with store.start_run(experiment="exp", name="train-a", capture=False) as a:
        a.log_params({"lr": 0.1, "seed": 1})
        a.use_asset(clean, role="train")
        code = a.use_asset(b"print('train')", kind="code", name="train.py")
        env = a.use_asset(b"numpy==1.0\n", kind="environment", name="python")
        m1 = a.log_asset(b"weights-1", kind="model", name="regressor")
    with store.start_run(experiment="exp", name="train-b", capture=False) as b:
        b.use_asset(clean, role="train")
        m2 = b.log_asset(b"weights-2", kind="model", name="regressor")
    with store.start_run(experiment="other", name="lonely", capture=False) as c:
        c.log_asset(b"lonely", kind="model", name="lonely")
    return SimpleNamespace(prep=prep, raw=raw, clean=clean, a=a, code=code, env=env, m1=m1,
                           b=b, m2=m2, c=c)


@pytest.fixture
def record_pipeline():
    """The function that records the pipeline into a store of the test's choosing."""
    return _record_pipeline


@pytest.fixture
def pipeline(store):
    return _record_pipeline(store)
