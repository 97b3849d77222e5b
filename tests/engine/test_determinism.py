"""Two identical backward passes give bitwise identical gradients with several threads.

The rows of a GRPO group share their prompt's keys and values, so the backward sums several rows'
gradients into one prompt row. An accumulation in thread order (indexing's backward on CPU adds with
atomics) made two identical runs of the bench model differ in the last bits after one step; resumed
runs are promised bitwise (README, Durability), so the scorer gathers with index_select instead.
"""

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from workers.engine.logprobs import CompletionScorer


def _gradients(model, prompt_ids, prompt_mask, completion_ids, completion_mask):
    model.zero_grad(set_to_none=True)
    scorer = CompletionScorer(
        model, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature=1.0, backward_per_bucket=True
    )
    for rows in scorer.buckets():
        logps, _ = scorer.logprobs(rows, with_entropy=False)
        (logps * torch.linspace(-1, 1, logps.numel()).view_as(logps)).sum().backward()
    scorer.backward_prompts()
    return [p.grad.clone() for p in model.parameters()]


def test_scorer_gradients_are_bitwise_reproducible_with_two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        config = Qwen2Config(
            vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
        )  # fmt: skip
        model = Qwen2ForCausalLM(config).train()
        prompts, group = 4, 16  # many rows per prompt: many gradients summed into each prompt row
        prompt_ids = torch.randint(0, 512, (prompts, 24)).repeat_interleave(group, dim=0)
        prompt_mask = torch.ones_like(prompt_ids)
        completion_ids = torch.randint(0, 512, (prompts * group, 20))
        lengths = torch.randint(1, 21, (prompts * group,))
        completion_mask = (torch.arange(20)[None, :] < lengths[:, None]).long()
        batch = (prompt_ids, prompt_mask, completion_ids, completion_mask)
        first = _gradients(model, *batch)
        for _ in range(4):
            again = _gradients(model, *batch)
            assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    finally:
        torch.set_num_threads(threads)
