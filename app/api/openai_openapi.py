"""The OpenAPI document of the OpenAI-compatible routes: their errors are OpenAI's, not problem documents.

Applied after app/api/openapi.py (which documents problem+json everywhere): for /v1/files and
/v1/fine_tuning it documents what app/api/openai_errors.py sends, so clients and the fuzzer can check it.
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

PREFIXES = ("/v1/files", "/v1/fine_tuning")
REF = "#/components/schemas/OpenAIError"


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(..., description="invalid_request_error, authentication_error, rate_limit_error, server_error")
    param: str | None = Field(None, description="The request field at fault, e.g. 'training_file'.")
    code: str | None = Field(None, description="Machine-readable reason, e.g. 'not_found', 'job_finished'.")


class OpenAIError(BaseModel):
    error: OpenAIErrorDetail


ERRORS = {
    "400": "Invalid request: `param` names the field.",
    "401": "Missing, invalid or revoked API key.",
    "404": "No such object for this API key's tenant (another tenant's ids look absent).",
    "409": "Conflict (a finished job, a file in use, a reused Idempotency-Key); sent with x-should-retry: false.",
    "413": "The upload is larger than this server accepts.",
    "429": "Quota: too many queued jobs; Retry-After says when to retry.",
    "503": "The job queue or the reward sandbox is unavailable; retry later.",
    "default": "Any other error, in OpenAI's {error: {message, type, param, code}} shape.",
}


def _document(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    for code in [c for c in responses if c[0] in "45" or c == "default"]:
        del responses[code]
    for code, description in ERRORS.items():
        responses[code] = {"description": description, "content": {"application/json": {"schema": {"$ref": REF}}}}


def install_openai_openapi(app: FastAPI) -> None:
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "OpenAIError" not in components:  # once: the document is cached by the builder
            error = OpenAIError.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(error.pop("$defs", {}))
            components["OpenAIError"] = error
            for path, operations in schema.get("paths", {}).items():
                if path.startswith(PREFIXES):
                    for operation in operations.values():
                        _document(operation)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
