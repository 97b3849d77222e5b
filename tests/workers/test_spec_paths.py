"""One spec, two paths (issue 15 item 3): the Celery task (workers/runner.py) and `grpo-train`
(workers/cli.py) turn a spec into run inputs through the same function, so they build the same thing.

The spec has a length reward in tokens in eval.rewards: grpo-train used to build the eval reward without
the tokenizer (workers/spec.py::eval_inputs), so the run failed there and worked as a service job.
"""

import json
import uuid

from app.core.storage import make_store
from app.schemas.job import JobSpec
from workers.cli import load_inputs, main
from workers.demo import demo_spec
from workers.runner import service_inputs

PROMPTS = ["1:", "2:"]
COMPLETIONS = ["1", "22 22 22 22 22"]


def spec_with_token_length_eval() -> dict:
    spec = demo_spec()
    spec["grpo"].update(max_steps=1, group_size=4, prompts_per_step=2)
    spec["eval"] = {
        "dataset": {"rows": [{"prompt": "3:", "answer": "3"}, {"prompt": "4:", "answer": "4"}]},
        "rewards": [{"type": "length", "unit": "tokens", "max_length": 4, "buffer": 2}],
        "every": 1,
        "max_new_tokens": 4,
    }
    return spec


def built_by_both(settings, session_factory, tmp_path):
    document = spec_with_token_length_eval()
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(document))
    task = service_inputs(
        JobSpec.model_validate(document),
        settings=settings,
        store=make_store(settings),
        sessions=session_factory,
        tenant_id=uuid.uuid4(),
    )
    cli = load_inputs(spec_path, settings.data_dir)
    return task, cli


def test_the_task_and_the_cli_build_the_same_run_inputs(settings, session_factory, tmp_path):
    task, cli = built_by_both(settings, session_factory, tmp_path)
    assert task.config == cli.config
    assert task.rows == cli.rows and task.eval_rows == cli.eval_rows
    assert task.rewards == cli.rewards and task.eval_rewards == cli.eval_rewards
    rows = [{"answer": "1"}, {"answer": "2"}]
    with task.reward_fns() as (task_reward, task_eval), cli.reward_fns() as (cli_reward, cli_eval):
        assert task_eval is not None and cli_eval is not None
        assert task_reward(PROMPTS, COMPLETIONS, rows).total == cli_reward(PROMPTS, COMPLETIONS, rows).total
        task_scores = task_eval(PROMPTS, COMPLETIONS, rows).total
        assert task_scores == cli_eval(PROMPTS, COMPLETIONS, rows).total
    assert task_scores[0] == 0.0 and task_scores[1] == -1.0  # counted in tokens: the long one is over


def test_grpo_train_runs_a_spec_with_a_token_length_reward_in_eval(tmp_path, capsys):
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec_with_token_length_eval()))
    out = tmp_path / "out"
    assert main([str(spec_path), "--out", str(out), "--data-dir", str(tmp_path / "data"), "--quiet"]) == 0, (
        capsys.readouterr().err
    )
    evals = [json.loads(line) for line in (out / "evals.jsonl").read_text().splitlines()]
    assert evals and all("eval/reward_mean" in e for e in evals)
