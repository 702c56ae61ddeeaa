"""MLflow's tracking protocol, spoken by the metastore server.

    mlflow.set_tracking_uri("http://metastore-host:5000")   # MLFLOW_TRACKING_TOKEN=<token>

A translation layer: each MLflow call (`/api/2.0/mlflow/...`, also under `/ajax-api/`)
becomes calls on the store interface (`store.backend`), and each answer is shaped as
MLflow's JSON. Nothing is stored twice and nothing here touches SQL: an MLflow run is a
metastore run, its params are typed params (the text "0.1" is stored as the number 0.1),
its metrics metric histories, its tags tags; `search_runs` filters and order-by clauses are
translated to the query language (`mlflow_filter`) and answered by the query compiler.

Artifacts sent through the `mlflow-artifacts` proxy are stored as content-addressed asset
versions produced by their run (one asset per artifact path). MLflow 3 logged models are
kept as tags on their source run, their files as asset versions of kind "model", and, when
finalized, the whole model directory as one version of the model asset `model:<name>`.

Calls metastore does not support answer with MLflow's error JSON
(`{"error_code": "ENDPOINT_NOT_FOUND", "message": ...}`), never with a silent success.
The table of calls is in docs/integrations.md.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from metastore.errors import MetastoreError, NotFound
from metastore.importers.values import infer_value
from metastore.records import MetricPoint, RunRecord
from metastore.server.mlflow_common import MlflowError, not_supported
from metastore.server.mlflow_common import from_metastore as _from_metastore
from metastore.server.mlflow_common import meta as _meta
from metastore.server.mlflow_common import ms as _ms
from metastore.server.mlflow_common import need as _need
from metastore.server.mlflow_common import offset as _offset
from metastore.server.mlflow_common import page as _page
from metastore.server.mlflow_common import token as _token
from metastore.server.mlflow_filter import (
    EXPERIMENT_ATTRIBUTES,
    translate_filter,
    translate_order_by,
)
from metastore.server.mlflow_registry import (
    REGISTRY_ENDPOINTS,
    REGISTRY_READING_POSTS,
    VERSIONS_ROOT,
    RegistryCalls,
)

#: The experiment MLflow calls "0" (its "Default") is metastore's default experiment.
DEFAULT_EXPERIMENT = "default"
STATUS_IN = {"RUNNING": "running", "SCHEDULED": "running", "FINISHED": "finished",
             "FAILED": "failed", "KILLED": "killed"}
STATUS_OUT = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED",
              "killed": "KILLED", "crashed": "FAILED"}
#: The note kind that carries a logged model of MLflow 3 (JSON of its info).
MODEL_NOTE = "mlflow_model"
ARTIFACT_META = "mlflow_artifact_path"
MAX_RESULTS = 50_000


def _error_response(e: MlflowError) -> JSONResponse:
    return JSONResponse({"error_code": e.code, "message": e.message}, status_code=e.status)


def _time(ms) -> datetime | None:
    if ms in (None, ""):
        return None
    try:
        return datetime.fromtimestamp(int(ms) / 1000, UTC)
    except (TypeError, ValueError, OverflowError) as e:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"a time is milliseconds, got {ms!r}") from e


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


class Translator(RegistryCalls):
    """MLflow's calls over one store's backend (the registry's in `RegistryCalls`)."""

    def __init__(self, store):
        self.store = store

    @property
    def b(self):
        return self.store.backend

    # -- experiments ------------------------------------------------------------------
    def exp_name(self, experiment_id) -> str:
        experiment_id = str(experiment_id)
        if experiment_id == "0":
            self.b.create_experiment(DEFAULT_EXPERIMENT)
            return DEFAULT_EXPERIMENT
        try:
            return self.b.experiment_name(int(experiment_id))
        except ValueError as e:
            raise MlflowError("INVALID_PARAMETER_VALUE", f"no experiment id {experiment_id!r}") from e
        except NotFound as e:
            raise MlflowError(
                "RESOURCE_DOES_NOT_EXIST", f"No Experiment with id={experiment_id} exists", 404
            ) from e

    def exp_id(self, exp) -> str:
        return "0" if exp.name == DEFAULT_EXPERIMENT else str(exp.id)

    def exp_json(self, exp) -> dict:
        tags = self.b.get_tags("experiment", str(exp.id))
        eid = self.exp_id(exp)
        return {
            "experiment_id": eid,
            "name": "Default" if exp.name == DEFAULT_EXPERIMENT else exp.name,
            "artifact_location": f"mlflow-artifacts:/{eid}",
            "lifecycle_stage": "deleted" if exp.deleted_at else "active",
            "creation_time": _ms(exp.created),
            "last_update_time": _ms(exp.created),
            "tags": [{"key": k, "value": v} for k, v in tags.items() if v is not None],
        }

    def _experiment(self, name: str):
        if name == "Default":
            name = DEFAULT_EXPERIMENT
        for exp in self.b.experiments(include_deleted=True):
            if exp.name == name:
                return exp
        raise MlflowError(
            "RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with name '{name}'", 404
        )

    def experiments_create(self, data):
        name = _need(data, "name")
        if name == "Default":
            name = DEFAULT_EXPERIMENT
        if any(e.name == name for e in self.b.experiments(include_deleted=True)):
            raise MlflowError(
                "RESOURCE_ALREADY_EXISTS", f"Experiment(name={name}) already exists.", 400
            )
        exp = self.b.create_experiment(name)
        tags = {t["key"]: t.get("value") for t in data.get("tags") or []}
        if tags:
            self.b.set_tags("experiment", str(exp.id), tags)
        return {"experiment_id": self.exp_id(exp)}

    def experiments_get(self, data):
        name = self.exp_name(_need(data, "experiment_id"))
        return {"experiment": self.exp_json(self._experiment(name))}

    def experiments_get_by_name(self, data):
        return {"experiment": self.exp_json(self._experiment(_need(data, "experiment_name")))}

    def experiments_search(self, data):
        view = str(data.get("view_type") or "ACTIVE_ONLY")
        exps = self.b.experiments(include_deleted=view != "ACTIVE_ONLY")
        if view == "DELETED_ONLY":
            exps = [e for e in exps if e.deleted_at]
        wanted = data.get("filter")
        if wanted:
            rows = self.store.query(_experiment_query(wanted)).rows
            ids = {r["id"] for r in rows}
            exps = [e for e in exps if e.id in ids]
        order = data.get("order_by") or []
        if isinstance(order, str):  # a GET parameter given once
            order = [order]
        if not order:
            exps.sort(key=lambda e: (e.created, e.id), reverse=True)
        for clause in reversed(order):
            field, _, direction = clause.strip().partition(" ")
            field = field.removeprefix("attributes.").removeprefix("attribute.")
            keys = {"name": lambda e: e.name, "experiment_id": lambda e: e.id,
                    "creation_time": lambda e: e.created, "last_update_time": lambda e: e.created}
            if field not in keys:
                raise MlflowError("INVALID_PARAMETER_VALUE", f"cannot order experiments by {field!r}")
            exps.sort(key=keys[field], reverse=direction.strip().lower() == "desc")
        page, token = _page(exps, data)
        out = {"experiments": [self.exp_json(e) for e in page]}
        if token:
            out["next_page_token"] = token
        return out

    def experiments_delete(self, data):
        self.b.delete_experiment(self.exp_name(_need(data, "experiment_id")))
        return {}

    def experiments_set_tag(self, data):
        name = self.exp_name(_need(data, "experiment_id"))
        exp = self._experiment(name)
        self.b.set_tags("experiment", str(exp.id), {_need(data, "key"): data.get("value")})
        return {}

    # -- runs -------------------------------------------------------------------------
    def run_json(self, run_id: str, view=None, page: dict | None = None) -> dict:
        """One run as MLflow's JSON. Within a search, `page` holds what was read for the
        whole page at once ("experiments" by name, "steps": run → metric → last step),
        and each metric is timestamped with the run's end (get_run reads the exact
        timestamps, a few reads per metric)."""
        if view is None:
            views = self.b.read_runs(run_ids=[run_id], include_deleted=True)
            if not views:
                raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found", 404)
            view = views[0]
        exp = (page["experiments"].get(view.experiment) if page else None) \
            or self._experiment(view.experiment)
        eid = self.exp_id(exp)
        metrics = []
        if page is not None:
            steps = page["steps"].get(view.id, {})
            ts = _ms(view.ended or view.started)
            for key, value in view.metrics.items():
                metrics.append({"key": key, "value": value, "timestamp": ts,
                                "step": steps.get(key, 0)})
        else:
            for key, s in self.b.get_metric_summaries(view.id).items():
                history = self.b.get_metric_history(view.id, key)
                last = [m for m in history if m.step == s.last_step][-1:] or history[-1:]
                ts = _ms(last[0].timestamp) if last else _ms(view.started)
                metrics.append({"key": key, "value": s.last, "timestamp": ts, "step": s.last_step})
        tags = {k: v for k, v in view.tags.items() if v is not None}
        name = view.name or f"{view.experiment}#{view.number}"
        tags.setdefault("mlflow.runName", name)
        if view.user:
            tags.setdefault("mlflow.user", view.user)
        if view.parent_id:
            tags.setdefault("mlflow.parentRunId", view.parent_id)
        # a search sees live runs only; one run read by id may be deleted
        deleted = page is None and view.id not in {r.id for r in self.b.read_runs(run_ids=[view.id])}
        info = {
            "run_id": view.id,
            "run_uuid": view.id,
            "run_name": name,
            "experiment_id": eid,
            "user_id": view.user or "",
            "status": STATUS_OUT.get(view.status, "RUNNING"),
            "start_time": _ms(view.started),
            "artifact_uri": f"mlflow-artifacts:/{eid}/{view.id}/artifacts",
            "lifecycle_stage": "deleted" if deleted else "active",
        }
        if view.ended is not None:
            info["end_time"] = _ms(view.ended)
        datasets = []
        for v in view.inputs:
            if v.kind == "dataset" and _meta(v).get("mlflow_dataset"):
                d = dict(_meta(v)["mlflow_dataset"])
                datasets.append({
                    "tags": [{"key": "mlflow.data.context", "value": v.role}] if v.role else [],
                    "dataset": d,
                })
        return {
            "info": info,
            "data": {
                "metrics": metrics,
                "params": [{"key": k, "value": _param_text(v)} for k, v in view.params.items()],
                "tags": [{"key": k, "value": v} for k, v in tags.items()],
            },
            "inputs": {"dataset_inputs": datasets},
        }

    def runs_create(self, data):
        name = self.exp_name(data.get("experiment_id") or "0")
        tags = {t["key"]: t.get("value") for t in data.get("tags") or []}
        parent = tags.get("mlflow.parentRunId")
        run_name = data.get("run_name") or tags.get("mlflow.runName") or None
        user = data.get("user_id") or tags.get("mlflow.user") or None
        record = RunRecord(
            experiment=name,
            name=run_name,
            status="running",
            started=_time(data.get("start_time")) or datetime.now(UTC),
            user=user,
            parent_id=parent or None,
            command=tags.get("mlflow.source.name"),
            git_commit=tags.get("mlflow.source.git.commit"),
            tags={k: v for k, v in tags.items() if k not in ("mlflow.runName",)},
            source="mlflow",
        )
        [run_id] = self.b.create_runs([record])
        return {"run": self.run_json(run_id)}

    def _run_id(self, data) -> str:
        return str(_need(data, "run_id", "run_uuid"))

    def runs_get(self, data):
        return {"run": self.run_json(self._run_id(data))}

    def runs_update(self, data):
        run_id = self._run_id(data)
        self.run_json(run_id)  # exists
        status = data.get("status")
        if status:
            if status not in STATUS_IN:
                raise MlflowError("INVALID_PARAMETER_VALUE", f"unknown run status {status!r}")
            ended = _time(data.get("end_time"))
            self.b.set_run_status(run_id, STATUS_IN[status], ended)
        if data.get("run_name"):
            self.b.set_tags("run", run_id, {"mlflow.runName": data["run_name"]})
        return {"run_info": self.run_json(run_id)["info"]}

    def runs_delete(self, data):
        self.b.delete_run(self._run_id(data))
        return {}

    def runs_restore(self, data):
        self.b.restore_run(self._run_id(data))
        return {}

    def runs_log_parameter(self, data):
        self.b.log_params(self._run_id(data), {_need(data, "key"): infer_value(str(data.get("value", "")))})
        return {}

    def _points(self, metrics) -> list[MetricPoint]:
        points = []
        for m in metrics:
            value = m.get("value")
            if isinstance(value, str):  # MLflow sends NaN and Infinity as strings
                value = float(value)
            points.append(MetricPoint.build(
                key=_need(m, "key"), value=value, step=int(m.get("step") or 0),
                timestamp=_time(m.get("timestamp")),
            ))
        return points

    def runs_log_metric(self, data):
        self.b.log_metrics(self._run_id(data), self._points([data]))
        return {}

    def runs_log_batch(self, data):
        run_id = self._run_id(data)
        if data.get("params"):
            self.b.log_params(
                run_id, {_need(p, "key"): infer_value(str(p.get("value", ""))) for p in data["params"]}
            )
        if data.get("metrics"):
            self.b.log_metrics(run_id, self._points(data["metrics"]))
        if data.get("tags"):
            self.b.set_tags("run", run_id, {_need(t, "key"): t.get("value") for t in data["tags"]})
        return {}

    def runs_set_tag(self, data):
        self.b.set_tags("run", self._run_id(data), {_need(data, "key"): data.get("value")})
        return {}

    def runs_delete_tag(self, data):
        # No tag removal in the store interface: the tag is set to null, which every
        # reader (MLflow's and the query language's `is null`) treats as absent.
        self.b.set_tags("run", self._run_id(data), {_need(data, "key"): None})
        return {}

    def runs_log_inputs(self, data):
        run_id = self._run_id(data)
        for item in data.get("datasets") or []:
            d = item.get("dataset") or {}
            context = next(
                (t.get("value") for t in item.get("tags") or [] if t.get("key") == "mlflow.data.context"),
                None,
            )
            name = _need(d, "name")
            digest = _need(d, "digest")
            self.b.put_asset(
                "dataset", name, uri=d.get("source") or f"mlflow-dataset:{name}",
                digest=digest, meta={"mlflow_dataset": d}, run_id=run_id, relation="used",
                role=context, copy=False,
            )
        for item in data.get("models") or []:
            model = self._model(_need(item, "model_id"))
            version = model.get("version_id")
            if version:
                self.b.link_run_asset(run_id, version, "used")
        return {}

    def runs_outputs(self, data):
        run_id = self._run_id(data)
        for item in data.get("models") or []:
            model = self._model(_need(item, "model_id"))
            if model.get("version_id"):
                self.b.link_run_asset(run_id, model["version_id"], "produced")
        return {}

    def runs_log_model(self, data):
        # MLflow 2's model history tag: kept as the tag MLflow itself keeps.
        run_id = self._run_id(data)
        model = json.loads(_need(data, "model_json"))
        current = self.b.get_tags("run", run_id).get("mlflow.log-model.history")
        history = json.loads(current) if current else []
        history.append(model)
        self.b.set_tags("run", run_id, {"mlflow.log-model.history": json.dumps(history)})
        return {}

    def runs_search(self, data):
        ids = data.get("experiment_ids") or []
        if isinstance(ids, str):
            ids = [ids]
        names = [self.exp_name(i) for i in ids]
        view = str(data.get("run_view_type") or "ACTIVE_ONLY")
        if view == "DELETED_ONLY":
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                "searching deleted runs is not supported by metastore's MLflow API "
                "(queries never see deleted runs)",
            )
        max_results = int(data.get("max_results") or 1000)
        if not 0 < max_results <= MAX_RESULTS:
            raise MlflowError("INVALID_PARAMETER_VALUE", f"max_results must be 1..{MAX_RESULTS}")
        offset = _offset(data.get("page_token"))
        text = self.runs_query(names, data.get("filter"), data.get("order_by"), offset + max_results + 1)
        if text is None:
            return {}
        rows = self.store.query(text).rows
        page = [r["id"] for r in rows[offset:offset + max_results]]
        views = {v.id: v for v in self.b.read_runs(run_ids=page)}  # the page only, in one call
        read = {"experiments": {e.name: e for e in self.b.experiments()},
                "steps": self._last_steps(list(views.values()))}
        out: dict[str, Any] = {"runs": [self.run_json(i, views[i], read) for i in page if i in views]}
        if len(rows) > offset + max_results:
            out["next_page_token"] = _token(offset + max_results)
        return out

    def runs_query(self, experiments, filter_text, order_by, limit) -> str | None:
        """The query-language text of a search_runs call (None: nothing can match)."""
        try:
            conditions = translate_filter(filter_text)
            order = translate_order_by(order_by)
        except MetastoreError as e:
            raise MlflowError("INVALID_PARAMETER_VALUE", f"Invalid filter: {e.message}") from e
        if experiments:
            conditions.insert(0, "experiment in (" + ", ".join(json.dumps(n) for n in experiments) + ")")
        known = self._known_keys()
        for cond in conditions + order:
            for prefix in ("metrics.", "params.", "tags."):
                if cond.startswith(prefix):
                    key = cond[len(prefix):].split("`")[1].replace("``", "`") if "`" in cond else ""
                    if key not in known[prefix]:
                        if cond in order:
                            order = [o for o in order if o != cond]
                        elif " is null" in cond:
                            conditions = [c for c in conditions if c != cond]
                        else:
                            return None  # no run has that key: nothing matches
        order += ["started desc", "id"]
        text = "runs"
        if conditions:
            text += " where " + " and ".join(f"({c})" for c in conditions)
        return text + " order by " + ", ".join(order) + f" limit {limit} show id"

    def _known_keys(self) -> dict[str, set[str]]:
        """The metric, param and run tag keys of the store (the catalog the query
        compiler resolves against: one indexed read, not the runs)."""
        keys = self.b.known_keys()
        return {"metrics.": set(keys.get("metric", ())), "params.": set(keys.get("param", ())),
                "tags.": set(keys.get("run", ()))}

    def _last_steps(self, views) -> dict[str, dict[str, int]]:
        """run id → metric key → the step of its last value, for a page of runs: one
        query per 100 metric keys the page has."""
        keys = sorted({k for v in views for k in v.metrics})
        if not keys:
            return {}
        ids = ", ".join(json.dumps(v.id) for v in views)
        steps: dict[str, dict[str, int]] = {}
        for start in range(0, len(keys), 100):
            chunk = keys[start:start + 100]
            columns = ", ".join(f"metrics.`{k.replace('`', '``')}`.last_step as s{i}"
                                for i, k in enumerate(chunk))
            for row in self.store.query(f"runs where id in ({ids}) show id, {columns}").rows:
                for i, k in enumerate(chunk):
                    if row.get(f"s{i}") is not None:
                        steps.setdefault(row["id"], {})[k] = int(row[f"s{i}"])
        return steps

    def metrics_get_history(self, data):
        run_id = self._run_id(data)
        key = _need(data, "metric_key")
        self.run_json(run_id)
        points = self.b.get_metric_history(run_id, key)
        max_results = int(data.get("max_results") or 25_000)
        offset = _offset(data.get("page_token"))
        page = points[offset:offset + max_results]
        out: dict[str, Any] = {"metrics": [
            {"key": key, "value": m.value, "timestamp": _ms(m.timestamp), "step": m.step}
            for m in page
        ]}
        if len(points) > offset + max_results:
            out["next_page_token"] = _token(offset + max_results)
        return out

    # -- logged models (MLflow 3) -----------------------------------------------------
    def _models(self, run_id: str) -> dict[str, dict]:
        """The logged models of a run: each state is a note (kind "mlflow_model") holding
        its JSON, the newest note of a model id being its current state."""
        models: dict[str, dict] = {}
        for note in self.b.get_notes(run_id):
            if note.kind == MODEL_NOTE:
                model = json.loads(note.text)
                models[model["model_id"]] = model
        return models

    def _model(self, model_id: str) -> dict:
        model = self._models(_model_run(model_id)).get(model_id)
        if model is None:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Logged model {model_id} not found", 404)
        return model

    def _save_model(self, model: dict) -> None:
        self.b.add_note(model["source_run_id"], json.dumps(model), kind=MODEL_NOTE, author="mlflow")

    def _model_json(self, model: dict) -> dict:
        info = {k: v for k, v in model.items() if k not in ("params", "version_id")}
        return {
            "info": info,
            "data": {"params": [{"key": k, "value": v} for k, v in (model.get("params") or {}).items()],
                     "metrics": model.get("metrics") or []},
        }

    def logged_models_create(self, data):
        run_id = data.get("source_run_id")
        if not run_id:
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                "metastore keeps a logged model with its run: log models inside a run "
                "(a logged model without source_run_id is not supported)",
            )
        view = self.run_json(run_id)
        eid = view["info"]["experiment_id"]
        model_id = f"m-{run_id}-{secrets.token_hex(4)}"
        now = int(time.time() * 1000)
        model = {
            "model_id": model_id,
            "experiment_id": eid,
            "name": data.get("name") or "model",
            "artifact_uri": f"mlflow-artifacts:/{eid}/models/{model_id}/artifacts",
            "creation_timestamp_ms": now,
            "last_updated_timestamp_ms": now,
            "model_type": data.get("model_type") or "",
            "source_run_id": run_id,
            "status": "LOGGED_MODEL_PENDING",
            "tags": data.get("tags") or [],
            "params": {p["key"]: p.get("value") for p in data.get("params") or []},
            "lifecycle_stage": "active",
        }
        self._save_model(model)
        return {"model": self._model_json(model)}

    def logged_models_search(self, data):
        """Logged models of the given experiments, filtered by equality on `name`,
        `source_run_id`, `model_type` or `status` (joined by AND)."""
        wanted: dict[str, str] = {}
        for cond in filter(None, re.split(r"\s+AND\s+", data.get("filter") or "", flags=re.I)):
            m = re.fullmatch(r"\s*(?:attributes\.)?(\w+)\s*=\s*'((?:[^']|'')*)'\s*", cond)
            if not m or m.group(1) not in ("name", "source_run_id", "model_type", "status"):
                raise MlflowError(
                    "INVALID_PARAMETER_VALUE",
                    f"metastore's MLflow API filters logged models by equality on name, "
                    f"source_run_id, model_type or status only, not {cond.strip()!r}",
                )
            wanted[m.group(1)] = m.group(2).replace("''", "'")
        if data.get("datasets"):
            raise MlflowError("INVALID_PARAMETER_VALUE", "searching logged models by dataset is not supported")
        ids = data.get("experiment_ids") or []
        models = []
        for name in [self.exp_name(i) for i in ids]:
            for view in self.b.read_runs(experiment=name):
                for model in self._models(view.id).values():
                    if all(str(model.get(k)) == v for k, v in wanted.items()):
                        models.append(model)
        models.sort(key=lambda m: m["creation_timestamp_ms"], reverse=True)
        page, token = _page(models, data)
        out: dict[str, Any] = {"models": [self._model_json(m) for m in page]}
        if token:
            out["next_page_token"] = token
        return out

    def logged_models_get(self, data, model_id: str):
        return {"model": self._model_json(self._model(model_id))}

    def logged_models_finalize(self, data, model_id: str):
        model = self._model(model_id)
        model["status"] = data.get("status") or "LOGGED_MODEL_READY"
        model["last_updated_timestamp_ms"] = int(time.time() * 1000)
        if model["status"] == "LOGGED_MODEL_READY":
            model["version_id"] = self._store_model_directory(model)
        self._save_model(model)
        return {"model": self._model_json(model)}

    def logged_models_set_tags(self, data, model_id: str):
        model = self._model(model_id)
        tags = {t["key"]: t.get("value") for t in model.get("tags") or []}
        tags.update({t["key"]: t.get("value") for t in data.get("tags") or []})
        model["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        self._save_model(model)
        return {}

    def logged_models_log_params(self, data, model_id: str):
        model = self._model(model_id)
        model.setdefault("params", {}).update({p["key"]: p.get("value") for p in data.get("params") or []})
        self._save_model(model)
        return {}

    def _store_model_directory(self, model: dict) -> str | None:
        """The model's files, gathered into one directory version of `model:<name>`."""
        prefix = f"models/{model['model_id']}/"
        files = [(a, v) for a, v, _ in self.b.run_assets(model["source_run_id"], "outputs")
                 if _meta(v).get(ARTIFACT_META, "").startswith(prefix)]
        if not files:
            return None
        with tempfile.TemporaryDirectory(prefix="metastore-mlflow-") as tmp:
            for _, v in files:
                rel = _meta(v)[ARTIFACT_META][len(prefix):]
                target = Path(tmp, *PurePosixPath(rel).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with self.b.open_blob(v.digest) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
            _, version = self.b.put_asset(
                "model", model["name"], tmp, run_id=model["source_run_id"], relation="produced",
                meta={"mlflow_model_id": model["model_id"], "flavor": model.get("model_type")},
            )
        return version.id

    # -- artifacts --------------------------------------------------------------------
    def _artifact_target(self, path: str) -> tuple[str, str]:
        """(run id, artifact path kept in the version's meta) of a proxy path."""
        parts = PurePosixPath(path).parts
        if any(p in ("..", ".") for p in parts):
            raise MlflowError("INVALID_PARAMETER_VALUE", f"invalid artifact path {path!r}")
        if len(parts) >= 3 and parts[2] == "artifacts":
            return parts[1], "/".join(parts[3:])
        if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
            return _model_run(parts[2]), f"models/{parts[2]}/" + "/".join(parts[4:])
        raise MlflowError(
            "INVALID_PARAMETER_VALUE",
            f"artifact path {path!r} is not under a run's or a logged model's artifacts",
        )

    def _artifacts(self, run_id: str) -> dict[str, Any]:
        found = {}
        for _, v, _ in self.b.run_assets(run_id, "outputs"):
            path = _meta(v).get(ARTIFACT_META)
            if path is not None:
                found[path] = v
        return found

    def artifact_put(self, path: str, body_file: str) -> dict:
        run_id, rel = self._artifact_target(path)
        if not rel:
            raise MlflowError("INVALID_PARAMETER_VALUE", "an artifact needs a file name")
        self.run_json(run_id)
        if rel.startswith("models/"):  # a logged model's file; finalize stores the model
            kind, name = "other", "mlflow-models/" + rel.split("/", 2)[2]
        else:
            kind, name = _artifact_kind(rel), rel
        self.b.put_asset(
            kind, name[:250], body_file, run_id=run_id, relation="produced", role=rel[:250],
            media_type=mimetypes.guess_type(rel)[0], meta={ARTIFACT_META: rel},
        )
        return {}

    def _artifact_files(self, path: str) -> tuple[dict[str, tuple], str]:
        """(artifact path → (digest, size, media type), the path within them) of a proxy
        path: a run's artifacts, a logged model's, or a registered version's files."""
        parts = PurePosixPath(path).parts
        if len(parts) >= 2 and parts[0] == VERSIONS_ROOT:
            if any(p in ("..", ".") for p in parts):
                raise MlflowError("INVALID_PARAMETER_VALUE", f"invalid artifact path {path!r}")
            files = {rel: (digest, size, mimetypes.guess_type(rel)[0])
                     for rel, (digest, size) in self.version_files(parts[1]).items()}
            return files, "/".join(parts[2:])
        if len(parts) < 3 and "models" not in parts:
            path += "/artifacts"
        run_id, rel = self._artifact_target(path)
        files = {key: (v.digest, v.size, v.media_type) for key, v in self._artifacts(run_id).items()}
        return files, rel

    def artifact_open(self, path: str) -> tuple[str, str | None]:
        """(digest, media type) of one artifact file."""
        files, rel = self._artifact_files(path)
        if rel not in files:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"artifact {path!r} not found", 404)
        digest, _, media_type = files[rel]
        return digest, media_type

    def artifact_list(self, path: str | None) -> dict:
        if not path:
            return {"files": []}
        files, rel = self._artifact_files(path.strip("/"))
        prefix = rel.rstrip("/") + "/" if rel else ""
        seen: dict[str, dict] = {}
        for key, (_, size, _) in files.items():
            if not key.startswith(prefix) or key == rel:
                continue
            rest = key[len(prefix):]
            head, sep, _ = rest.partition("/")
            if sep:
                seen.setdefault(head, {"path": head, "is_dir": True})
            else:
                seen[head] = {"path": head, "is_dir": False, "file_size": size}
        return {"files": sorted(seen.values(), key=lambda f: f["path"])}


def _artifact_kind(rel: str) -> str:
    ext = os.path.splitext(rel)[1].lower()
    if ext in (".pkl", ".pt", ".pth", ".onnx", ".joblib", ".h5"):
        return "model"
    if ext in (".png", ".jpg", ".jpeg", ".svg", ".html"):
        return "plot"
    if ext in (".csv", ".parquet"):
        return "dataset"
    if ext in (".log",):
        return "log"
    return "other"


def _model_run(model_id: str) -> str:
    parts = model_id.split("-")
    if len(parts) != 3 or parts[0] != "m" or len(parts[1]) != 26:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Logged model {model_id} not found", 404)
    return parts[1]


def _experiment_query(filter_text: str) -> str:
    conditions = []
    for cond in translate_filter(filter_text, EXPERIMENT_ATTRIBUTES):
        if cond.startswith(("metrics.", "params.")):
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                "experiments are filtered by attributes and tags, not metrics or params",
            )
        conditions.append(cond)
    return "experiments where " + " and ".join(f"({c})" for c in conditions) + " show id"


