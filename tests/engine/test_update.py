"""update_policy (backward per length bucket) against one plain backward of the loss's definition."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from workers.engine import build_tiny_model, logprobs
from workers.engine.loss import LossSettings, StepTotals, aggregate, per_token_loss
from workers.engine.optim import Schedule
from workers.engine.rollout import left_pad
from workers.engine.update import PolicyBatch, update_policy


class RecordingSGD(torch.optim.SGD):
    """Plain SGD at lr 0 that keeps a copy of the gradients it is handed."""

    def __init__(self, params):
        super().__init__(params, lr=0.0)
        self.seen: list[dict[int, torch.Tensor]] = []

    def step(self, closure=None):
        self.seen.append({i: p.grad.clone() for i, p in enumerate(self.param_groups[0]["params"])})
        return super().step(closure)


def make_batch(vocab: int, group: int = 4) -> PolicyBatch:
    generator = torch.Generator().manual_seed(7)
    prompts = [[5, 9], [7, 4, 12], [3, 8, 15, 6]]
    prompt_ids, prompt_mask = left_pad(prompts, 0)
    rows = len(prompts) * group
    lengths = torch.randint(1, 10, (rows,), generator=generator)
    completion_mask = (torch.arange(9)[None, :] < lengths[:, None]).long()
    completion_ids = torch.randint(3, vocab, (rows, 9), generator=generator) * completion_mask
    loss_mask = completion_mask.float()
    loss_mask[3] = 0.0  # a masked (truncated) completion
    return PolicyBatch(
        prompt_ids=prompt_ids.repeat_interleave(group, 0),
        prompt_mask=prompt_mask.repeat_interleave(group, 0),
        completion_ids=completion_ids,
        completion_mask=completion_mask,
        loss_mask=loss_mask,
        advantages=torch.randn(rows, generator=generator),
        ref_logps=-5.0 + torch.randn(rows, 9, generator=generator),
    )


def reference_gradients(model, batch, settings, micro_batch_size, temperature):
    """The loss's definition, one micro-batch at a time: full forward, aggregate, backward."""
    model.zero_grad()
    chunks = batch.micro_batches(micro_batch_size)
    totals = StepTotals(int(batch.loss_mask.sum()), batch.advantages.numel(), len(chunks))
    for index in chunks:
        mb = batch.rows(index)
        hidden = logprobs._full_forward_hidden(
            model.get_decoder(), mb.prompt_ids, mb.prompt_mask, mb.completion_ids, mb.completion_mask
        )
        full = torch.log_softmax(model.lm_head(hidden).float() / temperature, dim=-1)
        logps = full.gather(2, mb.completion_ids[:, :, None]).squeeze(2) * mb.completion_mask
        token_loss, _ = per_token_loss(logps, logps.detach(), mb.advantages, mb.loss_mask, settings, mb.ref_logps)
        aggregate(token_loss, mb.loss_mask, settings, totals).backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("micro_batch_size", [None, 5])
def test_bucketed_backward_gives_the_gradient_of_the_step_loss(model_cache, monkeypatch, loss_type, micro_batch_size):
    model = AutoModelForCausalLM.from_pretrained(build_tiny_model(model_cache))
    monkeypatch.setattr(logprobs, "BUCKET_COSTS", {"cpu": logprobs.BucketCosts(overhead=2, max_tokens=12)})
    batch = make_batch(model.config.vocab_size)
    settings = LossSettings(loss_type=loss_type, beta=0.04, max_new_tokens=9)
    params = list(model.parameters())
    optimizer = RecordingSGD(params)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, Schedule("constant", 0, 1))
    update_policy(
        model, params, optimizer, scheduler, batch, settings,
        num_iterations=1, micro_batch_size=micro_batch_size, temperature=0.9, max_grad_norm=None,
    )  # fmt: skip
    expected = reference_gradients(model, batch, settings, micro_batch_size, 0.9)
    for i, grad in enumerate(expected):
        torch.testing.assert_close(optimizer.seen[0][i], grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_steps_per_generation_updates_each_mini_batch_against_the_old_policy(model_cache, loss_type):
    """steps_per_generation = 2: two SGD updates per pass, each on its own contiguous half of the rows and
    normalised over its own tokens / sequences; the second half runs on the moved policy, so its ratio is
    taken against the old log-probs of the policy that sampled (num_iterations = 2: both passes)."""
    path = build_tiny_model(model_cache)
    model, reference = (AutoModelForCausalLM.from_pretrained(path) for _ in range(2))
    batch = make_batch(model.config.vocab_size)
    settings = LossSettings(loss_type=loss_type, beta=0.04, max_new_tokens=9)
    with torch.no_grad():
        hidden = logprobs._full_forward_hidden(
            reference.get_decoder(), batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask
        )
        full = torch.log_softmax(reference.lm_head(hidden).float() / 0.9, dim=-1)
        batch.old_logps = full.gather(2, batch.completion_ids[:, :, None]).squeeze(2) * batch.completion_mask

    params = list(model.parameters())
    optimizer = RecordingSGD(params)
    optimizer.param_groups[0]["lr"] = 0.5
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, Schedule("constant", 0, 4))
    update_policy(
        model, params, optimizer, scheduler, batch, settings,
        num_iterations=2, micro_batch_size=None, temperature=0.9, max_grad_norm=None, steps_per_generation=2,
    )  # fmt: skip
    assert len(optimizer.seen) == 4

    expected = []
    halves = torch.arange(batch.advantages.numel()).tensor_split(2)
    for _ in range(2):
        for half in halves:
            mb = batch.rows(half)
            reference.zero_grad()
            hidden = logprobs._full_forward_hidden(
                reference.get_decoder(), mb.prompt_ids, mb.prompt_mask, mb.completion_ids, mb.completion_mask
            )
            full = torch.log_softmax(reference.lm_head(hidden).float() / 0.9, dim=-1)
            logps = full.gather(2, mb.completion_ids[:, :, None]).squeeze(2) * mb.completion_mask
            totals = StepTotals(int(mb.loss_mask.sum()), mb.advantages.numel(), 1)
            token_loss, _ = per_token_loss(logps, mb.old_logps, mb.advantages, mb.loss_mask, settings, mb.ref_logps)
            aggregate(token_loss, mb.loss_mask, settings, totals).backward()
            expected.append([p.grad.clone() for p in reference.parameters()])
            with torch.no_grad():
                for p in reference.parameters():
                    p.sub_(0.5 * p.grad)
    for update, grads in enumerate(expected):
        for i, grad in enumerate(grads):
            torch.testing.assert_close(optimizer.seen[update][i], grad, rtol=1e-3, atol=1e-6, msg=f"update {update}")
