"""The collector is tuned while a run works and put back after it (``engine/collector.py``)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from batchjudge import RunConfig, run
from batchjudge.datasets.synth import write_synth
from batchjudge.engine.collector import GEN0_THRESHOLD, collector_tuned


@pytest.fixture
def untuned():
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    yield before
    gc.set_threshold(*before)
    gc.unfreeze()


def test_nested_runs_tune_once_and_the_last_to_end_puts_the_thresholds_back(untuned):
    with collector_tuned():
        assert gc.get_threshold()[0] == max(untuned[0], GEN0_THRESHOLD) and gc.get_freeze_count() > 0
        with collector_tuned():
            pass
        assert gc.get_threshold()[0] == max(untuned[0], GEN0_THRESHOLD) and gc.get_freeze_count() > 0
    assert gc.get_threshold() == untuned and gc.get_freeze_count() == 0


def test_a_callers_own_higher_threshold_is_kept(untuned):
    gc.set_threshold(GEN0_THRESHOLD * 5, 7, 3)
    with collector_tuned():
        assert gc.get_threshold() == (GEN0_THRESHOLD * 5, 7, 3)
    assert gc.get_threshold() == (GEN0_THRESHOLD * 5, 7, 3)


def test_a_run_works_with_the_collector_tuned_and_puts_it_back_even_when_it_fails(untuned, tmp_path: Path):
    data = tmp_path / "data"
    write_synth(data, rows=300, shards=1, seed=1)
    during: list[tuple[int, int]] = []
    config = RunConfig(inputs=[data], out=tmp_path / "run", provider="local")
    result = run(config, progress=lambda _: during.append((gc.get_threshold()[0], gc.get_freeze_count())),
                 progress_interval=0.0)
    assert result.complete and during
    assert all(first >= GEN0_THRESHOLD and frozen > 0 for first, frozen in during)
    assert gc.get_threshold() == untuned and gc.get_freeze_count() == 0

    def fail(_: object) -> None:
        raise RuntimeError("a progress callback that fails")

    with pytest.raises(RuntimeError, match="a progress callback that fails"):
        run(RunConfig(inputs=[data], out=tmp_path / "again", provider="local"), progress=fail, progress_interval=0.0)
    assert gc.get_threshold() == untuned and gc.get_freeze_count() == 0


def test_a_run_ending_inside_an_in_process_emulators_life_leaves_the_emulators_heap_frozen(untuned, tmp_path: Path):
    from batchjudge.emulator import EmulatorServer

    data = tmp_path / "data"
    write_synth(data, rows=50, shards=1, seed=1)
    with EmulatorServer():
        run(RunConfig(inputs=[data], out=tmp_path / "run", provider="local"))
        assert gc.get_freeze_count() > 0 and gc.get_threshold() == untuned
    assert gc.get_freeze_count() == 0
