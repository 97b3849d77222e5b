"""Reward-hacking monitor: each alert fires on a synthetic run that shows its pattern, once, and not
on a healthy run."""

from app.schemas.reward import SafeguardSpec
from workers.rewards import RewardMonitor
from workers.rewards.monitor import Alert, MetricNames

WINDOW = 4


def healthy(step: int) -> dict[str, float]:
    return {
        "reward/mean": 0.2 + 0.01 * step,
        "entropy": 2.0 - 0.005 * step,
        "hacking/completion_chars_mean": 200.0 + step,
        "hacking/repetition_mean": 0.05,
        "hacking/identical_in_group_frac": 0.05,
        "hacking/zero_std_group_frac": 0.2,
    }


def run(metrics_at, steps: int = 20, spec: SafeguardSpec | None = None) -> list[Alert]:
    monitor = RewardMonitor(spec or SafeguardSpec(window=WINDOW))
    alerts = []
    for step in range(1, steps + 1):
        alerts += monitor.observe_step(step, metrics_at(step))
    return alerts


def test_healthy_run_raises_nothing() -> None:
    assert run(healthy) == []


def test_length_blowup_fires_once() -> None:
    alerts = run(lambda s: {**healthy(s), "hacking/completion_chars_mean": 200.0 * (1.2**s)})
    assert [a.code for a in alerts] == ["length_blowup"]
    assert alerts[0].step == 2 * WINDOW and alerts[0].data["current"] >= 2 * alerts[0].data["baseline"]


def test_repetition_rising() -> None:
    alerts = run(lambda s: {**healthy(s), "hacking/repetition_mean": min(0.05 * s, 0.9)})
    assert [a.code for a in alerts] == ["repetition_rising"]
    flat_but_high = run(lambda s: {**healthy(s), "hacking/repetition_mean": 0.6})
    assert flat_but_high == []  # high from the start: the data, not a trend


def test_saturation_with_entropy_collapse() -> None:
    def collapse(step: int) -> dict[str, float]:
        late = step > 10
        return {
            **healthy(step),
            "hacking/zero_std_group_frac": 0.95 if late else 0.2,
            "entropy": 0.1 if late else 2.0,
        }

    alerts = run(collapse)
    assert [a.code for a in alerts] == ["saturation_entropy_collapse"]
    only_saturated = run(lambda s: {**healthy(s), "hacking/zero_std_group_frac": 1.0})
    assert only_saturated == []  # easy data with a healthy entropy is not hacking


def test_identical_completions_rearm_after_clearing() -> None:
    def bursts(step: int) -> dict[str, float]:
        identical = 0.9 if 5 <= step <= 10 or step >= 17 else 0.0
        return {**healthy(step), "hacking/identical_in_group_frac": identical}

    alerts = run(bursts, steps=24)
    assert [a.code for a in alerts] == ["identical_completions", "identical_completions"]


def test_train_reward_up_while_eval_accuracy_down() -> None:
    monitor = RewardMonitor(SafeguardSpec(window=WINDOW, eval_window=3))
    alerts: list[Alert] = []
    for step in range(1, 31):
        alerts += monitor.observe_step(step, {"reward/mean": 0.1 + 0.03 * step})
        if step % 10 == 0:
            alerts += monitor.observe_eval(step, {"eval/accuracy": 0.6 - 0.01 * step})
    assert [a.code for a in alerts] == ["reward_eval_divergence"]
    assert alerts[0].step == 30 and alerts[0].data["first"] > alerts[0].data["last"]
    assert not monitor.stop_requested


def test_divergence_counts_from_the_step_0_evaluation() -> None:
    """Training evaluates before its first step; that evaluation's baseline reward is the first window's."""
    monitor = RewardMonitor(SafeguardSpec(window=WINDOW, eval_window=2))
    alerts = monitor.observe_eval(0, {"eval/accuracy": 0.6})
    for step in range(1, 11):
        alerts += monitor.observe_step(step, {"reward/mean": 0.1 + 0.03 * step})
    alerts += monitor.observe_eval(10, {"eval/accuracy": 0.5})
    assert [(a.code, a.step) for a in alerts] == [("reward_eval_divergence", 10)]


def test_rising_reward_with_rising_accuracy_is_fine() -> None:
    monitor = RewardMonitor(SafeguardSpec(window=WINDOW))
    alerts: list[Alert] = []
    for step in range(1, 31):
        alerts += monitor.observe_step(step, {"reward/mean": 0.1 + 0.03 * step})
        if step % 10 == 0:
            alerts += monitor.observe_eval(step, {"eval/accuracy": 0.3 + 0.01 * step})
    assert alerts == []


def test_stop_policy_and_custom_metric_names() -> None:
    names = MetricNames(length="completion_length/mean")
    monitor = RewardMonitor(SafeguardSpec(window=2, on_alert="stop"), names)
    for step in range(1, 6):
        monitor.observe_step(step, {"completion_length/mean": 10.0 * 3**step})
    assert [a.code for a in monitor.alerts] == ["length_blowup"] and monitor.stop_requested