#: endpoint (after /2.0/mlflow/) and method → Translator method name.
ENDPOINTS: dict[tuple[str, str], str] = {
    ("experiments/create", "POST"): "experiments_create",
    ("experiments/get", "GET"): "experiments_get",
    ("experiments/get-by-name", "GET"): "experiments_get_by_name",
    ("experiments/search", "POST"): "experiments_search",
    ("experiments/search", "GET"): "experiments_search",
    ("experiments/list", "GET"): "experiments_search",
    ("experiments/delete", "POST"): "experiments_delete",
    ("experiments/set-experiment-tag", "POST"): "experiments_set_tag",
    ("runs/create", "POST"): "runs_create",
    ("runs/get", "GET"): "runs_get",
    ("runs/update", "POST"): "runs_update",
    ("runs/delete", "POST"): "runs_delete",
    ("runs/restore", "POST"): "runs_restore",
    ("runs/search", "POST"): "runs_search",
    ("runs/log-parameter", "POST"): "runs_log_parameter",
    ("runs/log-metric", "POST"): "runs_log_metric",
    ("runs/log-batch", "POST"): "runs_log_batch",
    ("runs/set-tag", "POST"): "runs_set_tag",
    ("runs/delete-tag", "POST"): "runs_delete_tag",
    ("runs/log-inputs", "POST"): "runs_log_inputs",
    ("runs/outputs", "POST"): "runs_outputs",
    ("runs/log-model", "POST"): "runs_log_model",
    ("metrics/get-history", "GET"): "metrics_get_history",
    ("logged-models", "POST"): "logged_models_create",
    ("logged-models/search", "POST"): "logged_models_search",
    **REGISTRY_ENDPOINTS,
}
#: MLflow's POST calls that only read: a read-only token may make them.
READING_POSTS = frozenset(
    prefix + endpoint
    for prefix in ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/")
    for endpoint in ("runs/search", "experiments/search", "logged-models/search",
                     *REGISTRY_READING_POSTS)
)
#: logged-models/{id}[/suffix] and method → Translator method name.
MODEL_ENDPOINTS: dict[tuple[str, str], str] = {
    ("", "GET"): "logged_models_get",
    ("", "PATCH"): "logged_models_finalize",
    ("tags", "PATCH"): "logged_models_set_tags",
    ("params", "POST"): "logged_models_log_params",
}


