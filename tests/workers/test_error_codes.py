"""Job error codes are a closed, documented list (issue 15 item 4): every failure class carries one of them,
error_body never invents another, and the OpenAPI document lists them."""

import errno

import pytest

from app.schemas.errors import JobErrorCode
from workers.contract import JobFailure
from workers.runner import error_body


def all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | all_subclasses(sub)
    return found


def test_every_failure_class_carries_a_documented_code():
    import workers.engine.checkpoint
    import workers.engine.model
    import workers.inputs
    import workers.reporting
    import workers.rewards.errors
    import workers.spec  # noqa: F401 - each defines failure classes

    classes = all_subclasses(JobFailure)
    assert {c.__name__ for c in classes} >= {
        "StorageFull",
        "ModelLoadError",
        "SafeguardStop",
        "JobInputError",
        "RewardError",
        "RewardConfigError",
        "SandboxUnavailable",
        "ProgramError",
        "SpecError",
    }
    for cls in classes:
        assert cls.code in set(JobErrorCode), f"{cls.__name__}.code = {cls.code!r} is not a JobErrorCode"


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (RuntimeError("boom"), "internal_error"),
        (OSError(errno.ENOSPC, "No space left on device"), "storage_full"),
        (type("CodeByDuckTyping", (Exception,), {"code": "9h9h"})("driver text"), "internal_error"),
    ],
)
def test_error_body_uses_only_documented_codes(exc, code):
    body = error_body(exc)
    assert body["code"] == code and JobErrorCode(body["code"])


def test_the_openapi_document_lists_the_job_error_codes(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    code = schemas["JobError"]["properties"]["code"]
    listed = schemas[code["$ref"].rsplit("/", 1)[1]]["enum"] if "$ref" in code else code["enum"]
    assert listed == [member.value for member in JobErrorCode]
    assert "`storage_full`: no space left" in code.get("description", "")
