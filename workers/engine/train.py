"""The GRPO training loop, read top to bottom. Each phase lives in its own module:

collect.py     prompts -> G completions each (rollout.py, sampling.py) -> rewards; dynamic sampling
loss.py        group-relative advantages, clipped surrogate, KL, loss aggregation
update.py      old / reference log-probs (logprobs.py) and num_iterations optimiser updates (optim.py)
state.py       building, restoring and checkpointing the run (checkpoint.py)
evaluation.py  held-out evaluation
metrics.py     the metric names and their meaning
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from workers.engine.backend import Backend, select_backend
from workers.engine.checkpoint import prune_checkpoints, remove_stale_temporaries
from workers.engine.collect import Collected, collect_batch
from workers.engine.config import GRPOConfig
from workers.engine.data import validate_rows
from workers.engine.distributed import World
from workers.engine.evaluation import evaluate
from workers.engine.interface import CheckpointThenStop, RewardFn, SampleRecord, StepReport, TrainingSink, TrainResult
from workers.engine.loss import LossSettings, group_advantages, tied_groups, unscorable
from workers.engine.metrics import peak_memory, summary
from workers.engine.model import autocast, reference_mode, sync_reference
from workers.engine.state import RunState, save_run, setup_run
from workers.engine.update import PolicyBatch, score_batch, update_policy

logger = logging.getLogger(__name__)


def train(
    config: GRPOConfig,
    rows: list[dict[str, Any]],
    reward_fn: RewardFn,
    sink: TrainingSink,
    *,
    work_dir: Path,
    resume_from: Path | None = None,
    eval_rows: list[dict[str, Any]] | None = None,
    eval_reward_fn: RewardFn | None = None,
    world: World | None = None,
) -> TrainResult:
    """Train for config.max_steps steps (continuing from `resume_from`, a checkpoint directory).

    Checkpoints go to `work_dir`. `sink.on_step` may raise to stop between steps (cancel): the
    exception propagates, and the last complete checkpoint stays the resume point. CheckpointThenStop
    (a pause) first checkpoints the step just finished, so the resume point is that step. With `world`
    (one rank of a multi-device job, or its one-process reference) the loop of parallel.py runs instead.
    """
    if world is not None:
        from workers.engine.parallel import train_parallel  # imports this module

        return train_parallel(
            config, rows, reward_fn, sink, world=world, work_dir=work_dir, resume_from=resume_from,
            eval_rows=eval_rows, eval_reward_fn=eval_reward_fn,
        )  # fmt: skip
    validate_rows(rows, config.prompt_field)
    work_dir = Path(work_dir)
    remove_stale_temporaries(work_dir)
    loading = time.perf_counter()
    run = setup_run(config, len(rows), Path(resume_from) if resume_from else None)
    on_model_loaded = getattr(sink, "on_model_loaded", None)  # optional: the service records the load time
    if on_model_loaded is not None:
        on_model_loaded(time.perf_counter() - loading)
    settings = loss_settings(config)
    G, precision = config.group_size, autocast(config, run.device)
    backend = select_backend(config.fast_paths)  # the plain transformers path or the kernels, for the whole run
    if eval_rows and config.eval_every and run.step == 0:
        _evaluate(run, config, eval_rows, eval_reward_fn or reward_fn, sink, backend)
    metrics: dict[str, float] = {}
    final_checkpoint = resume_from
    for step in range(run.step + 1, config.max_steps + 1):
        started = time.perf_counter()
        # 1) rollout + rewards: P prompts x G completions -> N = P * G scored completions
        run.model.eval()
        with precision:
            batch = collect_batch(run.model, run.tokenizer, rows, run.order, reward_fn, config, run.generator, backend)
        # 2) group-relative advantages, (N,)
        advantages, _ = group_advantages(
            batch.rewards, G, config.scale_rewards, config.reward_std_epsilon, config.advantage_baseline
        )
        # 3) no-grad log-probs (N, C): old policy only if an update can follow another on this batch (mu > 1
        #    or several mini-batches; else ratio = 1), reference only if beta > 0
        policy_batch = _policy_batch(batch, advantages.to(run.device), config)
        scored = time.perf_counter()
        with precision:
            if config.num_iterations > 1 or config.steps_per_generation > 1:
                policy_batch.old_logps = score_batch(
                    run.model, policy_batch, config.micro_batch_size, config.temperature, backend
                )
            if config.beta > 0:
                with reference_mode(run.reference, run.model) as reference:
                    policy_batch.ref_logps = score_batch(
                        reference, policy_batch, config.micro_batch_size, config.temperature, backend
                    )
        reference_s = time.perf_counter() - scored
        # 4) policy update: num_iterations AdamW steps, gradients accumulated over micro-batches
        with precision:
            update_metrics = update_policy(
                run.model,
                run.parameters,
                run.optimizer,
                run.scheduler,
                policy_batch,
                settings,
                num_iterations=config.num_iterations,
                micro_batch_size=config.micro_batch_size,
                temperature=config.temperature,
                max_grad_norm=config.max_grad_norm,
                steps_per_generation=config.steps_per_generation,
                backend=backend,
            )
        if config.ref_model_sync_steps and step % config.ref_model_sync_steps == 0 and run.reference is not None:
            sync_reference(run.reference, run.model, config.ref_model_mixup_alpha)
        run.step = step
        # 5) report (before checkpointing: a crash in between replays the step, and the sink's writes
        #    are idempotent per step), then checkpoint and evaluate
        step_s = time.perf_counter() - started
        metrics = {
            **_rollout_metrics(batch, advantages, G, config),
            **update_metrics,
            "time/generation_s": batch.generation_s,
            "time/scoring_s": batch.scoring_s,
            "time/reference_s": reference_s,
            "time/step_s": step_s,
            "throughput/tokens_per_s": float(batch.all_lengths.sum()) / step_s,
            **_usage_metrics(batch, policy_batch, step_s),
            **peak_memory(run.device),
        }
        stop: CheckpointThenStop | None = None
        try:
            sink.on_step(StepReport(step=step, metrics=metrics, samples=_samples(batch, advantages, rows, config)))
        except CheckpointThenStop as exc:  # a pause: keep this step (checkpoint, evaluation), then stop
            stop = exc
        checkpointed = (
            stop is not None
            or step % config.checkpoint_every == 0
            or step == config.max_steps
            or checkpoint_requested(sink)  # a draining worker
        )
        if checkpointed:
            final_checkpoint = _checkpoint(run, config, work_dir, metrics, sink)
        if eval_rows and ((config.eval_every and step % config.eval_every == 0) or step == config.max_steps):
            try:
                _evaluate(run, config, eval_rows, eval_reward_fn or reward_fn, sink, backend)
            except CheckpointThenStop:
                if not checkpointed:
                    _checkpoint(run, config, work_dir, metrics, sink)
                raise
        if stop is not None:
            raise stop
    return TrainResult(steps_completed=run.step, final_metrics=metrics, final_checkpoint=final_checkpoint)


def _checkpoint(
    run: RunState, config: GRPOConfig, work_dir: Path, metrics: dict[str, float], sink: TrainingSink
) -> Path:
    path = save_run(run, config, work_dir, metrics)
    prune_checkpoints(work_dir, config.keep_last)
    sink.on_checkpoint(run.step, path)
    return path


def checkpoint_requested(sink: TrainingSink) -> bool:
    """A sink may ask for a checkpoint now (a draining worker: it then stops from on_checkpoint)."""
    requested = getattr(sink, "checkpoint_requested", None)
    return bool(requested()) if callable(requested) else False


def loss_settings(config: GRPOConfig) -> LossSettings:
    """The loss knobs of a run (a function of its own so the TRL parity tests use the same mapping)."""
    return LossSettings(
        loss_type=config.loss_type,
        epsilon=config.epsilon,
        epsilon_high=config.clip_high,
        delta=config.delta,
        importance_sampling_level=config.importance_sampling_level,
        beta=config.beta,
        kl_bias_correction=config.kl_bias_correction,
        max_new_tokens=config.max_new_tokens,
        sampling_correction=config.sampling_correction,
        sampling_correction_cap=config.sampling_correction_cap,
    )


def _usage_metrics(batch: Collected, policy_batch: PolicyBatch, step_s: float) -> dict[str, float]:
    """What the step consumed, for budgets and cost (app/services/budgets.py)."""
    generated, trained = batch.all_lengths.numel(), policy_batch.prompt_mask.size(0)
    # Prompts of dropped groups (dynamic sampling) were prefilled too: scale by generated / trained.
    prompt_tokens = float(policy_batch.prompt_mask.sum()) * generated / max(trained, 1)
    ranks = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    return {
        "usage/tokens_sampled": float(batch.all_lengths.sum()),
        "usage/prompt_tokens": float(round(prompt_tokens)),
        "usage/tokens_trained": float(policy_batch.loss_mask.sum()),
        "usage/reward_calls": float(generated * max(len(batch.all_components), 1)),
        "time/device_s": step_s * ranks,
    }


def _policy_batch(batch: Collected, advantages: torch.Tensor, config: GRPOConfig) -> PolicyBatch:
    rollout = batch.rollout
    loss_mask = rollout.completion_mask.float()
    if config.mask_truncated_completions:  # DAPO: a cut-off answer is neither right nor wrong
        loss_mask = loss_mask * (~rollout.truncated).float()[:, None]
    return PolicyBatch(
        prompt_ids=rollout.prompt_ids,
        prompt_mask=rollout.prompt_mask,
        completion_ids=rollout.completion_ids,
        completion_mask=rollout.completion_mask,
        loss_mask=loss_mask,
        advantages=advantages,
        sampler_logps=rollout.sampler_logps,
    )


def _rollout_metrics(
    batch: Collected, advantages: torch.Tensor, group_size: int, config: GRPOConfig
) -> dict[str, float]:
    metrics = summary(batch.all_rewards, "reward", ("mean", "std", "min", "max"))
    for name, values in batch.all_components.items():
        metrics.update(summary(torch.tensor(values), f"reward/{name}"))
    metrics["reward/frac_zero_std"] = float(tied_groups(batch.all_rewards, group_size).double().mean())
    metrics["reward/unscorable_frac"] = float(unscorable(batch.all_rewards).double().mean())
    metrics.update(summary(advantages.cpu(), "advantage"))
    metrics["advantage/abs_mean"] = float(advantages.abs().mean())
    lengths = batch.all_lengths.double()
    metrics.update(
        {
            "completion/length_mean": float(lengths.mean()),
            "completion/length_min": float(lengths.min()),
            "completion/length_max": float(lengths.max()),
            "completion/truncated_frac": float(batch.all_truncated.double().mean()),
        }
    )
    if config.dynamic_sampling:
        metrics["dynamic_sampling/dropped_groups"] = float(batch.dropped_groups)
        metrics["dynamic_sampling/rounds"] = float(batch.rounds)
    return {**metrics, **batch.scorer_metrics}


def _samples(
    batch: Collected, advantages: torch.Tensor, rows: list[dict[str, Any]], config: GRPOConfig
) -> list[SampleRecord]:
    """The first log_samples_per_step scorable completions of the trained batch, for people to read
    (an unscorable one has no reward to show: JSON has no NaN; reward/unscorable_frac counts them)."""
    lengths, truncated = batch.rollout.lengths.tolist(), batch.rollout.truncated.tolist()
    scorable = (~unscorable(batch.rewards)).nonzero().squeeze(1).tolist()
    records = []
    for i in scorable[: config.log_samples_per_step]:
        row = batch.row_indices[i]
        records.append(
            SampleRecord(
                prompt_index=row,
                group_index=i % config.group_size,
                prompt=rows[row][config.prompt_field],
                completion=batch.rollout.texts[i],
                reward=float(batch.rewards[i]),
                # NaN (component not applicable to this completion) is left out, JSON has no NaN.
                components={
                    name: float(values[i]) for name, values in batch.components.items() if values[i] == values[i]
                },
                advantage=float(advantages[i]),
                num_tokens=int(lengths[i]),
                truncated=bool(truncated[i]),
            )
        )
    return records


def _evaluate(
    run: RunState,
    config: GRPOConfig,
    rows: list[dict[str, Any]],
    reward_fn: RewardFn,
    sink: TrainingSink,
    backend: Backend | None = None,
) -> None:
    with autocast(config, run.device):
        report = evaluate(run.model, run.tokenizer, rows, reward_fn, config, step=run.step, backend=backend)
    sink.on_eval(report)
