"""Sandbox program: extract the final answer and compare it with the reference using math-verify."""

import functools
import signal

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

_EXTRACTION = [LatexExtractionConfig(), ExprExtractionConfig()]


def last_boxed(text):
    """Content of the last \\boxed{...} (nested braces balanced), or None."""
    start = text.rfind("\\boxed")
    while start != -1:
        i = start + len("\\boxed")
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    return text[i + 1 : j]
        start = text.rfind("\\boxed", 0, start)  # unbalanced: try the one before
    return None


def after_marker(text, marker):
    """The rest of the line after the last (case-insensitive) `marker`, or None."""
    at = text.lower().rfind(marker.lower())
    if at == -1:
        return None
    answer = text[at + len(marker) :].split("\n", 1)[0].strip().rstrip(".").strip()
    return answer or None


def extract(completion, mode, marker):
    if mode in ("boxed", "boxed_or_marker"):
        answer = last_boxed(completion)
        if answer is not None or mode == "boxed":
            return answer
    return after_marker(completion, marker)


@functools.lru_cache(maxsize=4096)
def parse_answer(text):
    """A bare answer ('\\frac{1}{2}', '0.5', '2x+1', '$x^2$') as math-verify expressions."""
    text = text.strip().strip("$").strip()
    # Signal-based timeouts of math-verify are off: the caller sets one alarm for the whole call.
    return parse("\\boxed{" + text + "}", extraction_config=_EXTRACTION, parsing_timeout=None)


def score(completion, reference, config):
    """1.0 when the completion's final answer equals the reference, 0.0 when it does not or has none.
    Raises ValueError when the reference itself cannot be parsed (a dataset problem, not a 0)."""
    gold = parse_answer(str(reference))
    if not gold:
        raise ValueError(f"reference {str(reference)[:100]!r} is not a parseable answer")
    if config.get("extraction", "boxed_or_marker") == "any":
        predicted = parse(completion, parsing_timeout=None)
    else:
        answer = extract(completion, config.get("extraction", "boxed_or_marker"), config.get("marker", "Answer:"))
        predicted = parse_answer(answer) if answer else []
    if not predicted:
        return 0.0
    same = verify(
        gold,
        predicted,
        float_rounding=config.get("float_rounding", 6),
        strict=config.get("strict", True),
        timeout_seconds=None,
    )
    return float(same)


def _on_alarm(_signum, _frame):
    raise TimeoutError("math_equivalence timed out")


def reward(_prompt, completion, row):
    field = CONFIG["field"]  # noqa: F821 - injected by the sandbox
    if field not in row:
        raise KeyError(f"row has no field {field!r}")
    # This runs in the sandbox worker's main thread, where SIGALRM works: one alarm bounds parse +
    # verify together and fails the call without killing the process (the pool's kill is the backstop).
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, CONFIG["timeout_s"])  # noqa: F821
    try:
        return score(completion, row[field], CONFIG)  # noqa: F821
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
