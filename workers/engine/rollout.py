"""Rollout: sample G completions for each of P prompts with the model's KV cache.

Each prompt is prefilled once and its KV cache shared by the G members of its group (repeat after
prefill, not before). A row is no longer sampled once it finishes (EOS or a stop string) and leaves the
batch with the next few finished rows, so the decode cost follows the live rows, not the longest one.
The cache is preallocated for the whole rollout (kv_cache.py): appending a step copies nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from workers.engine.fast_decode import lean_decode_step
from workers.engine.kv_cache import rollout_cache
from workers.engine.logprobs import cache_keyword
from workers.engine.sampling import SamplingParams, next_tokens

# Finished rows leave the batch once they are at least 1 / COMPACT_EVERY of it: each drop copies the
# live rows' cache, and a finished row left in the batch costs a row of every decode step's compute.
COMPACT_EVERY = 8


@dataclass
class Rollout:
    """N = P * G completions, rows grouped by prompt (row i belongs to prompt i // G)."""

    prompt_ids: torch.Tensor  # (N, Lp) left-padded with pad id
    prompt_mask: torch.Tensor  # (N, Lp) 1 on real prompt tokens
    completion_ids: torch.Tensor  # (N, C) right-padded with pad id; C = longest completion
    completion_mask: torch.Tensor  # (N, C) 1 on generated tokens, up to and including EOS / the stop token
    truncated: torch.Tensor  # (N,) bool: hit max_new_tokens without EOS or a stop string
    texts: list[str]  # (N,) decoded completions, special tokens skipped

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(dim=1)  # (N,)


def left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """list of token lists -> (ids, mask), both (len(sequences), longest), padded on the left."""
    width = max(len(seq) for seq in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    return ids, mask


def eos_token_ids(model: nn.Module, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokenizer's EOS plus any the model's generation config declares (chat models have several)."""
    ids = {tokenizer.eos_token_id}
    generation_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(generation_eos, int):
        ids.add(generation_eos)
    elif generation_eos:
        ids.update(generation_eos)
    return sorted(i for i in ids if i is not None)


@torch.no_grad()
def generate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    *,
    group_size: int,
    max_new_tokens: int,
    params: SamplingParams,
    generator: torch.Generator,
    stop: list[str] | None = None,
) -> Rollout:
    device = next(model.parameters()).device
    eos = torch.tensor(eos_token_ids(model, tokenizer), device=device)
    prompt_ids, prompt_mask = left_pad(prompts, tokenizer.pad_token_id)  # (P, Lp)
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    prompt_lengths = prompt_mask.sum(dim=1)  # (P,)

    # 1) prefill each prompt once; positions count real tokens so left padding does not shift them
    cache, cache_arg = rollout_cache(model, prompt_ids.size(1) + max_new_tokens), cache_keyword(model)
    positions = (prompt_mask.cumsum(dim=1) - 1).clamp(min=0)
    logits = model(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        position_ids=positions,
        **{cache_arg: cache},
        use_cache=True,
        logits_to_keep=1,
    ).logits[:, -1]  # (P, V)

    # 2) share the prompt's cache across its group: P rows -> N = P * G rows
    cache.batch_repeat_interleave(group_size)
    logits = logits.repeat_interleave(group_size, dim=0)  # (N, V)
    num_rows = logits.size(0)
    # the attention mask of the whole rollout, (N, Lp + max_new_tokens); step t reads its first Lp + t + 1
    attention = torch.cat(
        [prompt_mask.repeat_interleave(group_size, dim=0), prompt_mask.new_ones(num_rows, max_new_tokens)], dim=1
    )
    row_lengths = prompt_lengths.repeat_interleave(group_size)  # (N,)
    history = _penalty_history(prompt_ids, prompt_mask, params)  # (N, Lp) or None
    history = history.repeat_interleave(group_size, dim=0) if history is not None else None
    completion = torch.full((num_rows, max_new_tokens), tokenizer.pad_token_id, dtype=torch.long, device=device)
    lengths = torch.full((num_rows,), max_new_tokens, dtype=torch.long, device=device)
    finished = torch.zeros(num_rows, dtype=torch.bool, device=device)
    lean_step = lean_decode_step(model, cache)  # the transformers forward without its overhead, if exact
    batch = torch.arange(num_rows, device=device)  # original row of each row still in the batch
    sampling = torch.ones(num_rows, dtype=torch.bool, device=device)  # batch rows not finished yet

    # 3) decode. A finished row is not sampled again; it leaves the batch (and the cache) once enough
    #    rows have finished, since dropping rows copies the cache. Live rows are sampled in row order,
    #    so the draws are the same as if every finished row left at once.
    for t in range(max_new_tokens):
        live = sampling.nonzero().squeeze(1)  # (R,) batch positions still sampling
        all_live = live.numel() == batch.numel()
        tokens = next_tokens(
            logits if all_live else logits[live],
            params,
            generator,
            history if history is None or all_live else history[live],
        )  # (R,)
        rows = batch[live]  # (R,) original rows
        completion[rows, t] = tokens
        done = torch.isin(tokens, eos)
        if stop:
            done |= _hit_stop(tokenizer, completion[rows, : t + 1], stop)
        lengths[rows[done]] = t + 1
        finished[rows[done]] = True
        if t == max_new_tokens - 1 or bool(done.all()):
            break
        sampling[live[done]] = False
        step_tokens = (
            tokens if all_live else torch.full_like(batch, tokenizer.pad_token_id).index_copy_(0, live, tokens)
        )
        if history is not None:
            history = torch.cat([history, step_tokens[:, None]], dim=1)
        finished_in_batch = batch.numel() - live.numel() + int(done.sum())
        if finished_in_batch * COMPACT_EVERY >= batch.numel():
            keep = sampling.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            batch, sampling, step_tokens, attention = batch[keep], sampling[keep], step_tokens[keep], attention[keep]
            history = history[keep] if history is not None else None
        step_attention, step_positions = attention[:, : prompt_ids.size(1) + t + 1], row_lengths[batch] + t
        if lean_step is not None:
            logits = lean_step(step_tokens, step_positions, step_attention, cache)
        else:
            logits = model(
                input_ids=step_tokens[:, None],
                attention_mask=step_attention,
                position_ids=step_positions[:, None],
                **{cache_arg: cache},
                use_cache=True,
            ).logits[:, -1]

    width = int(lengths.max())
    completion_mask = (torch.arange(width, device=device)[None, :] < lengths[:, None]).long()  # (N, C)
    completion_ids = completion[:, :width].masked_fill(completion_mask == 0, tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(
        [ids[:n].tolist() for ids, n in zip(completion_ids, lengths, strict=True)], skip_special_tokens=True
    )
    return Rollout(
        prompt_ids=prompt_ids.repeat_interleave(group_size, dim=0),
        prompt_mask=prompt_mask.repeat_interleave(group_size, dim=0),
        completion_ids=completion_ids,
        completion_mask=completion_mask,
        truncated=~finished,
        texts=texts,
    )


def _penalty_history(ids: torch.Tensor, mask: torch.Tensor, params: SamplingParams) -> torch.Tensor | None:
    """Token ids the repetition penalty applies to, (P, Lp); None when the penalty is off. Padding is
    replaced by the row's first real token, so it penalises nothing that is not in the prompt."""
    if params.repetition_penalty == 1.0:
        return None
    first_real = ids.gather(1, mask.argmax(dim=1, keepdim=True))  # (P, 1)
    return torch.where(mask.bool(), ids, first_real)


def _hit_stop(tokenizer: PreTrainedTokenizerBase, completions: torch.Tensor, stop: list[str]) -> torch.Tensor:
    """(R, t) tokens so far -> (R,) bool: the decoded text contains a stop string."""
    texts = tokenizer.batch_decode(completions.tolist(), skip_special_tokens=True)
    return torch.tensor([any(s in text for s in stop) for text in texts], device=completions.device)
