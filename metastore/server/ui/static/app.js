// metastore web UI: a little vanilla JavaScript. Every page works without it; this adds
// run selection for compare, client-side sorting of query results, example queries,
// Ctrl+Enter to run a query, and the "only differences" switch.
(function () {
  "use strict";

  function picks() { return Array.from(document.querySelectorAll("input.pick")); }

  function updateCompare() {
    var btn = document.getElementById("compare-btn");
    if (!btn) return;
    var n = picks().filter(function (p) { return p.checked; }).length;
    document.getElementById("compare-count").textContent = "(" + n + ")";
    btn.disabled = n < 2 || n > 10;
    btn.classList.toggle("primary", n >= 2 && n <= 10);
    btn.title = n > 10 ? "compare takes at most 10 runs" : "";
  }

  function setupPicks() {
    picks().forEach(function (p) { p.addEventListener("change", updateCompare); });
    var all = document.getElementById("pick-all");
    if (all) {
      all.addEventListener("change", function () {
        picks().slice(0, 10).forEach(function (p) { p.checked = all.checked; });
        updateCompare();
      });
    }
    updateCompare();
  }

  function cellValue(td) {
    var raw = td.getAttribute("data-value");
    if (raw !== null && raw !== "" && !isNaN(Number(raw))) return Number(raw);
    return td.textContent.trim();
  }

  function setupSortable() {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      var heads = table.querySelectorAll("thead th");
      heads.forEach(function (th, index) {
        if (!th.hasAttribute("data-sort")) return;
        th.style.cursor = "pointer";
        th.title = "sort";
        th.addEventListener("click", function () {
          var body = table.tBodies[0];
          var rows = Array.from(body.rows);
          var asc = th.getAttribute("data-dir") !== "asc";
          heads.forEach(function (h) { h.removeAttribute("data-dir"); h.classList.remove("sorted"); });
          th.setAttribute("data-dir", asc ? "asc" : "desc");
          th.classList.add("sorted");
          rows.sort(function (a, b) {
            var x = cellValue(a.cells[index]), y = cellValue(b.cells[index]);
            if (x === "" && y !== "") return 1;       // empty cells last, either way
            if (y === "" && x !== "") return -1;
            var c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
            return asc ? c : -c;
          });
          rows.forEach(function (r) { body.appendChild(r); });
        });
      });
    });
  }

  function setupQuery() {
    var box = document.getElementById("q");
    if (!box) return;
    var form = document.getElementById("query-form");
    function fit() { box.style.height = "auto"; box.style.height = Math.max(box.scrollHeight + 2, 38) + "px"; }
    box.addEventListener("input", fit);
    fit();
    box.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.submit(); }
      else if (e.key === "Enter" && !e.shiftKey && box.value.indexOf("\n") < 0) { e.preventDefault(); form.submit(); }
    });
    document.querySelectorAll("button.example").forEach(function (b) {
      b.addEventListener("click", function () { box.value = b.getAttribute("data-query"); fit(); box.focus(); });
    });
  }

  function setupOnlyDiff() {
    var box = document.getElementById("only-diff");
    if (!box) return;
    box.addEventListener("change", function () { document.body.classList.toggle("only-diff", box.checked); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    setupPicks();
    setupSortable();
    setupQuery();
    setupOnlyDiff();
  });
})();
