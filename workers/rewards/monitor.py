"""Reward-hacking monitor: fed one step's metrics at a time (and eval results), emits alerts.

Pure and stateful: no I/O, no clock. The task creates one per job, calls observe_step after every
step and observe_eval after every held-out evaluation, records the alerts it returns as job events,
and stops the job when `stop_requested` (SafeguardSpec.on_alert == "stop").

Windows: `baseline` is the mean of a metric over the first `window` steps that reported it; `current`
is the mean over the last `window` steps. Trend alerts need 2 * window steps, so the two windows do
not overlap. Each alert fires once when its condition starts to hold and re-arms once it clears.

  length_blowup          current(length) >= length_growth * baseline(length)
  repetition_rising      current(repetition) >= repetition_threshold and
                         current(repetition) - baseline(repetition) >= repetition_rise
  saturation_entropy_collapse
                         current(zero_std) >= saturation_zero_std and
                         current(entropy) <= entropy_collapse * baseline(entropy)
  identical_completions  current(identical) >= identical_threshold (needs `window` steps only)
  reward_eval_divergence over the last eval_window evaluations: accuracy fell by >= accuracy_drop
                         while the mean train reward of the `window` steps up to the last eval rose by
                         >= reward_rise over that of the `window` steps up to the first one (the first
                         `window` steps when the first eval is that of step 0, before any training)
"""

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from app.schemas.reward import SafeguardSpec


@dataclass(frozen=True)
class Alert:
    code: str  # one of the names in the module docstring
    message: str
    step: int
    data: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricNames:
    """Which step metric feeds each detector. The hacking/* names are the scorer's own; the others
    are the engine's and may be remapped by the task."""

    reward: str = "reward/mean"
    entropy: str = "entropy"
    accuracy: str = "eval/accuracy"  # in eval reports
    length: str = "hacking/completion_chars_mean"
    repetition: str = "hacking/repetition_mean"
    identical: str = "hacking/identical_in_group_frac"
    zero_std: str = "hacking/zero_std_group_frac"


class _Series:
    """The first `window` values (baseline) and the last `window` values of one metric."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.first: list[float] = []
        self.last: deque[float] = deque(maxlen=window)
        self.count = 0

    def add(self, value: float) -> None:
        if len(self.first) < self.window:
            self.first.append(value)
        self.last.append(value)
        self.count += 1

    @property
    def baseline(self) -> float | None:
        return sum(self.first) / self.window if self.count >= 2 * self.window else None

    @property
    def current(self) -> float | None:
        return sum(self.last) / len(self.last) if len(self.last) == self.window else None


class RewardMonitor:
    def __init__(self, spec: SafeguardSpec | None = None, names: MetricNames | None = None) -> None:
        self.spec = spec or SafeguardSpec()
        self.names = names or MetricNames()
        fields = ("length", "repetition", "identical", "zero_std", "entropy")
        self._series = {name: _Series(self.spec.window) for name in fields}
        self._rewards: list[tuple[int, float]] = []  # (step, train reward mean)
        self._evals: deque[tuple[int, float]] = deque(maxlen=self.spec.eval_window)
        self._active: set[str] = set()
        self.alerts: list[Alert] = []

    @property
    def stop_requested(self) -> bool:
        return self.spec.on_alert == "stop" and bool(self.alerts)

    def observe_step(self, step: int, metrics: Mapping[str, float]) -> list[Alert]:
        """Record one step's metrics; return the alerts that start to hold at this step."""
        for key, series in self._series.items():
            value = metrics.get(getattr(self.names, key))
            if value is not None and value == value:  # NaN-safe
                series.add(float(value))
        reward = metrics.get(self.names.reward)
        if reward is not None and reward == reward:
            self._rewards.append((step, float(reward)))
        checks = (self._length_blowup, self._repetition_rising, self._saturation, self._identical)
        return [alert for check in checks if (alert := check(step)) is not None]

    def _length_blowup(self, step: int) -> Alert | None:
        length = self._series["length"]
        holds = _ge(length.current, _times(self.spec.length_growth, length.baseline))
        message = "mean completion length grew to {current:.0f} chars from {baseline:.0f}"
        return self._check("length_blowup", step, holds, message, current=length.current, baseline=length.baseline)

    def _repetition_rising(self, step: int) -> Alert | None:
        rep = self._series["repetition"]
        rise = _minus(rep.current, rep.baseline)
        holds = _ge(rep.current, self.spec.repetition_threshold) and _ge(rise, self.spec.repetition_rise)
        message = "n-gram repetition rose to {current:.2f} from {baseline:.2f}"
        return self._check("repetition_rising", step, holds, message, current=rep.current, baseline=rep.baseline)

    def _saturation(self, step: int) -> Alert | None:
        zero_std, entropy = self._series["zero_std"], self._series["entropy"]
        holds = _ge(zero_std.current, self.spec.saturation_zero_std) and _le(
            entropy.current, _times(self.spec.entropy_collapse, entropy.baseline)
        )
        message = "{zero_std:.0%} of groups have tied rewards; entropy fell to {current:.3g} from {baseline:.3g}"
        data = {"zero_std": zero_std.current, "current": entropy.current, "baseline": entropy.baseline}
        return self._check("saturation_entropy_collapse", step, holds, message, **data)

    def _identical(self, step: int) -> Alert | None:
        identical = self._series["identical"]
        holds = _ge(identical.current, self.spec.identical_threshold)
        message = "completions within a group are {current:.0%} identical"
        return self._check("identical_completions", step, holds, message, current=identical.current)

    def observe_eval(self, step: int, metrics: Mapping[str, float]) -> list[Alert]:
        accuracy = metrics.get(self.names.accuracy)
        if accuracy is None or accuracy != accuracy:
            return []
        self._evals.append((step, float(accuracy)))
        if len(self._evals) < self.spec.eval_window:
            return []
        (first_step, first_acc), (last_step, last_acc) = self._evals[0], self._evals[-1]
        before, after = self._reward_up_to(first_step), self._reward_up_to(last_step)
        if before is None:  # the first eval came before any training step (step 0): the start is the baseline
            before = self._reward_from(first_step)
        rise = _minus(after, before)
        holds = _ge(rise, self.spec.reward_rise) and first_acc - last_acc >= self.spec.accuracy_drop
        alert = self._check(
            "reward_eval_divergence",
            step,
            holds,
            "train reward rose by {rise:.3f} while held-out accuracy fell from {first:.3f} to {last:.3f}",
            rise=rise,
            first=first_acc,
            last=last_acc,
        )
        return [alert] if alert else []

    def _reward_up_to(self, step: int) -> float | None:
        values = [r for s, r in self._rewards if s <= step][-self.spec.window :]
        return sum(values) / len(values) if values else None

    def _reward_from(self, step: int) -> float | None:
        values = [r for s, r in self._rewards if s > step][: self.spec.window]
        return sum(values) / len(values) if values else None

    def _check(self, code: str, step: int, holds: bool, template: str, **data: float | None) -> Alert | None:
        if not holds:
            self._active.discard(code)
            return None
        if code in self._active:
            return None
        self._active.add(code)
        alert = Alert(code, template.format(**data), step, {k: float(v) for k, v in data.items() if v is not None})
        self.alerts.append(alert)
        return alert


def _ge(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and a >= b


def _le(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and a <= b


def _times(k: float, x: float | None) -> float | None:
    return None if x is None else k * x


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b
