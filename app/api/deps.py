"""Request dependencies as Annotated aliases: settings, a DB session, the job queue, the caller's tenant,
and idempotent creates."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import Depends, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import ProblemError
from app.core.logs import bind_log_context
from app.core.queue import JobQueue, RewardRunner
from app.core.storage import ObjectStore
from app.models import Tenant
from app.services.idempotency import Model, run_idempotent
from app.services.tenants import authenticate


# Dependencies that do no I/O are async: FastAPI runs a sync dependency in the threadpool, a hop each.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_session(request: Request) -> AsyncIterator[Session]:
    # Creating a session does no I/O; closing it returns its connection (a ROLLBACK round trip), so only
    # that part runs in the threadpool: one hop per request instead of two.
    session = request.app.state.session_factory()
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


async def get_queue(request: Request) -> JobQueue:
    return request.app.state.queue  # type: ignore[no-any-return]


async def get_reward_runner(request: Request) -> RewardRunner:
    return request.app.state.reward_runner  # type: ignore[no-any-return]


async def get_store(request: Request) -> ObjectStore:
    return request.app.state.store  # type: ignore[no-any-return]


def request_context(prefix: str) -> Callable[[Request], Awaitable[None]]:
    """A router-level dependency for the routes included under `prefix`: every log line of a request about
    a job carries its id, and the access log and latency histogram get the full route template."""

    async def bind(request: Request) -> None:
        route = request.scope.get("route")
        if route is not None:
            request.state.route_template = prefix + route.path
        job_id = request.path_params.get("job_id")
        if job_id is not None:
            bind_log_context(job_id=str(job_id))

    return bind


StoreDep = Annotated[ObjectStore, Depends(get_store)]
RewardRunnerDep = Annotated[RewardRunner, Depends(get_reward_runner)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer grpo_...`")


def get_current_tenant(
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Tenant:
    unauthorized = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ProblemError(
            401, "unauthorized", "missing API key: send 'Authorization: Bearer <key>'", headers=unauthorized
        )
    tenant = authenticate(session=session, key=credentials.credentials, secret=settings.secret_key.get_secret_value())
    if tenant is None:
        raise ProblemError(401, "unauthorized", "invalid or revoked API key", headers=unauthorized)
    return tenant


CurrentTenant = Annotated[Tenant, Depends(get_current_tenant)]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Makes a create safe to retry: the same key and body return the first response.",
    ),
]


@dataclass(frozen=True)
class IdempotentCreate:
    """A create made safe to retry (app/services/idempotency.py), bound to the route that received it.

    The scope is the request's method and path, so a key reused on another route (or another job's
    evaluations) is a 409, and the replay is the route's response model with the route's status code."""

    session: Session
    tenant_id: uuid.UUID
    key: str | None
    scope: str
    status_code: int
    response_model: type[BaseModel]
    response: Response

    def run(self, payload: BaseModel | dict[str, Any], create: Callable[[], Model]) -> Model:
        """`create()`, or the first response to this key and payload (header `Idempotent-Replayed: true`)."""
        result, replayed = run_idempotent(
            session=self.session,
            tenant_id=self.tenant_id,
            key=self.key,
            scope=self.scope,
            payload=payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload,
            status_code=self.status_code,
            create=create,
            load=lambda stored: cast(Model, self.response_model.model_validate(stored)),
        )
        if replayed:
            self.response.headers["Idempotent-Replayed"] = "true"
        return result


async def get_idempotent_create(
    request: Request, response: Response, session: SessionDep, tenant: CurrentTenant, key: IdempotencyKey = None
) -> IdempotentCreate:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or route.response_model is None or route.status_code is None:
        raise TypeError("Idempotent is for create routes that declare response_model and status_code")
    return IdempotentCreate(
        session=session,
        tenant_id=tenant.id,
        key=key,
        scope=f"{request.method} {request.url.path}",
        status_code=route.status_code,
        response_model=route.response_model,
        response=response,
    )


Idempotent = Annotated[IdempotentCreate, Depends(get_idempotent_create)]
