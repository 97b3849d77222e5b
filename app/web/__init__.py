"""The web dashboard: static HTML, ES modules and CSS served at /dashboard.

The pages are a client of the public /v1 API like any other: they hold the user's API key in the browser
and send it as a bearer token, so the dashboard has no server-side code or privileges of its own.
"""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).parent / "static"
MOUNT_PATH = "/dashboard"
# Only this origin's scripts and API; inline style attributes (chart colours, bar widths) but no inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class DashboardFiles(StaticFiles):
    """Static files that browsers revalidate on every load (an upgraded service never runs stale modules),
    under a content security policy that keeps the API key away from any other origin's code."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response


def install_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at /dashboard/ and send visitors of / there."""
    app.mount(MOUNT_PATH, DashboardFiles(directory=STATIC_DIR, html=True), name="dashboard")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{MOUNT_PATH}/")
