"""The rules for one dataset row, defined once: parsing a JSONL line, and the prompt a job reads from a row.

Used at upload (app/services/datasets.py), at submit (app/services/spec_checks.py, inline rows and the
summary of an uploaded dataset) and on the worker when it reads a stored dataset (workers/inputs.py).
The engine (workers/engine/data.py) keeps its own defensive check because it may not import `app`.
"""

import json
from typing import Any

from app.schemas.storable import unstorable

# Deeper JSON than this is refused: no real row needs it, and Python's parser recurses per level, so an
# unbounded depth ends in RecursionError (a 500 before this bound existed).
MAX_JSON_DEPTH = 64
DEFAULT_PROMPT_FIELD = "prompt"


class RowError(ValueError):
    """A row breaks a rule; `field` names the row's field when one is to blame."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (a recursive walk would hit the limit it checks)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def parse_row(line: bytes | str) -> dict[str, Any]:
    """One JSONL line as a row: a non-empty JSON object, at most MAX_JSON_DEPTH deep, storable everywhere."""
    try:
        row = json.loads(line)
    except RecursionError as exc:
        raise RowError(f"nested more than {MAX_JSON_DEPTH} levels deep") from exc
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise RowError(f"not valid JSON ({exc})") from exc
    if not isinstance(row, dict) or not row:
        raise RowError("each line must be a non-empty JSON object")
    # Counting brackets is a C-speed upper bound on the depth: only a line that could be too deep is walked.
    raw = line.encode() if isinstance(line, str) else line
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _depth(row) > MAX_JSON_DEPTH:
        raise RowError(f"nested more than {MAX_JSON_DEPTH} levels deep")
    found = unstorable(row)
    if found:
        raise RowError(f"{found[0]} {found[1]}", field=found[0])
    return row


def prompt_problem(row: dict[str, Any], prompt_field: str) -> str | None:
    """Why `row` has no usable prompt in `prompt_field`, or None when it has one."""
    if prompt_field not in row:
        return "missing: every row needs the prompt field"
    prompt = row[prompt_field]
    if not isinstance(prompt, str) or not prompt:
        shown = json.dumps(prompt)
        return f"must be a non-empty string, got {shown[:40] + '...' if len(shown) > 40 else shown}"
    return None


class FieldIssues:
    """Per field, the first line that lacks it and the first line where it is not a non-empty string.

    Stored with an uploaded dataset, so a job naming any field as its prompt is checked at submit and
    told the line, without reading the rows again. Linear: a field still present in every row so far is
    checked against each new row, and a row can only keep or shrink that set.
    """

    def __init__(self) -> None:
        self.first_line: int | None = None
        self.missing: dict[str, int] = {}
        self.not_text: dict[str, int] = {}
        self._in_every_row: set[str] = set()
        self._seen: set[str] = set()

    def add(self, line: int, row: dict[str, Any]) -> None:
        if self.first_line is None:
            self.first_line = line
            self._in_every_row = set(row)
        else:
            for field in self._in_every_row - row.keys():
                self.missing[field] = line
            self._in_every_row &= row.keys()
            for field in row.keys() - self._seen:
                self.missing.setdefault(field, self.first_line)  # rows before this one lacked it
        self._seen.update(row.keys())
        for field, value in row.items():
            if field not in self.not_text and (not isinstance(value, str) or not value):
                self.not_text[field] = line

    def as_json(self) -> dict[str, dict[str, int]]:
        return {"missing": self.missing, "not_text": self.not_text}


def prompt_issue_line(issues: dict[str, dict[str, int]], prompt_field: str) -> tuple[int, str] | None:
    """(line, reason) of the first stored row without a usable prompt in `prompt_field`, or None."""
    found = [
        (line, reason)
        for kind, reason in (("missing", "has no field"), ("not_text", "holds no non-empty string in"))
        if (line := issues.get(kind, {}).get(prompt_field)) is not None
    ]
    return min(found) if found else None
