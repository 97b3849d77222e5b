"""Turn a job's reward specs into the engine's RewardFn: weighted sum of named components."""

import time
from collections import Counter
from typing import Any

from app.schemas.reward import RewardSpec
from workers.engine.interface import RewardBatch, RewardFn
from workers.rewards.graders import Grader, build_grader


def component_names(specs: list[RewardSpec]) -> list[str]:
    """Explicit names win; otherwise the type, suffixed with its position when a type repeats."""
    type_counts = Counter(spec.type for spec in specs)
    names = []
    for position, spec in enumerate(specs):
        default = spec.type if type_counts[spec.type] == 1 else f"{spec.type}_{position}"
        names.append(spec.name or default)
    if len(set(names)) != len(names):
        raise ValueError(f"reward component names must be unique, got {names}")
    return names


class WeightedRewardFn:
    def __init__(self, specs: list[RewardSpec]) -> None:
        self._components: list[tuple[str, float, Grader]] = [
            (name, spec.weight, build_grader(spec)) for name, spec in zip(component_names(specs), specs, strict=True)
        ]

    def __call__(self, prompts: list[str], completions: list[str], rows: list[dict[str, Any]]) -> RewardBatch:
        started = time.perf_counter()
        components = {
            name: [grade(p, c, r) for p, c, r in zip(prompts, completions, rows, strict=True)]
            for name, _, grade in self._components
        }
        total = [
            sum(weight * components[name][i] for name, weight, _ in self._components) for i in range(len(completions))
        ]
        return RewardBatch(total=total, components=components, metrics={"time/scoring_s": time.perf_counter() - started})


def build_reward_fn(specs: list[RewardSpec]) -> RewardFn:
    return WeightedRewardFn(specs)
