"""MLflow's model registry over metastore's meta-model (part of the MLflow protocol the
server speaks, beside `mlflow_api`).

    mlflow.register_model(f"models:/{model_id}", "regressor")    # or runs:/<run>/model
    client.set_registered_model_alias("regressor", "production", "1")
    mlflow.sklearn.load_model("models:/regressor@production")

Nothing here is a registry of its own:

- a registered model is the asset `model:<name>` (created without versions by
  `create_registered_model`); its description and tags are the asset's tags;
- a model version is a content-addressed version of that asset: the logged model's
  files (or a run's artifact folder) as one directory version, produced by the source
  run and derived from the logged model's own version. The same content is the same
  version, so registering it twice answers the version it already is;
- a registry alias is a metastore alias (`model:regressor@production`), with its history,
  so `metastore lineage model:regressor@production --up` walks to the run and its data;
- the version's files are served under `mlflow-artifacts:/versions/<version id>`.

Stages (`transition_model_version_stage`) are not kept: aliases replace them (as in
MLflow itself since 2.9). Deleting registered models or versions is not supported:
metastore keeps versions (lineage points at them); move or remove aliases instead.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from metastore.blobs import DIR_MEDIA_TYPE
from metastore.errors import MetastoreError, NotFound
from metastore.server.mlflow_common import (
    MlflowError,
    meta,
    ms,
    need,
    not_supported,
    offset,
    token,
)
from metastore.server.mlflow_filter import translate_filter

#: The asset tag holding a registered model's (or version's) MLflow description.
DESCRIPTION = "mlflow.description"
#: Where a version's files are served through the artifact proxy.
VERSIONS_ROOT = "versions"
#: MLflow model version attributes → attributes of the `models` query.
VERSION_ATTRIBUTES = {
    "name": "name",
    "run_id": "run_id",  # becomes `produced by run "<id>"`
    "version_number": "version",
    "source_path": None,
    "model_id": None,
}
_NOT_KEPT = (
    "metastore keeps versions (lineage points at them): move or remove aliases instead"
)


def _listed(value) -> list:
    """A GET parameter given once arrives as text, given twice as a list."""
    if value in (None, ""):
        return []
    return value if isinstance(value, list) else [value]


def download_uri(version_id: str) -> str:
    return f"mlflow-artifacts:/{VERSIONS_ROOT}/{version_id}"


class RegistryCalls:
    """The registry's calls; mixed into `mlflow_api.Translator` (which gives `self.b`,
    `self._model` and `self._artifacts`)."""

    b: Any

    # -- reading ----------------------------------------------------------------------
    def _registered(self, name: str):
        for asset in self.b.list_assets("model"):
            if asset.name == name:
                return asset
        raise MlflowError(
            "RESOURCE_DOES_NOT_EXIST", f"Registered Model with name={name} not found", 404
        )

    def _versions(self, name: str) -> list:
        try:
            return [v for _, v in self.b.list_versions("model", name)]
        except NotFound:
            return []

    def _version(self, name: str, version) -> Any:
        self._registered(name)
        try:
            number = int(str(version))
        except ValueError as e:
            raise MlflowError("INVALID_PARAMETER_VALUE", f"a model version is a number, got {version!r}") from e
        try:
            return self.b.get_asset_version("model", name, number)[1]
        except NotFound as e:
            raise MlflowError(
                "RESOURCE_DOES_NOT_EXIST",
                f"Model Version (name={name}, version={number}) not found", 404,
            ) from e

    def _tags(self, entity_type: str, entity_id) -> tuple[list[dict], str]:
        tags = self.b.get_tags(entity_type, str(entity_id))
        listed = [{"key": k, "value": v} for k, v in tags.items() if v is not None and k != DESCRIPTION]
        return listed, tags.get(DESCRIPTION) or ""

    def version_json(self, name: str, v, aliases: list[str] | None = None) -> dict:
        tags, description = self._tags("asset_version", v.id)
        info = meta(v)
        if aliases is None:
            aliases = [a.alias for a in self.b.list_aliases(version_id=v.id)]
        out = {
            "name": name,
            "version": str(v.version),
            "creation_timestamp": ms(v.created),
            "last_updated_timestamp": ms(v.created),
            "current_stage": "None",
            "description": description,
            "source": info.get("mlflow_source") or download_uri(v.id),
            "run_id": v.created_by or "",
            "status": "READY",
            "tags": tags,
            "aliases": sorted(aliases),
        }
        if info.get("mlflow_model_id"):
            out["model_id"] = info["mlflow_model_id"]
        return out

    def registered_json(self, asset) -> dict:
        tags, description = self._tags("asset", asset.id)
        versions = self._versions(asset.name)
        aliases = self.b.list_aliases("model", asset.name)
        by_version: dict[str, list[str]] = {}
        for a in aliases:
            by_version.setdefault(a.version_id, []).append(a.alias)
        out = {
            "name": asset.name,
            "creation_timestamp": ms(asset.created),
            "last_updated_timestamp": ms(max([asset.created] + [v.created for v in versions])),
            "description": description,
            "tags": tags,
            "aliases": [{"alias": a.alias, "version": str(a.version)} for a in aliases],
        }
        if versions:
            latest = versions[-1]
            out["latest_versions"] = [self.version_json(asset.name, latest, by_version.get(latest.id, []))]
        return out

    # -- registered models ------------------------------------------------------------
    def registered_models_create(self, data):
        name = need(data, "name")
        if any(a.name == name for a in self.b.list_assets("model")):
            raise MlflowError(
                "RESOURCE_ALREADY_EXISTS", f"Registered Model (name={name}) already exists.", 400
            )
        asset = self.b.create_asset("model", name)
        tags = {t["key"]: t.get("value") for t in data.get("tags") or []}
        if data.get("description"):
            tags[DESCRIPTION] = data["description"]
        if tags:
            self.b.set_tags("asset", str(asset.id), tags)
        return {"registered_model": self.registered_json(asset)}

    def registered_models_get(self, data):
        return {"registered_model": self.registered_json(self._registered(need(data, "name")))}

    def registered_models_update(self, data):
        asset = self._registered(need(data, "name"))
        if "description" in data:
            self.b.set_tags("asset", str(asset.id), {DESCRIPTION: data.get("description") or None})
        return {"registered_model": self.registered_json(asset)}

    def registered_models_search(self, data):
        # MLflow's client adds "tag.`mlflow.prompt.is_prompt` != 'true'" (no model asset
        # is a prompt: always true here)
        wanted = " AND ".join(
            c for c in re.split(r"\s+AND\s+", data.get("filter") or "", flags=re.I)
            if not re.fullmatch(r"\s*tags?\.`?mlflow\.prompt\.is_prompt`?\s*!=\s*'true'\s*", c, re.I)
        )
        assets = self.b.list_assets("model")
        if wanted.strip():
            m = re.fullmatch(r"\s*name\s*(=|LIKE|ILIKE)\s*'((?:[^']|'')*)'\s*", wanted, re.I)
            if not m:
                raise MlflowError(
                    "INVALID_PARAMETER_VALUE",
                    "metastore's MLflow API filters registered models by name only "
                    f"(name = / LIKE / ILIKE 'text'), not {wanted!r}",
                )
            op, text = m.group(1).upper(), m.group(2).replace("''", "'")
            if op == "=":
                assets = [a for a in assets if a.name == text]
            else:
                pattern = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in text)
                flags = re.I if op == "ILIKE" else 0
                assets = [a for a in assets if re.fullmatch(pattern, a.name, flags)]
        for clause in _listed(data.get("order_by")):
            field, _, direction = str(clause).strip().partition(" ")
            if field.removeprefix("attributes.") not in ("name", "timestamp", "last_updated_timestamp"):
                raise MlflowError("INVALID_PARAMETER_VALUE", f"cannot order registered models by {field!r}")
            key = (lambda a: a.name) if field.endswith("name") else (lambda a: a.created)
            assets.sort(key=key, reverse=direction.strip().lower() == "desc")
        start, size = offset(data.get("page_token")), int(data.get("max_results") or 100)
        out: dict[str, Any] = {
            "registered_models": [self.registered_json(a) for a in assets[start:start + size]]
        }
        if len(assets) > start + size:
            out["next_page_token"] = token(start + size)
        return out

    def registered_models_set_tag(self, data):
        asset = self._registered(need(data, "name"))
        self.b.set_tags("asset", str(asset.id), {need(data, "key"): data.get("value")})
        return {}

    def registered_models_delete_tag(self, data):
        asset = self._registered(need(data, "name"))
        self.b.set_tags("asset", str(asset.id), {need(data, "key"): None})
        return {}

    def registered_models_latest(self, data):
        name = need(data, "name")
        self._registered(name)
        stages = _listed(data.get("stages"))
        versions = self._versions(name)
        if not versions or (stages and "None" not in stages):
            return {"model_versions": []}  # every version's stage is "None"
        return {"model_versions": [self.version_json(name, versions[-1])]}

    # -- aliases ----------------------------------------------------------------------
    def registered_models_set_alias(self, data):
        name = need(data, "name")
        version = self._version(name, need(data, "version"))
        self.b.set_alias(version.id, need(data, "alias"), author="mlflow")
        return {}

    def registered_models_delete_alias(self, data):
        name = need(data, "name")
        self._registered(name)
        self.b.unset_alias("model", name, need(data, "alias"), author="mlflow")
        return {}

    def registered_models_get_alias(self, data):
        name = need(data, "name")
        alias = need(data, "alias")
        self._registered(name)
        for a in self.b.list_aliases("model", name):
            if a.alias == alias:
                v = self.b.get_version_by_id(a.version_id)[1]
                return {"model_version": self.version_json(name, v)}
        raise MlflowError(
            "RESOURCE_DOES_NOT_EXIST", f"Registered model alias {alias} not found.", 404
        )

    # -- model versions ---------------------------------------------------------------
    def model_versions_create(self, data):
        name = need(data, "name")
        source = need(data, "source")
        self._registered(name)
        version = self._register(name, source, data.get("model_id"), data.get("run_id"))
        tags = {t["key"]: t.get("value") for t in data.get("tags") or []}
        if data.get("description"):
            tags[DESCRIPTION] = data["description"]
        if tags:
            self.b.set_tags("asset_version", version.id, tags)
        return {"model_version": self.version_json(name, version)}

    def _register(self, name: str, source: str, model_id: str | None, run_id: str | None):
        """The version of model:<name> holding what `source` names."""
        source = str(source)
        logged = re.fullmatch(r"models:/(m-[0-9A-Za-z]+-[0-9a-f]+)/?", source)
        in_proxy = re.fullmatch(r"mlflow-artifacts:/+[^/]+/models/(m-[^/]+)/artifacts/?", source)
        model_id = model_id or (logged and logged.group(1)) or (in_proxy and in_proxy.group(1))
        if model_id:
            model = self._model(model_id)
            if not model.get("version_id"):
                raise MlflowError(
                    "INVALID_PARAMETER_VALUE",
                    f"logged model {model_id} has no files yet (it is not finalized)",
                )
            _, up = self.b.get_version_by_id(model["version_id"])
            return self._same_content(name, up, source, model["source_run_id"], model_id)
        registered = re.fullmatch(r"models:/([^/@]+)(?:/(\d+)|@([\w-]+))/?", source)
        if registered:
            other, number, alias = registered.groups()
            if alias:
                found = [a for a in self.b.list_aliases("model", other) if a.alias == alias]
                if not found:
                    raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"no alias {alias} of {other}", 404)
                up = self.b.get_version_by_id(found[0].version_id)[1]
            else:
                up = self._version(other, number)
            return self._same_content(name, up, source, up.created_by, meta(up).get("mlflow_model_id"))
        runs = re.fullmatch(r"runs:/([0-9A-Z]{26})/?(.*)", source)
        proxy = re.fullmatch(r"mlflow-artifacts:/+[^/]+/([0-9A-Z]{26})/artifacts/?(.*)", source)
        found = runs or proxy
        if found:
            return self._from_run(name, source, found.group(1), found.group(2).strip("/"))
        raise MlflowError(
            "INVALID_PARAMETER_VALUE",
            f"metastore registers models it holds: log the model to this server first "
            f"(a source of models:/<model_id>, runs:/<run_id>/<path> or this server's "
            f"mlflow-artifacts:/ URI), not {source!r}",
        )

    def _same_content(self, name, up, source, run_id, model_id):
        _, version = self.b.put_asset(
            "model", name, uri="blob:", digest=up.digest, size=up.size,
            media_type=up.media_type, copy=False,
            meta={k: v for k, v in {
                **meta(up), "mlflow_source": source, "mlflow_model_id": model_id,
            }.items() if v is not None},
            run_id=run_id, relation="produced" if run_id else None, derived_from=[up.id],
        )
        return version

    def _from_run(self, name: str, source: str, run_id: str, path: str):
        """A run's artifact folder (`path`) gathered into one directory version."""
        prefix = path + "/" if path else ""
        files = [(rel, v) for rel, v in self._artifacts(run_id).items() if rel.startswith(prefix)]
        if not files:
            raise MlflowError(
                "RESOURCE_DOES_NOT_EXIST", f"run {run_id} has no artifacts under {path!r}", 404
            )
        with tempfile.TemporaryDirectory(prefix="metastore-mlflow-") as tmp:
            for rel, v in files:
                target = Path(tmp, *PurePosixPath(rel[len(prefix):]).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with self.b.open_blob(v.digest) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
            _, version = self.b.put_asset(
                "model", name, tmp, run_id=run_id, relation="produced",
                meta={"mlflow_source": source, "filename": PurePosixPath(path).name or name},
            )
        return version

    def model_versions_get(self, data):
        name = need(data, "name")
        return {"model_version": self.version_json(name, self._version(name, need(data, "version")))}

    def model_versions_download_uri(self, data):
        v = self._version(need(data, "name"), need(data, "version"))
        return {"artifact_uri": download_uri(v.id)}

    def model_versions_update(self, data):
        name = need(data, "name")
        v = self._version(name, need(data, "version"))
        if "description" in data:
            self.b.set_tags("asset_version", v.id, {DESCRIPTION: data.get("description") or None})
        return {"model_version": self.version_json(name, v)}

    def model_versions_set_tag(self, data):
        v = self._version(need(data, "name"), need(data, "version"))
        self.b.set_tags("asset_version", v.id, {need(data, "key"): data.get("value")})
        return {}

    def model_versions_delete_tag(self, data):
        v = self._version(need(data, "name"), need(data, "version"))
        self.b.set_tags("asset_version", v.id, {need(data, "key"): None})
        return {}

    def model_versions_search(self, data):
        """Versions of kind model, filtered by MLflow's filter translated to a `models`
        query (name, run_id, version_number)."""
        try:
            conditions = translate_filter(data.get("filter"), VERSION_ATTRIBUTES)
        except MetastoreError as e:
            raise MlflowError("INVALID_PARAMETER_VALUE", f"Invalid filter: {e.message}") from e
        for i, cond in enumerate(conditions):
            if cond.startswith("run_id"):
                m = re.fullmatch(r'run_id = ("(?:[^"\\]|\\.)*")', cond)
                if not m:
                    raise MlflowError("INVALID_PARAMETER_VALUE", "run_id is compared with = only")
                conditions[i] = f"produced by run {m.group(1)}"
            elif cond.startswith(("metrics.", "params.", "tags.")):
                raise MlflowError(
                    "INVALID_PARAMETER_VALUE",
                    "metastore's MLflow API filters model versions by name, run_id and "
                    "version_number only",
                )
        order = []
        for clause in _listed(data.get("order_by")):
            field, _, direction = str(clause).strip().partition(" ")
            target = {"name": "name", "version_number": "version", "creation_timestamp": "created",
                      "last_updated_timestamp": "created"}.get(field.removeprefix("attributes."))
            if target is None:
                raise MlflowError("INVALID_PARAMETER_VALUE", f"cannot order model versions by {field!r}")
            order.append(f"{target} {'desc' if direction.strip().lower() == 'desc' else 'asc'}")
        order += ["name", "version desc"]
        size = int(data.get("max_results") or 10_000)
        start = offset(data.get("page_token"))
        text = "models"
        if conditions:
            text += " where " + " and ".join(f"({c})" for c in conditions)
        text += f" order by {', '.join(order)} limit {start + size + 1} show id, name"
        rows = self.store.query(text).rows
        chunk = rows[start:start + size]
        out: dict[str, Any] = {"model_versions": [
            self.version_json(r["name"], self.b.get_version_by_id(r["id"])[1]) for r in chunk
        ]}
        if len(rows) > start + size:
            out["next_page_token"] = token(start + size)
        return out

    # -- what is not kept -------------------------------------------------------------
    def model_versions_transition_stage(self, data):
        raise not_supported(
            "model version stages (transition_model_version_stage)",
            "use aliases: client.set_registered_model_alias(name, 'production', version)",
        )

    def registered_models_delete(self, data):
        raise not_supported("deleting a registered model", _NOT_KEPT)

    def model_versions_delete(self, data):
        raise not_supported("deleting a model version", _NOT_KEPT)

    def registered_models_rename(self, data):
        raise not_supported("renaming a registered model", "register the versions under the new name")

    # -- serving a version's files through the artifact proxy -------------------------
    def version_files(self, version_id: str) -> dict[str, tuple[str, int | None]]:
        """path → (digest, size) of a version's files (a file version is one file)."""
        try:
            _, v = self.b.get_version_by_id(version_id)
        except NotFound as e:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"no model version {version_id}", 404) from e
        if v.media_type == DIR_MEDIA_TYPE:
            with self.b.open_blob(v.digest) as f:
                manifest = json.loads(f.read())
            return {rel: (e["digest"], e.get("size")) for rel, e in manifest["files"].items()}
        return {meta(v).get("filename") or "content": (v.digest, v.size)}


