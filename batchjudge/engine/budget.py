"""A run's allowance of tokens or money (``--max-total-tokens``, ``--max-cost``).

Before each call the judge asks the budget to admit what the call is expected to use (its
prompt tokens plus the expected completion); once what was used plus what is in flight would
pass the allowance, no new call starts. Calls already in flight finish and their rows are
written, so the run stops cleanly, and the same command with a larger allowance goes on where
it stopped. The allowance covers the whole run directory: tokens used by earlier sessions
count (the organization's monthly token limit is a real wall, and so is a bill).

Costs are computed from per-token prices resolved by the caller (the engine knows no price
table); a run without a cost allowance needs none.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchjudge.errors import BatchJudgeError

__all__ = ["Budget", "BudgetReachedError", "TokenPrices"]


class BudgetReachedError(BatchJudgeError):
    """The run's allowance is used: nothing more is sent; a larger allowance resumes it."""


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """US dollars per token, prompt and completion."""

    prompt: float
    completion: float

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        return prompt_tokens * self.prompt + completion_tokens * self.completion


class Budget:
    """Admits calls while the run stays within ``max_tokens`` and ``max_cost``."""

    def __init__(
        self,
        *,
        max_tokens: int | None = None,
        max_cost: float | None = None,
        prices: TokenPrices | None = None,
        used_prompt: int = 0,
        used_completion: int = 0,
    ) -> None:
        if max_cost is not None and prices is None:
            raise ValueError("a cost allowance needs prices")
        self.max_tokens = max_tokens
        self.max_cost = max_cost
        self.prices = prices
        self.used_prompt = float(used_prompt)
        self.used_completion = float(used_completion)
        self._held_prompt = 0.0
        self._held_completion = 0.0
        self.reached: str | None = None
        """Why the budget stopped admitting calls (None while it admits)."""

    @property
    def limited(self) -> bool:
        """Whether there is any allowance to enforce."""
        return self.max_tokens is not None or self.max_cost is not None

    def _over(self, prompt: float, completion: float) -> str | None:
        if self.max_tokens is not None and prompt + completion > self.max_tokens:
            return f"the run's token allowance (--max-total-tokens {self.max_tokens:,}) is used"
        if self.max_cost is not None and self.prices is not None:
            cost = self.prices.cost(prompt, completion)
            if cost > self.max_cost:
                return f"the run's allowance (--max-cost {self.max_cost:g} USD) is used"
        return None

    def admit(self, prompt: float, completion: float) -> bool:
        """Hold ``prompt`` + ``completion`` expected tokens for one call, if the allowance has
        room for them beside what was used and what is held; False (and ``reached``) if not."""
        if self.reached is not None:
            return False
        total_prompt = self.used_prompt + self._held_prompt + prompt
        total_completion = self.used_completion + self._held_completion + completion
        reason = self._over(total_prompt, total_completion)
        if reason is not None:
            self.reached = reason
            return False
        self._held_prompt += prompt
        self._held_completion += completion
        return True

    def settle(self, held_prompt: float, held_completion: float, prompt: int, completion: int) -> None:
        """Replace a call's held tokens with what it really used (0 when it got no reply)."""
        self._held_prompt -= held_prompt
        self._held_completion -= held_completion
        self.used_prompt += prompt
        self.used_completion += completion

    def error(self) -> BudgetReachedError:
        """The error that ends the run once the allowance is used."""
        spent = f"{self.used_prompt + self.used_completion:,.0f} tokens"
        if self.prices is not None:
            spent += f", {self.prices.cost(self.used_prompt, self.used_completion):.4f} USD"
        return BudgetReachedError(
            f"{self.reached} ({spent} so far); run the same command with a larger allowance to go on"
        )
