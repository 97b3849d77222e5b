"""Preflight: before a job spends a device, check it the way the worker would and sample the base model.

Loads the dataset, model and tokenizer, builds the rewards (compiling user code in its sandbox), then
generates group_size completions for a few prompts, scores them and reports what a person needs to judge
the run: the reward distribution, how many groups tie (GRPO learns nothing from those), grader latency and
errors, completion lengths and truncation, and the time and tokens the whole job would take.
Celery-free (workers/tasks.py adapts it); the report is plain JSON.
"""

import logging
import math
import random
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.core.storage import make_store
from app.models import Preflight
from app.models.base import utcnow
from app.schemas.job import JobSpec
from app.schemas.preflight import PreflightStatus
from app.schemas.reward_resource import concrete_rewards
from workers.engine.collect import rollout_and_score, sampling_params
from workers.engine.config import GRPOConfig
from workers.engine.model import load_policy, load_tokenizer, model_path, resolve_device
from workers.inputs import load_rows
from workers.rewards import build_reward_fn
from workers.runner import error_body
from workers.spec import engine_config_from_spec, token_counter

logger = logging.getLogger(__name__)
BINS = 10
TIE_WARNING = 0.5  # share of tied groups worth a warning
TRUNCATION_WARNING = 0.3
SLOW_GRADER_S = 1.0


def run_preflight(
    *, spec: JobSpec, tenant_id: uuid.UUID, prompts: int, settings: Settings, sessions: sessionmaker[Session]
) -> dict[str, Any]:
    """The report for `spec`; raises (with `param` when known) when something the job needs is unusable."""
    with sessions() as session:
        store = make_store(settings)
        rows = load_rows(spec.dataset, store=store, session=session, tenant_id=tenant_id, param="dataset")
    config = engine_config_from_spec(spec, data_dir=settings.data_dir)
    device = resolve_device(config)
    started = time.perf_counter()
    tokenizer = load_tokenizer(model_path(config), config.model_revision)
    model = load_policy(config, device).eval()
    load_s = time.perf_counter() - started
    indices = random.Random(config.seed).sample(range(len(rows)), min(prompts, len(rows)))
    generator = torch.Generator(device=device).manual_seed(config.seed)
    rewards = concrete_rewards(spec.rewards)
    with build_reward_fn(rewards, group_size=config.group_size, count_tokens=token_counter(config)) as reward_fn:
        rollout, scores, generation_s, scoring_s = rollout_and_score(
            model, tokenizer, rows, indices, reward_fn, config, generator,
            params=sampling_params(config), group_size=config.group_size, max_new_tokens=config.max_new_tokens,
        )  # fmt: skip
    report = analyse(
        config,
        totals=scores.total,
        components=scores.components,
        scorer=scores.metrics,
        lengths=rollout.lengths.tolist(),
        truncated=rollout.truncated.tolist(),
        prompt_tokens=int(rollout.prompt_mask.sum()),
    )
    report["sampled"] = {"prompts": len(indices), "completions": len(scores.total), "model_load_s": load_s}
    report["estimate"] = estimate(config, len(indices), generation_s, scoring_s, report)
    report["warnings"] += estimate_warnings(report)
    return report


def histogram(values: list[float]) -> dict[str, Any]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"edges": [], "counts": [], "mean": None, "min": None, "max": None}
    low, high = min(finite), max(finite)
    width = (high - low) / BINS or 1.0
    counts = [0] * (BINS if high > low else 1)
    for value in finite:
        counts[min(int((value - low) / width), len(counts) - 1)] += 1
    edges = [low + width * i for i in range(len(counts) + 1)]
    return {"edges": edges, "counts": counts, "mean": sum(finite) / len(finite), "min": low, "max": high}


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def analyse(
    config: GRPOConfig,
    *,
    totals: list[float],
    components: dict[str, list[float]],
    scorer: dict[str, float],
    lengths: list[int],
    truncated: list[bool],
    prompt_tokens: int,
) -> dict[str, Any]:
    G = config.group_size
    groups = [totals[i : i + G] for i in range(0, len(totals), G)]
    tied = [g for g in groups if max(g) == min(g)]
    tie_values = Counter(round(g[0], 6) for g in tied)
    graders = {
        name: {
            "latency_p50_s": scorer.get(f"reward/{name}/latency_p50_s"),
            "latency_p95_s": scorer.get(f"reward/{name}/latency_p95_s"),
            "error_rate": scorer.get(f"reward/{name}/error_rate", 0.0),
        }
        for name in components
    }
    report: dict[str, Any] = {
        "reward": {"total": histogram(totals), "components": {n: histogram(v) for n, v in components.items()}},
        "tied_groups": {
            "share": len(tied) / len(groups) if groups else 0.0,
            "groups": len(groups),
            "by_value": {str(value): count for value, count in tie_values.most_common()},
        },
        "graders": graders,
        "completion_length": {
            **histogram([float(n) for n in lengths]),
            "p50": quantile(lengths, 0.5),
            "p95": quantile(lengths, 0.95),
            "truncation_rate": sum(truncated) / len(truncated) if truncated else 0.0,
        },
        "prompt_tokens_per_completion": prompt_tokens / max(len(lengths), 1),
    }
    report["warnings"] = warnings(config, report, totals)
    return report


