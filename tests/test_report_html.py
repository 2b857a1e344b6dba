"""The HTML report: one self-contained page, and what headless Chromium actually draws."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
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
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"] * page.count("<svg")
    assert "&lt;b&gt;claim" in page and "<b>claim" not in page
    for section in ("Confusion matrix", "ROC", "Precision–recall", "Latency", "Calibration",
                    "Most confident mistakes"):
        assert section in page
    assert page.count("<polyline") == 4  # ROC, two PR curves, calibration


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
    page = render_html(run, summarize(run, PriceTable(), resamples=200))
    assert "The ferry &lt;runs&gt; daily." in page and "The ferry runs hourly." in page
    assert "It rained in Leeds." not in page  # judged right: not a mistake
    inputs.unlink()
    page = render_html(run, summarize(run, PriceTable(), resamples=200))
    assert "not readable here" in page and "The ferry runs hourly." not in page
