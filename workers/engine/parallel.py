"""The GRPO loop on N ranks (torch.distributed), computing the update one process would.

Per step, every rank takes the same P prompts from the shared, seeded order and keeps its own P / N
of them (whole groups: a group never spans ranks). Each group samples from its own stream, seeded by
(seed, step, position of the prompt in the step), so which rank generates a group, and how many ranks
there are, changes nothing it draws. Rewards are gathered so advantages (group or batch scaled) are
the global ones; every loss normaliser (tokens, sequences, bnpo's micro-batch tokens) is all-reduced;
each rank's loss is its share of the global loss and the gradients are summed. Only rank 0 talks to
the sink; whether the sink stopped the run (cancel, lost, drain) is broadcast, so every rank stops at
the same step boundary.

The one-process form (World() with size 1) runs the same code with identity collectives: it is the
reference a multi-rank run is compared with. It differs from train.py's fast path only in sampling:
one stream per prompt group here, one stream for the whole batch there (same distribution, different
draws). Not supported here yet (rejected by the API): dynamic sampling.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Any, cast

import torch

from workers.engine import distributed as D
from workers.engine.checkpoint import prune_checkpoints, remove_stale_temporaries
from workers.engine.collect import Collected, concat_rollouts, sampling_params
from workers.engine.config import GRPOConfig
from workers.engine.data import encode_prompts, validate_rows
from workers.engine.evaluation import evaluate
from workers.engine.interface import EvalReport, RewardFn, StepReport, TrainingSink, TrainResult
from workers.engine.loss import LossSettings, StepTotals, group_advantages
from workers.engine.metrics import peak_memory
from workers.engine.model import autocast, reference_mode, sync_reference
from workers.engine.parallel_state import save_parallel, setup_parallel
from workers.engine.rollout import generate
from workers.engine.state import RunState
from workers.engine.streams import GroupStreams
from workers.engine.train import _policy_batch, _rollout_metrics, _samples, checkpoint_requested, loss_settings
from workers.engine.update import PolicyBatch, _backward, score_batch


class StoppedByMain(Exception):
    """Raised on ranks > 0 when rank 0's sink stopped the run (rank 0 raises the sink's own exception)."""


def train_parallel(
    config: GRPOConfig,
    rows: list[dict[str, Any]],
    reward_fn: RewardFn,
    sink: TrainingSink,
    *,
    world: D.World,
    work_dir: Path,
    resume_from: Path | None = None,
    eval_rows: list[dict[str, Any]] | None = None,
    eval_reward_fn: RewardFn | None = None,
) -> TrainResult:
    """train() on this rank of `world` (see the module docstring); the same arguments and result."""
    validate_rows(rows, config.prompt_field)
    if config.dynamic_sampling:
        raise ValueError("dynamic_sampling is not supported with several devices yet")
    if config.prompts_per_step % world.size:
        raise ValueError(f"prompts_per_step={config.prompts_per_step} is not a multiple of {world.size} ranks")
    work_dir = Path(work_dir)
    if world.is_main:
        remove_stale_temporaries(work_dir)
    D.barrier(world)
    run = setup_parallel(config, len(rows), resume_from, world)
    settings = loss_settings(config)
    precision = autocast(config, run.device)
    if eval_rows and config.eval_every and run.step == 0:
        _evaluate(world, run, config, eval_rows, eval_reward_fn or reward_fn, sink)
    metrics: dict[str, float] = {}
    final_checkpoint = resume_from
    for step in range(run.step + 1, config.max_steps + 1):
        started = time.perf_counter()
        # 1) rollout + rewards of this rank's groups: P / N prompts x G completions
        indices = run.order.take(config.prompts_per_step)  # the same P prompts on every rank
        share = config.prompts_per_step // world.size
        mine = range(world.rank * share, (world.rank + 1) * share)
        run.model.eval()
        with precision:
            batch, gather_s = collect_groups(run, rows, [indices[k] for k in mine], list(mine), step, reward_fn, config)
        # 2) advantages from the global rewards (exact for 'batch' scaling too), this rank's slice (n,)
        all_rewards = _all_gather_rows(world, batch.rewards)
        G, scale, epsilon = config.group_size, config.scale_rewards, config.reward_std_epsilon
        advantages, _ = group_advantages(all_rewards, G, scale, epsilon)
        n = batch.rewards.numel()
        local_advantages = advantages[world.rank * n : (world.rank + 1) * n]
        policy_batch = _policy_batch(batch, local_advantages.to(run.device), config)
        # 3) no-grad log-probs of this rank's rows
        scored = time.perf_counter()
        with precision:
            if config.num_iterations > 1:
                policy_batch.old_logps = score_batch(
                    run.model, policy_batch, config.micro_batch_size, config.temperature
                )
            if config.beta > 0:
                with reference_mode(run.reference, run.model) as reference:
                    policy_batch.ref_logps = score_batch(
                        reference, policy_batch, config.micro_batch_size, config.temperature
                    )
        reference_s = time.perf_counter() - scored
        # 4) policy update with global normalisers and summed gradients
        with precision:
            update_metrics = update_parallel(world, run, policy_batch, settings, config)
        if config.ref_model_sync_steps and step % config.ref_model_sync_steps == 0 and run.reference is not None:
            sync_reference(run.reference, run.model, config.ref_model_mixup_alpha)
        run.step = step
        # 5) report (rank 0), with the decision to stop shared by every rank; then checkpoint and evaluate
        gathered = D.gather_to_main(world, (batch, local_advantages))
        report = None
        if world.is_main:
            assert gathered is not None
            merged, all_advantages = _merge(gathered, run)
            metrics = {
                **_rollout_metrics(merged, all_advantages, config.group_size, config),
                **update_metrics,
                **_time_metrics(merged, reference_s, gather_s, time.perf_counter() - started, world),
                **peak_memory(run.device),
            }
            report = StepReport(step=step, metrics=metrics, samples=_samples(merged, all_advantages, rows, config))
        _on_main(world, functools.partial(sink.on_step, cast(StepReport, report)))  # built on rank 0
        wanted = D.broadcast_from_main(world, world.is_main and checkpoint_requested(sink))  # drain, from rank 0
        if step % config.checkpoint_every == 0 or step == config.max_steps or wanted:
            path = save_parallel(world, run, config, work_dir, metrics)
            if world.is_main:
                final_checkpoint = path
                prune_checkpoints(work_dir, config.keep_last)
            _on_main(world, functools.partial(sink.on_checkpoint, step, cast(Path, final_checkpoint)))  # rank 0
        if eval_rows and ((config.eval_every and step % config.eval_every == 0) or step == config.max_steps):
            _evaluate(world, run, config, eval_rows, eval_reward_fn or reward_fn, sink)
    return TrainResult(steps_completed=run.step, final_metrics=metrics, final_checkpoint=final_checkpoint)


def collect_groups(
    run: RunState,
    rows: list[dict[str, Any]],
    indices: list[int],
    positions: list[int],
    step: int,
    reward_fn: RewardFn,
    config: GRPOConfig,
) -> tuple[Collected, float]:
    """(batch, seconds spent gathering FSDP shards): G completions for each of this rank's prompts,
    each group from its own (seed, step, position) stream, then scored together. Rows grouped by
    prompt, in position order."""
    G, params = config.group_size, sampling_params(config)
    started = time.perf_counter()
    encoded = encode_prompts(run.tokenizer, [rows[i][config.prompt_field] for i in indices], config.max_prompt_tokens)
    streams = GroupStreams([D.prompt_generator(config.seed, step, p, run.device) for p in positions], G)
    with D.gathered(run.model):  # FSDP: generation runs on the whole model, gathered once
        gather_s = time.perf_counter() - started
        rollout = generate(
            run.model, run.tokenizer, encoded, group_size=G, max_new_tokens=config.max_new_tokens,
            params=params, generator=streams, stop=config.stop,  # type: ignore[arg-type]
        )  # fmt: skip
    generated = time.perf_counter()
    repeated = [i for i in indices for _ in range(G)]
    scores = reward_fn([rows[i][config.prompt_field] for i in repeated], rollout.texts, [rows[i] for i in repeated])
    if len(scores.total) != len(rollout.texts):
        raise ValueError(f"reward function returned {len(scores.total)} scores for {len(rollout.texts)} completions")
    rewards = torch.tensor(scores.total, dtype=torch.float32)
    collected = Collected(
        rollout=rollout,
        row_indices=repeated,
        rewards=rewards,
        components=dict(scores.components),
        all_rewards=rewards,
        all_components=dict(scores.components),
        all_lengths=rollout.lengths.cpu(),
        all_truncated=rollout.truncated.cpu(),
        scorer_metrics={f"scorer/{name}": value for name, value in scores.metrics.items()},
        generation_s=generated - started - gather_s,
        scoring_s=time.perf_counter() - generated,
    )
    return collected, gather_s


def update_parallel(
    world: D.World, run: RunState, batch: PolicyBatch, settings: LossSettings, config: GRPOConfig
) -> dict[str, float]:
    """update.update_policy with global normalisers (see loss.py for each loss_type) and summed gradients."""
    chunks = batch.micro_batches(config.micro_batch_size)
    num_chunks = int(D.all_reduce_max(world, float(len(chunks))))  # equal on every rank (equal row counts)
    local = [float(batch.loss_mask.sum()), float(batch.advantages.numel())]
    local += [float(batch.loss_mask[index].sum()) for index in chunks] + [0.0] * (num_chunks - len(chunks))
    reduced = D.all_reduce_sum(world, local)
    totals = StepTotals(num_tokens=int(reduced[0]), num_sequences=int(reduced[1]), num_micro_batches=num_chunks)
    chunk_tokens = reduced[2:]
    # the sums _backward accumulates (sampler/trainer mismatch included; importance-sampling correction is
    # refused with several devices at submit, app/schemas/resources.py)
    sums = dict.fromkeys(("loss", "kl", "entropy", "low", "high", "region", "dlogp", "dlogp_max", "sampler_kl"), 0.0)
    sums |= dict.fromkeys(("is_weight", "is_corrected"), 0.0)
    learning_rate = run.optimizer.param_groups[0]["lr"]
    training_s = optimizer_s = allreduce_s = grad_norm = 0.0
    run.model.train()
    for iteration in range(config.num_iterations):
        started = time.perf_counter()
        for i, index in enumerate(chunks):
            chunk_settings, chunk_totals = settings, totals
            if settings.loss_type == "bnpo":
                # bnpo normalises by the tokens of the micro-batch: here the global micro-batch i (every
                # rank's i-th), i.e. dapo's formula over chunk_tokens[i] * num_chunks tokens.
                chunk_settings = dataclasses.replace(settings, loss_type="dapo")
                chunk_totals = dataclasses.replace(totals, num_tokens=max(int(chunk_tokens[i]), 1) * num_chunks)
            _backward(
                run.model, batch.rows(index), chunk_settings, chunk_totals, config.temperature,
                with_entropy=iteration == 0, sums=sums,
            )  # fmt: skip
        synced = time.perf_counter()
        D.sync_gradients(world, run.parameters)
        stepped = time.perf_counter()
        grad_norm += D.clip_and_step(world, run.parameters, run.optimizer, run.scheduler, config.max_grad_norm)
        training_s += synced - started
        allreduce_s += stepped - synced
        optimizer_s += time.perf_counter() - stepped
    names = [name for name in sums if name != "dlogp_max"]
    global_sums = dict(zip(names, D.all_reduce_sum(world, [sums[k] for k in names]), strict=True))
    global_sums["dlogp_max"] = D.all_reduce_max(world, sums["dlogp_max"])
    tokens, mu = max(totals.num_tokens, 1), config.num_iterations
    metrics = {
        "loss": global_sums["loss"] / mu,
        "entropy": global_sums["entropy"] / tokens,
        "clip/low_frac": global_sums["low"] / (tokens * mu),
        "clip/high_frac": global_sums["high"] / (tokens * mu),
        "clip/region_frac": global_sums["region"] / (tokens * mu),
        "grad_norm": grad_norm / mu,
        "learning_rate": learning_rate,
        "time/training_s": training_s,
        "time/optimizer_s": optimizer_s,
        "time/allreduce_s": allreduce_s,
    }
    if settings.beta != 0.0:
        metrics["kl"] = global_sums["kl"] / (tokens * mu)
    if batch.sampler_logps is not None:  # as update.update_policy reports it, over every rank's tokens
        metrics["sampling/logp_diff_mean"] = global_sums["dlogp"] / tokens
        metrics["sampling/logp_diff_max"] = global_sums["dlogp_max"]
        metrics["sampling/kl"] = global_sums["sampler_kl"] / tokens
    return metrics


def _all_gather_rows(world: D.World, values: torch.Tensor) -> torch.Tensor:
    """(n,) on each rank -> (N * n,) in rank order, on every rank (equal n everywhere)."""
    if not world.active:
        return values
    parts = [torch.empty_like(values) for _ in range(world.size)]
    torch.distributed.all_gather(parts, values.contiguous())
    return torch.cat(parts)


def _merge(gathered: list[tuple[Collected, torch.Tensor]], run: RunState) -> tuple[Collected, torch.Tensor]:
    """Every rank's batch as one (rank 0), in the order one process would have it."""
    batches = [b for b, _ in gathered]
    names = list(batches[0].components)
    merged = Collected(
        rollout=concat_rollouts([b.rollout for b in batches], run.tokenizer.pad_token_id),
        row_indices=[i for b in batches for i in b.row_indices],
        rewards=torch.cat([b.rewards for b in batches]),
        components={name: [v for b in batches for v in b.components[name]] for name in names},
        all_rewards=torch.cat([b.all_rewards for b in batches]),
        all_components={name: [v for b in batches for v in b.all_components[name]] for name in names},
        all_lengths=torch.cat([b.all_lengths for b in batches]),
        all_truncated=torch.cat([b.all_truncated for b in batches]),
        scorer_metrics=_combine_scorer([(b.scorer_metrics, b.rewards.numel()) for b in batches]),
        generation_s=max(b.generation_s for b in batches),
        scoring_s=max(b.scoring_s for b in batches),
    )
    return merged, torch.cat([a.cpu() for _, a in gathered])


