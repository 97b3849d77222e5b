"""What workers write is always storable and safe to show: non-finite numbers never reach JSON, hostile
text (NUL, lone surrogates, ANSI escapes) is escaped, and a job error is a listed code with no driver
text (issue 14 items 2 and 3). Runs on SQLite and, when configured, PostgreSQL (which refuses NUL
and Infinity outright)."""

import math
import uuid

from sqlalchemy import select, text
from sqlalchemy.exc import DataError

from app.core.storage import make_store
from app.models import Checkpoint, Job, JobEvent
from app.schemas.job import JobError
from app.schemas.job_error import JobErrorCode, error_from_exception
from app.services import artifacts, runs
from tests.services.test_job_lifecycle import make_job

HOSTILE = "bad \x00 \ud800 \x1b[31mred\x1b[0m \x9b2J end"


def test_checkpoint_and_event_json_never_hold_non_finite_numbers_or_unsafe_text(session_factory, settings, tmp_path):
    local = tmp_path / "ckpt"
    local.mkdir()
    (local / "weights.bin").write_bytes(b"w")
    metrics = {"reward/mean": math.inf, "loss": math.nan, "kl": 0.5}
    with session_factory() as session:
        job_id = make_job(session)
        artifacts.register_checkpoint(
            session=session, store=make_store(settings), job_id=job_id, step=1, local_dir=local, metrics=metrics
        )
        runs.add_event(
            session=session, job_id=job_id, type_="alert", message=HOSTILE, data={"why": HOSTILE, "x": -math.inf}
        )
        checkpoint = session.scalar(select(Checkpoint).where(Checkpoint.job_id == job_id))
        assert checkpoint.metrics == {"reward/mean": None, "loss": None, "kl": 0.5}
        raw = session.execute(text("SELECT metrics FROM checkpoint")).scalar_one()
        assert "Infinity" not in str(raw) and "NaN" not in str(raw)
        event = session.scalar(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "alert"))
        assert event.message == event.data["why"] == r"bad \x00 \ud800 \x1b[31mred\x1b[0m \x9b2J end"
        assert event.data["x"] is None


def test_a_database_error_becomes_internal_error_without_driver_text_or_sql():
    driver = DataError(
        "INSERT INTO checkpoint (metrics) VALUES (%(metrics)s)", {"metrics": "{}"}, Exception("Infinity")
    )
    assert driver.code == "9h9h"  # SQLAlchemy's own code: not one of ours
    error = error_from_exception(driver)
    assert error["code"] == "internal_error" and error["param"] is None
    assert "INSERT" not in error["message"] and "9h9h" not in error["message"] and "Infinity" not in error["message"]
    assert JobError(**error).code is JobErrorCode.internal_error


def test_a_listed_code_keeps_its_message_made_safe():
    class Failing(RuntimeError):
        code, param = "reward_error", "rewards[0]"

    error = error_from_exception(Failing(HOSTILE))
    assert error["code"] == "reward_error" and error["param"] == "rewards[0]"
    assert "\x00" not in error["message"] and "\ud800" not in error["message"] and "\x1b" not in error["message"]


def test_a_stored_error_with_an_unlisted_code_still_renders(session_factory):
    with session_factory() as session:
        job_id = make_job(session, error={"code": "9h9h", "message": "old", "param": None})
        job = session.get(Job, job_id)
        assert JobError(**job.error).code is JobErrorCode.internal_error
    assert uuid.UUID(str(job_id))


def test_an_unscorable_sample_is_stored_and_shown_with_a_null_reward(session_factory):
    """The scorer gives an unscorable completion a NaN total; SQLite stores NaN as NULL, so the column
    must allow it, and the sample is listed with reward null. Model text is made safe too."""
    from app.models import JobSample
    from app.schemas.artifact import SamplePublic

    sample = {
        "prompt_index": 0,
        "group_index": 0,
        "prompt": "p",
        "completion": "c \x00 \x1b[2J",
        "reward": math.nan,
        "components": {"python": math.nan},
        "advantage": math.nan,
        "num_tokens": 3,
        "truncated": False,
    }
    with session_factory() as session:
        job_id = make_job(session, status="running", worker_id="w")
        outcome = runs.record_step(
            session=session,
            job_id=job_id,
            worker_id="w",
            step=1,
            metrics={"loss": 1.0},
            step_seconds=1.0,
            samples=[sample],
        )
        assert outcome == "continue"
        row = session.scalar(select(JobSample).where(JobSample.job_id == job_id))
        assert row.reward is None and row.advantage is None and row.components == {"python": None}
        assert row.completion == r"c \x00 \x1b[2J"
        assert SamplePublic.model_validate(row, from_attributes=True).reward is None
