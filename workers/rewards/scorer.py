"""Turn reward specs into the engine's RewardFn: leaves scored in parallel, a weighted total, metrics.

Values, per completion and leaf: the grader's score; an error counts as the leaf's error_score
(on_error='score') or NaN (on_error='skip'); "not applicable" (None) is NaN. A score that is not a
finite number within +-MAX_ABS_REWARD is that call's error (a reward of 1e308 would overflow the
step's mean to infinity). A multi node aggregates its children's non-NaN values (formula in
MultiReward). total = sum of weight * value over the top-level components whose value is not NaN.

Unscorable completions: when no top-level component has a value, the total is NaN, never 0.0 (a 0.0
would be a real, low reward that pulls the group's baseline and gives its siblings a positive
advantage). The engine leaves NaN totals out of the group baseline and gives them advantage 0, as
TRL does, and counts them in a metric.
"""

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from app.schemas.reward import MultiReward, RewardSample, RewardSampleScore, RewardSpec
from workers.contract import RewardBatch
from workers.rewards.components import BuildContext, Leaf, Outcome, build_leaf
from workers.rewards.detectors import quantile, step_detectors
from workers.rewards.errors import RewardError
from workers.rewards.graders import TokenCounter
from workers.rewards.sandbox import SandboxSettings

logger = logging.getLogger(__name__)
NAN = math.nan
MAX_ABS_REWARD = 1e6  # a grader's score outside [-1e6, 1e6] (or NaN/inf) is an error of that call


def component_names(specs: Sequence[Any]) -> list[str]:
    """Explicit names win; otherwise the type, suffixed with its position when a type repeats."""
    type_counts = Counter(spec.type for spec in specs)
    names = []
    for position, spec in enumerate(specs):
        default = spec.type if type_counts[spec.type] == 1 else f"{spec.type}_{position}"
        names.append(spec.name or default)
    if len(set(names)) != len(names):
        raise ValueError(f"reward component names must be unique, got {names}")
    return names


@dataclass
class _Node:
    path: str  # 'name' at the top, 'multi/sub' below
    spec: Any
    leaf: Leaf | None = None
    children: "list[_Node] | None" = None


def _aggregate(spec: MultiReward, values: list[tuple[float, float]]) -> float:
    """(weight, value) pairs of the children, NaN values already dropped."""
    if not values:
        return NAN
    if spec.aggregate == "weighted_sum":
        return sum(w * v for w, v in values)
    if spec.aggregate == "weighted_mean":
        return sum(w * v for w, v in values) / sum(w for w, _ in values)
    return (min if spec.aggregate == "min" else max)(v for _, v in values)


def _check_range(outcome: Outcome) -> None:
    """Turn a non-finite or out-of-range score into the call's error (counted by max_error_rate)."""
    value = outcome.value
    if value is not None and not (math.isfinite(value) and abs(value) <= MAX_ABS_REWARD):
        outcome.value = None
        bound = f"{MAX_ABS_REWARD:g}"
        outcome.error = f"reward returned {value!r}, outside the accepted range [-{bound}, {bound}]"


def _leaf_value(outcome: Outcome, spec: Any) -> float:
    if outcome.error is not None:
        return spec.error_score if spec.on_error == "score" else NAN
    return NAN if outcome.value is None else outcome.value


