"""The HTML report: one self-contained page, and what headless Chromium actually draws."""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from report_helpers import result_row, write_run
from typer.testing import CliRunner

from batchjudge.cli import app
from batchjudge.report import load_run, render_html, summarize
from batchjudge.report.prices import PriceTable


@pytest.fixture
def labelled_run(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    rows = []
    for i in range(300):
        target = int(rng.integers(0, 2))
        score = float(np.clip(rng.normal(0.35 + 0.3 * target, 0.2), 0, 1))
        rows.append(result_row(f"row-{i}", target, int(score >= 0.5), score,
                               latency_ms=float(rng.gamma(4, 60)),
                               reason=f"<b>claim {i}</b> & its evidence"))  # fmt: skip
    rows.append(result_row("broken", 1, None, error="TransientError: 503"))
    return write_run(tmp_path / "run", [rows[:150], rows[150:]])


def test_the_page_is_self_contained_and_escapes_the_judges_text(labelled_run: Path) -> None:
    run = load_run(labelled_run)
    page = render_html(run, summarize(run, PriceTable(), resamples=200))
    assert page.startswith("<!DOCTYPE html>")
    assert "<link" not in page and "src=" not in page and "import(" not in page and "fetch(" not in page
    assert page.count("<script") == 2  # the rows as JSON, and the table's own code, inline
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"] * page.count("<svg")
    assert "&lt;b&gt;claim" in page and "<b>claim" not in page
    for section in ("Confusion matrix", "ROC", "Precision–recall", "Latency", "Calibration",
                    "Most confident mistakes", "Every row"):
        assert section in page
    assert page.count("<polyline") == 4  # ROC, two PR curves, calibration


def _embedded(page: str) -> dict[str, Any]:
    match = re.search(r"<script type='application/json' id='bj-rows'>(.*?)</script>", page, re.S)
    assert match is not None
    assert "<" not in match.group(1)  # nothing in the data can end the script element
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def _pairs_run(tmp_path: Path, n: int = 300) -> Path:
    """A run over ``n`` labelled pairs on disk, three summaries per document."""
    rng = np.random.default_rng(11)
    records, results = [], []
    for i in range(n):
        target = i % 2
        score = float(np.clip(rng.normal(0.35 + 0.3 * target, 0.2), 0, 1))
        records.append({"id": f"row-{i:03d}", "premise": f"Document {i // 3} about </script> & ferries.",
                        "hypothesis": f"Summary {i} of document {i // 3}.", "target": target})
        results.append(result_row(f"row-{i:03d}", target, int(score >= 0.5), score,
                                  latency_ms=float(rng.gamma(4, 60)), reason=f"reason {i}"))
    results.append(result_row("row-999", 1, None, error="TransientError: 503"))
    records.append({"id": "row-999", "premise": "Failed document.", "hypothesis": "Failed summary.", "target": 1})
    inputs = tmp_path / "pairs.jsonl"
    inputs.write_text("".join(json.dumps(r) + "\n" for r in records))
    meta = {"fingerprint": {}, "config": {"inputs": [str(inputs)], "model": "m"}}
    return write_run(tmp_path / "pairs-run", [results[:150], results[150:]], meta)


def test_every_row_is_embedded_once_with_each_document_stored_once(tmp_path: Path) -> None:
    run = load_run(_pairs_run(tmp_path))
    data = _embedded(render_html(run, summarize(run, PriceTable(), resamples=200)))
    rows = [dict(zip(data["cols"], r, strict=True)) for r in data["rows"]]
    assert len(rows) == 301 and rows[0]["row_id"] == "row-000"
    assert len(data["docs"]) == 101  # 100 documents with three summaries each, and one more
    assert data["docs"][rows[4]["doc"]] == "Document 1 about </script> & ferries."
    assert rows[4]["hypothesis"] == "Summary 4 of document 1."
    failed = rows[-1]
    assert (failed["status"], failed["verdict"], failed["correct"]) == ("failed", None, None)
    assert failed["error"] == "TransientError: 503"
    assert {r["correct"] for r in rows[:-1]} == {True, False}


def test_without_the_inputs_the_table_lists_every_result_and_says_why(labelled_run: Path) -> None:
    run = load_run(labelled_run)
    page = render_html(run, summarize(run, PriceTable(), resamples=200))
    data = _embedded(page)
    assert len(data["rows"]) == 301 and data["docs"] == []
    assert "No summaries or documents" in page and "run.json names no inputs" in page


def test_rows_past_the_cap_are_left_out_and_the_page_says_how_to_get_them_all(tmp_path: Path) -> None:
    run = load_run(_pairs_run(tmp_path))
    page = render_html(run, summarize(run, PriceTable(), resamples=200), table_rows=100)
    assert len(_embedded(page)["rows"]) == 100
    assert "The first 100 of 301 rows are embedded" in page and "--rows" in page


def test_a_partial_run_says_so_at_the_top_of_the_page(tmp_path: Path) -> None:
    meta = {"fingerprint": {}, "config": {}, "counts": {"ok": 2, "done": 2, "total": 40}}
    run = load_run(write_run(tmp_path / "run", [[result_row("a", 1, 1, 0.9), result_row("b", 0, 1, 0.8)]], meta))
    page = render_html(run, summarize(run, PriceTable(), resamples=200))
    assert "Partial run: 2 of 40 rows have results" in page
    assert "<b>2 of 40</b>" in page  # the rows card


def test_report_html_option_writes_the_page(labelled_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(labelled_run), "--html", str(out), "--resamples", "200"])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").count("<svg") >= 4


