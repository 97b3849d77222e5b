"""Before a job loads its model: is a hub model within reach? Fail in seconds, not after the hub's retries.

transformers' from_pretrained retries an unreachable hub five times with backoff (about 23 s for the
config, the same again for the tokenizer) before it fails, and the job shows `running` at step 0 with no
word meanwhile. One request with a short timeout answers the same question: a model in the local cache
is fine; otherwise the hub must answer for it.
"""

import os
from urllib.parse import quote

import httpx
from huggingface_hub import constants, get_token, try_to_load_from_cache

from workers.contract import JobFailure

TINY_DEMO = "tiny-demo"  # built on the worker (workers/engine/tiny.py)


class ModelUnavailable(JobFailure):
    """The model cannot be fetched; reported as the job's error, naming model.source."""

    code = "model_load_failed"
    param = "model.source"


def _offline() -> bool:
    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def check_model_reachable(source: str, revision: str | None, *, timeout_s: float = 10.0) -> None:
    """Raise ModelUnavailable unless `source` is tiny-demo, a local directory, cached, or on the hub."""
    if source == TINY_DEMO or source.startswith(("/", "~", ".")):
        return  # built here, or checked at submission and read from disk by from_pretrained
    if isinstance(try_to_load_from_cache(source, "config.json", revision=revision), str):
        return
    if _offline():
        raise ModelUnavailable(f"model {source!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set")
    endpoint = os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")
    url = f"{endpoint}/api/models/{source}" + (f"/revision/{quote(revision, safe='')}" if revision else "")
    token = get_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.get(url, headers=headers, timeout=timeout_s, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise ModelUnavailable(
            f"model {source!r} is not in the local cache and the hub at {endpoint} cannot be reached "
            f"({type(exc).__name__}: {exc}); give the worker network access or a local copy"
        ) from exc
    if answer.status_code in (401, 403):
        raise ModelUnavailable(f"model {source!r} is private or gated: give the worker a token (HF_TOKEN)")
    if answer.status_code == 404:
        at = f" at revision {revision!r}" if revision else ""
        raise ModelUnavailable(f"no model {source!r}{at} on the hub at {endpoint}")
    if answer.status_code >= 400:
        raise ModelUnavailable(f"the hub at {endpoint} answered {answer.status_code} for model {source!r}")
