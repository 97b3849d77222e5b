import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import EventSourceResponse

from app.api.deps import CurrentTenant, SessionDep
from app.api.params import Cursor
from app.core.errors import not_found, spec_error
from app.crud.events import events_after, list_events
from app.crud.jobs import get_job
from app.models import Job
from app.schemas.job import TERMINAL_STATUSES
from app.schemas.metric import JobEventPublic, JobEventsPublic
from app.schemas.status import EventType
from app.schemas.storable import MAX_INT64

router = APIRouter(prefix="/jobs", tags=["events"])

POLL_S = 0.5
BATCH = 500


def _next_batch(
    sessions: sessionmaker[Session], job_id: uuid.UUID, after_id: int, types: list[str] | None
) -> tuple[list[dict[str, Any]], bool]:
    with sessions() as session:
        events = events_after(session=session, job_id=job_id, after_id=after_id, limit=BATCH, types=types)
        finished = session.get(Job, job_id).status in TERMINAL_STATUSES  # type: ignore[union-attr]
        payloads = [JobEventPublic.model_validate(event).model_dump(mode="json") for event in events]
    return payloads, finished


async def _stream(
    request: Request, job_id: uuid.UUID, after_id: int, types: list[str] | None
) -> AsyncIterator[dict[str, str]]:
    sessions = request.app.state.session_factory
    while True:
        events, finished = await run_in_threadpool(_next_batch, sessions, job_id, after_id, types)
        for event in events:
            after_id = event["id"]
            yield {"id": str(event["id"]), "event": event["type"], "data": json.dumps(event)}
        if finished and len(events) < BATCH:
            return  # everything up to the final status has been sent
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_S)


@router.get(
    "/{job_id}/events",
    response_model=JobEventsPublic,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def job_events(
    request: Request,
    job_id: uuid.UUID,
    session: SessionDep,
    tenant: CurrentTenant,
    accept: Annotated[str | None, Header()] = None,
    last_event_id: Annotated[str | None, Header(description="SSE resume point (sent by EventSource).")] = None,
    cursor: Cursor = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_INT64, description="Only events with a larger id (older clients; prefer `cursor`)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    event_types: Annotated[
        list[EventType] | None,
        Query(alias="type", description="Only events of these types (repeat); an unknown type is a 422."),
    ] = None,
) -> Any:
    """Status changes, per-step metrics, checkpoints, evaluations and alerts, in order.

    With `Accept: text/event-stream` this is a Server-Sent Events stream that follows the job live and
    closes once it has ended; each event's id is its position, so `Last-Event-ID` resumes. Otherwise a
    JSON page: pass `next_cursor` as `?cursor=` for the next one (`?after=<event id>` also works)."""
    if get_job(session=session, tenant_id=tenant.id, job_id=job_id) is None:
        raise not_found("job")
    start = after or 0
    if last_event_id is not None:
        if not last_event_id.isdigit() or int(last_event_id) > MAX_INT64:
            raise spec_error("Last-Event-ID", "must be the id of an event from this stream")
        start = int(last_event_id)
    if accept and "text/event-stream" in accept:
        return EventSourceResponse(_stream(request, job_id, start, event_types), ping=15)
    page, next_cursor = list_events(
        session=session, job_id=job_id, after_id=start, cursor=cursor, limit=limit, types=event_types
    )
    return JobEventsPublic(data=[JobEventPublic.model_validate(event) for event in page], next_cursor=next_cursor)
