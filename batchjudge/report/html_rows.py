"""The HTML report's table of every row: filter, sort, page through and open any row.

Static and self-contained: the rows are embedded once as compact JSON (one array per row,
each document stored once and referred to by index, as a document has several summaries),
and a few dozen lines of plain JavaScript filter, sort and draw one page at a time, so the
page stays quick with tens of thousands of rows. No library, no network.

Texts come from the run's inputs (:class:`~batchjudge.report.rows.JoinedRows`); when they are
not readable here the table still lists every result, without texts, and says why.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import orjson
import polars as pl

from batchjudge.errors import InputError
from batchjudge.report.loading import RunData
from batchjudge.report.rows import JoinedRows, correct_column

__all__ = ["DOCUMENT_BUDGET", "ROWS_CSS", "rows_section"]

_COLUMNS = (
    "row_id", "status", "target", "verdict", "correct", "score", "hypothesis", "reason",
    "error", "latency_ms", "attempts",
)  # fmt: skip
"""What each embedded row holds, in order; the document's index follows as ``doc``."""

DOCUMENT_BUDGET = 20_000_000
"""Characters of documents embedded at most; past it each document is cut to its share."""

_MIN_DOCUMENT_CHARS = 500

ROWS_CSS = """
.bj-controls{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin:8px 0;font-size:13px}
.bj-controls input[type=search]{min-width:240px;padding:4px 6px}
.bj-controls select,.bj-controls button{padding:3px 6px;font-size:13px}
#bj-table{width:100%;table-layout:fixed;font-size:12px}
#bj-table th{cursor:pointer;user-select:none;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
#bj-table th[aria-sort=ascending]::after{content:" \\25B2"} #bj-table th[aria-sort=descending]::after{content:" \\25BC"}
#bj-table td{overflow:hidden;text-overflow:ellipsis} #bj-table tr.bj-row{cursor:pointer}
#bj-table tr.bj-row:hover{background:#f3f4f6} .bj-clip{display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;overflow:hidden}
.bj-wrong{color:#b91c1c;font-weight:600} .bj-right{color:#047857} .bj-failed{color:#b91c1c} .bj-parse_error{color:#b45309}
tr.bj-detail td{background:#f9fafb;white-space:pre-wrap;font-size:12px}
.partial{border:1px solid #f59e0b;background:#fffbeb;border-radius:6px;padding:8px 12px;font-weight:600}
"""

