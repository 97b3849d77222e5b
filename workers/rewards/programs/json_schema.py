"""Sandbox program: 1.0 when the completion is JSON valid against the configured schema."""

import functools
import json
import signal

from jsonschema.validators import validator_for


@functools.lru_cache(maxsize=8)
def _validator(schema_text):
    schema = json.loads(schema_text)
    return validator_for(schema)(schema)


def extract(completion, allow_code_fence):
    """The JSON text: the last ```...``` block (language tag dropped) when allowed and present."""
    if allow_code_fence:
        close = completion.rfind("```")
        open_ = completion.rfind("```", 0, close) if close != -1 else -1
        if open_ != -1:
            block = completion[open_ + 3 : close]
            first_line, _, rest = block.partition("\n")
            return rest if first_line.strip().isalpha() else block
    return completion


def score(completion, schema, config):
    text = extract(completion, config.get("allow_code_fence", True)).strip()
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return 0.0
    if _validator(json.dumps(schema, sort_keys=True)).is_valid(value):
        return 1.0
    return float(config.get("parse_only_score", 0.0))


def _on_alarm(_signum, _frame):
    raise TimeoutError("json_schema timed out")


def reward(_prompt, completion, _row):
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, CONFIG["timeout_s"])  # noqa: F821 - injected by the sandbox
    try:
        return score(completion, CONFIG["json_schema"], CONFIG)  # noqa: F821
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