def test_report_html_into_a_missing_folder_exits_2(labelled_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "missing" / "report.html"
    result = CliRunner().invoke(app, ["report", str(labelled_run), "--html", str(out)])
    assert result.exit_code == 2 and "report.html" in result.output


def _png_pixels(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA PNG with the stdlib (zlib) and numpy: (height, width, channels)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), "only 8-bit RGB(A) screenshots are expected"
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * channels)
    out = np.zeros((height, width * channels), dtype=np.uint8)
    prev = np.zeros(width * channels, dtype=np.int64)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: running sum per channel
            cur = np.cumsum(line.reshape(width, channels), axis=0).reshape(-1) % 256
        elif kind == 2:  # Up
            cur = (line + prev) % 256
        else:  # Average (3) and Paeth (4) depend on the byte just decoded: walk the row
            values, above = line.tolist(), prev.tolist()
            result = [0] * len(values)
            for x, value in enumerate(values):
                a = result[x - channels] if x >= channels else 0
                b = above[x]
                if kind == 3:
                    result[x] = (value + (a + b) // 2) % 256
                else:
                    c = above[x - channels] if x >= channels else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                    result[x] = (value + pred) % 256
            cur = np.asarray(result, dtype=np.int64)
        out[y] = cur
        prev = cur
    return out.reshape(height, width, channels)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_headless_chromium_draws_a_non_blank_page(labelled_run: Path, tmp_path: Path) -> None:
    run = load_run(labelled_run)
    page = tmp_path / "report.html"
    page.write_text(render_html(run, summarize(run, PriceTable(), resamples=200)), encoding="utf-8")
    shot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1200,1600", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pixels = _png_pixels(shot.read_bytes())
    assert pixels.shape[:2] == (1600, 1200)
    rgb = pixels[..., :3].reshape(-1, 3)
    colours = np.unique(rgb[:, 0].astype(np.int64) << 16 | rgb[:, 1].astype(np.int64) << 8 | rgb[:, 2])
    assert colours.size > 50  # text antialiasing, the blue and red cells, the curves
    not_white = np.any(rgb < 245, axis=1).mean()
    assert 0.02 < not_white < 0.6  # ink on the page, but not a solid fill
    # The confusion matrix's saturated blue is drawn somewhere on the page.
    blue = (rgb[:, 2] > 200) & (rgb[:, 0] < 120) & (rgb[:, 1] < 160)
    assert blue.sum() > 1000


def test_mistakes_show_the_summary_and_document_while_the_inputs_exist(tmp_path: Path) -> None:
    inputs = tmp_path / "pairs.jsonl"
    inputs.write_text(
        '{"id": "a", "premise": "The ferry runs hourly.", "hypothesis": "The ferry <runs> daily.", "target": 0}\n'
        '{"id": "b", "premise": "Rain in Leeds.", "hypothesis": "It rained in Leeds.", "target": 1}\n'
    )
    meta = {"fingerprint": {}, "config": {"inputs": [str(inputs)], "columns": {}}}
    run_dir = write_run(tmp_path / "run", [[result_row("a", 0, 1, 0.9), result_row("b", 1, 1, 0.8)]], meta)
    run = load_run(run_dir)

    def mistakes_section() -> str:  # the page up to the table of every row
        return render_html(run, summarize(run, PriceTable(), resamples=200)).split("<section id='bj-every-row'>")[0]

    page = mistakes_section()
    assert "The ferry &lt;runs&gt; daily." in page and "The ferry runs hourly." in page
    assert "It rained in Leeds." not in page  # judged right: not a mistake
    inputs.unlink()
    page = mistakes_section()
    assert "not readable here" in page and "The ferry runs hourly." not in page


_CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

_DRIVE = """
const $ = (id) => document.getElementById(id);
const pick = (id, value) => { $(id).value = value; $(id).dispatchEvent(new Event("change")); };
const search = (text) => { $("bj-q").value = text; $("bj-q").dispatchEvent(new Event("input")); };
const cells = (col) => [...document.querySelectorAll("#bj-body tr.bj-row td.bj-" + col)].map((td) => td.textContent);
const sortBy = (col) => document.querySelector("th[data-col=" + col + "]").click();
const seen = {};
const note = (name) => { seen[name] = {count: $("bj-count").textContent, ids: cells("row_id"), scores: cells("score"),
  right: cells("correct"), sort: document.querySelector("th[data-col=score]").getAttribute("aria-sort")}; };
const steps = [
  () => note("initial"),
  () => { pick("bj-outcome", "wrong"); note("wrong"); },
  () => { sortBy("score"); sortBy("score"); note("wrong_by_score_desc"); },
  () => { pick("bj-outcome", ""); pick("bj-status", "failed"); note("failed"); },
  () => { pick("bj-status", ""); search("summary 12"); },
  () => { note("search_summary"); search("document 7 about"); },
  () => { note("search_document"); document.querySelector("#bj-body tr.bj-row").click();
          seen.detail = document.querySelector("#bj-body tr.bj-detail").textContent; },
  () => { search(""); },
  () => { sortBy("row_id"); sortBy("row_id"); $("bj-next").click(); note("page_two_by_id_desc"); },
];
(function run(i) {
  if (i < steps.length) { steps[i](); setTimeout(() => run(i + 1), 400); return; }
  const out = document.createElement("pre"); out.id = "bj-test"; out.textContent = JSON.stringify(seen);
  document.body.appendChild(out);
})(0);
"""


def _in_chromium(page: str, script: str, tmp_path: Path, *extra: str) -> str:
    """Open ``page`` with ``script`` appended in headless Chromium; return its final DOM."""
    path = tmp_path / "driven.html"
    path.write_text(page.replace("</body>", f"<script>{script}</script></body>"), encoding="utf-8")
    done = subprocess.run(
        [*_CHROMIUM, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000", *extra,
         path.as_uri()],
        check=True, capture_output=True, timeout=120, text=True,
    )  # fmt: skip
    return done.stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_in_chromium_the_table_of_every_row_filters_sorts_searches_pages_and_opens_rows(tmp_path: Path) -> None:
    run = load_run(_pairs_run(tmp_path))
    page = render_html(run, summarize(run, PriceTable(), resamples=200))
    dom = _in_chromium(page, _DRIVE, tmp_path, "--dump-dom")
    match = re.search(r'<pre id="bj-test">(.*?)</pre>', dom, re.S)
    assert match is not None, dom[-2000:]
    seen = json.loads(html.unescape(match.group(1)))
    results = run.results
    wrong = results.filter((pl.col("status") == "ok") & (pl.col("verdict") != pl.col("target")))

    assert seen["initial"]["count"] == "301 of 301 rows · showing 1–50"
    assert seen["initial"]["ids"][:3] == ["row-000", "row-001", "row-002"] and len(seen["initial"]["ids"]) == 50
    assert seen["wrong"]["count"].startswith(f"{wrong.height} of 301 rows")
    assert set(seen["wrong"]["right"]) == {"✗"}
    by_score = seen["wrong_by_score_desc"]
    assert by_score["sort"] == "descending" and by_score["ids"][0] == wrong.sort("score", descending=True)["row_id"][0]
    scores = [float(s) for s in by_score["scores"]]
    assert scores == sorted(scores, reverse=True) and set(by_score["right"]) == {"✗"}
    assert seen["failed"]["ids"] == ["row-999"]
    # The sort by score stays on while filtering: compare the sets of rows found.
    assert sorted(seen["search_summary"]["ids"]) == ["row-012", *(f"row-{i}" for i in range(120, 130))]
    assert sorted(seen["search_document"]["ids"]) == ["row-021", "row-022", "row-023"]  # in the document
    assert "Document 7 about </script> & ferries." in seen["detail"]
    assert seen["page_two_by_id_desc"]["count"] == "301 of 301 rows · showing 51–100"
    assert seen["page_two_by_id_desc"]["ids"][0] == "row-250"  # row-999, then row-299 down to row-251 on page one


_SHOW_TABLE = """
for (const el of [...document.body.children]) { if (el.id !== "bj-every-row") el.style.display = "none"; }
const pick = (id, value) => { const el = document.getElementById(id); el.value = value; el.dispatchEvent(new Event("change")); };
pick("bj-outcome", "wrong"); pick("bj-size", "25");
document.querySelector("th[data-col=score]").click(); document.querySelector("th[data-col=score]").click();
document.querySelector("#bj-body tr.bj-row").click();
"""


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_in_chromium_the_filtered_sorted_table_is_drawn(tmp_path: Path) -> None:
    run = load_run(_pairs_run(tmp_path))
    page = render_html(run, summarize(run, PriceTable(), resamples=200))
    shot = tmp_path / "table.png"
    _in_chromium(page, _SHOW_TABLE, tmp_path, f"--screenshot={shot}", "--window-size=1200,900")
    pixels = _png_pixels(shot.read_bytes())
    rgb = pixels[..., :3].reshape(-1, 3)
    not_white = np.any(rgb < 245, axis=1).mean()
    assert 0.03 < not_white < 0.5  # rows of text, not a blank or solid page
    # The red crosses of the wrong verdicts (#b91c1c) are drawn.
    red = (rgb[:, 0] > 150) & (rgb[:, 1] < 80) & (rgb[:, 2] < 80)
    assert red.sum() > 50
