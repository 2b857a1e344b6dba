"""A CI-sized run of ``benchmarks/cookbook.py``'s offline loop: baseline, fine-tune, evaluate,
fine-tune on two sources, evaluate, compare — through the emulator and through the local judge."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import anyio
import pytest
from emulator_fixtures import TEST_KEY, StartEmulator, emulator  # noqa: F401  (fixture)
from ft_fixtures import labelled_parquet

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cookbook.py"


def _cookbook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cookbook_benchmark", _SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def small_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    monkeypatch.setenv("BATCHJUDGE_HOME", str(tmp_path / "home"))
    return (labelled_parquet(tmp_path / "fib-train.parquet", 48, seed=41),
            labelled_parquet(tmp_path / "fib-val.parquet", 32, seed=42),
            labelled_parquet(tmp_path / "usb-train.parquet", 32, seed=43))


def test_the_offline_loop_on_the_emulator_fine_tunes_twice_and_compares_every_judge(
    small_data: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    cookbook = _cookbook()
    result = anyio.run(lambda: cookbook.cookbook_flow(*small_data, tmp_path / "work", backend="emulator"))
    names = [j["name"] for j in result["judges"]]
    assert names == ["zero-shot-emulator", "zero-shot-local", "ft-fib-emulator", "ft-fib-local",
                     "ft-fib-usb-emulator", "ft-fib-usb-local"]
    runs = result["comparison"]["runs"]
    assert all(r["n_scored"] == 32 for r in runs)
    by_name = dict(zip(names, runs, strict=True))
    for label in ("zero-shot", "ft-fib", "ft-fib-usb"):  # the same judge served two ways agrees
        assert by_name[f"{label}-emulator"]["accuracy"] == by_name[f"{label}-local"]["accuracy"]
        assert by_name[f"{label}-emulator"]["roc_auc"] is None and by_name[f"{label}-local"]["roc_auc"] is not None
    assert [t["candidate"] for t in result["comparison"]["tests"]] == names[1:]
    assert all(0.0 <= t["p_value"] <= 1.0 for t in result["comparison"]["tests"])
    fine_tuned = [j["model"] for j in result["judges"] if j["prompt"] == "ft"]
    assert len(set(fine_tuned)) == 2 and all(m.startswith("ft:open-mistral-7b:fib") for m in fine_tuned)
    table = cookbook.markdown_table(result)
    assert table.count("\n") == len(names) + 1 and "(baseline)" in table


def test_the_offline_loop_on_the_local_launcher_needs_no_server(small_data: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cookbook = _cookbook()
    result = anyio.run(lambda: cookbook.cookbook_flow(*small_data, tmp_path / "work", backend="local", eval_rows=20))
    assert [j["name"] for j in result["judges"]] == ["zero-shot", "ft-fib", "ft-fib-usb"]
    assert all(j["provider"] == "local" for j in result["judges"])
    assert all(r["n_scored"] == 20 for r in result["comparison"]["runs"])
    # FIB and USB go in as two training files (two sources in equal shares), each measured
    assert any("fib-usb: fib-train.parquet: 48 examples" in note for note in result["notes"])
    assert any("fib-usb: usb-train.parquet: 32 examples" in note for note in result["notes"])
    assert any(note.startswith("fib-usb: held out") for note in result["notes"])


def test_against_an_api_whose_fine_tuning_is_gone_the_loop_records_the_refusal_and_keeps_the_baselines(
    small_data: tuple[Path, Path, Path], tmp_path: Path, emulator: StartEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", TEST_KEY)
    server = emulator(ft_gone=True)
    cookbook = _cookbook()
    result = anyio.run(lambda: cookbook.cookbook_flow(*small_data, tmp_path / "work", backend="api",
                                                      base_url=server.url, eval_rows=10))
    assert [(j["name"], j["model"]) for j in result["judges"]] == [
        ("zero-shot-7b", "open-mistral-7b"), ("zero-shot-large", "mistral-large-latest")]
    refusals = [n for n in result["notes"] if "fine-tuning refused" in n]
    assert len(refusals) == 2 and all("410 Gone" in n for n in refusals)
    assert len(result["comparison"]["tests"]) == 1