#: registry endpoint (after /2.0/mlflow/) and method → Translator method name.
REGISTRY_ENDPOINTS: dict[tuple[str, str], str] = {
    ("registered-models/create", "POST"): "registered_models_create",
    ("registered-models/get", "GET"): "registered_models_get",
    ("registered-models/update", "PATCH"): "registered_models_update",
    ("registered-models/search", "GET"): "registered_models_search",
    ("registered-models/set-tag", "POST"): "registered_models_set_tag",
    ("registered-models/delete-tag", "DELETE"): "registered_models_delete_tag",
    ("registered-models/get-latest-versions", "GET"): "registered_models_latest",
    ("registered-models/get-latest-versions", "POST"): "registered_models_latest",
    ("registered-models/alias", "POST"): "registered_models_set_alias",
    ("registered-models/alias", "DELETE"): "registered_models_delete_alias",
    ("registered-models/alias", "GET"): "registered_models_get_alias",
    ("registered-models/delete", "DELETE"): "registered_models_delete",
    ("registered-models/rename", "POST"): "registered_models_rename",
    ("model-versions/create", "POST"): "model_versions_create",
    ("model-versions/get", "GET"): "model_versions_get",
    ("model-versions/get-download-uri", "GET"): "model_versions_download_uri",
    ("model-versions/update", "PATCH"): "model_versions_update",
    ("model-versions/set-tag", "POST"): "model_versions_set_tag",
    ("model-versions/delete-tag", "DELETE"): "model_versions_delete_tag",
    ("model-versions/search", "GET"): "model_versions_search",
    ("model-versions/transition-stage", "POST"): "model_versions_transition_stage",
    ("model-versions/delete", "DELETE"): "model_versions_delete",
}
#: Registry POSTs that only read: a read-only token may send them.
REGISTRY_READING_POSTS = ("registered-models/get-latest-versions",)
