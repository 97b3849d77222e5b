from fastapi import APIRouter

from app.api.routes import jobs

api_router = APIRouter(prefix="/v1")
api_router.include_router(jobs.router)
