"""The demo: a small grid of scikit-learn regressors on the bundled diabetes data set.

Linear regression (ridge, alpha 0.1) and random forest, three feature subsets, normalize
on and off: twelve runs, each recorded with its code (this file, as `code:demo`), data,
params, metrics (rmse, r2, mae; a loss history for the forest), its model and a note, so
every question in docs/query-language.md has an answer and `metastore audit` finds
nothing missing, in a git checkout or not.
"""

from __future__ import annotations

import io
import pickle
import tempfile
from pathlib import Path

from metastore.store import Store

#: The ten post-experiment questions of the controlled study on experiment-management
#: tools, as queries on the demo's runs (worked through in docs/query-language.md).
QUESTIONS = {
    1: "runs order by rmse limit 1 show number, rmse",
    2: "runs order by started limit 1 per algorithm order by rmse show algorithm, number, rmse",
    3: "runs order by r2 desc limit 1 show number, features",
    4: "runs where number in (1, 4) order by mae desc limit 1 show number, mae",
    5: "runs where number in (5, 7, 9, 11) show number, rmse, r2, mae",
    6: 'downstream of run 4 where kind = "model" show name, version, digest',
    7: "runs order by rmse desc limit 1 show number, normalize",
    8: "runs where r2 > 0.32 show number, r2",
    9: 'runs where algorithm = "linear" and rmse < 55 show number, r2',
    10: "runs order by started limit 1 show number, r2",
}

FEATURE_SETS = ["age,sex,bmi,bp", "bmi,bp,s5", "age,sex,bmi,bp,s1,s2,s3,s4,s5,s6"]
ALGORITHMS = ["linear", "random_forest"]
SEED = 1


def grid() -> list[dict]:
    """The configurations, in the order they are run (and numbered)."""
    return [
        {"algorithm": a, "features": f, "normalize": n, "seed": SEED}
        for a in ALGORITHMS
        for f in FEATURE_SETS
        for n in (False, True)
    ]


def run_demo(store: Store, experiment: str = "diabetes", quiet: bool = False) -> list:
    """Train and record the grid; returns the recorded runs."""
    try:
        import numpy as np
        from sklearn.datasets import load_diabetes
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.linear_model import Ridge
        from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
        from sklearn.model_selection import train_test_split
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as e:  # pragma: no cover - depends on the install
        from metastore.errors import MetastoreError

        raise MetastoreError(
            "the demo needs scikit-learn", hint="pip install 'metastore[demo]'"
        ) from e

    frame = load_diabetes(as_frame=True).frame
    train, test = train_test_split(frame, test_size=0.25, random_state=SEED)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        frame.to_csv(data_dir / "diabetes.csv", index=False)
        train.to_csv(data_dir / "train.csv", index=False)
        test.to_csv(data_dir / "test.csv", index=False)
        for config in grid():
            features = config["features"].split(",")
            name = f"{'lr' if config['algorithm'] == 'linear' else 'rf'}-{len(features)}f" + (
                "-norm" if config["normalize"] else ""
            )
            # No git capture: the demo's code is its script (code:demo below), not the
            # repository it happens to be run in, whose uncommitted change would be stored.
            with store.start_run(experiment=experiment, name=name,
                                 capture={"command", "system", "packages"}) as run:
                params = dict(config)
                if config["algorithm"] == "linear":
                    # Lightly regularised, so that normalize changes the fit (plain least
                    # squares would give identical runs and ties in every question).
                    params.update(alpha=0.1)
                    model = Ridge(alpha=0.1)
                else:
                    params.update(n_estimators=50, max_depth=4)
                    model = RandomForestRegressor(n_estimators=50, max_depth=4, random_state=SEED)
                run.log_params(params)
                # the training code itself, so the run can be re-made outside a git checkout
                run.use_asset(Path(__file__), kind="code", name="demo", role="training script")
                source = run.use_asset(
                    data_dir / "diabetes.csv", kind="dataset", name="diabetes", role="source"
                )
                run.log_asset(
                    data_dir / "train.csv", kind="dataset", name="diabetes-train",
                    derived_from=[source], relation="used", role="train",
                )
                run.log_asset(
                    data_dir / "test.csv", kind="dataset", name="diabetes-test",
                    derived_from=[source], relation="used", role="test",
                )
                X, y = train[features], train["target"]
                if config["algorithm"] == "random_forest":
                    # Grow a forest in stages so the run has a metric history.
                    staged = RandomForestRegressor(max_depth=4, random_state=SEED, warm_start=True)
                    for step, n in enumerate(range(10, 51, 10)):
                        staged.set_params(n_estimators=n)
                        staged.fit(X, y)
                        pred = staged.predict(test[features])
                        loss = float(np.sqrt(mean_squared_error(test["target"], pred)))
                        run.log_metric("loss", loss, step=step)
                pipeline = make_pipeline(StandardScaler(), model) if config["normalize"] else model
                pipeline.fit(X, y)
                pred = pipeline.predict(test[features])
                rmse = float(np.sqrt(mean_squared_error(test["target"], pred)))
                run.log_metrics(
                    {
                        "rmse": round(rmse, 4),
                        "r2": round(float(r2_score(test["target"], pred)), 4),
                        "mae": round(float(mean_absolute_error(test["target"], pred)), 4),
                    }
                )
                buffer = io.BytesIO()
                pickle.dump(pipeline, buffer)
                run.log_asset(
                    buffer.getvalue(), kind="model", name="regressor",
                    media_type="application/x-pickle", meta={"framework": "scikit-learn"},
                )
                verdict = "beats" if rmse < 55 else "misses"
                run.note(f"{name}: rmse {rmse:.1f} {verdict} 55 with {config['features']}")
            runs.append(run)
            if not quiet:
                print(f"  recorded {run.ref:<14} {name:<12} rmse={run.metrics['rmse']:.2f}")
    return runs


NEXT_STEPS = """\
Try next:
  metastore runs --experiment {experiment}
  metastore show {experiment}#1
  metastore query '{q1}'
  metastore query '{q9}'
  metastore lineage model:regressor --up
  metastore audit
  metastore ui
"""