def warnings(config: GRPOConfig, report: dict[str, Any], totals: list[float]) -> list[str]:
    out = []
    ties = report["tied_groups"]
    if ties["share"] >= TIE_WARNING and ties["by_value"]:
        value, count = next(iter(ties["by_value"].items()))
        share = round(100 * ties["share"])
        top = max(totals)
        if float(value) >= top and count == ties["groups"] and top > 0:
            why = "the task may be too easy for this model, or the reward too lenient"
        elif float(value) <= min(totals):
            why = "the task may be too hard for this model or the reward too strict"
        else:
            why = "the reward may be too coarse to tell completions apart"
        out.append(f"{share}% of groups tie at reward {float(value):g}: {why}; GRPO learns nothing from tied groups")
    truncation = report["completion_length"]["truncation_rate"]
    if truncation >= TRUNCATION_WARNING:
        out.append(
            f"{round(100 * truncation)}% of completions hit max_new_tokens ({config.max_new_tokens}): raise it, "
            "or ask for shorter answers"
        )
    for name, grader in report["graders"].items():
        if grader["error_rate"]:
            out.append(f"reward {name!r} failed on {round(100 * grader['error_rate'])}% of completions")
        if (grader["latency_p95_s"] or 0) > SLOW_GRADER_S:
            out.append(f"reward {name!r} takes {grader['latency_p95_s']:.1f} s per call at p95: steps will wait on it")
    return out


def estimate(config: GRPOConfig, prompts: int, generation_s: float, scoring_s: float, report: dict[str, Any]) -> dict:
    """Step and job time from the sample's generation and scoring, scaled to prompts_per_step. Training's
    forward/backward is not measured here: about 3 forward passes per update, counted as half the
    generation time again per iteration, a rough rule for short completions (measure a few steps to know)."""
    scale = config.prompts_per_step / max(prompts, 1)
    rollout_s = (generation_s + scoring_s) * scale
    step_s = rollout_s + 0.5 * generation_s * scale * config.num_iterations
    completions = config.prompts_per_step * config.group_size
    length = report["completion_length"]["mean"] or 0.0
    return {
        "step_s": step_s,
        "total_s": step_s * config.max_steps,
        "generated_tokens_per_step": length * completions,
        "generated_tokens_total": length * completions * config.max_steps,
        "prompt_tokens_total": report["prompt_tokens_per_completion"] * completions * config.max_steps,
        "reward_calls_total": completions * len(report["graders"]) * config.max_steps,
        "basis": "measured generation and scoring of the sample, scaled; training time estimated",
    }


def estimate_warnings(report: dict[str, Any]) -> list[str]:
    hours = report["estimate"]["total_s"] / 3600
    return [f"the whole job would take about {hours:.1f} hours on this worker"] if hours >= 24 else []


def run_preflight_request(
    *, preflight_id: uuid.UUID, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    """Claim the request (queued -> running, once), run it, store the report or the error."""
    with session_factory() as session:
        claimed = session.execute(
            update(Preflight)
            .where(Preflight.id == preflight_id, Preflight.status == PreflightStatus.queued)
            .values(status=PreflightStatus.running)
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
        row = session.get(Preflight, preflight_id) if claimed else None
        if row is None:
            logger.info("preflight %s is not queued (expired or a duplicate delivery); skipped", preflight_id)
            return
        spec, tenant_id, prompts = JobSpec.model_validate(row.spec), row.tenant_id, row.prompts
    report, error = None, None
    try:
        report = run_preflight(
            spec=spec, tenant_id=tenant_id, prompts=prompts, settings=settings, sessions=session_factory
        )
    except Exception as exc:  # the answer to the person: what cannot run and which field
        logger.warning("preflight %s failed:\n%s", preflight_id, traceback.format_exc())
        error = error_body(exc)
    with session_factory() as session:
        session.execute(
            update(Preflight)
            .where(Preflight.id == preflight_id)
            .values(
                status=PreflightStatus.failed if error else PreflightStatus.succeeded,
                report=report,
                error=error,
                finished_at=utcnow(),
            )
        )
        session.commit()
