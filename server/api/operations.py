"""Operations endpoints: Prometheus metrics and the API documentation (`/metrics`,
`/openapi.json`, `/docs`, `/redoc`).

They tell an outsider what the server runs and how busy each gate and channel is, so
by default they are served on the main listener to signed-in accounts only (any role;
Prometheus scrapes with an integration account's API token, `bearer_token_file`).
With `http.operations_listener` set they are served instead, without accounts, on a
listener of their own — an address on the management network only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from server.auth.dependencies import current_account
from server.services import Services

OPENAPI_PATH = "/openapi.json"


def install_operations(target: FastAPI, api: FastAPI, svc: Services, *, signed_in: bool) -> None:
    """Serve the operations endpoints on `target`, documenting `api` (the REST app)."""
    router = APIRouter(
        dependencies=[Depends(current_account)] if signed_in else [], include_in_schema=False
    )

    @router.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> str:
        return svc.metrics.render()

    @router.get(OPENAPI_PATH)
    async def openapi() -> JSONResponse:
        document: dict[str, Any] = api.openapi()
        return JSONResponse(document)

    @router.get("/docs", response_class=HTMLResponse)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=OPENAPI_PATH, title=f"{api.title} — API")

    @router.get("/redoc", response_class=HTMLResponse)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=OPENAPI_PATH, title=f"{api.title} — API")

    target.include_router(router)


def operations_app(api: FastAPI, svc: Services) -> FastAPI:
    """The app of the separate operations listener (no accounts; not documented itself)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    install_operations(app, api, svc, signed_in=False)
    return app
