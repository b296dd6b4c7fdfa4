"""The OpenAPI document says what the API really answers: FastAPI documents its
422 as `HTTPValidationError`, but every error here, 422 included, has the one
shape `ErrorResponse` (common.errors); and a request body that cannot be parsed at
all (not UTF-8, not JSON, a broken form) is a 400 that FastAPI does not document."""

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
            error = {"application/json": {"schema": {"$ref": _ERROR_REF}}}
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    responses = operation.get("responses", {})
                    if "422" in responses:
                        responses["422"]["content"] = error
                    if "requestBody" in operation:
                        responses.setdefault(
                            "400",
                            {"description": "The body could not be parsed.", "content": error},
                        )
            components = schema.get("components", {}).get("schemas", {})
            for name in _FASTAPI_ONLY:
                components.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
