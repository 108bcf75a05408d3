"""Serve the officers' console: pages, its static modules, the vendored map library, its
settings endpoint and the browser security headers (no request may leave for a CDN)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from contract.version import API_PREFIX
from server.auth.accounts import Account
from server.auth.dependencies import current_account
from server.console.config import ConsoleSettings

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
DEFAULT_VENDOR_DIR = HERE / "vendor"
#: URL prefix → folder inside node_modules.
VENDORED = {
    "leaflet": Path("leaflet") / "dist",
    "markercluster": Path("leaflet.markercluster") / "dist",
    # Natural Earth land for the map's offline background (server/console/basemap.py)
    "world-atlas": Path("world-atlas"),
}
ASSETS_HINT = (
    "the console's map library is not installed: run `make console-assets` "
    "(npm ci in server/console/vendor)"
)

#: The console's pages besides the live map (`/` ) and the login: URL /<name> → <name>.html.
PAGES = ("alarms", "trip", "declarations", "audit", "gates", "appointments", "reports")

console_router = APIRouter(prefix=f"{API_PREFIX}/console", tags=["console"])


def vendor_paths(settings: ConsoleSettings) -> dict[str, Path]:
    base = (settings.vendor_dir or DEFAULT_VENDOR_DIR) / "node_modules"
    return {name: base / sub for name, sub in VENDORED.items()}


def missing_assets(settings: ConsoleSettings) -> list[Path]:
    return [p for p in vendor_paths(settings).values() if not p.is_dir()]


def content_security_policy(settings: ConsoleSettings) -> str:
    tiles = f" {settings.tiles.origin}" if settings.tiles else ""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data: blob:{tiles}; connect-src 'self'; font-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


@console_router.get("/config")
async def console_config(
    request: Request, _: Annotated[Account, Depends(current_account)]
) -> dict[str, Any]:
    """What the console needs to draw: tile source, language, time zone, polling, thresholds."""
    settings: ConsoleSettings = request.app.state.console_settings
    return settings.model_dump(mode="json", exclude={"vendor_dir"})


def mount_console(app: FastAPI, settings: ConsoleSettings) -> None:
    app.state.console_settings = settings
    app.include_router(console_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for name, folder in vendor_paths(settings).items():
        if folder.is_dir():
            app.mount(f"/vendor/{name}", StaticFiles(directory=folder), name=f"vendor-{name}")
    missing = missing_assets(settings)
    if missing:
        log.warning("%s (missing: %s)", ASSETS_HINT, ", ".join(str(p) for p in missing))

        @app.get("/vendor/{path:path}", include_in_schema=False)
        async def no_vendor(path: str) -> PlainTextResponse:
            return PlainTextResponse(ASSETS_HINT, status_code=503)

    def page(name: str) -> Callable[[], Awaitable[FileResponse]]:
        async def serve_page() -> FileResponse:
            return FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-cache"})

        return serve_page

    @app.get("/favicon.ico", include_in_schema=False)
    async def no_favicon() -> Response:
        # Browsers ask for it on every page; "no icon" rather than a 404 in their console.
        return Response(status_code=204, headers={"Cache-Control": "max-age=86400"})

    app.add_api_route("/", page("index.html"), methods=["GET"], include_in_schema=False)
    app.add_api_route("/login", page("login.html"), methods=["GET"], include_in_schema=False)
    for name in PAGES:
        app.add_api_route(
            f"/{name}", page(f"{name}.html"), methods=["GET"], include_in_schema=False
        )

    policy = content_security_policy(settings)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response
