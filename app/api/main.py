from fastapi import APIRouter

from app.api.routes import datasets, jobs

api_router = APIRouter(prefix="/v1")
api_router.include_router(jobs.router)
api_router.include_router(datasets.router)
