"""The training loop: determinism, exact resume, cancel, checkpoints, evaluation, learning."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from tests.utils.engine import Cancelled, RecordingSink, digit_rows, make_config, repeat_reward
from workers.demo import demo_spec
from workers.engine import latest_checkpoint, list_checkpoints, train
from workers.engine.checkpoint import MARKER, STATE_JSON, STATE_PT
from workers.spec import engine_config_from_spec, parse_spec, reward_fn_from_spec, training_rows


def weights(checkpoint):
    return load_file(str(checkpoint / "model.safetensors"))


def test_two_runs_with_one_seed_are_identical(tmp_path, model_cache):
    config = make_config(model_cache, max_steps=3)
    first, second = RecordingSink(), RecordingSink()
    a = train(config, digit_rows(), repeat_reward, first, work_dir=tmp_path / "a")
    b = train(config, digit_rows(), repeat_reward, second, work_dir=tmp_path / "b")
    assert first.run_metrics() == second.run_metrics()
    assert [s.completion for r in first.steps for s in r.samples] == [
        s.completion for r in second.steps for s in r.samples
    ]
    wa, wb = weights(a.final_checkpoint), weights(b.final_checkpoint)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    other = RecordingSink()
    train(
        make_config(model_cache, max_steps=3, seed=1),
        digit_rows(),
        repeat_reward,
        other,
        work_dir=tmp_path / "c",
    )
    assert other.run_metrics() != first.run_metrics()


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # default: dapo, mu = 1, beta = 0, linear schedule
        {
            "num_iterations": 2,
            "beta": 0.04,
            "micro_batch_size": 5,
            "warmup_steps": 2,
            "lr_scheduler": "cosine",
        },
    ],
)
def test_resume_continues_bit_for_bit(tmp_path, model_cache, overrides):
    config = make_config(model_cache, max_steps=6, checkpoint_every=3, **overrides)
    straight = RecordingSink()
    train(config, digit_rows(), repeat_reward, straight, work_dir=tmp_path / "straight")

    interrupted = RecordingSink(raise_at=4)  # step 3 is checkpointed, step 4 is cancelled
    with pytest.raises(Cancelled):
        train(config, digit_rows(), repeat_reward, interrupted, work_dir=tmp_path / "resumed")
    checkpoint = latest_checkpoint(tmp_path / "resumed")
    assert checkpoint.name == "checkpoint-000003"
    resumed = RecordingSink()
    result = train(config, digit_rows(), repeat_reward, resumed, work_dir=tmp_path / "resumed", resume_from=checkpoint)
    assert [r.step for r in resumed.steps] == [4, 5, 6]
    assert resumed.run_metrics() == straight.run_metrics()[3:]  # bitwise equal floats
    wa, wb = weights(tmp_path / "straight" / "checkpoint-000006"), weights(result.final_checkpoint)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_cancel_propagates_and_leaves_only_complete_checkpoints(tmp_path, model_cache):
    config = make_config(model_cache, max_steps=5, checkpoint_every=2)
    sink = RecordingSink(raise_at=3)
    with pytest.raises(Cancelled):
        train(config, digit_rows(), repeat_reward, sink, work_dir=tmp_path)
    assert [s for s, _ in sink.checkpoints] == [2]
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-000002"]


def test_checkpoint_layout_retention_and_stock_loading(tmp_path, model_cache):
    config = make_config(model_cache, max_steps=5, checkpoint_every=2, keep_last=2)
    sink = RecordingSink()
    result = train(config, digit_rows(), repeat_reward, sink, work_dir=tmp_path)
    assert [s for s, _ in sink.checkpoints] == [2, 4, 5]
    assert [s for s, _ in list_checkpoints(tmp_path)] == [4, 5]  # keep_last = 2
    final = result.final_checkpoint
    assert final == tmp_path / "checkpoint-000005"
    for name in ("config.json", "model.safetensors", "tokenizer.json", STATE_PT, STATE_JSON, MARKER):
        assert (final / name).is_file(), name
    info = json.loads((final / STATE_JSON).read_text())
    assert info["step"] == 5 and info["data_cursor"] == 15 and info["config"]["seed"] == 0
    model = AutoModelForCausalLM.from_pretrained(final)  # stock transformers, nothing of ours
    assert sum(p.numel() for p in model.parameters()) > 0


def test_metrics_names_and_samples(tmp_path, model_cache):
    sink = RecordingSink()
    train(
        make_config(model_cache, max_steps=1, beta=0.1, log_samples_per_step=3),
        digit_rows(),
        repeat_reward,
        sink,
        work_dir=tmp_path,
    )
    metrics = sink.steps[0].metrics
    for name in (
        "reward/mean",
        "reward/std",
        "reward/hit/mean",
        "reward/short/std",
        "reward/frac_zero_std",
        "kl",
        "loss",
        "entropy",
        "grad_norm",
        "learning_rate",
        "completion/length_mean",
        "completion/length_min",
        "completion/length_max",
        "completion/truncated_frac",
        "throughput/tokens_per_s",
        "time/step_s",
        "time/generation_s",
        "time/scoring_s",
        "time/training_s",
        "time/reference_s",
        "time/optimizer_s",
        "clip/region_frac",
        "advantage/std",
        "memory/peak_rss_mb",
    ):
        assert name in metrics, name
    from workers.engine.metrics import describe

    for name in metrics:
        assert describe(name)  # every reported name is documented
    samples = sink.steps[0].samples
    assert len(samples) == 3 and [s.group_index for s in samples] == [0, 1, 2]
    assert samples[0].prompt == digit_rows()[samples[0].prompt_index]["prompt"]


def test_evaluation_during_training(tmp_path, model_cache):
    sink = RecordingSink()
    config = make_config(model_cache, max_steps=2, eval_every=1, eval_samples_per_prompt=4)
    train(config, digit_rows(), repeat_reward, sink, work_dir=tmp_path, eval_rows=digit_rows()[:5])
    assert [e.step for e in sink.evals] == [0, 1, 2]
    report = sink.evals[0]
    assert report.num_prompts == 5 and report.samples_per_prompt == 4
    assert {"eval/reward_mean", "eval/accuracy", "eval/pass@1", "eval/pass@4", "eval/hit/mean"} <= set(report.metrics)


def test_reward_rises_on_the_demo_task(tmp_path, model_cache):
    """Seeded learning test on the README demo's job spec: from chance to mostly right in 250 steps."""
    spec = parse_spec(demo_spec())
    config = dataclasses.replace(
        engine_config_from_spec(spec, data_dir=tmp_path),
        model_cache_dir=model_cache,
        max_steps=250,
        checkpoint_every=1000,
    )
    sink = RecordingSink()
    train(config, training_rows(spec), reward_fn_from_spec(spec), sink, work_dir=tmp_path / "run")
    rewards = [r.metrics["reward/mean"] for r in sink.steps]
    assert sum(rewards[:10]) / 10 < 0.15
    assert sum(rewards[-20:]) / 20 > 0.8
