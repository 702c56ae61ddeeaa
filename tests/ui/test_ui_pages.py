"""The UI's pages over HTTP (no browser): what each shows, links, errors, downloads."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from metastore.server.ui import mount_ui


@pytest.fixture(scope="module")
def client(demo_ui_store):
    app = FastAPI()
    mount_ui(app, demo_ui_store)
    return TestClient(app)


def run_ref(n: int) -> str:
    return quote(f"diabetes#{n}", safe="")


def table_numbers(html: str, table_id: str) -> list[int]:
    body = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return [int(n) for n in re.findall(r'<td class="num nowrap"><a href="/runs/[^"]+">(\d+)</a>', body)]


def test_home_lists_the_experiment_and_its_best_run(client, demo_ui_store):
    html = client.get("/").text
    best = min(demo_ui_store.runs("diabetes"), key=lambda r: r.metrics["rmse"])
    assert "diabetes" in html and "12" in html
    assert f"/runs/{best.id}" in html


def test_runs_table_is_sorted_by_the_primary_metric_and_marks_the_best(client, demo_ui_store):
    html = client.get("/experiments/diabetes").text
    runs = demo_ui_store.runs("diabetes")
    by_rmse = [r.number for r in sorted(runs, key=lambda r: r.metrics["rmse"])]
    assert table_numbers(html, "runs-table") == by_rmse
    assert 'id="best-run"' in html and f"#{by_rmse[0]} " in html
    # params that vary are columns, the constant seed is not
    assert "sort by features" in html and "sort by seed" not in html


def test_sorting_by_a_column_in_both_directions(client, demo_ui_store):
    runs = demo_ui_store.runs("diabetes")
    html = client.get("/experiments/diabetes?sort=metrics.r2&desc=1").text
    expected = [r.number for r in sorted(runs, key=lambda r: -r.metrics["r2"])]
    assert table_numbers(html, "runs-table") == expected
    html = client.get("/experiments/diabetes?sort=number&desc=0").text
    assert table_numbers(html, "runs-table") == list(range(1, 13))


def test_runs_without_a_value_sort_last_either_way(client, demo_ui_store):
    forests = {r.number for r in demo_ui_store.runs("diabetes") if "loss" in r.metrics}
    for desc in (0, 1):
        html = client.get(f"/experiments/diabetes?sort=metrics.loss&desc={desc}").text
        numbers = table_numbers(html, "runs-table")
        assert set(numbers[: len(forests)]) == forests


def test_chosen_columns_and_the_permalink_reproduce_the_view(client):
    url = "/experiments/diabetes?cols=params.seed&cols=metrics.mae&sort=metrics.mae&desc=0"
    html = client.get(url).text
    assert "sort by seed" in html and "sort by mae" in html and "sort by rmse" not in html
    link = re.search(r'id="permalink" class="[^"]*" href="([^"]+)"', html).group(1)
    again = client.get(link.replace("&amp;", "&")).text
    assert table_numbers(again, "runs-table") == table_numbers(html, "runs-table")
    assert "sort by seed" in again


def test_run_page_shows_everything_recorded(client, demo_ui_store):
    run = demo_ui_store.get_run("diabetes#9")
    html = client.get(f"/runs/{run_ref(9)}").text
    for text in ("random_forest", "n_estimators", "rmse", "diabetes-train", "regressor",
                 "Metric history", "python"):
        assert text in html
    assert '<svg class="chart"' in html  # the loss history
    assert f"/versions/{run.outputs[0].id}/download" in html
    assert client.get(f"/runs/{run.id}").status_code == 200


def test_unknown_run_is_a_404_page_with_the_reason(client):
    r = client.get(f"/runs/{run_ref(99)}")
    assert r.status_code == 404
    assert "no run number 99" in r.text


def test_compare_highlights_differences_and_draws_charts(client, demo_ui_store):
    ids = [demo_ui_store.get_run(f"diabetes#{n}").id for n in (1, 6, 9)]
    html = client.get("/compare?" + "&".join(f"runs={i}" for i in ids)).text
    params = html.split('id="params-compare"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr class="(differs|same)">\s*<th>([^<]+)</th>', params)
    assert ("differs", "algorithm") in rows and ("same", "seed") in rows
    assert 'class="delta' in html  # metric deltas against the baseline
    assert html.count('<svg class="chart"') >= 3  # loss history, scatter, parallel coords
    assert "Param against metric" in html


def test_compare_also_takes_comma_separated_refs(client):
    r = client.get(f"/compare?runs={run_ref(2)},{run_ref(3)}")
    assert r.status_code == 200 and "Compare 2 runs" in r.text


@pytest.mark.parametrize("refs", [[1], list(range(1, 12))])
def test_compare_needs_two_to_ten_runs(client, refs):
    r = client.get("/compare?" + "&".join(f"runs={run_ref(n)}" for n in refs))
    assert r.status_code == 400
    assert "2 to 10 runs" in r.text


def test_assets_pages_list_versions_with_producers(client, demo_ui_store):
    html = client.get("/assets").text
    assert "regressor" in html and "diabetes-train" in html
    html = client.get("/assets/model/regressor").text
    assert html.count("/download") == 12
    v4 = demo_ui_store.get_asset("model", "regressor", 4)
    assert f"/runs/{v4.created_by}" in html


def test_download_gives_the_exact_bytes(client, demo_ui_store):
    v = demo_ui_store.get_asset("dataset", "diabetes-train")
    r = client.get(f"/versions/{v.id}/download")
    assert r.status_code == 200
    assert "attachment" in r.headers["content-disposition"]
    assert "sha256:" + hashlib.sha256(r.content).hexdigest() == v.digest or (
        hashlib.sha256(r.content).hexdigest() == v.digest.split(":")[-1]
    )


def test_version_page_previews_text_content(client, demo_ui_store):
    v = demo_ui_store.get_asset("environment", "python")
    html = client.get(f"/versions/{v.id}").text
    assert "Preview" in html and "==" in html


def test_static_assets_are_served_from_the_package(client):
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/app.js").status_code == 200
    html = client.get("/").text
    assert "http://" not in re.sub(r'xmlns="http://www.w3.org/2000/svg"', "", html)


def test_version_page_lists_the_runs_that_used_it(client, demo_ui_store):
    v = demo_ui_store.get_asset("dataset", "diabetes-train")
    html = client.get(f"/versions/{v.id}").text
    used = html.split("used by", 1)[1].split("</table>", 1)[0]
    assert {f"/runs/{r.id}" for r in demo_ui_store.runs("diabetes")} == set(
        re.findall(r'href="(/runs/[^"]+)"', used)
    )


def test_on_a_server_with_tokens_the_pages_need_a_sign_in(demo_ui_store):
    from metastore.server.app import create_app
    from metastore.server.auth import COOKIE_NAME, create_token

    app = create_app(demo_ui_store, auth=True, ui=True)
    anonymous = TestClient(app, follow_redirects=False)
    r = anonymous.get("/experiments/diabetes")
    assert r.status_code in (302, 303, 307) and r.headers["location"].startswith("/login")
    token = create_token(demo_ui_store, "ui-test-reader", read_only=True)
    signed_in = TestClient(app, cookies={COOKIE_NAME: token})
    html = signed_in.get("/experiments/diabetes").text
    assert 'id="runs-table"' in html and "Sign out" in html
    assert signed_in.get("/static/style.css").status_code == 200


def test_query_answers_link_to_runs_versions_and_experiments(client, demo_ui_store):
    html = client.get("/experiments/diabetes", params={"q": "models where version = 4"}).text
    v4 = demo_ui_store.get_asset("model", "regressor", 4)
    table = html.split('id="result-table"', 1)[1].split("</table>", 1)[0]
    assert f'href="/versions/{v4.id}"' in table and 'href="/assets/model/regressor"' in table
    assert "/runs/diabetes%234" in table  # created_by
    html = client.get("/experiments/diabetes", params={"q": "runs where number = 2"}).text
    table = html.split('id="result-table"', 1)[1].split("</table>", 1)[0]
    run2 = demo_ui_store.get_run("diabetes#2")
    assert f'href="/runs/{run2.id}"' in table and 'value="' + run2.id in table
    assert 'href="/experiments/diabetes"' in table


def test_a_bad_query_shows_the_error_with_its_caret(client):
    html = client.get("/experiments/diabetes", params={"q": "runs where rsme < 5"}).text
    assert 'id="query-error"' in html and "rsme" in html and "^^^^" in html
    assert "did you mean" in html and 'id="runs-table"' not in html


def test_the_best_run_banner_plots_every_run_with_the_best_ringed(client, demo_ui_store):
    html = client.get("/experiments/diabetes").text
    svg = html.split('<svg class="overview"', 1)[1].split("</svg>", 1)[0]
    runs = demo_ui_store.runs("diabetes")
    assert set(re.findall(r'href="(/runs/[^"]+)"', svg)) == {f"/runs/{r.id}" for r in runs}
    best = min(runs, key=lambda r: r.metrics["rmse"])
    ringed = svg.split('class="best-ring"', 1)[1].split("</a>", 1)[0]
    assert f"#{best.number} " in ringed


@pytest.mark.parametrize(
    "page", ["/", "/experiments/diabetes", "/assets", f"/runs/{run_ref(4)}",
             f"/compare?runs={run_ref(1)},{run_ref(4)}"],
)
def test_pages_work_offline(client, page):
    """No page loads or links to anything that needs the network: no external hosts,
    and not /api/docs (Swagger UI's script comes from a CDN)."""
    html = client.get(page).text
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)
    assert 'href="/api/docs"' not in html


def test_suggest_answers_the_query_box(client):
    """`/suggest`: what may replace the word at the cursor, with the experiment's names."""
    got = client.get("/suggest", params={"experiment": "diabetes", "q": "runs where rm and r2 > 0",
                                         "at": len("runs where rm")}).json()
    assert got["start"] == len("runs where ")
    assert got["items"][0] == {"text": "rmse", "kind": "metric",
                               "about": "last value; .min .max … its history"}
    refs = client.get("/suggest", params={"experiment": "diabetes", "q": "runs where uses model:regressor@1"})
    assert [i["text"] for i in refs.json()["items"]] == [f"model:regressor@{n}" for n in (12, 11, 10)]
    # an experiment that is not there: the language's own words still come
    other = client.get("/suggest", params={"experiment": "nope", "q": "runs where rmse < 5 or"}).json()
    assert [i["text"] for i in other["items"]] == ["order by"]
