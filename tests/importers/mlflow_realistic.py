"""An MLflow store at realistic shape, written and read back by MLflow's own library
(run as a script, so MLflow's global state never leaks into the test process).

    python mlflow_realistic.py write TRACKING_URI WORK_DIR
    python mlflow_realistic.py dump TRACKING_URI > mlflow.json

`write`: 3 experiments, 30 runs: mixed param types, 100-step histories of two metrics,
tags, a parent with a nested child, a deleted run, a failed run, file and directory
artifacts, a plot, a logged dataset, two logged scikit-learn models registered as two
versions of one registered model with two aliases (and one version deleted from a
second registered model), three GenAI traces.

`dump`: what MLflow's client reads back (every run, deleted ones included, with its
params, tags, metric histories, artifacts, datasets; the registry with its aliases), as
JSON: what the fidelity test compares metastore's import with, field by field.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3.13+ refuses file stores otherwise
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import mlflow  # noqa: E402
from mlflow.entities import Metric, Param, RunTag, ViewType  # noqa: E402

EXPERIMENTS = ["wine", "digits", "sweeps"]
BASE_MS = 1_767_000_000_000  # fixed times, so both stores hold the same values


def write(uri: str, work: str) -> None:
    import mlflow.sklearn
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    os.makedirs(os.path.join(work, "cfg", "sub"), exist_ok=True)
    with open(os.path.join(work, "notes.txt"), "w") as f:
        f.write("hello from mlflow\n")
    with open(os.path.join(work, "cfg", "config.json"), "w") as f:
        f.write('{"alpha": 0.5}\n')
    with open(os.path.join(work, "cfg", "sub", "grid.yaml"), "w") as f:
        f.write("alpha: [0.1, 0.2]\n")
    with open(os.path.join(work, "loss.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))
    frame = pd.DataFrame({"alcohol": [9.4, 9.8, 10.1], "quality": [5, 5, 6]})
    dataset = mlflow.data.from_pandas(frame, source="data/wine.csv", name="wine-data")
    models = []
    runs_by_name: dict[str, str] = {}
    n = 0
    for e, exp in enumerate(EXPERIMENTS):
        exp_id = client.create_experiment(exp, tags={"team": f"team-{e}"})
        for i in range(10):
            n += 1
            name = f"{exp}-{i}"
            parent = None
            if exp == "sweeps" and i == 5:  # the child of sweeps-4
                parent = runs_by_name["sweeps-4"]
            tags = {"mlflow.runName": name, "stage": ["dev", "prod"][i % 2]}
            if parent:
                tags["mlflow.parentRunId"] = parent
            run = client.create_run(exp_id, start_time=BASE_MS + n * 60_000, tags=tags, run_name=name)
            rid = run.info.run_id
            runs_by_name[name] = rid
            params = [Param("lr", str(0.001 * (i + 1))), Param("epochs", str(10 + i)),
                      Param("optimizer", ["adam", "sgd"][i % 2]), Param("use_bn", str(i % 2 == 0)),
                      Param("layers", str([64, 32][: 1 + i % 2])), Param("opt/momentum", "0.9")]
            metrics = []
            for step in range(100):
                ts = BASE_MS + n * 60_000 + step * 100
                metrics.append(Metric("loss", 1.0 / (step + 1 + i), ts, step))
                metrics.append(Metric("acc", min(0.99, 0.5 + step * 0.004 + i * 0.001), ts, step))
            client.log_batch(rid, metrics=metrics, params=params,
                             tags=[RunTag("seed", str(i))])
            if i == 0:
                client.log_artifact(rid, os.path.join(work, "notes.txt"))
                client.log_artifacts(rid, os.path.join(work, "cfg"), artifact_path="cfg")
                client.log_artifact(rid, os.path.join(work, "loss.png"))
                with mlflow.start_run(run_id=rid):
                    mlflow.log_input(dataset, context="training")
            if exp == "wine" and i in (1, 2):
                with mlflow.start_run(run_id=rid):
                    model = LinearRegression().fit([[1.0], [2.0 + i]], [1.0, 2.0])
                    info = mlflow.sklearn.log_model(model, name="regressor",
                                                    pip_requirements=["scikit-learn"])
                    models.append((rid, info.model_id))
            status = "FAILED" if (exp == "digits" and i == 3) else "FINISHED"
            client.set_terminated(rid, status=status, end_time=BASE_MS + n * 60_000 + 20_000)
            if exp == "digits" and i == 7:
                client.delete_run(rid)
    # GenAI traces: not runs; the import counts them as not imported
    mlflow.set_experiment("wine")

    @mlflow.trace
    def answer(question: str) -> str:
        return question.upper()

    for q in ("a", "b", "c"):
        answer(q)
    client.create_registered_model("wine-model", tags={"owner": "ml"}, description="the wine model")
    for rid, model_id in models:
        client.create_model_version("wine-model", f"models:/{model_id}", run_id=rid,
                                    description=f"from {rid[:6]}")
    client.set_registered_model_alias("wine-model", "champion", "2")
    client.set_registered_model_alias("wine-model", "challenger", "1")
    client.set_model_version_tag("wine-model", "1", "validated", "yes")
    client.create_registered_model("scratch")
    rid, model_id = models[0]
    client.create_model_version("scratch", f"models:/{model_id}", run_id=rid)
    client.create_model_version("scratch", f"models:/{models[1][1]}", run_id=models[1][0])
    client.delete_model_version("scratch", "1")


def _artifacts(client, rid: str, path: str | None = None) -> list[str]:
    out = []
    for a in client.list_artifacts(rid, path):
        out += _artifacts(client, rid, a.path) if a.is_dir else [a.path]
    return out


def _sha256(client, rid: str, path: str) -> str:
    import hashlib
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(rid, path, tmp)
        with open(local, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()


def dump(uri: str) -> dict:
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    exps = client.search_experiments(view_type=ViewType.ALL)
    runs = []
    for r in client.search_runs([e.experiment_id for e in exps], run_view_type=ViewType.ALL,
                                max_results=1000):
        rid = r.info.run_id
        history = {
            key: sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(rid, key))
            for key in r.data.metrics
        }
        runs.append({
            "run_id": rid,
            "experiment": client.get_experiment(r.info.experiment_id).name,
            "name": r.info.run_name,
            "user": r.info.user_id,
            "status": r.info.status,
            "start_time": r.info.start_time,
            "end_time": r.info.end_time,
            "deleted": r.info.lifecycle_stage == "deleted",
            "params": r.data.params,
            "tags": r.data.tags,
            "metrics": history,
            "artifacts": {p: _sha256(client, rid, p) for p in _artifacts(client, rid)},
            "datasets": [(d.dataset.name, d.dataset.digest,
                          [t.value for t in d.tags if t.key == "mlflow.data.context"])
                         for d in (r.inputs.dataset_inputs if r.inputs else [])],
        })
    registry = []
    for m in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{m.name}'")
        registry.append({
            "name": m.name,
            "description": m.description,
            "tags": m.tags,
            "aliases": m.aliases,
            "versions": sorted(({"version": int(v.version), "run_id": v.run_id, "source": v.source,
                                 "description": v.description, "tags": v.tags}
                                for v in versions), key=lambda v: v["version"]),
        })
    return {"runs": runs, "registry": registry}


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3])
    else:
        json.dump(dump(sys.argv[2]), sys.stdout)
