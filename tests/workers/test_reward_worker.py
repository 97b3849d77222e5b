"""The reward worker's side of a reward check (workers/reward_checks.py), called without Celery, and its
registration on the reward worker's own Celery app."""

from app.core.queue import REWARD_CHECK_TASK
from app.schemas.reward_check import RewardCheckRequest
from tests.rewards.conftest import requires_root
from workers import reward_checks
from workers.rewards import components


def test_the_reward_worker_serves_the_check_task_and_loads_no_training_code() -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom workers.reward_app import reward_app\nreward_app.loader.import_default_modules()\n"
        f"assert {REWARD_CHECK_TASK!r} in reward_app.tasks\nprint('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


@requires_root
def test_a_builtin_grader_the_sandbox_cannot_load_is_sandbox_unavailable(monkeypatch, caplog) -> None:
    monkeypatch.setattr(components, "program_source", lambda _name: "import math_verify_gone\n")
    request = RewardCheckRequest(op="score", spec={"type": "math_equivalence"}, samples=[{"completion": "1"}])
    reply = reward_checks.check(request)
    assert reply.error is not None and reply.error.code == "sandbox_unavailable"
    assert "math_verify_gone" in reply.error.message and "math_verify_gone" in caplog.text
    validate = reward_checks.check(RewardCheckRequest(op="validate", spec={"type": "math_equivalence"}))
    assert validate.error is not None and validate.error.code == "sandbox_unavailable"


@requires_root
def test_a_python_reward_that_fails_to_load_is_the_callers_error_naming_code() -> None:
    spec = {"type": "python", "code": "import nope_nope\ndef reward(p, c, r):\n    return 1.0\n"}
    reply = reward_checks.check(RewardCheckRequest(op="score", spec=spec, samples=[{"completion": "1"}]))
    assert reply.error is not None and reply.error.code == "invalid_reward" and reply.error.param == "code"
