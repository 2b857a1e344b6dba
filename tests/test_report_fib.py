"""End to end on the cookbook's FIB validation split: the local judge's run, then its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batchjudge.cli import app

FIB_VAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cookbook" / "fib-val.jsonl"


def test_the_local_judges_report_on_fib_val_is_complete_and_beats_chance(tmp_path: Path) -> None:
    if not FIB_VAL.exists():
        pytest.skip("../shared/data/cookbook/fib-val.jsonl is not present")
    run_dir = tmp_path / "fib-val"
    run = CliRunner().invoke(app, ["run", str(FIB_VAL), "--out", str(run_dir), "--provider", "local"])
    assert run.exit_code == 0, run.output
    result = CliRunner().invoke(app, ["report", str(run_dir), "--json", "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # --json prints one object, nothing else
    assert (report["n_rows"], report["n_labelled"], report["n_failed"]) == (180, 180, 0)
    assert report["confusion_matrix"]["matrix"][0][0] + report["confusion_matrix"]["matrix"][0][1] == 90
    assert report["roc_auc"] > 0.5  # the offline judge ranks better than a coin
    assert report["cost_usd"] == 0.0  # the local judge costs nothing
    assert "Most confident mistakes" in (tmp_path / "r.html").read_text(encoding="utf-8")
