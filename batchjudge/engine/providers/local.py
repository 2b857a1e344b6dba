"""The ``local`` provider: the embedded judge of :mod:`batchjudge.localjudge`, in process.

No key, no network, deterministic. It reads the row's premise and hypothesis directly (not
the rendered prompt) and answers in the JSON shape the prompt presets ask a model for, so
the reply goes through the same parser as a real model's::

    {"consistency": 1, "score": 0.93, "reason": "all facts found in the document"}

A judgement costs a fraction of a millisecond of CPU, so it runs on the event loop itself.
"""

from __future__ import annotations

import orjson

from batchjudge.core.types import JudgeReply, JudgeRequest, ProviderBase
from batchjudge.localjudge import DEFAULT_MODEL, LocalJudge

__all__ = ["LocalProvider"]

_CHARS_PER_TOKEN = 4
"""Completion tokens are estimated as characters / 4 (Mistral tokenizers average ~4)."""


class LocalProvider(ProviderBase):
    """Judges rows with a :class:`~batchjudge.localjudge.LocalJudge` loaded by model name."""

    name = "local"

    def __init__(self, model: str = DEFAULT_MODEL) -> None:
        self.model = model
        self.classifier = LocalJudge.load(model)

    async def judge(self, request: JudgeRequest) -> JudgeReply:
        """Score ``request.hypothesis`` against ``request.premise``."""
        judgement = self.classifier.predict(request.premise, request.hypothesis)
        text = orjson.dumps(
            {
                "consistency": judgement.verdict,
                "score": round(judgement.score, 6),
                "reason": judgement.reason,
            }
        ).decode()
        return JudgeReply(
            text=text,
            prompt_tokens=request.prompt_tokens,
            completion_tokens=max(1, len(text) // _CHARS_PER_TOKEN),
            model=self.model,
        )
