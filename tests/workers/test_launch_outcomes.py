"""How the end of a torchrun launch becomes the job's outcome: rank 0's report, the job's own error, or a crash
(requeue). Communication errors of the survivors of a killed rank are not the job's errors."""

import pytest

from workers.launch import RankCrashed, RankFailed, command, decide

COMM = {"code": "training_failed", "message": "RuntimeError: [gloo/transport/tcp/pair.cc:537] Connection reset by peer"}
OWN = {"code": "reward_error", "message": "RewardError: reward 'judge' failed", "param": "rewards"}


def test_rank_zero_report_is_the_outcome():
    assert decide({0: {"outcome": "cancelled"}, 1: {"outcome": "stopped"}}, 0) == {"outcome": "cancelled"}
    assert decide({0: {"outcome": "succeeded"}, 1: {"outcome": "succeeded"}}, 0)["outcome"] == "succeeded"


@pytest.mark.parametrize(
    "outcomes",
    [
        {0: {"outcome": "failed", "error": COMM}},  # rank 1 killed: it reports nothing
        {},  # both killed
        {0: {"outcome": "failed", "error": COMM}, 1: {"outcome": "stopped"}},
    ],
)
def test_a_killed_rank_is_a_crash_not_the_jobs_failure(outcomes):
    with pytest.raises(RankCrashed):
        decide(outcomes, 1)


@pytest.mark.parametrize(
    "outcomes",
    [
        {1: {"outcome": "failed", "error": OWN}},  # rank 1's reward raised, rank 0 killed by the launcher
        {0: {"outcome": "failed", "error": COMM}, 1: {"outcome": "failed", "error": OWN}},
        {0: {"outcome": "failed", "error": OWN}, 1: {"outcome": "stopped"}},  # e.g. a safeguard stop on rank 0
    ],
)
def test_an_error_of_the_jobs_own_fails_it_with_that_error(outcomes):
    with pytest.raises(RankFailed) as raised:
        decide(outcomes, 1)
    assert raised.value.code == "reward_error" and raised.value.param == "rewards"


def test_the_launch_command_is_torchrun_without_restarts(tmp_path):
    import uuid

    from workers.launch import LaunchRequest

    request = LaunchRequest(uuid.uuid4(), "w1", 4, tmp_path, None, None, [tmp_path / "drain" / "1"])
    args = command(request)
    assert args[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert args[args.index("--nproc-per-node") + 1] == "4" and args[args.index("--max-restarts") + 1] == "0"
    assert args[args.index("-m", 4) + 1] == "workers.rank_main"


def test_a_paused_rank_zero_pauses_the_job_with_its_reason():
    from workers.launch import raise_outcome
    from workers.reporting import JobPaused

    with pytest.raises(JobPaused) as raised:
        raise_outcome({"outcome": "paused", "message": "paused: budget", "reason": "budget", "data": {"used": 3}})
    assert raised.value.reason == "budget" and raised.value.data == {"used": 3}


def test_a_peers_death_is_a_crash_even_when_the_jobs_error_text_is_generic():
    """A failed collective's exception is an internal one, so the job's error hides its text; the launcher
    reads the rank's raw exception instead (it failed the job instead of requeueing it before)."""
    generic = {"code": "internal_error", "message": "an internal error stopped the work", "param": None}
    outcomes = {
        0: {"outcome": "failed", "error": generic, "exception": "DistBackendError: [gloo/transport] Connection reset"},
        1: {"outcome": "stopped"},
    }
    with pytest.raises(RankCrashed):
        decide(outcomes, returncode=1)
