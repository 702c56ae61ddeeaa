"""The pages on every supported database (SQLite, PostgreSQL, MariaDB), on a store the
test records itself: typed params, missing values, many runs, an empty store."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from metastore.records import MetricPoint, RunRecord
from metastore.server.ui import mount_ui
from metastore.server.ui import pages as ui_pages

# Also through a metastore server: `metastore ui --store http://…` shows a team store.


def client_for(store) -> TestClient:
    app = FastAPI()
    mount_ui(app, store)
    return TestClient(app)


def test_pages_on_each_backend(store):
    for i, (lr, opt) in enumerate([(0.1, "adam"), (0.01, "sgd"), (0.001, "adam")]):
        store.backend.create_run(
            RunRecord(
                experiment="sweep", name=f"run-{i}",
                params={"lr": lr, "optimizer": opt, "layers": [64, 32], "dropout": i == 1},
                metrics=[MetricPoint(key="val_loss", value=1.0 / (i + 1) + s / 10, step=s) for s in range(3)]
                + [MetricPoint(key="accuracy", value=0.8 + i / 20)],
            )
        )
    store.backend.create_run(RunRecord(experiment="sweep", name="crashed", status="failed"))
    c = client_for(store)
    home = c.get("/")
    assert home.status_code == 200 and "sweep" in home.text
    html = c.get("/experiments/sweep").text
    numbers = re.findall(r'<td class="num nowrap"><a href="/runs/[^"]+">(\d+)</a>', html)
    # sorted by val_loss (lower is better), the run without metrics last
    assert numbers == ["3", "2", "1", "4"]
    assert "badge failed" in html
    runs = store.runs("sweep")
    r = c.get(f"/runs/{runs[0].id}")
    assert r.status_code == 200 and "val_loss" in r.text and '<svg class="chart"' in r.text
    cmp = c.get(f"/compare?runs={runs[0].id}&runs={runs[1].id}&runs={runs[3].id}")
    assert cmp.status_code == 200 and "optimizer" in cmp.text and "val_loss" in cmp.text


def test_an_empty_store_says_how_to_begin(sqlite_store):
    html = client_for(sqlite_store).get("/").text
    assert "metastore demo" in html
    assert "no assets" in client_for(sqlite_store).get("/assets").text


def test_long_tables_show_the_first_rows_and_offer_the_rest(sqlite_store, monkeypatch):
    monkeypatch.setattr(ui_pages, "MAX_TABLE_ROWS", 3)
    for i in range(5):
        sqlite_store.backend.create_run(
            RunRecord(experiment="many", params={"i": i}, metrics=[MetricPoint(key="loss", value=i)])
        )
    c = client_for(sqlite_store)
    html = c.get("/experiments/many").text
    assert html.count('class="pick"') == 3 and "Show all 5" in html
    link = re.search(r'<a href="([^"]+)">Show all 5', html).group(1).replace("&amp;", "&")
    assert c.get(link).text.count('class="pick"') == 5


def test_aliases_show_on_asset_version_and_run_pages(store):
    with store.start_run(experiment="promote", capture=False) as run:
        v1 = run.log_asset(b"weights-1", kind="model", name="regressor")
    with store.start_run(experiment="promote", capture=False):
        pass
    store.set_alias(v1, "production", note="passed review")
    c = client_for(store)
    asset = c.get("/assets/model/regressor")
    assert asset.status_code == 200 and 'class="badge alias"' in asset.text and "@production" in asset.text
    version = c.get(f"/versions/{v1.id}").text
    assert "@production" in version and "passed review" in version
    run_page = c.get(f"/runs/{run.id}").text
    assert "@production" in run_page


def test_a_run_page_links_its_reproductions(sqlite_store):
    with sqlite_store.start_run(experiment="r", capture=False) as original:
        pass
    with sqlite_store.start_run(experiment="r", capture=False) as again:
        again.set_tags({"reproduce_verdict": "identical"})
    sqlite_store.link(original.id, again.id, "reproduces")
    c = client_for(sqlite_store)
    page = c.get(f"/runs/{again.id}").text
    assert "reproduction of" in page and ">r#1</a> (identical)" in page
    page = c.get(f"/runs/{original.id}").text
    assert "reproduced by" in page and ">r#2</a>" in page
