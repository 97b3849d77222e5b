import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import SettingsDep
from app.core.errors import ProblemError
from app.core.telemetry import Telemetry

router = APIRouter(tags=["monitoring"])
_scraper = HTTPBearer(auto_error=False, description="GRPO_METRICS_TOKEN, when the operator set one.")


def _check_scraper(settings: SettingsDep, credentials: HTTPAuthorizationCredentials | None) -> None:
    if settings.metrics_token is None:
        return
    expected = settings.metrics_token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials else b""
    if not hmac.compare_digest(given, expected):
        raise ProblemError(
            401, "unauthorized", "GET /metrics needs the metrics token", headers={"WWW-Authenticate": "Bearer"}
        )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
)
def prometheus_metrics(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_scraper)],
) -> Response:
    """Prometheus exposition: request latency, jobs by status, queue depth, training step time."""
    _check_scraper(settings, credentials)
    telemetry: Telemetry = request.app.state.telemetry
    return Response(telemetry.render(), media_type=CONTENT_TYPE_LATEST)
