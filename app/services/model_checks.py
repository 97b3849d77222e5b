"""At submission: can the model's tokenizer encode the prompts? A prompt with characters the vocabulary
lacks trains on <unk> (or on nothing, where a byte-level tokenizer drops them) and the job learns nothing,
with no error anywhere. Checked where the tokenizer loads cheaply, from disk: a local model directory, or a
hub model already in the local cache. tiny-demo is built on the worker, but its tokenizer has one token per
character of a fixed alphabet, so the check is a set difference. A hub model not cached here is not
checked, and the worker reports what it finds.
"""

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.core.errors import spec_error
from app.schemas.job import DatasetSpec, JobSpec

logger = logging.getLogger(__name__)

# tiny-demo's alphabet (workers/engine/tiny.py::DEFAULT_ALPHABET; tests/api/test_prompt_tokens.py keeps the
# two equal): every other character becomes its unknown token.
TINY_DEMO_ALPHABET = "0123456789 +-=:>?"


@functools.lru_cache(maxsize=16)
def _cached_tokenizer(source: str, revision: str | None, stamp: float) -> Any:  # noqa: ARG001 (stamp: cache key)
    from transformers import AutoTokenizer  # only here: the API imports transformers only when it checks

    try:
        return AutoTokenizer.from_pretrained(source, revision=revision, local_files_only=True)
    except Exception as exc:  # not loadable offline (no tokenizer files, not cached): nothing to check with
        logger.info("no tokenizer check for %s: %s", source, exc)
        return None


def load_tokenizer_offline(source: str, revision: str | None) -> Any:
    """The tokenizer of a local directory or a cached hub model, or None. Reloaded when the directory changes."""
    if source == "tiny-demo":
        return None
    stamp = os.stat(source).st_mtime if Path(source).is_dir() else 0.0
    return _cached_tokenizer(source, revision, stamp)


def unencodable(tokenizer: Any, text: str) -> str | None:
    """Why `tokenizer` cannot encode `text` faithfully, or None when it can."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        return "has characters the model's tokenizer does not know (they become its unknown token)"
    decoded = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if "".join(decoded.split()) != "".join(text.split()):  # whitespace may be normalised; characters not
        lost = sorted(set(text) - set(decoded) - {" "})
        which = f" ({''.join(lost)!r})" if lost else ""
        return f"has characters the model's tokenizer cannot encode{which}: they would be dropped"
    return None


def outside_tiny_alphabet(text: str) -> str | None:
    """Why tiny-demo cannot encode `text` faithfully, or None when it can."""
    lost = "".join(sorted(set(text) - set(TINY_DEMO_ALPHABET)))
    if not lost:
        return None
    return (
        f"has characters the tiny-demo model's tokenizer does not know ({lost!r}; it knows only "
        f"{TINY_DEMO_ALPHABET!r}): they become its unknown token"
    )


def _check_rows(problem_of: Callable[[str], str | None], dataset: DatasetSpec, param: str) -> None:
    for index, row in enumerate(dataset.rows or []):
        prompt = row.get(dataset.prompt_field)
        if isinstance(prompt, str) and (problem := problem_of(prompt)):
            raise spec_error(f"{param}.rows[{index}].{dataset.prompt_field}", problem, type_="unencodable")


def check_prompts_encodable(spec: JobSpec) -> None:
    """422 naming the first inline prompt the model's tokenizer cannot encode."""
    problem_of: Callable[[str], str | None]
    if spec.model.source == "tiny-demo":
        problem_of = outside_tiny_alphabet
    else:
        tokenizer = load_tokenizer_offline(spec.model.source, spec.model.revision)
        if tokenizer is None:
            return
        problem_of = functools.partial(unencodable, tokenizer)
    _check_rows(problem_of, spec.dataset, "dataset")
    if spec.eval is not None:
        _check_rows(problem_of, spec.eval.dataset, "eval.dataset")
