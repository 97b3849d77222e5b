"""N ranks compute the update one process computes (gloo, 2 CPU processes, the tiny model).

One spawned 2-rank session runs every multi-rank case (process start-up dominates on a small CPU):
loss types dapo / grpo / bnpo with beta 0 and 0.04 under ddp and fsdp, LoRA under fsdp, and the halves
of the resume tests. The one-process references run in the test process (World() of size 1, no process group).

Measured on a 2-core CPU VM (float32, 2026-12-06): loss within 1.8e-8 absolute (|loss| <= 0.1; it is
near 0 on-policy, so relative error means little), grad norm within 5.3e-8 relative, KL within 3.6e-6
relative, weights after 3 steps at lr 1e-3 within 5.6e-6 absolute. The tolerances below leave margin.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from tests.engine.distributed_cases import case_name, run_case, run_rank
from workers.engine import latest_checkpoint, train
from workers.engine.distributed import World, prompt_generator

STEPS = 3
CASES = [
    {"loss_type": loss_type, "beta": beta, "strategy": strategy, "max_steps": STEPS}
    for loss_type in ("dapo", "grpo", "bnpo")
    for beta in (0.0, 0.04)
    for strategy in ("ddp", "fsdp")
] + [
    {"loss_type": "grpo", "beta": 0.04, "strategy": "fsdp", "max_steps": STEPS, "lora": True},
    # Longer completions and bigger groups under fsdp (the reference workload of bench/distributed_scaling.py,
    # not this tiny model, is what showed that ranks with uneven scorer buckets deadlock FSDP).
    {
        "loss_type": "dapo",
        "beta": 0.04,
        "strategy": "fsdp",
        "max_steps": STEPS,
        "max_new_tokens": 64,
        "group_size": 8,
    },  # fmt: skip
]
# constant schedule: the halves run with max_steps=2, which would shorten a decaying schedule
RESUME = {"loss_type": "dapo", "beta": 0.04, "strategy": "fsdp", "every": 1, "lr_scheduler": "constant"}
WEIGHT_ATOL = 2e-5
METRIC_RTOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metrics(out: Path) -> list[dict[str, float]]:
    return json.loads((out / "metrics.json").read_text())


def _weights(out: Path) -> dict[str, torch.Tensor]:
    checkpoint = latest_checkpoint(out / "work")
    assert checkpoint is not None
    weights = checkpoint / "model.safetensors"
    return load_file(str(weights if weights.exists() else checkpoint / "adapter_model.safetensors"))  # LoRA


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Path:
    root = tmp_path_factory.mktemp("distributed")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        references = {case_name({**case, "strategy": "ddp"}): {**case, "strategy": "ddp"} for case in CASES}
        for name, case in references.items():  # one-process references (the strategy plays no part there)
            run_case(case, World(), model_cache, root / "one" / name)
        run_case({**RESUME, "max_steps": 2}, World(), model_cache, root / "one-half")
        run_case({**RESUME, "max_steps": 4}, World(), model_cache, root / "one-full")
        jobs: list[tuple[dict[str, Any], str, str | None]] = [
            (case, str(root / "two" / case_name(case)), None) for case in CASES
        ]
        jobs.append(({**RESUME, "max_steps": 2}, str(root / "two-half"), None))
        one_half = latest_checkpoint(root / "one-half" / "work")
        jobs.append(({**RESUME, "max_steps": 4}, str(root / "one-then-two"), str(one_half)))
        mp.spawn(run_rank, args=(2, _free_port(), jobs, str(model_cache)), nprocs=2)
        two_half = latest_checkpoint(root / "two-half" / "work")
        run_case({**RESUME, "max_steps": 4}, World(), model_cache, root / "two-then-one", resume=two_half)
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.mark.slow  # the module's spawned 2-rank session: ~30 s on 2 cores, shared by the three tests using `runs`
@pytest.mark.parametrize("case", CASES, ids=case_name)
def test_two_ranks_compute_the_one_process_update(runs: Path, case: dict[str, Any]) -> None:
    one = runs / "one" / case_name({**case, "strategy": "ddp"})
    two = runs / "two" / case_name(case)
    ones, twos = _metrics(one), _metrics(two)
    assert len(ones) == len(twos) == STEPS
    assert any(step["grad_norm"] > 0 for step in ones), "the run never learned: the comparison would be empty"
    for a, b in zip(ones, twos, strict=True):
        assert a.keys() == b.keys() - {"distributed/world_size"} or a.keys() == b.keys()
        for name in ("reward/mean", "completion/length_mean", "advantage/abs_mean", "loss", "grad_norm", "kl"):
            if name in a:
                assert b[name] == pytest.approx(a[name], rel=METRIC_RTOL, abs=1e-7), name
    theirs, ours = _weights(one), _weights(two)
    assert theirs.keys() == ours.keys()
    for name, tensor in theirs.items():
        torch.testing.assert_close(ours[name], tensor, atol=WEIGHT_ATOL, rtol=0, msg=name)


@pytest.mark.slow
def test_resume_across_world_sizes(runs: Path) -> None:
    """2 ranks -> 1 and 1 -> 2 (fsdp, beta > 0, sharded AdamW state) end where one uninterrupted run ends."""
    full = _weights(runs / "one-full")
    full_metrics = _metrics(runs / "one-full")
    for resumed in ("two-then-one", "one-then-two"):
        weights = _weights(runs / resumed)
        for name, tensor in full.items():
            torch.testing.assert_close(weights[name], tensor, atol=WEIGHT_ATOL, rtol=0, msg=f"{resumed}: {name}")
        tail = _metrics(runs / resumed)  # steps 3 and 4, after the resume
        for a, b in zip(full_metrics[2:], tail, strict=True):
            assert b["loss"] == pytest.approx(a["loss"], rel=METRIC_RTOL, abs=1e-7)
            assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=METRIC_RTOL, abs=1e-7)
    checkpoint = latest_checkpoint(runs / "two-half" / "work")
    assert checkpoint is not None and (checkpoint / "sharded" / ".metadata").is_file()
    assert not (checkpoint / "trainer_state.pt").read_bytes().count(b"exp_avg")  # AdamW state lives in the shards


@pytest.mark.slow
def test_single_process_path_resumes_a_multi_rank_checkpoint(runs: Path, model_cache: Path, tmp_path: Path) -> None:
    """train() without a world (the fast path) loads the sharded AdamW state of a 2-rank checkpoint."""
    from tests.engine.conftest import RecordingSink, digit_rows, make_config, repeat_reward

    checkpoint = latest_checkpoint(runs / "two-half" / "work")
    config = make_config(
        model_cache, prompts_per_step=2, max_steps=3, loss_type="dapo", beta=0.04, lr_scheduler="constant"
    )
    sink = RecordingSink()
    result = train(config, digit_rows(), repeat_reward, sink, work_dir=tmp_path, resume_from=checkpoint)
    assert result.steps_completed == 3 and [r.step for r in sink.steps] == [3]


def test_sampling_stream_depends_only_on_seed_step_and_prompt() -> None:
    draw = lambda *key: torch.rand(4, generator=prompt_generator(*key, torch.device("cpu")))  # noqa: E731
    assert torch.equal(draw(0, 3, 5), draw(0, 3, 5))
    assert not torch.equal(draw(0, 3, 5), draw(0, 3, 6))
    assert not torch.equal(draw(0, 3, 5), draw(0, 4, 5))
    assert not torch.equal(draw(0, 3, 5), draw(1, 3, 5))


def test_a_group_samples_the_same_completions_whatever_else_is_in_the_batch(model_cache: Path) -> None:
    from transformers import AutoModelForCausalLM

    from workers.engine.model import load_tokenizer
    from workers.engine.rollout import generate
    from workers.engine.sampling import SamplingParams
    from workers.engine.streams import GroupStreams
    from workers.engine.tiny import build_tiny_model

    path = build_tiny_model(model_cache)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path).eval(), load_tokenizer(str(path))
    prompts = [tokenizer(p)["input_ids"] for p in ("3>", "71>", "5>")]

    def texts(batch: list[int]) -> list[str]:
        streams = GroupStreams([prompt_generator(0, 1, k, torch.device("cpu")) for k in batch], 4)
        rollout = generate(model, tokenizer, [prompts[k] for k in batch], group_size=4, max_new_tokens=8,
                           params=SamplingParams(), generator=streams)  # type: ignore[arg-type]  # fmt: skip
        return rollout.texts

    together = texts([0, 1, 2])
    assert texts([1]) == together[4:8] and texts([0, 2]) == together[:4] + together[8:]
    assert len(set(together)) > 3  # the groups really sample (not all the same string)


def test_the_engine_and_the_api_document_the_same_size_rule() -> None:
    from app.schemas import resources
    from workers.engine import distributed

    assert distributed.FSDP_ABOVE_PARAMETERS == resources.FSDP_ABOVE_PARAMETERS
    assert distributed.choose_strategy(None, resources.FSDP_ABOVE_PARAMETERS + 1) == "fsdp"
    assert distributed.choose_strategy(None, 500_000_000) == "ddp"
    assert distributed.choose_strategy("fsdp", 10) == "fsdp"
