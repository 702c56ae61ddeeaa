"""Write a small MLflow tracking store with MLflow's own client (run as a script).

    python make_mlflow.py TRACKING_URI ARTIFACT_ROOT [--more | --model | --shared]

Used by the importer tests in a subprocess, so MLflow's global state (tracking URI,
active run) never leaks into the test process. `--more` adds two runs to an existing
store (for the "import again after new runs" test); `--model` writes one run that
logs a scikit-learn model (slow: MLflow inspects the environment); `--shared` writes two
runs that log the same dataset.
"""

from __future__ import annotations

import os
import sys
import time

os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3.13+ refuses file stores otherwise
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402


def log_model_run() -> None:
    """MLflow 3 keeps logged models outside the run (<exp>/models/m-…) and appends the
    run's metric lines again."""
    import mlflow.sklearn
    from sklearn.linear_model import LinearRegression

    mlflow.set_experiment("models")
    with mlflow.start_run(run_name="with-model"):
        mlflow.log_metric("rmse", 0.5, step=0)
        model = LinearRegression().fit([[1.0], [2.0]], [1.0, 2.0])
        mlflow.sklearn.log_model(model, name="regressor", pip_requirements=["scikit-learn"])


def shared_dataset_runs() -> None:
    """Two runs that log the same dataset (one asset version, two links)."""
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [2.0, 4.0, 6.0]})
    dataset = mlflow.data.from_pandas(frame, source="data/shared.csv", name="shared-data")
    mlflow.set_experiment("shared")
    for i in range(2):
        with mlflow.start_run(run_name=f"uses-{i}"):
            mlflow.log_param("i", i)
            mlflow.log_input(dataset, context="training")


def main(uri: str, artifact_root: str, more: bool, model: bool = False, shared: bool = False) -> None:
    mlflow.set_tracking_uri(uri)
    if model:
        log_model_run()
        return
    if shared:
        shared_dataset_runs()
        return
    client = mlflow.MlflowClient(uri)
    work = os.path.join(artifact_root, "_work")
    os.makedirs(work, exist_ok=True)
    if more:
        mlflow.set_experiment("wine")
        for i in range(2):
            with mlflow.start_run(run_name=f"late-{i}"):
                mlflow.log_param("lr", 0.5 + i)
                mlflow.log_metric("rmse", 1.0 + i, step=0)
        return

    exp = client.get_experiment_by_name("wine")
    exp_id = exp.experiment_id if exp else client.create_experiment(
        "wine", artifact_location=None if "://" not in uri or uri.startswith("file") else
        f"file://{artifact_root}/wine", tags={"team": "vision"}
    )
    mlflow.set_experiment(experiment_id=exp_id)

    # 1. a full run: typed params, histories with steps, tags, artifacts, dataset input
    with mlflow.start_run(run_name="enet") as run:
        mlflow.log_params({"lr": "0.1", "epochs": 5, "use_bn": True, "opt/momentum": 0.9,
                           "layers": "[64, 32]", "name": "elastic", "big": "1e3", "zip": "01234"})
        base = int(time.time() * 1000) - 10_000
        for step, value in enumerate([0.9, 0.6, 0.45]):
            client.log_metric(run.info.run_id, "rmse", value, timestamp=base + step * 100, step=step)
        client.log_metric(run.info.run_id, "r2", 0.71, timestamp=base + 500, step=2)
        client.log_metric(run.info.run_id, "weird", float("nan"), timestamp=base + 600, step=0)
        client.log_metric(run.info.run_id, "weird", 2.5, timestamp=base + 700, step=1)
        mlflow.set_tags({"stage": "dev", "mlflow.note.content": "first try with elastic net"})
        with open(os.path.join(work, "notes.txt"), "w") as f:
            f.write("hello from mlflow\n")
        os.makedirs(os.path.join(work, "cfg"), exist_ok=True)
        with open(os.path.join(work, "cfg", "config.json"), "w") as f:
            f.write('{"alpha": 0.5}\n')
        mlflow.log_artifact(os.path.join(work, "notes.txt"))
        mlflow.log_artifacts(os.path.join(work, "cfg"), artifact_path="cfg")
        frame = pd.DataFrame({"alcohol": [9.4, 9.8, 10.1], "quality": [5, 5, 6]})
        dataset = mlflow.data.from_pandas(frame, source="data/wine.csv", name="wine-data")
        mlflow.log_input(dataset, context="training")

    # 2. a failed run
    with mlflow.start_run(run_name="broken") as run:
        mlflow.log_param("lr", 10)
        mlflow.log_metric("rmse", 99.0)
    client.set_terminated(run.info.run_id, status="FAILED")

    # 3. a parent with two nested children (a sweep)
    with mlflow.start_run(run_name="sweep"):
        for alpha in (0.1, 0.2):
            with mlflow.start_run(run_name=f"alpha-{alpha}", nested=True):
                mlflow.log_param("alpha", alpha)
                mlflow.log_metric("rmse", 1 - alpha, step=0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--more" in sys.argv[3:], "--model" in sys.argv[3:],
         "--shared" in sys.argv[3:])