_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById("bj-rows").textContent);
  var C = {}; data.cols.forEach(function (c, i) { C[c] = i; });
  var rows = data.rows, docs = data.docs, hayRows = null, hayDocs = null;
  var state = { col: null, desc: false, page: 0, size: 50, shown: [], open: {} };
  var $ = function (id) { return document.getElementById(id); };
  var LABEL = { 1: "consistent", 0: "inconsistent" };
  function esc(v) {
    return v === null || v === undefined ? "" : String(v).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function outcome(r) { return r[C.correct] === true ? "correct" : r[C.correct] === false ? "wrong" : "none"; }
  function label(v) { return v === null ? "none" : String(v); }
  function text(r) { return [r[C.row_id], r[C.hypothesis], r[C.reason], r[C.error]].join("\\n").toLowerCase(); }
  function lower(d) { return d.toLowerCase(); }
  function apply() {
    var status = $("bj-status").value, out = $("bj-outcome").value, target = $("bj-target").value,
      verdict = $("bj-verdict").value, q = $("bj-q").value.trim().toLowerCase();
    var docHit = null;
    if (q) {  // each document is searched once, not once per summary of it
      if (hayRows === null) { hayRows = rows.map(text); hayDocs = docs.map(lower); }
      docHit = hayDocs.map(function (d) { return d.indexOf(q) >= 0; });
    }
    var shown = [];
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      if (status && r[C.status] !== status) continue;
      if (out && outcome(r) !== out) continue;
      if (target && label(r[C.target]) !== target) continue;
      if (verdict && label(r[C.verdict]) !== verdict) continue;
      if (q && hayRows[i].indexOf(q) < 0 && !(r[C.doc] !== null && docHit[r[C.doc]])) continue;
      shown.push(i);
    }
    if (state.col !== null) {
      var k = C[state.col], sign = state.desc ? -1 : 1;
      shown.sort(function (a, b) {
        var x = rows[a][k], y = rows[b][k];
        if (x === y) return a - b;
        if (x === null) return 1;
        if (y === null) return -1;
        return (x < y ? -1 : 1) * sign;
      });
    }
    state.shown = shown; state.page = 0; state.open = {};
    draw();
  }
  function cell(r, c) {
    var v = r[C[c]];
    if (c === "target" || c === "verdict") return v === null ? "\\u2013" : LABEL[v];
    if (c === "correct") return v === null ? "\\u2013" : v ? '<span class="bj-right">\\u2713</span>' : '<span class="bj-wrong">\\u2717</span>';
    if (c === "status") return '<span class="bj-' + esc(v) + '">' + esc(v) + "</span>";
    if (c === "reason") return '<div class="bj-clip">' + esc(v === null ? r[C.error] : v) + "</div>";
    if (c === "hypothesis") return '<div class="bj-clip">' + esc(v) + "</div>";
    if (v === null) return "\\u2013";
    if (c === "score") return v.toFixed(3);
    if (c === "latency_ms") return v.toFixed(1);
    return esc(v);
  }
  function draw() {
    var n = state.shown.length, pages = Math.max(1, Math.ceil(n / state.size));
    state.page = Math.min(state.page, pages - 1);
    var start = state.page * state.size, end = Math.min(n, start + state.size), html = [];
    var cols = data.show, width = cols.length;
    for (var j = start; j < end; j++) {
      var i = state.shown[j], r = rows[i];
      html.push('<tr class="bj-row" data-i="' + i + '">' + cols.map(function (c) {
        return '<td class="bj-' + c + '">' + cell(r, c) + "</td>"; }).join("") + "</tr>");
      if (state.open[i]) {
        var doc = r[C.doc] === null ? "(document not available)" : docs[r[C.doc]];
        html.push('<tr class="bj-detail"><td colspan="' + width + '"><b>summary</b> ' + esc(r[C.hypothesis]) +
          "\\n<b>reason</b> " + esc(r[C.reason]) + (r[C.error] ? "\\n<b>error</b> " + esc(r[C.error]) : "") +
          "\\n<b>document</b> " + esc(doc) + "</td></tr>");
      }
    }
    $("bj-body").innerHTML = html.join("");
    $("bj-count").textContent = n.toLocaleString("en") + " of " + rows.length.toLocaleString("en") +
      " rows" + (n ? " \\u00b7 showing " + (start + 1).toLocaleString("en") + "\\u2013" + end.toLocaleString("en") : "");
    $("bj-page").textContent = "page " + (state.page + 1) + " of " + pages;
    $("bj-prev").disabled = state.page === 0; $("bj-next").disabled = state.page >= pages - 1;
    document.querySelectorAll("#bj-table th").forEach(function (th) {
      th.setAttribute("aria-sort", th.dataset.col === state.col ? (state.desc ? "descending" : "ascending") : "none");
    });
  }
  ["bj-status", "bj-outcome", "bj-target", "bj-verdict"].forEach(function (id) { $(id).addEventListener("change", apply); });
  var timer = null;
  $("bj-q").addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(apply, 150); });
  $("bj-size").addEventListener("change", function () { state.size = +this.value; state.page = 0; draw(); });
  $("bj-prev").addEventListener("click", function () { state.page--; draw(); });
  $("bj-next").addEventListener("click", function () { state.page++; draw(); });
  document.querySelectorAll("#bj-table th").forEach(function (th) {
    th.addEventListener("click", function () {
      if (state.col === th.dataset.col) { state.desc = !state.desc; } else { state.col = th.dataset.col; state.desc = false; }
      apply();
    });
  });
  $("bj-body").addEventListener("click", function (e) {
    var tr = e.target.closest("tr.bj-row");
    if (!tr) return;
    var i = +tr.dataset.i; state.open[i] = !state.open[i]; draw();
  });
  apply();
})();
"""

_HEADERS = (
    ("row_id", "row", "10%", "row id"), ("status", "status", "7%", "status"),
    ("target", "true", "9%", "true label"), ("verdict", "judged", "9%", "verdict"),
    ("correct", "right", "5.5%", "right or wrong"), ("score", "score", "6.5%", "P(consistent)"),
    ("hypothesis", "summary", "24%", "summary"), ("reason", "reason / error", "18.5%", "reason"),
    ("latency_ms", "ms", "5%", "latency (ms)"), ("attempts", "tries", "5.5%", "attempts"),
)  # fmt: skip
"""(column, header, width, tooltip) of the visible table; ``error`` shows where there is no
reason."""


def rows_section(run: RunData, *, max_rows: int = 100_000) -> str:
    """The "Every row" section: controls, an empty table, the rows as JSON and the script.

    At most ``max_rows`` rows are embedded (the first, in input order); the page says so
    when there are more (``batchjudge report --rows`` writes them all).
    """
    notes: list[str] = []
    try:
        tables, texts = _joined(run), True
        rows, docs = _collect(tables, max_rows)
    except InputError as exc:
        notes.append(f"No summaries or documents: {exc}")
        texts = False
        rows, docs = _collect(_results_only(run), max_rows)
    total = run.results.height
    if total > len(rows):
        notes.append(
            f"The first {len(rows):,} of {total:,} rows are embedded; "
            "`batchjudge report RUN --rows rows.parquet` writes them all."
        )
    cut = _fit_documents(docs)
    if cut:
        notes.append(f"Documents are cut to {cut:,} characters each to keep this page small.")
    if texts:
        notes.append("Click a row to read its document.")
    payload = {"cols": [*_COLUMNS, "doc"], "show": [h[0] for h in _HEADERS], "rows": rows, "docs": docs}
    return (
        "<section id='bj-every-row'><h2>Every row</h2>"
        + "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)
        + _controls(run)
        + "<table id='bj-table'><colgroup>"
        + "".join(f"<col style='width:{h[2]}'>" for h in _HEADERS)
        + "</colgroup><thead><tr>"
        + "".join(f"<th data-col='{c}' aria-sort='none' title='sort by {html.escape(t)}'>{html.escape(h)}</th>"
                  for c, h, _, t in _HEADERS)
        + "</tr></thead><tbody id='bj-body'></tbody></table>"
        + "<div class='bj-controls'><button id='bj-prev' type='button'>&lsaquo; previous</button>"
        + "<span id='bj-page'></span><button id='bj-next' type='button'>next &rsaquo;</button></div>"
        + f"<script type='application/json' id='bj-rows'>{_json_for_script(payload)}</script>"
        + f"<script>{_SCRIPT}</script></section>"
    )  # fmt: skip


def _controls(run: RunData) -> str:
    statuses = sorted(run.results["status"].unique().drop_nulls().to_list())
    classes = [("1", "consistent"), ("0", "inconsistent")]
    selects = [
        ("bj-status", "status", [(s, s) for s in statuses]),
        ("bj-outcome", "outcome", [("correct", "correct"), ("wrong", "wrong"), ("none", "not scored")]),
        ("bj-target", "true", [*classes, ("none", "unlabelled")]),
        ("bj-verdict", "judged", [*classes, ("none", "no verdict")]),
    ]
    parts = [
        "<label>search <input id='bj-q' type='search' "
        "placeholder='row id, summary, reason, document'></label>"
    ]
    for ident, name, options in selects:
        parts.append(
            f"<label>{name} <select id='{ident}'><option value=''>all</option>"
            + "".join(f"<option value='{html.escape(v)}'>{html.escape(t)}</option>" for v, t in options)
            + "</select></label>"
        )
    parts.append(
        "<label>per page <select id='bj-size'>"
        + "".join(f"<option{' selected' if n == 50 else ''}>{n}</option>" for n in (25, 50, 100, 500))
        + "</select></label><span id='bj-count' class='note'></span>"
    )
    return "<div class='bj-controls'>" + "".join(parts) + "</div>"


def _joined(run: RunData) -> Iterator[pl.DataFrame]:
    joined = JoinedRows(run)  # opens the inputs now: InputError when they are gone
    return (_frame(table) for table in joined.tables())


def _frame(table: Any) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _results_only(run: RunData) -> Iterator[pl.DataFrame]:
    yield run.results.with_columns(
        pl.lit(None, dtype=pl.String).alias("hypothesis"),
        pl.lit(None, dtype=pl.String).alias("premise"),
        correct_column(),
    )


def _collect(frames: Iterator[pl.DataFrame], max_rows: int) -> tuple[list[list[Any]], list[str]]:
    """Rows as arrays in :data:`_COLUMNS` order plus a document index; each document once."""
    rows: list[list[Any]] = []
    docs: list[str] = []
    doc_index: dict[str, int] = {}
    for frame in frames:
        if len(rows) >= max_rows:
            break
        frame = frame.head(max_rows - len(rows)).with_columns(
            pl.col("score").round(4), pl.col("latency_ms").round(1)
        )
        premises = frame["premise"].to_list()
        for values, premise in zip(frame.select(_COLUMNS).iter_rows(), premises, strict=True):
            index = None
            if premise is not None:
                index = doc_index.setdefault(premise, len(docs))
                if index == len(docs):
                    docs.append(premise)
            rows.append([*values, index])
    return rows, docs


def _fit_documents(docs: list[str]) -> int | None:
    """Cut documents in place to fit :data:`DOCUMENT_BUDGET`; return the cut length, if any."""
    if sum(len(d) for d in docs) <= DOCUMENT_BUDGET:
        return None
    limit = max(_MIN_DOCUMENT_CHARS, DOCUMENT_BUDGET // len(docs))
    for i, doc in enumerate(docs):
        if len(doc) > limit:
            docs[i] = doc[:limit] + "…"
    return limit


def _json_for_script(payload: object) -> str:
    """JSON safe inside ``<script>``: no ``<``, ``>`` or ``&`` can end the element early."""
    text = orjson.dumps(payload).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
