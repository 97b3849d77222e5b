"""OpenAI graders -> native reward specs, and the grader validate / run endpoints.

Every runnable grader (string_check, text_similarity, python, multi) becomes one native `python` reward
whose code is app/services/openai_grader_runtime.py plus the grader as JSON, so the worker's sandbox
scores with the exact semantics the API checks. score_model / label_model become the native judge
rewards where this server has them (judge_score / judge_label), else a 400 saying they are not available.
"""

import ast
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from app.core.errors import ProblemError, spec_error
from app.schemas.openai_graders import GraderRunErrors, GraderRunMetadata, GraderRunResponse
from app.schemas.reward import RewardSample, RewardSpec
from app.schemas.reward_resource import RewardTestResponse
from app.services import openai_grader_runtime as runtime
from app.services.rewards import score_reward_samples

RUNTIME_SOURCE = Path(runtime.__file__).read_text()
MAX_CODE_CHARS = 65536  # the native python reward's limit
_NATIVE: TypeAdapter[Any] = TypeAdapter(RewardSpec)

# The generated reward: the runtime above it, then this. A python grader's source is compiled into its
# own namespace (two graders may both define grade) and only here, inside the worker's sandbox.
WRAPPER = """
_GRADER = json.loads({grader_json!r})
_LOADED = {{}}


def _run_python(grader, sample, item):
    source = grader["source"]
    if source not in _LOADED:
        namespace = {{"__name__": "grader"}}
        exec(compile(source, "<grader " + grader["name"] + ">", "exec"), namespace)
        _LOADED[source] = namespace["grade"]
    return _LOADED[source](sample, item)


def reward(prompt, completion, row):
    return grade(_GRADER, make_sample(completion), row, _run_python)
"""


def native_name(name: str) -> str:
    """A grader name as a native reward name (letters, digits, _ . - ; at most 64)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64] or "grader"


def _unavailable(param: str, what: str) -> ProblemError:
    return spec_error(param, f"{what} is not available on this server", type_="not_available")


def check_grader(grader: dict[str, Any], param: str = "grader") -> None:
    """Static checks with the field at fault: templates, python source, formula names, availability."""
    kind = grader["type"]
    if kind in ("string_check", "text_similarity"):
        if grader.get("evaluation_metric") == "cosine":
            raise _unavailable(f"{param}.evaluation_metric", "cosine (it needs an embedding model, which")
        for field in ("input", "reference"):
            try:
                runtime.check_template(grader[field])
            except runtime.GraderError as exc:
                raise spec_error(f"{param}.{field}", str(exc)) from None
    elif kind == "python":
        _check_python_source(grader["source"], f"{param}.source")
    elif kind == "multi":
        subs = runtime.sub_graders(grader)
        for name, sub in subs.items():
            if sub["type"] in ("score_model", "label_model"):
                raise _unavailable(f"{param}.graders.{name}", f"{sub['type']} inside a multi grader")
            check_grader(sub, f"{param}.graders.{name}")
        try:
            unknown = runtime.formula_names(grader["calculate_output"]) - set(subs)
        except runtime.GraderError as exc:
            raise spec_error(f"{param}.calculate_output", str(exc)) from None
        if unknown:
            raise spec_error(
                f"{param}.calculate_output", f"unknown names {sorted(unknown)}; graders are {sorted(subs)}"
            )


def item_fields(grader: dict[str, Any]) -> set[str]:
    """The row fields the grader's templates read ({{ item.<field>... }}); python graders' reads are unknown."""
    kind = grader["type"]
    if kind == "multi":
        return set().union(*(item_fields(sub) for sub in runtime.sub_graders(grader).values()))
    texts = [grader.get("input", ""), grader.get("reference", "")]
    if kind in ("score_model", "label_model"):
        texts = [json.dumps(message.get("content")) for message in grader["input"]]
    paths = [path for text in texts if isinstance(text, str) for path in runtime.template_paths(text)]
    return {path.split(".")[1] for path in paths if path.startswith("item.") and path.count(".") >= 1}


def _check_python_source(source: str, param: str) -> None:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise spec_error(param, f"syntax error at line {exc.lineno}: {exc.msg}") from None
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "grade"]
    if not defs:
        raise spec_error(param, "the source must define a top-level function grade(sample, item)")
    args = defs[-1].args
    if len(args.posonlyargs) + len(args.args) < 2 and args.vararg is None:
        raise spec_error(param, f"line {defs[-1].lineno}: grade must accept (sample, item)")


def to_native(grader: dict[str, Any], *, weight: float = 1.0) -> dict[str, Any]:
    """The native reward spec (JSON) that scores like `grader`; call check_grader first."""
    kind = grader["type"]
    if kind in ("score_model", "label_model"):
        return _judge_spec(grader, weight)
    code = RUNTIME_SOURCE + WRAPPER.format(grader_json=json.dumps(grader))
    if len(code) > MAX_CODE_CHARS:
        raise spec_error(
            "grader", f"the grader is too large: python sources total more than {MAX_CODE_CHARS // 2} chars"
        )
    return {"type": "python", "name": native_name(grader["name"]), "weight": weight, "code": code, "timeout_s": 10.0}


def _render_messages(grader: dict[str, Any]) -> tuple[str | None, str]:
    """A model grader's messages as the judge's (system, prompt), templates in the judge's syntax."""

    def text(content: Any) -> str:
        if isinstance(content, str):
            return content
        if isinstance(content, dict):
            return str(content.get("text", ""))
        return "\n".join(text(part) for part in content) if isinstance(content, list) else str(content)

    def judge_syntax(value: str) -> str:
        value = re.sub(r"\{\{\s*sample\.output_text\s*\}\}", "{{completion}}", value)
        return re.sub(r"\{\{\s*item\.([A-Za-z0-9_.]+)\s*\}\}", r"{{row.\1}}", value)

    system = [judge_syntax(text(m["content"])) for m in grader["input"] if m["role"] in ("system", "developer")]
    prompt = [judge_syntax(text(m["content"])) for m in grader["input"] if m["role"] not in ("system", "developer")]
    return ("\n\n".join(system) or None), "\n\n".join(prompt)