def _combine_scorer(parts: list[tuple[dict[str, float], int]]) -> dict[str, float]:
    from workers.engine.collect import combine_rounds  # ranks combine like rounds: sums, maxima, weighted means

    return combine_rounds(parts) if parts else {}


def _time_metrics(
    batch: Collected, reference_s: float, gather_s: float, step_s: float, world: D.World
) -> dict[str, float]:
    return {
        "time/generation_s": batch.generation_s,
        "time/scoring_s": batch.scoring_s,
        "time/reference_s": reference_s,
        "time/gather_s": gather_s,
        "time/step_s": step_s,
        "throughput/tokens_per_s": float(batch.all_lengths.sum()) / step_s,
        "distributed/world_size": float(world.size),
    }


def _on_main(world: D.World, action: Any) -> None:
    """Run `action` on rank 0 and share whether it raised: rank 0 re-raises its exception (cancel, lost,
    drain, a database error), the other ranks raise StoppedByMain, all at the same step boundary."""
    error: BaseException | None = None
    if world.is_main:
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after telling the other ranks
            error = exc
    failed = D.broadcast_from_main(world, error is not None)
    if error is not None:
        raise error
    if failed:
        raise StoppedByMain("rank 0 stopped the run")


def _evaluate(
    world: D.World,
    run: RunState,
    config: GRPOConfig,
    rows: list[dict[str, Any]],
    reward_fn: RewardFn,
    sink: TrainingSink,
) -> None:
    """Held-out evaluation on rank 0 with the whole model (shards gathered on every rank meanwhile)."""
    report = None
    with D.gathered(run.model):
        if world.is_main:
            with autocast(config, run.device):
                report = evaluate(run.model, run.tokenizer, rows, reward_fn, config, step=run.step)
        D.barrier(world)
    _on_main(world, functools.partial(sink.on_eval, cast(EvalReport, report)))  # built on rank 0
