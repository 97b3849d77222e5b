"""Build the FastAPI app: state (settings, DB, queue), middleware, routers. Nothing else."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from app.api.main import api_router
from app.api.openai_openapi import install_openai_openapi
from app.api.openapi import install_problem_openapi
from app.api.routes import health, monitoring
from app.core.celery import create_celery
from app.core.config import Settings
from app.core.config import settings as default_settings
from app.core.db import make_engine, make_session_factory
from app.core.errors import install_error_handlers
from app.core.logs import configure_logging
from app.core.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from app.core.queue import CeleryJobQueue, CeleryRewardRunner, JobQueue, RewardRunner
from app.core.storage import make_store
from app.core.telemetry import Telemetry
from app.services.inference_limits import InferenceLimiter
from app.services.inference_proxy import InferenceProxy
from app.services.routing import QueueDepthByClass, training_route
from app.web import install_dashboard


def create_app(
    settings: Settings | None = None, queue: JobQueue | None = None, reward_runner: RewardRunner | None = None
) -> FastAPI:
    settings = settings or default_settings

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Logging is set up when the app is served, not when it is imported (tests import it).
        configure_logging(level=settings.log_level, fmt=settings.log_format)
        yield
        await _app.state.inference.aclose()

    # FastAPIOffline: /docs (Swagger UI) and /redoc load their scripts and styles from this server
    # (the package ships them), not from a CDN, so the docs work on a machine without internet.
    app = FastAPIOffline(
        static_url="/docs-assets",
        title="GRPO training service",
        version="0.1.0",
        description="Submit GRPO training jobs, follow their metrics, fetch checkpoints and evaluations.",
        lifespan=lifespan,
    )
    engine = make_engine(settings.database_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.store = make_store(settings)
    app.state.celery = create_celery(settings)
    app.state.queue = queue or CeleryJobQueue(
        app.state.celery, route=training_route(app.state.session_factory, settings)
    )
    app.state.reward_runner = reward_runner or CeleryRewardRunner(app.state.celery, settings.reward_check_timeout_s)
    app.state.telemetry = Telemetry(app.state.session_factory)
    app.state.telemetry.add_collector(QueueDepthByClass(app.state.session_factory, settings))
    app.state.inference = InferenceProxy(settings)  # the inference worker's client (no model in the API)
    app.state.inference_limiter = InferenceLimiter(
        settings.inference_requests_per_minute, settings.inference_max_concurrent
    )

    install_error_handlers(app)
    # Uploads (native datasets, OpenAI files) are streamed and limited by max_dataset_bytes instead.
    app.add_middleware(
        BodySizeLimitMiddleware, max_bytes=settings.max_request_bytes, exempt_prefixes=("/v1/datasets", "/v1/files")
    )
    app.add_middleware(RequestContextMiddleware, telemetry=app.state.telemetry, access_log=settings.access_log)
    app.include_router(health.router)
    app.include_router(monitoring.router)
    app.include_router(api_router)
    install_dashboard(app)
    install_problem_openapi(app)
    install_openai_openapi(app)  # after it: the OpenAI routes' errors are OpenAI's
    return app


app = create_app()