#: MLflow's GenAI calls (traces and what hangs on them): metastore keeps runs, not traces.
TRACING = frozenset({"traces", "assessments", "issues", "label-schemas", "review-queues",
                     "scorers", "prompts", "prompt-optimization", "gateway", "webhooks"})
TRACING_HINT = "metastore keeps runs, not traces; keep tracing on an MLflow server"


def _handler(translator: Translator, endpoint: str, method: str) -> Callable[[dict], dict]:
    name = ENDPOINTS.get((endpoint, method))
    if name is not None:
        return getattr(translator, name)
    if endpoint.startswith("logged-models/"):
        model_id, _, suffix = endpoint[len("logged-models/"):].partition("/")
        name = MODEL_ENDPOINTS.get((suffix, method))
        if name is not None and model_id not in ("search", "batch-get"):
            method_ = getattr(translator, name)
            return lambda data: method_(data, model_id)
    if endpoint.split("/")[0] in TRACING:
        raise not_supported(f"MLflow tracing ({method} {endpoint})", TRACING_HINT)
    raise not_supported(f"{method} {endpoint}")


def _call(fn, *args):
    try:
        return fn(*args)
    except MetastoreError as e:
        raise _from_metastore(e) from e
    except (ValueError, TypeError, KeyError) as e:
        raise MlflowError("INVALID_PARAMETER_VALUE", f"invalid request: {e}") from e


