"""CheckpointThenStop (a pause): the engine checkpoints the step just finished, off the checkpoint schedule,
runs that step's evaluation, then stops; resuming there continues bit for bit. Raised from on_eval, it
checkpoints too."""

from pathlib import Path

import pytest

from tests.engine.conftest import RecordingSink, digit_rows, make_config, repeat_reward
from workers.engine import train
from workers.engine.interface import CheckpointThenStop, EvalReport, StepReport


class PausingSink(RecordingSink):
    def __init__(self, at: int, on: str = "step") -> None:
        super().__init__()
        self.at, self.on = at, on

    def on_step(self, report: StepReport) -> None:
        super().on_step(report)
        if self.on == "step" and report.step == self.at:
            raise CheckpointThenStop("pause")

    def on_eval(self, report: EvalReport) -> None:
        super().on_eval(report)
        if self.on == "eval" and report.step == self.at:
            raise CheckpointThenStop("pause")


@pytest.mark.parametrize("on", ["step", "eval"])
def test_pause_checkpoints_the_step_and_resume_continues_bit_for_bit(tmp_path: Path, model_cache: Path, on: str):
    config = make_config(model_cache, max_steps=4, checkpoint_every=1000, eval_every=2)
    eval_rows = digit_rows()[:3]
    straight = RecordingSink()
    train(config, digit_rows(), repeat_reward, straight, work_dir=tmp_path / "a", eval_rows=eval_rows)

    paused = PausingSink(at=2, on=on)
    with pytest.raises(CheckpointThenStop):
        train(config, digit_rows(), repeat_reward, paused, work_dir=tmp_path / "b", eval_rows=eval_rows)
    assert [step for step, _ in paused.checkpoints] == [2]  # off the every-1000 schedule
    assert [r.step for r in paused.evals] == [0, 2]  # the step's evaluation ran before stopping
    resumed = RecordingSink()
    checkpoint = paused.checkpoints[0][1]
    train(
        config,
        digit_rows(),
        repeat_reward,
        resumed,
        work_dir=tmp_path / "b",
        resume_from=checkpoint,
        eval_rows=eval_rows,
    )
    assert paused.run_metrics() + resumed.run_metrics() == straight.run_metrics()
    assert [r.metrics for r in paused.evals + resumed.evals] == [r.metrics for r in straight.evals]
