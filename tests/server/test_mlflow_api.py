"""The real MLflow client against a real metastore server (over SQLite and PostgreSQL):
what MLflow code records is read back through MLflow and through the query language."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

import metastore
from metastore.server import background_server, create_token
from tests.conftest import _marks, make_database

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.server


@pytest.fixture(params=[pytest.param(b, marks=_marks(b)) for b in ["sqlite", "postgres"]])
def served(request, tmp_path, monkeypatch):
    """(metastore store, server URL) with MLflow pointed at the server."""
    url, drop = make_database(request.param, tmp_path)
    store = metastore.open(url, blobs=tmp_path / "blobs")
    token = create_token(store, "mlflow")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with background_server(store) as server:
        mlflow.set_tracking_uri(server)
        try:
            yield store, server
        finally:
            while mlflow.active_run():
                mlflow.end_run()
            mlflow.set_tracking_uri(None)
    store.close()
    drop()


def test_fluent_api_round_trip(served, tmp_path):
    store, _ = served
    mlflow.set_experiment("diabetes")
    data = tmp_path / "notes.txt"
    data.write_text("hello")
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("lr", "0.1")
        mlflow.log_params({"alpha": 0.5, "solver": "adam", "layers": 3})
        for step, loss in enumerate([1.0, 0.5, 0.25]):
            mlflow.log_metric("loss", loss, step=step)
        mlflow.set_tag("stage", "dev")
        mlflow.log_artifact(str(data))
        mlflow.log_artifact(str(data), artifact_path="sub")
        dataset = mlflow.data.from_numpy(np.arange(10.0).reshape(5, 2), name="features")
        mlflow.log_input(dataset, context="training")
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("loss", 2.0)
    client = mlflow.MlflowClient()

    run = client.get_run(parent.info.run_id)
    assert run.info.status == "FINISHED" and run.info.end_time >= run.info.start_time
    assert run.data.params == {"lr": "0.1", "alpha": "0.5", "solver": "adam", "layers": "3"}
    assert run.data.metrics == {"loss": 0.25}
    assert run.data.tags["stage"] == "dev"
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["features"]
    history = client.get_metric_history(parent.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (2, 0.25)]
    assert client.get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == parent.info.run_id

    # search_runs: params compare as numbers (0.1 > 0.05), MLflow's order_by
    found = mlflow.search_runs(
        experiment_names=["diabetes"], filter_string="params.lr > '0.05' AND metrics.loss < 1",
        output_format="list",
    )
    assert [r.info.run_id for r in found] == [parent.info.run_id]
    ordered = mlflow.search_runs(
        experiment_names=["diabetes"], order_by=["metrics.loss DESC"], output_format="list"
    )
    assert [r.info.run_name for r in ordered] == ["child", "parent"]
    assert mlflow.search_runs(
        experiment_names=["diabetes"], filter_string="metrics.nothing > 1", output_format="list"
    ) == []
    named = mlflow.search_runs(
        experiment_names=["diabetes"], filter_string="attributes.run_name LIKE 'par%'",
        output_format="list",
    )
    assert [r.info.run_name for r in named] == ["parent"]

    # artifacts: listed and downloaded through the proxy
    listed = {f.path: f.is_dir for f in client.list_artifacts(parent.info.run_id)}
    assert listed == {"notes.txt": False, "sub": True}
    path = mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, artifact_path="sub/notes.txt", dst_path=str(tmp_path / "out")
    )
    assert open(path).read() == "hello"

    # … and the same run through metastore: typed params, history, parent, lineage
    rows = store.query(
        'runs where experiment = "diabetes" and lr > 0.05 show name, lr, layers, loss.count, parent'
    ).rows
    assert rows == [{"name": "parent", "lr": 0.1, "layers": 3, "loss.count": 3, "parent": None}]
    assert store.query('runs where name = "child" show parent').rows == [{"parent": parent.info.run_id}]
    handle = store.get_run(parent.info.run_id)
    assert {v.name for v in handle.inputs} >= {"features"}
    assert {"notes.txt", "sub/notes.txt"} <= {v.name for v in handle.outputs}


def test_client_api_runs_and_experiments(served):
    store, _ = served
    client = mlflow.MlflowClient()
    eid = client.create_experiment("sweep", tags={"team": "ml"})
    assert client.get_experiment_by_name("sweep").experiment_id == eid
    assert client.get_experiment(eid).tags == {"team": "ml"}
    with pytest.raises(mlflow.exceptions.MlflowException, match="already exists"):
        client.create_experiment("sweep")
    ids = []
    for i in range(5):
        run = client.create_run(eid, run_name=f"r{i}")
        client.log_batch(
            run.info.run_id,
            metrics=[mlflow.entities.Metric("rmse", 50.0 + i, 0, 0)],
            params=[mlflow.entities.Param("n_estimators", str(10 * (i + 1)))],
            tags=[mlflow.entities.RunTag("fold", str(i))],
        )
        client.set_terminated(run.info.run_id, status="FAILED" if i == 4 else "FINISHED")
        ids.append(run.info.run_id)
    assert client.get_run(ids[4]).info.status == "FAILED"
    assert store.get_run(ids[4]).status == "failed"

    # pages of two, ordered by a param compared as a number (100 > 20 > 10)
    seen, token = [], None
    while True:
        page = client.search_runs(
            [eid], order_by=["params.n_estimators DESC"], max_results=2, page_token=token
        )
        seen += [r.info.run_name for r in page]
        token = page.token
        if not token:
            break
    assert seen == ["r4", "r3", "r2", "r1", "r0"]
    assert [r.info.run_name for r in client.search_runs([eid], "tags.fold IN ('1', '3')")] in (
        ["r3", "r1"], ["r1", "r3"]
    )
    assert [r.info.run_name for r in client.search_runs([eid], "attributes.status = 'FAILED'")] == ["r4"]

    client.delete_run(ids[0])
    assert len(client.search_runs([eid])) == 4
    assert client.get_run(ids[0]).info.lifecycle_stage == "deleted"
    client.restore_run(ids[0])
    assert len(client.search_runs([eid])) == 5
    assert "sweep" in [e.name for e in client.search_experiments()]
    assert [e.name for e in client.search_experiments(filter_string="name LIKE 'sw%'")] == ["sweep"]

    with pytest.raises(mlflow.exceptions.MlflowException, match="AND only"):
        client.search_runs([eid], "metrics.rmse < 1 OR metrics.rmse > 2")


def test_unsupported_calls_answer_with_mlflow_errors(served):
    _, server = served
    client = mlflow.MlflowClient()
    client.create_registered_model("regressor")
    with pytest.raises(mlflow.exceptions.MlflowException) as info:
        client.delete_registered_model("regressor")
    assert info.value.error_code == "ENDPOINT_NOT_FOUND"
    assert "does not support" in info.value.message
    # tracing: the client's calls (/api/2.0 and /api/3.0) answer in MLflow's format
    with pytest.raises(mlflow.exceptions.MlflowException) as info:
        client.get_trace("tr-0123456789abcdef")
    assert "does not support MLflow tracing" in info.value.message
    with pytest.raises(mlflow.exceptions.MlflowException) as info:
        client.search_traces(locations=["0"])
    assert "does not support MLflow tracing" in info.value.message
    with pytest.raises(mlflow.exceptions.MlflowException) as info:
        client.get_run("01ZZZZZZZZZZZZZZZZZZZZZZZZ")
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    # without a token: refused
    answer = httpx.get(f"{server}/api/2.0/mlflow/experiments/get?experiment_id=0")
    assert answer.status_code == 401


def test_read_only_token_searches_but_cannot_write(served):
    store, server = served
    headers = {"authorization": "Bearer " + create_token(store, "reader", read_only=True)}
    search = httpx.post(f"{server}/api/2.0/mlflow/runs/search", json={"experiment_ids": ["0"]},
                        headers=headers)
    assert search.status_code == 200
    create = httpx.post(f"{server}/api/2.0/mlflow/runs/create", json={"experiment_id": "0"},
                        headers=headers)
    assert create.status_code == 403


def test_sklearn_autolog(served, tmp_path):
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    store, _ = served
    mlflow.set_experiment("autolog")
    mlflow.sklearn.autolog(log_input_examples=False, silent=True)
    try:
        X, y = load_diabetes(return_X_y=True)
        with mlflow.start_run() as run:
            model = Ridge(alpha=0.3).fit(X, y)
    finally:
        mlflow.sklearn.autolog(disable=True)
    client = mlflow.MlflowClient()
    got = client.get_run(run.info.run_id)
    assert got.data.params["alpha"] == "0.3"
    assert got.data.metrics["training_r2_score"] == pytest.approx(model.score(X, y))

    [logged] = client.search_logged_models(experiment_ids=[got.info.experiment_id])
    assert logged.source_run_id == run.info.run_id
    loaded = mlflow.sklearn.load_model(f"models:/{logged.model_id}")
    assert np.allclose(loaded.predict(X[:5]), model.predict(X[:5]))

    rows = store.query(
        'runs where experiment = "autolog" and alpha = 0.3 show alpha, training_r2_score'
    ).rows
    assert rows[0]["alpha"] == 0.3
    assert rows[0]["training_r2_score"] == pytest.approx(model.score(X, y))
    models = store.query('models where name = "model" show name, version, created_by').rows
    assert len(models) == 1
    assert store.get_asset("model", "model").path().joinpath("MLmodel").exists()


def test_model_registry(served, tmp_path):
    """register_model, versions, aliases and models:/ downloads through MLflow, and the
    same registry as metastore's model versions, aliases and lineage."""
    from sklearn.linear_model import Ridge
    from typer.testing import CliRunner

    from metastore.cli import app

    store, _ = served
    client = mlflow.MlflowClient()
    mlflow.set_experiment("registry")
    X, y = np.arange(20.0).reshape(10, 2), np.arange(10.0)
    runs, models = [], []
    for alpha in (0.1, 1.0):
        with mlflow.start_run() as run:
            mlflow.log_param("alpha", alpha)
            model = Ridge(alpha=alpha).fit(X, y)
            info = mlflow.sklearn.log_model(model, name="ridge")
        runs.append(run.info.run_id)
        models.append((model, info))

    first = mlflow.register_model(f"models:/{models[0][1].model_id}", "regressor")
    assert (first.name, first.version, first.run_id) == ("regressor", "1", runs[0])
    second = mlflow.register_model(f"runs:/{runs[1]}/ridge", "regressor")
    assert (second.version, second.run_id) == ("2", runs[1])
    again = client.create_model_version("regressor", f"models:/{models[0][1].model_id}")
    assert again.version == "1"  # the same content is the same version

    client.set_registered_model_alias("regressor", "production", "1")
    client.set_registered_model_alias("regressor", "staging", "2")
    assert client.get_model_version_by_alias("regressor", "production").version == "1"
    assert client.get_model_version("regressor", "2").aliases == ["staging"]
    registered = client.get_registered_model("regressor")
    assert registered.aliases == {"production": "1", "staging": "2"}
    assert [v.version for v in registered.latest_versions] == ["2"]
    found = client.search_model_versions("name = 'regressor'", order_by=["version_number ASC"])
    assert [v.version for v in found] == ["1", "2"]
    assert [m.name for m in client.search_registered_models("name LIKE 'reg%'",
                                                            order_by=["name DESC"])] == ["regressor"]
    # every model asset is a registered model: the logged models' own `model:ridge` too
    by_run = client.search_model_versions(f"run_id = '{runs[1]}'")
    assert sorted((v.name, v.version) for v in by_run) == [("regressor", "2"), ("ridge", "2")]

    for uri, model in (("models:/regressor@production", models[0][0]),
                       ("models:/regressor/2", models[1][0])):
        loaded = mlflow.sklearn.load_model(uri)
        assert np.allclose(loaded.predict(X[:3]), model.predict(X[:3]))

    client.delete_registered_model_alias("regressor", "staging")
    with pytest.raises(mlflow.exceptions.MlflowException) as info:
        client.get_model_version_by_alias("regressor", "staging")
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(mlflow.exceptions.MlflowException) as info:
        client.transition_model_version_stage("regressor", "1", "Production")
    assert info.value.error_code == "ENDPOINT_NOT_FOUND" and "aliases" in info.value.message
    with pytest.raises(mlflow.exceptions.MlflowException) as info:
        client.create_model_version("regressor", "s3://bucket/model")
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"

    empty = client.create_registered_model("empty", tags={"team": "ml"}, description="later")
    assert empty.name == "empty"
    got = client.get_registered_model("empty")
    assert (got.tags, got.description, got.latest_versions) == ({"team": "ml"}, "later", [])
    with pytest.raises(mlflow.exceptions.MlflowException) as info:
        client.create_registered_model("empty")
    assert info.value.error_code == "RESOURCE_ALREADY_EXISTS"

    # … and through metastore: versions of model:regressor produced by the runs, the alias
    rows = store.query('models where name = "regressor" order by version show version, created_by, alpha').rows
    assert rows == [{"version": 1, "created_by": "registry#1", "alpha": 0.1},
                    {"version": 2, "created_by": "registry#2", "alpha": 1.0}]
    assert store.get_asset("model", "regressor", "production").version == 1
    assert [(h.alias, h.version) for h in store.alias_history("model:regressor")] == [
        ("production", 1), ("staging", 2), ("staging", None)]
    result = CliRunner().invoke(
        app, ["lineage", "model:regressor@production", "--up", "--store", store.url, "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert runs[0] in result.output and runs[1] not in result.output


def test_search_runs_reads_the_page_only(served, monkeypatch):
    """search_runs answers from the query and one bulk read of the page's runs: never a
    read of every run (which a store of many runs could not afford)."""
    store, _ = served
    for i in range(12):
        with store.start_run("many", capture=False, system_metrics=False) as run:
            run.log_params({"lr": 0.01 * (i + 1)})
            run.log_series("loss", [1.0, 0.5, 0.1 * i], steps=[0, 1, 5])
    reads = []
    real = store.backend.read_runs

    def counting(*args, **kwargs):
        reads.append(kwargs.get("run_ids", args[1] if len(args) > 1 else None))
        return real(*args, **kwargs)

    monkeypatch.setattr(store.backend, "read_runs", counting)
    client = mlflow.MlflowClient()
    eid = client.get_experiment_by_name("many").experiment_id
    page = client.search_runs([eid], "params.lr > '0.05' and metrics.loss >= 0",
                              order_by=["metrics.loss DESC"], max_results=3)
    assert [r.data.params["lr"] for r in page] == ["0.12", "0.11", "0.1"]
    [loss] = [m for m in page[0].data._metric_objs if m.key == "loss"]
    assert (loss.key, loss.value, loss.step) == ("loss", pytest.approx(1.1), 5)
    assert reads and all(ids is not None and len(ids) <= 3 for ids in reads)