def mlflow_router(store) -> APIRouter:
    """The MLflow tracking and artifact-proxy routes over `store`."""
    router = APIRouter(include_in_schema=False)
    translator = Translator(store)

    async def tracking(request: Request, endpoint: str):
        method = request.method
        data: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            if key in data:
                data[key] = data[key] if isinstance(data[key], list) else [data[key]]
                data[key].append(value)
            else:
                data[key] = value
        body = await request.body()
        if body:
            try:
                payload = json.loads(body)
            except ValueError:
                return _error_response(MlflowError("MALFORMED_REQUEST", "the body is not JSON"))
            if not isinstance(payload, dict):
                return _error_response(MlflowError("MALFORMED_REQUEST", "the body is not an object"))
            data.update(payload)
        try:
            handler = _handler(translator, endpoint.strip("/"), method)
            return JSONResponse(await run_in_threadpool(_call, handler, data))
        except MlflowError as e:
            return _error_response(e)

    for prefix in ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/"):
        router.add_api_route(
            prefix + "{endpoint:path}", tracking,
            methods=["GET", "POST", "PATCH", "DELETE", "PUT"],
        )

    async def version3(request: Request, endpoint: str):
        # MLflow's /api/3.0 calls are its tracing and GenAI evaluation calls
        return _error_response(not_supported(
            f"MLflow tracing ({request.method} 3.0/mlflow/{endpoint})", TRACING_HINT))

    async def otlp(request: Request):  # spans exported over OpenTelemetry to /v1/traces
        return _error_response(not_supported("MLflow tracing (POST /v1/traces)", TRACING_HINT))

    for prefix in ("/api/3.0/mlflow/", "/ajax-api/3.0/mlflow/"):
        router.add_api_route(prefix + "{endpoint:path}", version3,
                             methods=["GET", "POST", "PATCH", "DELETE", "PUT"])
    router.add_api_route("/v1/traces", otlp, methods=["POST"])

    async def artifact(request: Request, path: str):
        try:
            if request.method == "PUT":
                with tempfile.NamedTemporaryFile(prefix="metastore-mlflow-", delete=False) as tmp:
                    async for chunk in request.stream():
                        tmp.write(chunk)
                try:
                    await run_in_threadpool(_call, translator.artifact_put, path, tmp.name)
                finally:
                    os.unlink(tmp.name)
                return JSONResponse({})
            if request.method == "GET":
                digest, media_type = await run_in_threadpool(_call, translator.artifact_open, path)

                def read():
                    with store.backend.open_blob(digest) as f:
                        return f.read()

                return Response(await run_in_threadpool(read),
                                media_type=media_type or "application/octet-stream")
            raise not_supported(f"{request.method} mlflow-artifacts/artifacts")
        except MlflowError as e:
            return _error_response(e)

    async def listing(request: Request):
        try:
            return JSONResponse(await run_in_threadpool(
                _call, translator.artifact_list, request.query_params.get("path")))
        except MlflowError as e:
            return _error_response(e)

    for prefix in ("/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts"):
        router.add_api_route(prefix, listing, methods=["GET"])
        router.add_api_route(prefix + "/{path:path}", artifact, methods=["GET", "PUT", "DELETE"])
    return router
