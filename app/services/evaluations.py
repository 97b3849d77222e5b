"""On-demand evaluations: validate the request against the job, record it, hand it to a worker."""

import logging

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import FieldError, ProblemError
from app.core.queue import JobQueue, enqueue_or_undo
from app.models import Evaluation, Job
from app.models.base import utcnow
from app.schemas.artifact import EvaluationCreate
from app.schemas.job import EvalSpec
from app.schemas.status import EvaluationStatus
from app.services.artifacts import latest_checkpoint
from app.services.rewards import resolve_references
from app.services.spec_checks import check_evaluation_limits
from app.services.transitions import transition_evaluation

logger = logging.getLogger(__name__)


def resolve_eval_config(job: Job, evaluation_in: EvaluationCreate) -> EvalSpec:
    """The job's eval section (or its training data and rewards) overridden by the request's fields."""
    base = dict(job.spec.get("eval") or {})
    if not base.get("rewards"):  # a stored spec holds "rewards": null when the eval section gave none
        base["rewards"] = job.spec["rewards"]
    overrides = evaluation_in.model_dump(exclude_none=True, exclude={"step", "rows", "dataset_id"}, mode="json")
    if evaluation_in.rows is not None:
        base["dataset"] = {"rows": evaluation_in.rows}
    elif evaluation_in.dataset_id is not None:
        base["dataset"] = {"dataset_id": str(evaluation_in.dataset_id)}
    if "dataset" not in base:
        raise ProblemError(
            422,
            "validation_error",
            "rows: the job has no eval dataset; give rows or dataset_id",
            errors=[FieldError(field="rows", message="required: the job has no eval section")],
        )
    if "dataset" in base and "prompt_field" not in base["dataset"]:
        base["dataset"]["prompt_field"] = job.spec["dataset"].get("prompt_field", "prompt")
    try:
        return EvalSpec.model_validate(base | overrides)
    except ValidationError as exc:
        errors = [
            FieldError(field=".".join(map(str, e["loc"])) or "body", message=e["msg"], type=e["type"])
            for e in exc.errors()
        ]
        raise ProblemError(422, "validation_error", errors[0].message, errors=errors) from exc


def request_evaluation(
    *, session: Session, job: Job, evaluation_in: EvaluationCreate, queue: JobQueue, settings: Settings
) -> Evaluation:
    checkpoint = latest_checkpoint(session=session, job_id=job.id, step=evaluation_in.step)
    if checkpoint is None:
        which = f"at step {evaluation_in.step}" if evaluation_in.step is not None else "yet"
        raise ProblemError(409, "no_checkpoint", f"the job has no stored checkpoint {which}")
    config = resolve_eval_config(job, evaluation_in)
    check_evaluation_limits(config, settings)
    rewards, _ = resolve_references(
        session=session, tenant_id=job.tenant_id, rewards=config.rewards or [], param="rewards"
    )
    config = config.model_copy(update={"rewards": rewards})
    evaluation = Evaluation(
        job_id=job.id,
        step=checkpoint.step,
        trigger="on_demand",
        status="queued",
        config=config.model_dump(mode="json"),
        metrics={},
    )
    session.add(evaluation)
    session.commit()

    def undo() -> None:
        transition_evaluation(
            session,
            evaluation.id,
            from_={EvaluationStatus.queued},
            to=EvaluationStatus.failed,
            finished_at=utcnow(),
            error={"code": "enqueue_failed", "message": "the queue was unavailable", "param": None},
        )

    enqueue_or_undo(lambda: queue.enqueue_evaluation(evaluation.id), what="evaluation", session=session, undo=undo)
    return evaluation