def _judge_spec(grader: dict[str, Any], weight: float) -> dict[str, Any]:
    """score_model -> judge_score (raw score in `range`), label_model -> judge_label (passing labels: 1)."""
    system, prompt = _render_messages(grader)
    sampling = grader.get("sampling_params") or {}
    judge = {"model": grader["model"], "temperature": sampling.get("temperature") or 0.0}
    if sampling.get("max_completions_tokens"):
        judge["max_tokens"] = sampling["max_completions_tokens"]
    spec: dict[str, Any] = {"name": native_name(grader["name"]), "weight": weight, "judge": judge}
    spec |= {"prompt": prompt, "system": system}
    if grader["type"] == "score_model":
        low, high = grader.get("range") or [0.0, 1.0]
        spec |= {"type": "judge_score", "min_score": low, "max_score": high, "normalize": False}
    else:
        spec |= {"type": "judge_label", "labels": grader["labels"], "passing": grader["passing_labels"]}
    try:
        _NATIVE.validate_python(spec)
    except ValidationError as exc:
        if any(e["type"] == "union_tag_invalid" for e in exc.errors()):
            raise _unavailable("grader.type", f"{grader['type']} (no judge rewards on this server)") from None
        raise spec_error("grader", f"cannot be run as a judge: {exc.errors()[0]['msg']}") from None
    return spec


def native_reward(grader: dict[str, Any]) -> Any:
    """Checked and translated: the native RewardSpec a job or a reward test runs."""
    check_grader(grader)
    return _NATIVE.validate_python(to_native(grader))


def validate(grader: dict[str, Any]) -> None:
    """Static, as OpenAI's: templates, python syntax and grade(), formula, and the native spec it becomes
    (no dry run: a template's item fields exist only in a real row)."""
    native_reward(grader)


Scorer = Callable[[Any, list[RewardSample]], RewardTestResponse]


def run(
    grader: dict[str, Any], model_sample: str, item: dict[str, Any], *, score: Scorer = score_reward_samples
) -> GraderRunResponse:
    """Score one sample with the native reward-test service (`score`: where it runs, as the native
    :test route's); a multi grader's sub-graders are scored as native components, its formula here."""
    check_grader(grader)
    sample = RewardSample(prompt="", completion=model_sample, row=item)
    started = time.monotonic()
    errors = GraderRunErrors()
    if grader["type"] == "multi":
        subs = runtime.sub_graders(grader)
        components = [to_native(sub) | {"name": f"g{i}"} for i, sub in enumerate(subs.values())]
        multi = {"type": "multi", "name": "multi", "components": components, "aggregate": "weighted_sum"}
        result = score(_NATIVE.validate_python(multi), [sample]).results[0]
        scores = {name: result.components.get(f"multi/g{i}") for i, name in enumerate(subs)}
        reward = _formula(grader["calculate_output"], scores, errors)
    else:
        result = score(native_reward(grader), [sample]).results[0]
        reward = next(iter(result.components.values()), None) or 0.0
        scores = {grader["name"]: reward}
    if result.errors:
        errors.python_grader_runtime_error = True
        errors.python_grader_runtime_error_details = "; ".join(result.errors.values())[:2000]
    metadata = GraderRunMetadata(
        errors=errors,
        execution_time=time.monotonic() - started,
        name=grader["name"],
        scores=scores,
        type=grader["type"],
    )
    sub_rewards = scores if grader["type"] == "multi" else {}
    return GraderRunResponse(reward=reward if reward == reward else 0.0, metadata=metadata, sub_rewards=sub_rewards)


def _formula(formula: str, scores: dict[str, float | None], errors: GraderRunErrors) -> float:
    if any(value is None for value in scores.values()):
        return 0.0  # a sub-grader failed; its error is reported
    try:
        return runtime.evaluate_formula(formula, {k: v for k, v in scores.items() if v is not None})
    except runtime.GraderError:
        errors.formula_parse_error = True
        return 0.0
