"""The web UI: HTML pages over a Store, rendered on the server.

`mount_ui(app, store)` adds the pages and their static files to a FastAPI app (the
metastore server calls it; `metastore ui` serves the result on 127.0.0.1). Everything a
page needs ships inside this package: Jinja2 templates, one stylesheet, one small
vanilla script, and charts and lineage graphs drawn as SVG on the server, so the UI
works with no network access.

Pages: `/` experiments, `/experiments/{name}` runs table with the query box,
`/runs/{ref}` a run, `/compare?runs=…` 2–10 runs side by side, `/lineage/{run|version}/{id}`
the lineage graph, `/assets` and `/assets/{kind}/{name}` assets and versions,
`/versions/{id}` one version and `/versions/{id}/download` its content.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).parent
STATIC_URL = "/static"


def mount_ui(app: FastAPI, store) -> None:
    """Add the UI's pages and static files to `app`, answering from `store`."""
    from metastore.server.ui.pages import make_router

    def signed_in() -> bool:
        return bool(getattr(app.state, "auth", False))

    app.include_router(make_router(store, signed_in=signed_in))
    app.mount(STATIC_URL, StaticFiles(directory=HERE / "static"), name="ui-static")


__all__ = ["mount_ui"]