class RewardFunction:
    """The engine's RewardFn. Holds sandbox processes and HTTP connections: call close() when done."""

    def __init__(
        self,
        specs: Sequence[RewardSpec],
        *,
        group_size: int | None = None,
        count_tokens: TokenCounter | None = None,
        sandbox: SandboxSettings | None = None,
        http_allow_private: bool = False,
        repetition_ngram: int = 3,
        judges: Any = None,
    ) -> None:
        if not specs:
            raise ValueError("at least one reward spec is needed")
        self.group_size, self.repetition_ngram = group_size, repetition_ngram
        self._ctx = BuildContext(
            count_tokens=count_tokens,
            sandbox=sandbox,
            http_allow_private=http_allow_private,
            judges=judges,  # judge rewards: a JudgeResolver (workers/rewards/judge.py)
            group_size=group_size,
        )
        self.leaves: list[Leaf] = []
        try:
            self.roots = [self._build(name, spec) for name, spec in zip(component_names(specs), specs, strict=True)]
        except BaseException:
            self.close()
            raise
        remote = sum(not leaf.inline for leaf in self.leaves)
        self._executor = ThreadPoolExecutor(max_workers=max(remote, 1), thread_name_prefix="reward")

    def _build(self, path: str, spec: Any) -> _Node:
        if isinstance(spec, MultiReward):
            names = component_names(spec.components)
            return _Node(
                path,
                spec,
                children=[self._build(f"{path}/{n}", s) for n, s in zip(names, spec.components, strict=True)],
            )
        leaf = build_leaf(path, spec, self._ctx)
        self.leaves.append(leaf)
        return _Node(path, spec, leaf=leaf)

    # -- scoring --------------------------------------------------------------------------------------
    def outcomes(
        self, prompts: list[str], completions: list[str], rows: list[dict[str, Any]]
    ) -> dict[str, list[Outcome]]:
        """Every leaf's outcomes, leaf path -> (N,). Slow leaves run concurrently, inline ones meanwhile."""
        if not len(prompts) == len(completions) == len(rows):
            raise ValueError(f"got {len(prompts)} prompts, {len(completions)} completions, {len(rows)} rows")
        futures = {
            leaf.name: self._executor.submit(leaf.score, prompts, completions, rows)
            for leaf in self.leaves
            if not leaf.inline
        }
        results = {leaf.name: leaf.score(prompts, completions, rows) for leaf in self.leaves if leaf.inline}
        results.update({name: future.result() for name, future in futures.items()})
        for outcomes in results.values():
            for outcome in outcomes:
                _check_range(outcome)
        return results

    def _values(self, node: _Node, outcomes: dict[str, list[Outcome]], n: int) -> dict[str, list[float]]:
        """Value lists of `node` and every node below it, path -> (N,)."""
        if node.leaf is not None:
            return {node.path: [_leaf_value(o, node.spec) for o in outcomes[node.path]]}
        values: dict[str, list[float]] = {}
        for child in node.children or []:
            values.update(self._values(child, outcomes, n))
        children = [(c.spec.weight, values[c.path]) for c in node.children or []]
        values[node.path] = [
            _aggregate(node.spec, [(w, v[i]) for w, v in children if not math.isnan(v[i])]) for i in range(n)
        ]
        return values

    def _totals(self, values: dict[str, list[float]], n: int) -> list[float]:
        """Weighted sums over the components with a value; NaN (unscorable) when none has one."""
        totals = []
        for i in range(n):
            scored = [root.spec.weight * values[root.path][i] for root in self.roots]
            scored = [v for v in scored if not math.isnan(v)]
            totals.append(sum(scored) if scored else NAN)
        return totals

    def __call__(self, prompts: list[str], completions: list[str], rows: list[dict[str, Any]]) -> RewardBatch:
        started = time.perf_counter()
        n = len(completions)
        outcomes = self.outcomes(prompts, completions, rows)
        values: dict[str, list[float]] = {}
        for root in self.roots:
            values.update(self._values(root, outcomes, n))
        self._check_error_rates(outcomes, n)
        totals = self._totals(values, n)
        metrics = self._leaf_metrics(outcomes, values)
        metrics.update(step_detectors(completions, totals, self.group_size, self.repetition_ngram))
        metrics["time/scoring_s"] = time.perf_counter() - started
        return RewardBatch(total=totals, components={r.path: values[r.path] for r in self.roots}, metrics=metrics)

    def _check_error_rates(self, outcomes: dict[str, list[Outcome]], n: int) -> None:
        worst: RewardError | None = None
        for leaf in self.leaves:
            failures = [o.error for o in outcomes[leaf.name] if o.error is not None]
            if n and len(failures) / n > leaf.spec.max_error_rate:
                error = RewardError(
                    leaf.name, len(failures), n, leaf.spec.max_error_rate, list(dict.fromkeys(failures))[:3]
                )
                if worst is None or error.errors > worst.errors:
                    worst = error
        if worst is not None:
            raise worst

    def _leaf_metrics(self, outcomes: dict[str, list[Outcome]], values: dict[str, list[float]]) -> dict[str, float]:
        metrics: dict[str, float] = {}
        top = {root.path for root in self.roots}
        for leaf in self.leaves:
            results, prefix = outcomes[leaf.name], f"reward/{leaf.name}"
            latencies = [o.latency_s for o in results]
            errors = sum(o.error is not None for o in results)
            metrics[f"{prefix}/latency_p50_s"] = quantile(latencies, 0.5)
            metrics[f"{prefix}/latency_p95_s"] = quantile(latencies, 0.95)
            metrics[f"{prefix}/errors"] = float(errors)
            metrics[f"{prefix}/error_rate"] = errors / max(len(results), 1)
            metrics[f"{prefix}/not_applicable"] = float(sum(o.error is None and o.value is None for o in results))
            step_metrics = getattr(leaf, "step_metrics", None)  # judge rewards: calls, tokens, latency
            if step_metrics is not None:
                metrics.update(step_metrics())
        for path, series in values.items():
            if path not in top:  # the engine reports top-level component means itself
                finite = [v for v in series if not math.isnan(v)]
                metrics[f"reward/{path}/mean"] = sum(finite) / len(finite) if finite else NAN
        return metrics

    def score_samples(self, samples: Sequence[RewardSample]) -> list[RewardSampleScore]:
        """Per-sample total, component values and errors; never raises for per-sample failures."""
        prompts = [s.prompt for s in samples]
        completions = [s.completion for s in samples]
        rows = [dict(s.row) for s in samples]
        outcomes = self.outcomes(prompts, completions, rows)
        values: dict[str, list[float]] = {}
        for root in self.roots:
            values.update(self._values(root, outcomes, len(samples)))
        totals = self._totals(values, len(samples))
        return [
            RewardSampleScore(
                total=None if math.isnan(totals[i]) else totals[i],
                components={path: None if math.isnan(v[i]) else v[i] for path, v in values.items()},
                errors={path: o[i].error for path, o in outcomes.items() if o[i].error is not None},
            )
            for i in range(len(samples))
        ]

    def close(self) -> None:
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=True)
        for leaf in self.leaves:
            try:
                leaf.close()
            except Exception:  # noqa: BLE001 - closing the others matters more
                logger.exception("closing reward %s failed", leaf.name)
        self.leaves = []

    def __enter__(self) -> "RewardFunction":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def build_reward_fn(specs: Sequence[RewardSpec], **options: Any) -> RewardFunction:
    """The engine's RewardFn for a job's reward specs; options as RewardFunction's keyword arguments."""
    return RewardFunction(specs, **options)


def score_samples(
    specs: Sequence[RewardSpec], samples: Sequence[RewardSample], **options: Any
) -> list[RewardSampleScore]:
    """Score caller-supplied samples (POST /v1/rewards/{id}/test); starts and stops its own sandboxes."""
    with RewardFunction(specs, **options) as reward_fn:
        return reward_fn.score_samples(samples)
