"""The OpenAPI document, with errors described as they are sent: RFC 9457 problems, application/problem+json.

FastAPI would document every 422 as its own HTTPValidationError under application/json; this service
answers every error (401, 404, 405, 409, 413, 415, 422, 429, 500, 503) with one Problem shape, so the
document says exactly that, and clients and fuzzers can check error bodies against it.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.core.errors import PROBLEM_MEDIA_TYPE, Problem, is_openai_route
from app.schemas.openai import OpenAIErrorBody

REF = "#/components/schemas/"
_FASTAPI_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": REF + "Problem"}}}}


def _document_errors(path: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    if "422" in responses:
        responses["422"] = _problem("Invalid request: the `errors` list names each invalid field.")
    if path.startswith("/v1/"):
        responses["401"] = _problem("Missing, invalid or revoked API key.")
        responses["503"] = _problem(
            "The database or the job queue is unavailable (code database_unavailable or queue_unavailable): "
            "retry after the Retry-After header's seconds."
        )
        if "{" in path:
            responses["404"] = _problem(
                "No such resource for this API key's tenant (another tenant's ids look absent)."
            )
    responses["default"] = _problem("Any other error, as a problem document (a 500 carries only a request id).")


def _openai_error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": REF + "OpenAIErrorBody"}}}}


def _document_openai_errors(operation: dict[str, Any]) -> None:
    """The OpenAI-compatible routes answer errors as OpenAI does (a validation error is a 400 there)."""
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    responses["401"] = _openai_error("Missing, invalid or revoked API key.")
    responses["503"] = _openai_error(
        "The database, the queue or the inference worker is unavailable: retry after the Retry-After header."
    )
    responses["default"] = _openai_error("Any other error, in OpenAI's {error: {message, type, param, code}} shape.")
    for code, response in responses.items():
        if code[0] in "45":
            response["content"] = _openai_error("")["content"]


def problem_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template=REF + "{model}")
    components.update(problem.pop("$defs", {}))
    components["Problem"] = problem
    openai_error = OpenAIErrorBody.model_json_schema(ref_template=REF + "{model}")
    components.update(openai_error.pop("$defs", {}))
    components["OpenAIErrorBody"] = openai_error
    for name in _FASTAPI_ERROR_SCHEMAS:
        components.pop(name, None)
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if is_openai_route(path):
                _document_openai_errors(operation)
            else:
                _document_errors(path, operation)
    app.openapi_schema = schema
    return schema


def install_problem_openapi(app: FastAPI) -> None:
    app.openapi = lambda: problem_openapi(app)  # type: ignore[method-assign]
