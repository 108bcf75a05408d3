"""Errors in the contract's shape: `{"error": {"code", "message", "field"?}}`.

`install` also makes the OpenAPI document say so: every operation's refusals (its
`default` response and the 422 FastAPI documents) are an `ErrorBody`, and FastAPI's own
`HTTPValidationError`, which this server never sends, is gone from it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.store import StoreError

STATUS_OF_CODE = {"not_found": 404, "conflict": 409, "invalid": 422, "forbidden": 403}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable: invalid, not_found, conflict, forbidden, …")
    message: str = Field(description="what was wrong, for a person")
    field: str | None = Field(default=None, description="the offending field (dotted path)")


class ErrorBody(BaseModel):
    """Every error answer of the API (docs/contract.md, REST)."""

    error: ErrorDetail


_FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")
_ERROR_REF = "#/components/schemas/ErrorBody"


def document_errors(document: dict[str, Any]) -> dict[str, Any]:
    """Say in an OpenAPI `document` that refusals are `ErrorBody` (in place; returned)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FASTAPI_ERRORS:
        schemas.pop(name, None)
    definitions = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(definitions.pop("$defs", {}))
    schemas["ErrorBody"] = definitions
    error = {
        "description": "refused: the contract's error shape",
        "content": {"application/json": {"schema": {"$ref": _ERROR_REF}}},
    }
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status, response in list(responses.items()):
                if status.startswith(("4", "5")) or _refers_to_fastapi_error(response):
                    described = response.get("description") or error["description"]
                    responses[status] = {**error, "description": described}
            responses.setdefault("default", error)
    return document


def _refers_to_fastapi_error(response: Any) -> bool:
    text = repr(response)
    return any(f"/{name}'" in text for name in _FASTAPI_ERRORS)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def install(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, err: ApiError) -> JSONResponse:
        return JSONResponse(error_body(err.code, err.message, err.field), status_code=err.status)

    @app.exception_handler(StoreError)
    async def _store_error(_: Request, err: StoreError) -> JSONResponse:
        return JSONResponse(
            error_body(err.code, str(err), err.field), status_code=STATUS_OF_CODE.get(err.code, 400)
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = err.errors()
        first = problems[0] if problems else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        message = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p not in ('body', 'query', 'path'))}: "
            f"{'unknown field' if e.get('type') == 'extra_forbidden' else e.get('msg')}"
            for e in problems
        )
        return JSONResponse(error_body("invalid", message, field), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        return JSONResponse(error_body(code, str(err.detail)), status_code=err.status_code)
