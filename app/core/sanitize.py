"""The one place where untrusted text and numbers are made safe to store, log and send.

Reward programs, verifiers and datasets put arbitrary text into error messages, events and answers:
NUL (PostgreSQL's TEXT and JSONB refuse it), lone surrogates (no UTF-8 encoding exists, so JSON
rendering raises), ANSI escapes and other control characters (they rewrite a terminal that shows a
log line). Such characters are replaced by a visible escape (`\\x1b`, `\\ud800`), so the text stays
readable and nothing is silently lost. Numbers: JSON has no NaN or infinity (PostgreSQL's JSONB refuses
them, strict parsers too), so non-finite floats become null.

Used by the problem documents (app/core/errors.py), the response schemas that carry reward errors,
the JSON columns (app/models/base.py) and event messages; no other module repeats these rules.
"""

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI), surrogate code points.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe_text(text: str, limit: int | None = None) -> str:
    """`text` with unsafe characters escaped, cut to `limit` characters (after escaping)."""
    cleaned = _UNSAFE.sub(_escape, text)
    return cleaned if limit is None or len(cleaned) <= limit else cleaned[: max(limit - 1, 0)] + "…"


def safe_json(value: Any) -> Any:
    """A copy of a JSON-like value with every string safe and every non-finite float None."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {safe_text(str(k)): safe_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_json(v) for v in value]
    return value


def _coerce_text(value: Any) -> Any:
    return safe_text(value) if isinstance(value, str) else value


# A str field whose content may come from users or their programs.
SafeText = Annotated[str, BeforeValidator(_coerce_text)]
