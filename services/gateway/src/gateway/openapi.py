"""The OpenAPI document says what the API really answers: FastAPI documents its
422 as `HTTPValidationError`, but every error here, 422 included, has the one
shape `ErrorResponse` (common.errors)."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_ERROR_REF = "#/components/schemas/ErrorResponse"
_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    response = operation.get("responses", {}).get("422")
                    if response is not None:
                        response["content"] = {"application/json": {"schema": {"$ref": _ERROR_REF}}}
            components = schema.get("components", {}).get("schemas", {})
            for name in _FASTAPI_ONLY:
                components.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
