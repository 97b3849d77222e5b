"""Prompt rows: validation, tokenisation and a resumable, seeded order."""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedTokenizerBase


def validate_rows(rows: list[dict[str, Any]], prompt_field: str, *, what: str = "rows") -> None:
    """Fail before any model is loaded if a row lacks a usable prompt."""
    if not rows:
        raise ValueError(f"{what} is empty: at least one row with a {prompt_field!r} string is needed")
    for index, row in enumerate(rows):
        prompt = row.get(prompt_field)
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"{what}[{index}].{prompt_field} must be a non-empty string, got {prompt!r}")


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], max_prompt_tokens: int | None
) -> list[list[int]]:
    """Token ids of each prompt, keeping the last max_prompt_tokens (the end of a prompt is what the
    completion continues, so truncation drops the start)."""
    encoded: list[list[int]] = tokenizer(prompts)["input_ids"]
    if max_prompt_tokens is not None:
        encoded = [ids[-max_prompt_tokens:] for ids in encoded]
    for prompt, ids in zip(prompts, encoded, strict=True):
        if not ids:
            raise ValueError(f"prompt {prompt[:40]!r} encodes to no tokens; the model has nothing to continue")
    return encoded


class PromptOrder:
    """Epoch-wise seeded permutations of the row indices, read through a cursor.

    The order is a pure function of (seed, number of rows), so a resume needs only the cursor (how many
    prompts were taken so far) to continue exactly where the run stopped.
    """

    def __init__(self, num_rows: int, seed: int, cursor: int = 0) -> None:
        self.num_rows = num_rows
        self.seed = seed
        self.cursor = cursor
        self._epoch = -1
        self._permutation: list[int] = []

    def take(self, count: int) -> list[int]:
        indices = []
        for _ in range(count):
            epoch, position = divmod(self.cursor, self.num_rows)
            if epoch != self._epoch:
                generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                self._permutation = torch.randperm(self.num_rows, generator=generator).tolist()
                self._epoch = epoch
            indices.append(self._permutation[position])
            self.cursor += 1
        return indices
