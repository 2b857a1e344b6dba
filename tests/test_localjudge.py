"""Specification of the embedded local judge (``batchjudge.localjudge``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from batchjudge.datasets.synth import synth_batches
from batchjudge.errors import ConfigError, InputError
from batchjudge.localjudge import (
    DEFAULT_MODEL,
    FEATURE_NAMES,
    FEATURE_SIGNS,
    Judgement,
    LocalJudge,
    list_models,
    models_dir,
    register,
    train,
)
from batchjudge.localjudge._features import extract
from batchjudge.localjudge._train import log_loss
from batchjudge.core.metrics import roc_auc

DOC = (
    "Greyfield Foods said on 14 March that it would cut 47 jobs at its factory in Leeds, "
    "a decision confirmed by Maria Keller, the firm's chief executive. "
    "The union representing workers at the site said it was seeking urgent talks.\n"
    "Separately, Atlas Rail opened a new depot in Bristol, creating 120 jobs."
)
FAITHFUL = "Greyfield Foods is to cut 47 jobs in Leeds."


def _feature(premise: str, hypothesis: str, name: str) -> float:
    return extract(premise, hypothesis)[0][FEATURE_NAMES.index(name)]


def _rows(rows: int, start: int = 0) -> tuple[list[str], list[str], list[int]]:
    table = pa.Table.from_batches(list(synth_batches(rows, seed=3, start=start)))
    return (
        table.column("premise").to_pylist(),
        table.column("hypothesis").to_pylist(),
        table.column("target").to_pylist(),
    )


@pytest.fixture(scope="module")
def judge() -> LocalJudge:
    return LocalJudge.load()


@pytest.fixture(scope="module")
def trained() -> LocalJudge:
    premises, hypotheses, targets = _rows(3000)
    return train(premises, hypotheses, targets, name="synth-3k", seed=1)


# ---------------------------------------------------------------- features and reasons
def test_a_faithful_compression_is_consistent_with_all_facts_found(judge: LocalJudge) -> None:
    result = judge.predict(DOC, FAITHFUL)
    assert result == Judgement(1, result.score, "all facts found in the document")
    assert result.score > 0.5


def test_an_unsupported_number_lowers_the_score_and_is_named(judge: LocalJudge) -> None:
    changed = judge.predict(DOC, "Greyfield Foods is to cut 74 jobs in Leeds.")
    assert changed.score < judge.predict(DOC, FAITHFUL).score
    assert changed.verdict == 0
    assert 'unsupported number "74"' in changed.reason


def test_an_unsupported_name_is_named_in_the_reason(judge: LocalJudge) -> None:
    changed = judge.predict(DOC, "Greyfield Foods is to cut 47 jobs in Paris.")
    assert changed.verdict == 0
    assert 'unsupported name "Paris"' in changed.reason


def test_an_unsupported_multi_word_name_is_named_whole(judge: LocalJudge) -> None:
    result = judge.predict(DOC, "Maria Brennan said Greyfield Foods would cut 47 jobs.")
    assert 'unsupported name "Maria Brennan"' in result.reason


def test_a_negation_the_document_does_not_make_lowers_the_score(judge: LocalJudge) -> None:
    negated = judge.predict(DOC, "Greyfield Foods will not cut jobs in Leeds.")
    assert negated.score < judge.predict(DOC, FAITHFUL).score
    assert 'negation "not"' in negated.reason
    assert _feature(DOC, "Greyfield Foods will not cut jobs in Leeds.", "negation_mismatch") == 1


def test_facts_swapped_between_sentences_break_the_alignment() -> None:
    swapped = "Greyfield Foods is to cut 47 jobs in Bristol."
    assert _feature(DOC, FAITHFUL, "key_alignment") == 1.0
    assert _feature(DOC, swapped, "key_alignment") < 1.0
    assert _feature(DOC, swapped, "unsupported_names") == 0  # every name is in the document


READ_DOC = (
    "Greyfield Foods said on Monday that it would cut 47 jobs at its factory in Leeds. "
    "Maria Keller, the firm's chief executive, said she regretted the decision.\n"
    "Separately, Atlas Rail opened a new depot in Bristol on Friday, creating 120 jobs. "
    "Its manager, Tom Hughes, said he was delighted with the site."
)


@pytest.mark.parametrize(
    ("faithful", "swapped", "feature"),
    [
        ("Greyfield Foods will cut 47 jobs at its factory.", "Greyfield Foods will cut 120 jobs at its factory.",
         "contradicted_facts"),
        ("Atlas Rail opened a depot on Friday.", "Atlas Rail opened a depot on Monday.", "contradicted_facts"),
        ("Greyfield Foods will cut jobs at its factory in Leeds.",
         "Greyfield Foods will cut jobs at its factory in Bristol.", "misplaced_facts"),
        ("Maria Keller said she regretted the job cuts.", "Maria Keller said he regretted the job cuts.",
         "contradicted_facts"),
    ],
)  # fmt: skip
def test_a_fact_swapped_in_from_elsewhere_in_the_document_is_seen(faithful: str, swapped: str, feature: str) -> None:
    for name in ("unsupported_numbers", "unsupported_names"):
        assert _feature(READ_DOC, swapped, name) == 0  # every word of the swap is in the document
    assert _feature(READ_DOC, faithful, feature) == 0 < _feature(READ_DOC, swapped, feature)
    assert _feature(READ_DOC, swapped, "fact_support") <= _feature(READ_DOC, faithful, "fact_support")


def test_a_name_number_or_date_from_elsewhere_has_less_support_than_the_one_in_place() -> None:
    for faithful, swapped in (("cut 47 jobs at its factory", "cut 120 jobs at its factory"),
                              ("opened a depot on Friday", "opened a depot on Monday"),
                              ("cut jobs at its factory in Leeds", "cut jobs at its factory in Bristol")):  # fmt: skip
        assert _feature(READ_DOC, swapped, "fact_support") < _feature(READ_DOC, faithful, "fact_support") == 1.0


def test_the_reason_names_the_contradicted_fact_and_what_the_document_says(judge: LocalJudge) -> None:
    result = judge.predict(READ_DOC, "Greyfield Foods will cut 120 jobs at its factory.")
    assert '"120" where the document says "47"' in result.reason
    assert result.score < judge.predict(READ_DOC, "Greyfield Foods will cut 47 jobs at its factory.").score


def test_a_negation_counts_only_for_the_words_it_negates() -> None:
    doc = "The firm has not cut any jobs. It opened a new depot in Bristol."
    assert _feature(doc, "The firm opened a new depot in Bristol.", "negation_mismatch") == 0
    assert _feature(doc, "The firm has not opened a new depot in Bristol.", "negation_mismatch") == 1
    assert _feature(doc, "The firm has cut jobs.", "negation_mismatch") == 1
    assert _feature(doc, "The firm did not cut jobs.", "negation_mismatch") == 0


def test_a_nationality_is_supported_by_its_country() -> None:
    doc = "A court in Japan ruled that two reactors can restart."
    assert _feature(doc, "A Japanese court ruled that two reactors can restart.", "unsupported_names") == 0
    assert _feature(doc, "A Korean court ruled that two reactors can restart.", "unsupported_names") == 1


def test_a_nationality_the_document_says_nothing_against_is_background_not_an_invention() -> None:
    doc = "A court in Cardiff fined the firm £260,000 over safety failures."
    summary = "A court in the Welsh city of Cardiff fined the firm £260,000."
    assert _feature(doc, summary, "unsupported_names") == 0
    assert _feature(doc, summary.replace("Cardiff", "Swansea"), "unsupported_names") == 1


@pytest.mark.parametrize(
    ("written", "summarised"),
    [("Tiverton", "Tiveton"), ("Crown Estates", "Crown Estate"), ("Germany", "German")],
)
def test_a_near_spelling_of_a_name_the_document_writes_is_not_unsupported(written: str, summarised: str) -> None:
    doc = f"Police said the van hit two men near {written} on Monday. Both were taken to hospital."
    summary = f"Two men were hurt near {summarised}."
    assert _feature(doc, summary, "unsupported_names") == 0
    assert _feature(doc, "Two men were hurt near Bideford.", "unsupported_names") == 1


def test_a_name_the_document_writes_only_at_sentence_starts_still_aligns() -> None:
    doc = "Lucas won seven of the last nine races. She is the only confirmed member of the team."
    summary = "Britain's Lucas finished the series with a win."
    assert _feature(doc, summary, "window_alignment") == 1.0
    assert _feature(doc, summary, "key_alignment") == 1.0
    assert _feature(doc, "Britain's Jones finished the series with a win.", "window_alignment") < 1.0


def test_found_terms_count_what_the_document_holds_and_only_that() -> None:
    short = _feature(DOC, "Greyfield Foods is to cut jobs.", "found_terms")
    longer = _feature(DOC, FAITHFUL, "found_terms")
    padded = _feature(DOC, "Greyfield Foods is to cut jobs in marvellous glittering towers.", "found_terms")
    assert longer > short == padded > 0


def test_a_number_with_its_unit_written_on_is_read_as_a_fact() -> None:
    doc = ("A campaign raised £1.7m for the painting. It was completed in 1602. The artist trained in Antwerp. "
           "The memorial fund then paid the final £1m to save it.")
    faithful, swapped = "A fund paid £1m to save the painting.", "A fund paid £1.7m to save the painting."
    assert extract(doc, swapped)[1].contradicted == [("1.7", "1")]
    assert _feature(doc, faithful, "fact_support") > _feature(doc, swapped, "fact_support")


def test_ngram_precision_falls_with_words_the_document_lacks() -> None:
    copied = "it would cut 47 jobs at its factory in Leeds"
    invented = "it would hire 47 chefs for its bakery in Leeds"
    for name in ("bigram_precision", "trigram_precision"):
        assert _feature(DOC, copied, name) == 1.0 > _feature(DOC, invented, name)
    novelty = "unsupported_content"
    assert _feature(DOC, invented, novelty) > _feature(DOC, copied, novelty)


def test_numbers_with_separators_match_their_plain_form() -> None:
    doc = "The council spent £1,250,000 on the bridge."
    assert _feature(doc, "The bridge cost £1250000.", "unsupported_numbers") == 0
    assert _feature(doc, "The bridge cost £1,350,000.", "unsupported_numbers") == 1


def test_a_compound_number_word_is_one_number() -> None:
    doc = "Police said 65 people were arrested after the match in Leeds. Twenty-one were charged."
    for summary in ("Sixty-five people were arrested in Leeds.", "Police charged twenty one people."):
        assert _feature(doc, summary, "window_alignment") == 1.0
    assert _feature(doc, "Sixty-four people were arrested in Leeds.", "window_alignment") < 1.0


@pytest.mark.parametrize(
    ("premise", "hypothesis", "side"), [("", "x", "premise"), (DOC, " ", "hypothesis")]
)
def test_a_blank_premise_or_hypothesis_is_an_input_error(
    judge: LocalJudge, premise: str, hypothesis: str, side: str
) -> None:
    with pytest.raises(InputError, match=f"non-empty {side}"):
        judge.predict(premise, hypothesis)


def test_predict_many_equals_predicting_one_by_one_with_interleaved_documents(
    judge: LocalJudge,
) -> None:
    premises, hypotheses, _ = _rows(400)
    pairs = list(zip(premises, hypotheses, strict=True))
    shuffled = [pairs[i] for i in np.random.default_rng(0).permutation(len(pairs))]
    one_by_one = [judge.predict(p, h) for p, h in shuffled]
    assert judge.predict_many(shuffled) == one_by_one
    assert judge.predict_many(pairs) == [judge.predict(p, h) for p, h in pairs]


def test_judgements_are_identical_across_processes_and_hash_seeds() -> None:
    premises, hypotheses, _ = _rows(600)  # enough rows for reasons naming several misplaced facts
    pairs = json.dumps(list(zip(premises, hypotheses, strict=True)))
    script = (
        "import json, sys\n"
        "from batchjudge.localjudge import LocalJudge\n"
        "pairs = json.loads(sys.stdin.read())\n"
        "judgements = LocalJudge.load().predict_many(pairs)\n"
        "print(json.dumps([(j.verdict, repr(j.score), j.reason) for j in judgements]))\n"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script],
            input=pairs,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    ]
    assert outputs[0] == outputs[1]


# ---------------------------------------------------------------- training
def test_training_beats_the_constant_prior_on_unseen_documents(trained: LocalJudge) -> None:
    premises, hypotheses, targets = _rows(2000, start=100_000)
    y = np.array(targets, dtype=float)
    judged = trained.predict_many(zip(premises, hypotheses, strict=True))
    scores = np.array([j.score for j in judged])
    assert log_loss(y, scores) < 0.5 * log_loss(y, np.full(len(y), y.mean()))
    assert roc_auc(y, scores) > 0.9
    held = trained.provenance["heldout"]
    assert held["calibrated"]["log_loss"] < held["baseline_log_loss"]


def test_scores_are_calibrated_on_unseen_documents(trained: LocalJudge) -> None:
    premises, hypotheses, targets = _rows(4000, start=200_000)
    y = np.array(targets, dtype=float)
    judged = trained.predict_many(zip(premises, hypotheses, strict=True))
    scores = np.array([j.score for j in judged])
    assert abs(scores.mean() - y.mean()) < 0.05
    for lo, hi in ((0.0, 0.2), (0.8, 1.0)):  # confident bins hold what they claim
        in_bin = (scores >= lo) & (scores < hi + 1e-9)
        assert in_bin.sum() > 100
        assert abs(y[in_bin].mean() - scores[in_bin].mean()) < 0.1


def test_trained_evidence_only_counts_the_way_it_means(trained: LocalJudge) -> None:
    for name, sign, coef in zip(FEATURE_NAMES, FEATURE_SIGNS, trained.coef, strict=True):
        assert coef * sign >= 0, name


def test_a_few_separable_held_out_rows_cannot_make_the_judge_certain() -> None:
    premises = [f"The firm cut {n} jobs in Leeds on Monday." for n in range(10, 50)]
    numbers = [n if i % 2 else n + 500 for i, n in enumerate(range(10, 50))]
    hypotheses = [f"The firm cut {n} jobs in Leeds." for n in numbers]
    judge = train(premises, hypotheses, [i % 2 for i in range(40)], name="separable")
    values = [*judge.coef, judge.intercept, *judge.calibration]
    assert all(np.isfinite(values))
    scores = [j.score for j in judge.predict_many(zip(premises, hypotheses, strict=True))]
    assert all(0.001 < score < 0.999 for score in scores)  # 8 held-out rows prove little
    assert scores[1] > 0.5 > scores[0]


def test_fine_tuning_from_a_prior_keeps_the_weights_its_data_says_nothing_about(trained: LocalJudge) -> None:
    premises, hypotheses, targets = _rows(600, start=300_000)
    negations = [FEATURE_NAMES.index(n) for n in ("unsupported_negations", "negation_mismatch")]
    kept = [i for i, (p, h) in enumerate(zip(premises, hypotheses, strict=True))
            if not any(extract(p, h)[0][k] for k in negations)]  # rows that say nothing of negation
    rows = ([premises[i] for i in kept], [hypotheses[i] for i in kept], [targets[i] for i in kept])
    assert len(kept) > 300
    refit = train(*rows, name="scratch")
    tuned = train(*rows, name="tuned", prior=trained)
    negation = FEATURE_NAMES.index("negation_mismatch")
    a = trained.calibration[0]
    assert refit.coef[negation] == 0.0  # a refit from zero has nothing to learn it from
    assert tuned.coef[negation] == pytest.approx(a * trained.coef[negation], rel=0.05) != 0.0
    assert tuned.provenance["prior"] == "synth-3k" and tuned.mean == trained.mean


def test_source_weights_give_each_source_its_share_however_many_rows_it_has() -> None:
    from batchjudge.localjudge._train import row_weights

    weights = row_weights(["fib"] * 2 + ["usb"] * 8)
    assert weights.tolist() == [2.5, 2.5] + [0.625] * 8  # each source half of the total, mean 1
    shared = row_weights(["fib"] * 2 + ["usb"] * 8, {"fib": 3.0, "usb": 1.0})
    assert shared[:2].sum() == pytest.approx(3 * shared[2:].sum())
    with pytest.raises(InputError, match="source weights"):
        row_weights(["fib"], {"fib": 0.0})


def test_recalibration_rescales_confidence_without_changing_any_verdict(trained: LocalJudge) -> None:
    from batchjudge.localjudge import recalibrate

    premises, hypotheses, targets = _rows(200, start=400_000)
    flipped = [t if i % 4 else 1 - t for i, t in enumerate(targets)]  # a noisier domain than training
    softer = recalibrate(trained, premises, hypotheses, flipped, data="noisy")
    before = trained.predict_many(zip(premises, hypotheses, strict=True))
    after = softer.predict_many(zip(premises, hypotheses, strict=True))
    assert [j.verdict for j in before] == [j.verdict for j in after]
    assert all(abs(b.score - 0.5) >= abs(x.score - 0.5) for b, x in zip(before, after, strict=True))
    calibration = softer.provenance["calibration"]
    assert 0 < calibration["temperature"] < 1 and calibration["log_loss_after"] < calibration["log_loss_before"]


def test_a_conservative_recalibration_takes_a_temperature_the_data_cannot_rule_out(trained: LocalJudge) -> None:
    from batchjudge.localjudge import recalibrate

    premises, hypotheses, targets = _rows(200, start=400_000)
    flipped = [t if i % 4 else 1 - t for i, t in enumerate(targets)]
    fitted = recalibrate(trained, premises, hypotheses, flipped)
    bounded = recalibrate(trained, premises, hypotheses, flipped, confidence=0.95)
    calibration = bounded.provenance["calibration"]
    assert calibration["temperature"] < calibration["fitted_temperature"] == fitted.provenance["calibration"]["temperature"]
    assert bounded.to_dict() == recalibrate(trained, premises, hypotheses, flipped, confidence=0.95).to_dict()
    before = [j.verdict for j in fitted.predict_many(zip(premises, hypotheses, strict=True))]
    assert before == [j.verdict for j in bounded.predict_many(zip(premises, hypotheses, strict=True))]
    with pytest.raises(InputError, match="confidence"):
        recalibrate(trained, premises, hypotheses, flipped, confidence=1.0)


def test_balanced_classes_weigh_the_same_whatever_the_mix() -> None:
    from batchjudge.localjudge._train import balanced

    y = np.array([1.0, 0.0, 0.0, 0.0])
    weights = balanced(y, np.array([1.0, 1.0, 2.0, 1.0]))
    assert weights[y == 1].sum() == pytest.approx(weights[y == 0].sum()) == pytest.approx(2.5)
    premises, hypotheses, targets = _rows(600, start=500_000)
    keep = [i for i, t in enumerate(targets) if t == 0 or i % 3 == 0]  # a quarter consistent
    rows = ([premises[i] for i in keep], [hypotheses[i] for i in keep], [targets[i] for i in keep])
    skewed = train(*rows, name="skewed")
    even = train(*rows, name="even", balance=True)
    assert even.provenance["balanced_classes"] is True
    mean_score = {j.name: np.mean([r.score for r in j.predict_many(zip(rows[0], rows[1], strict=True))]) for j in (skewed, even)}
    assert mean_score["skewed"] < mean_score["even"]


def test_every_source_moves_a_fine_tune_as_far_as_its_share_says(trained: LocalJudge) -> None:
    premises, hypotheses, targets = _rows(600, start=600_000)
    half = len(targets) // 2
    noisy = [1 - t for t in targets[half:]]  # a second source that says the opposite
    rows = (premises, hypotheses, targets[:half] + noisy)
    sources = ["main"] * half + ["aux"] * (len(targets) - half)

    def agreement_with_aux(share: float) -> float:
        judge = train(*rows, name=f"aux-{share}", prior=trained, sources=sources, source_weights={"main": 1.0, "aux": share})
        found = judge.predict_many(zip(premises[half:], hypotheses[half:], strict=True))
        return float(np.mean([j.verdict == t for j, t in zip(found, noisy, strict=True)]))

    assert agreement_with_aux(0.1) < agreement_with_aux(1.0) < agreement_with_aux(10.0)


def test_a_fine_tune_chooses_its_priors_strength_and_threshold_on_rows_each_fit_did_not_see(trained: LocalJudge) -> None:
    from batchjudge.localjudge._train import L2_PRIOR_GRID, PRIOR_FOLDS

    tuned = train(*_rows(400, start=700_000), name="tuned", prior=trained)
    searched = tuned.provenance["out_of_fold"]["l2"]
    assert list(searched) == [f"{v:g}" for v in L2_PRIOR_GRID] and tuned.provenance["folds"] == PRIOR_FOLDS
    assert tuned.provenance["l2"] == min(L2_PRIOR_GRID, key=lambda v: searched[f"{v:g}"]["log_loss"])
    assert tuned.calibration != (1.0, 0.0)  # Platt, fitted on the out-of-fold logits
    fixed = train(*_rows(400, start=700_000), name="fixed", prior=trained, l2=3.0)
    assert list(fixed.provenance["out_of_fold"]["l2"]) == ["3"] and fixed.provenance["l2"] == 3.0


def test_training_is_deterministic(trained: LocalJudge) -> None:
    premises, hypotheses, targets = _rows(3000)
    again = train(premises, hypotheses, targets, name="synth-3k", seed=1)
    assert again.to_dict() == trained.to_dict()


def test_training_records_its_provenance(trained: LocalJudge) -> None:
    provenance = trained.provenance
    assert provenance["rows"] == 3000 and provenance["seed"] == 1
    assert provenance["fit_rows"] + provenance["heldout_rows"] == 3000
    assert 0.1 < provenance["heldout_rows"] / 3000 < 0.3


@pytest.mark.parametrize(
    ("targets", "message"),
    [([1] * 40, "targets 0 and 1"), ([0, 1] * 5, "at least"), ([0, 2] * 20, "targets")],
)
def test_training_rejects_data_it_cannot_learn_from(targets: list[int], message: str) -> None:
    n = len(targets)
    with pytest.raises(InputError, match=message):
        train(["a document"] * n, ["a summary"] * n, targets, name="x")


def test_training_rejects_columns_of_different_lengths() -> None:
    with pytest.raises(InputError, match="same length"):
        train(["a"] * 30, ["b"] * 29, [0, 1] * 15, name="x")


# ---------------------------------------------------------------- persistence and registry
def test_save_and_load_round_trip_gives_identical_judgements(
    trained: LocalJudge, tmp_path: Path
) -> None:
    loaded = LocalJudge.load_file(trained.save(tmp_path / "judge.json"))
    assert loaded == trained
    premises, hypotheses, _ = _rows(50)
    pairs = list(zip(premises, hypotheses, strict=True))
    assert loaded.predict_many(pairs) == trained.predict_many(pairs)


def test_saving_where_no_file_can_be_written_is_a_config_error(
    trained: LocalJudge, tmp_path: Path
) -> None:
    (tmp_path / "judge.json").mkdir()  # in the way of the rename, even for root
    with pytest.raises(ConfigError, match="judge.json: cannot save"):
        trained.save(tmp_path / "judge.json")


def test_a_json_path_loads_as_a_model_name(trained: LocalJudge, tmp_path: Path) -> None:
    path = trained.save(tmp_path / "mine.json")
    assert LocalJudge.load(str(path)) == trained


def test_registered_models_load_by_name_from_batchjudge_home(
    trained: LocalJudge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHJUDGE_HOME", str(tmp_path))
    assert models_dir() == tmp_path / "models"
    named = LocalJudge.from_dict({**trained.to_dict(), "name": "ft:local-judge:fib:abc123"})
    path = register(named)
    assert path.parent == tmp_path / "models" and ":" not in path.name
    assert list_models() == [DEFAULT_MODEL, "ft:local-judge:fib:abc123"]
    assert LocalJudge.load("ft:local-judge:fib:abc123") == named


def test_model_names_cannot_escape_the_models_directory(
    trained: LocalJudge, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHJUDGE_HOME", str(tmp_path))
    path = register(LocalJudge.from_dict({**trained.to_dict(), "name": "../../evil/x"}))
    assert path.parent == tmp_path / "models"
    assert list_models()[-1] == "../../evil/x"


def test_the_shipped_name_cannot_be_registered(trained: LocalJudge) -> None:
    with pytest.raises(ConfigError, match="shipped"):
        register(LocalJudge.from_dict({**trained.to_dict(), "name": DEFAULT_MODEL}))


def test_an_unknown_model_is_a_config_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHJUDGE_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="'no-such-judge'.*known: local-judge"):
        LocalJudge.load("no-such-judge")


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ('{"format": "other"}', "not a local judge"),
     ('{"format": "batchjudge-local-judge/1"}', "malformed")],
)
def test_a_broken_weights_file_is_a_config_error_naming_it(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as error:
        LocalJudge.load_file(path)
    assert "broken.json" in str(error.value)


def test_weights_for_other_features_are_refused(trained: LocalJudge) -> None:
    data = trained.to_dict()
    data["features"] = [*FEATURE_NAMES[:-1], "something_else"]
    with pytest.raises(ConfigError, match="retrain"):
        LocalJudge.from_dict(data)


# ---------------------------------------------------------------- shipped weights
def test_the_shipped_weights_reproduce_from_the_build_script() -> None:
    from batchjudge.localjudge.build_default import WEIGHTS, build, same_weights

    assert same_weights(build().to_dict(), json.loads(WEIGHTS.read_text(encoding="utf-8")))


def test_weights_comparison_tolerates_only_last_bit_differences() -> None:
    from batchjudge.localjudge.build_default import same_weights

    weights = LocalJudge.load().to_dict()
    nudged = {**weights, "coef": [c * (1 + 1e-9) for c in weights["coef"]]}
    changed = {**weights, "coef": [c * 1.01 for c in weights["coef"]]}
    assert same_weights(weights, nudged)
    assert not same_weights(weights, changed)
    assert not same_weights(weights, {**weights, "name": "other"})


def test_the_shipped_weights_record_how_they_were_made(judge: LocalJudge) -> None:
    assert judge.name == DEFAULT_MODEL
    assert "synth" in judge.provenance["data"]
    assert judge.provenance["heldout"]["calibrated"]["roc_auc"] > 0.9


# ---------------------------------------------------------------- real data, when present
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cookbook"


def _jsonl(name: str) -> tuple[list[str], list[str], list[int]]:
    path = DATA / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return (
        [r["premise"] for r in rows],
        [r["hypothesis"] for r in rows],
        [r["target"] for r in rows],
    )


def test_on_fib_validation_both_the_default_and_a_fib_trained_judge_beat_chance(
    judge: LocalJudge,
) -> None:
    premises, hypotheses, targets = _jsonl("fib-val.jsonl")
    fib = train(*_jsonl("fib-train.jsonl"), name="ft:local-judge:fib")
    for model in (judge, fib):
        results = model.predict_many(zip(premises, hypotheses, strict=True))
        accuracy = np.mean([r.verdict == t for r, t in zip(results, targets, strict=True)])
        assert roc_auc(targets, [r.score for r in results]) > 0.6
        assert accuracy > 0.55
