"""The embedded local judge: a small, trainable, deterministic hallucination classifier.

It needs no key and no network. It reads a summary against its document (unsupported
numbers, names and content words, negations, n-gram overlap, sentence alignment), combines
those features with a calibrated logistic model into ``score`` = P(consistent), and says in
a short ``reason`` what looked unsupported::

    from batchjudge.localjudge import LocalJudge
    judge = LocalJudge.load()                   # the shipped default weights
    judge.predict(document, summary)            # Judgement(verdict=0, score=0.07, reason=...)

Train your own with :func:`train` (from scratch, or fine-tuned from a ``prior`` judge with a
penalty toward its weights), keep it with :func:`register`, and use it by name
(``LocalJudge.load("ft:local-judge:fib:abc123")``, ``--provider local --model ...``).
"""

from batchjudge.localjudge._features import FEATURE_NAMES, FEATURE_SIGNS
from batchjudge.localjudge._judge import Judgement, LocalJudge, register
from batchjudge.localjudge._registry import DEFAULT_MODEL, list_models, models_dir
from batchjudge.localjudge._train import log_loss, recalibrate, train

__all__ = [
    "DEFAULT_MODEL",
    "FEATURE_NAMES",
    "FEATURE_SIGNS",
    "Judgement",
    "LocalJudge",
    "list_models",
    "log_loss",
    "models_dir",
    "recalibrate",
    "register",
    "train",
]

