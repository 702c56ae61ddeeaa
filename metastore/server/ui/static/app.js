// metastore web UI: a little vanilla JavaScript. Every page works without it; this adds
// run selection for compare, client-side sorting of query results, example queries,
// Ctrl+Enter to run a query, suggestions in the query box, and the "only differences" switch.
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
    var suggestions = setupSuggestions(box, fit);
    box.addEventListener("keydown", function (e) {
      if (suggestions.handle(e)) return;  // a key the open suggestion list took
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.submit(); }
      else if (e.key === "Enter" && !e.shiftKey && box.value.indexOf("\n") < 0) { e.preventDefault(); form.submit(); }
    });
    document.querySelectorAll("button.example").forEach(function (b) {
      b.addEventListener("click", function () { box.value = b.getAttribute("data-query"); fit(); box.focus(); });
    });
  }

  // Suggestions while typing a query (the server's /suggest, metastore/query/suggest.py):
  // an ARIA combobox. Typing or Ctrl+Space asks; ArrowDown/ArrowUp pick; Tab or Enter
  // takes the picked one (Tab the first when none is picked); Escape closes. Enter with
  // nothing picked still runs the query.
  function setupSuggestions(box, fit) {
    var list = document.getElementById("q-suggestions");
    var url = box.getAttribute("data-suggest");
    var items = [], start = 0, active = -1, timer = null, asked = 0;
    if (!list || !url) return { handle: function () { return false; } };

    function isOpen() { return !list.hidden; }
    function close() {
      clearTimeout(timer); asked++;  // an answer still on its way is for nothing now
      list.hidden = true; items = []; active = -1;
      box.setAttribute("aria-expanded", "false");
      box.removeAttribute("aria-activedescendant");
    }
    function mark(i) {
      active = i;
      Array.from(list.children).forEach(function (li, n) {
        li.setAttribute("aria-selected", n === i ? "true" : "false");
      });
      if (i >= 0) {
        box.setAttribute("aria-activedescendant", "q-opt-" + i);
        list.children[i].scrollIntoView({ block: "nearest" });
      } else {
        box.removeAttribute("aria-activedescendant");
      }
    }
    function show(answer) {
      items = answer.items; start = answer.start; active = -1;
      list.textContent = "";
      items.forEach(function (item, i) {
        var li = document.createElement("li");
        li.id = "q-opt-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        var text = document.createElement("span");
        text.className = "text";
        text.textContent = item.text;
        var kind = document.createElement("span");
        kind.className = "what";
        kind.textContent = item.kind;
        if (item.about) li.title = item.about;
        li.appendChild(text); li.appendChild(kind);
        // mousedown, not click: the box keeps its focus and caret
        li.addEventListener("mousedown", function (e) { e.preventDefault(); take(i); });
        list.appendChild(li);
      });
      list.hidden = items.length === 0;
      box.setAttribute("aria-expanded", items.length ? "true" : "false");
      box.removeAttribute("aria-activedescendant");
    }
    function ask() {
      var at = box.selectionStart, n = ++asked;
      fetch(url + "&q=" + encodeURIComponent(box.value) + "&at=" + at, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { start: 0, items: [] }; })
        .then(function (answer) {
          // only the latest answer, and only while the box still has the focus
          if (n === asked && document.activeElement === box) show(answer);
        })
        .catch(function () { close(); });
    }
    function later() { clearTimeout(timer); timer = setTimeout(ask, 120); }
    function take(i) {
      var item = items[i], end = box.selectionStart;
      if (!item) return;
      var rest = box.value.slice(end);
      var text = item.text + (/[(.]$/.test(item.text) || /^\s/.test(rest) ? "" : " ");
      box.value = box.value.slice(0, start) + text + rest;
      var caret = start + text.length;
      box.setSelectionRange(caret, caret);
      fit();
      close();
      ask();  // what may follow it
    }

    box.addEventListener("input", later);
    box.addEventListener("blur", close);
    return {
      handle: function (e) {
        if (e.key === " " && e.ctrlKey) { e.preventDefault(); ask(); return true; }
        if (e.key === "Escape") {  // also when an answer is still on its way: it is dropped
          var open = isOpen();
          close();
          if (open) e.preventDefault();
          return open;
        }
        if (!isOpen()) return false;
        if (e.key === "ArrowDown" || e.key === "ArrowUp") {
          e.preventDefault();
          var step = e.key === "ArrowDown" ? 1 : -1;
          mark((active + step + items.length + (active < 0 && step < 0 ? 1 : 0)) % items.length);
          return true;
        }
        if (e.key === "Tab" && !e.shiftKey) { e.preventDefault(); take(active >= 0 ? active : 0); return true; }
        if (e.key === "Enter" && active >= 0 && !e.ctrlKey && !e.metaKey) { e.preventDefault(); take(active); return true; }
        return false;
      }
    };
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
