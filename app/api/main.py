from fastapi import APIRouter, Depends

from app.api.deps import request_context
from app.api.routes import (
    artifacts,
    control,
    datasets,
    events,
    inference,
    jobs,
    manifests,
    openai_files,
    openai_fine_tuning,
    preflight,
    rewards,
    secrets,
    webhooks,
)

API_PREFIX = "/v1"

api_router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(request_context(API_PREFIX))])
api_router.include_router(jobs.router)
api_router.include_router(control.router)
api_router.include_router(datasets.router)
api_router.include_router(events.router)
api_router.include_router(artifacts.router)
api_router.include_router(manifests.router)
api_router.include_router(rewards.router)
api_router.include_router(preflight.router)
api_router.include_router(webhooks.router)
api_router.include_router(openai_files.router)
api_router.include_router(openai_fine_tuning.router)
api_router.include_router(inference.router)
api_router.include_router(secrets.router)
