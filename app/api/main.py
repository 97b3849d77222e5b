from fastapi import APIRouter

from app.api.routes import artifacts, datasets, events, jobs, rewards

api_router = APIRouter(prefix="/v1")
api_router.include_router(jobs.router)
api_router.include_router(datasets.router)
api_router.include_router(events.router)
api_router.include_router(artifacts.router)
api_router.include_router(rewards.router)
