"""DAPO dynamic sampling in collect_batch: tied groups are dropped, more prompts are sampled until the
batch is full, the number of extra rounds is capped, and a step whose every group ties still trains."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from workers.engine import RewardBatch, build_tiny_model
from workers.engine.collect import collect_batch
from workers.engine.data import PromptOrder

from .conftest import make_config

G = 4


@pytest.fixture(scope="module")
def tiny(model_cache):
    path = build_tiny_model(model_cache)
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def rows(tied: list[bool]) -> list[dict[str, Any]]:
    return [{"prompt": f"{d}>", "tied": t} for d, t in enumerate(tied)]


def tie_reward(_prompts: list[str], _completions: list[str], batch_rows: list[dict[str, Any]]) -> RewardBatch:
    """Rows marked tied score 1 whatever the completion; the others score each completion differently
    (its position in the batch), so their group's rewards never tie."""
    total = [1.0 if row["tied"] else float(i) for i, row in enumerate(batch_rows)]
    return RewardBatch(total=total, components={"score": total})


def collect(tiny, data, seed=0, **overrides):
    model, tokenizer = tiny
    settings = {"group_size": G, "prompts_per_step": 3, "dynamic_sampling": True, "max_new_tokens": 3}
    config = make_config(None, **{**settings, **overrides})
    order = PromptOrder(len(data), seed=seed)
    with torch.no_grad():
        batch = collect_batch(model, tokenizer, data, order, tie_reward, config, torch.Generator().manual_seed(0))
    return batch, order


def test_tied_groups_are_dropped_and_the_batch_refilled(tiny):
    data = rows([d % 2 == 0 for d in range(10)])  # half the prompts always tie
    batch, order = collect(tiny, data, max_resample_rounds=10)
    kept_prompts = batch.row_indices[::G]
    assert len(kept_prompts) == 3  # full batch of prompts_per_step informative groups
    assert all(not data[i]["tied"] for i in kept_prompts)
    assert batch.rollout.completion_ids.size(0) == 3 * G == len(batch.rewards) == len(batch.rollout.texts)
    assert all(len(values) == 3 * G for values in batch.components.values())
    assert (batch.rewards.view(-1, G).std(dim=1) > 0).all()
    # Everything sampled is accounted for: the prompts taken, the groups dropped, the metrics' rows.
    assert batch.dropped_groups == sum(data[i]["tied"] for i in PromptOrder(10, seed=0).take(order.cursor))
    assert order.cursor == 3 + batch.dropped_groups
    assert len(batch.all_rewards) == len(batch.all_lengths) == order.cursor * G
    assert batch.rounds > 1


def test_extra_rounds_are_capped(tiny):
    data = rows([True] * 9 + [False])  # one informative prompt in ten
    batch, order = collect(tiny, data, max_resample_rounds=1)
    assert batch.rounds == 2  # the first round and one extra, then the step trains on what it has
    kept = len(batch.row_indices) // G
    assert kept == sum(not data[i]["tied"] for i in PromptOrder(10, seed=0).take(order.cursor)) <= 1
    assert batch.dropped_groups == order.cursor - kept


def test_a_step_whose_every_group_ties_trains_on_its_first_round(tiny):
    batch, order = collect(tiny, rows([True] * 10), max_resample_rounds=2)
    assert batch.rounds == 3 and batch.dropped_groups == 9 == order.cursor
    assert batch.row_indices[::G] == PromptOrder(10, seed=0).take(3)  # the first round's prompts
    assert torch.equal(batch.rewards, torch.ones(3 * G))  # zero advantages: only KL would move the policy


def test_without_dynamic_sampling_tied_groups_stay(tiny):
    batch, order = collect(tiny, rows([True] * 10), dynamic_sampling=False)
    assert batch.rounds == 1 and batch.dropped_groups == 0 and order.cursor == 3
    assert len(batch.row_indices) == 3 * G
