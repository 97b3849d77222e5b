"""OpenAI grader semantics, standard library only (docs/openai-fine-tuning.md#graders).

This file is two things at once: the API imports it to check graders and to evaluate a multi grader's
`calculate_output` over sub-scores, and app/services/openai_graders.py embeds its *source text* in the
native `python` reward it submits, so the worker's sandbox scores completions with exactly this code.
Hence: no imports outside the standard library, and nothing here runs user code (a python grader's
source is loaded by the generated wrapper, inside the sandbox only).
"""

import ast
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
SAMPLE_VARIABLES = ("output_text", "output_json", "output_tools", "choices")


class GraderError(ValueError):
    """A grader cannot score this sample (bad template variable, formula error, ...)."""


# --- templates: {{ item.x }}, {{ sample.output_text }}, {{ sample.output_json.a.b }} ---------------
def make_sample(completion: str) -> dict[str, Any]:
    """OpenAI's `sample` namespace for one completion; output_json is the completion parsed, else None."""
    try:
        parsed = json.loads(completion)
    except ValueError:
        parsed = None
    message = {"role": "assistant", "content": completion}
    return {"output_text": completion, "output_json": parsed, "output_tools": [], "choices": [{"message": message}]}


def template_paths(text: str) -> list[str]:
    return [match.group(1) for match in TEMPLATE.finditer(text)]


def check_template(text: str) -> None:
    """Static check: every {{ }} names item.<path> or sample.<variable>[.<path>]."""
    for path in template_paths(text):
        parts = path.split(".")
        if parts[0] not in ("item", "sample") or len(parts) < 2 or not all(parts):
            raise GraderError(f"template {{{{ {path} }}}}: use {{{{ item.<field> }}}} or {{{{ sample.output_text }}}}")
        if parts[0] == "sample" and parts[1] not in SAMPLE_VARIABLES:
            raise GraderError(f"template {{{{ {path} }}}}: sample has {', '.join(SAMPLE_VARIABLES)}")


def _lookup(path: str, sample: dict[str, Any], item: dict[str, Any]) -> Any:
    parts = path.split(".")
    node: Any = {"sample": sample, "item": item}
    for depth, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise GraderError(f"template {{{{ {path} }}}}: {'.'.join(parts[: depth + 1])} not found")
    return node


def render(text: str, sample: dict[str, Any], item: dict[str, Any]) -> str:
    """Substitute each {{ }}; strings as they are, other values as JSON."""

    def value(match: re.Match[str]) -> str:
        found = _lookup(match.group(1), sample, item)
        return found if isinstance(found, str) else json.dumps(found)

    return TEMPLATE.sub(value, text)


# --- string_check --------------------------------------------------------------------------------
def string_check(operation: str, text: str, reference: str) -> float:
    """eq / ne: exact, case-sensitive (in)equality; like: reference is a substring of the input,
    case-sensitive; ilike: the same ignoring case. No whitespace is stripped (as OpenAI)."""
    if operation == "eq":
        return float(text == reference)
    if operation == "ne":
        return float(text != reference)
    if operation == "like":
        return float(reference in text)
    if operation == "ilike":
        return float(reference.lower() in text.lower())
    raise GraderError(f"unknown string_check operation {operation!r}")


# --- text_similarity -----------------------------------------------------------------------------
def _lcs(a: list[Any] | str, b: list[Any] | str) -> int:
    """Longest common subsequence length, O(len a * len b) time, O(len b) memory."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def fuzzy_match(text: str, reference: str) -> float:
    """rapidfuzz's fuzz.ratio / 100: the normalised Indel similarity 2 * LCS(a, b) / (len a + len b)."""
    if not text and not reference:
        return 1.0
    return 2.0 * _lcs(text, reference) / (len(text) + len(reference))


def _ngrams(tokens: list[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu(text: str, reference: str, max_n: int = 4) -> float:
    """Sentence BLEU-4 over whitespace tokens: geometric mean of clipped n-gram precisions (a zero count
    smoothed to 0.1 / total, nltk's method1) times the brevity penalty."""
    hyp, ref = text.split(), reference.split()
    if not hyp or not ref:
        return 0.0
    log_sum = 0.0
    for n in range(1, max_n + 1):
        hyp_ngrams, ref_ngrams = _ngrams(hyp, n), _ngrams(ref, n)
        total = max(sum(hyp_ngrams.values()), 1)
        matches = sum(min(count, ref_ngrams[gram]) for gram, count in hyp_ngrams.items())
        log_sum += math.log((matches or 0.1) / total)
    penalty = 1.0 if len(hyp) > len(ref) else math.exp(1 - len(ref) / len(hyp))
    return penalty * math.exp(log_sum / max_n)


def gleu(text: str, reference: str, max_n: int = 4) -> float:
    """Google BLEU (nltk sentence_gleu): min(precision, recall) of all 1..4-gram matches together."""
    hyp, ref = text.split(), reference.split()
    hyp_all: Counter[tuple[str, ...]] = Counter()
    ref_all: Counter[tuple[str, ...]] = Counter()
    for n in range(1, max_n + 1):
        hyp_all.update(_ngrams(hyp, n))
        ref_all.update(_ngrams(ref, n))
    hyp_total, ref_total = sum(hyp_all.values()), sum(ref_all.values())
    if not hyp_total or not ref_total:
        return 0.0
    matches = sum((hyp_all & ref_all).values())
    return min(matches / hyp_total, matches / ref_total)


def meteor(text: str, reference: str, alpha: float = 0.9, beta: float = 3.0, gamma: float = 0.5) -> float:
    """METEOR with exact (lower-cased) unigram matching: F_mean = P R / (alpha P + (1 - alpha) R), times
    1 - gamma (chunks / matches)^beta (nltk's parameters; no stemming or synonym stages)."""
    hyp, ref = text.lower().split(), reference.lower().split()
    used, pairs = [False] * len(ref), []
    for i, word in enumerate(hyp):
        for j, candidate in enumerate(ref):
            if not used[j] and candidate == word:
                used[j] = True
                pairs.append((i, j))
                break
    matches = len(pairs)
    if not matches:
        return 0.0
    precision, recall = matches / len(hyp), matches / len(ref)
    f_mean = precision * recall / (alpha * precision + (1 - alpha) * recall)
    chunks = 1 + sum(1 for (i0, j0), (i1, j1) in zip(pairs, pairs[1:], strict=False) if (i1, j1) != (i0 + 1, j0 + 1))
    return f_mean * (1 - gamma * (chunks / matches) ** beta)


def _rouge_tokens(text: str) -> list[str]:
    """rouge_score's default tokenizer: lower-case, runs of [a-z0-9]."""
    return re.findall(r"[a-z0-9]+", text.lower())


def _f1(matches: int, hyp_total: int, ref_total: int) -> float:
    if not matches:
        return 0.0
    precision, recall = matches / hyp_total, matches / ref_total
    return 2 * precision * recall / (precision + recall)


def rouge(text: str, reference: str, kind: str) -> float:
    """ROUGE-N (n = 1..5) or ROUGE-L F-measure, as rouge_score's fmeasure."""
    hyp, ref = _rouge_tokens(text), _rouge_tokens(reference)
    if kind == "l":
        return _f1(_lcs(hyp, ref), len(hyp), len(ref))
    n = int(kind)
    hyp_ngrams, ref_ngrams = _ngrams(hyp, n), _ngrams(ref, n)
    return _f1(sum((hyp_ngrams & ref_ngrams).values()), sum(hyp_ngrams.values()), sum(ref_ngrams.values()))


def _rouge_metric(kind: str) -> Callable[[str, str], float]:
    return lambda text, reference: rouge(text, reference, kind)


SIMILARITY: dict[str, Callable[[str, str], float]] = {
    "fuzzy_match": fuzzy_match,
    "bleu": bleu,
    "gleu": gleu,
    "meteor": meteor,
    **{f"rouge_{kind}": _rouge_metric(kind) for kind in ("1", "2", "3", "4", "5", "l")},
}


# --- multi: calculate_output, an arithmetic formula over sub-grader names (never eval) --------------
FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "floor": math.floor,
    "ceil": math.ceil,
    "sqrt": math.sqrt,
    "exp": math.exp,
    "log": math.log,
}
_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
    ast.BitXor: lambda a, b: a**b,  # OpenAI's formulas write powers as ^
    ast.Mod: lambda a, b: a % b,
}
MAX_FORMULA_CHARS = 1000


def parse_formula(formula: str) -> ast.Expression:
    """Parse and check a formula: numbers, names, + - * / ^ ** %, parentheses and FUNCTIONS only."""
    if len(formula) > MAX_FORMULA_CHARS:
        raise GraderError(f"calculate_output is longer than {MAX_FORMULA_CHARS} characters")
    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError as exc:
        raise GraderError(f"calculate_output: syntax error at column {exc.offset}: {exc.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
                raise GraderError(f"calculate_output: only the functions {', '.join(FUNCTIONS)} may be called")
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, int | float) or isinstance(node.value, bool):
                raise GraderError(f"calculate_output: {node.value!r} is not a number")
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                raise GraderError("calculate_output: operators are + - * / ^ ** %")
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.UAdd | ast.USub):
                raise GraderError("calculate_output: the unary operators are + and -")
        elif not isinstance(node, ast.Expression | ast.Name | ast.Load | ast.operator | ast.unaryop):
            raise GraderError(f"calculate_output: {type(node).__name__} is not allowed")
    return tree


def formula_names(formula: str) -> set[str]:
    tree = parse_formula(formula)
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - called


def evaluate_formula(formula: str, scores: dict[str, float]) -> float:
    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant):
            return float(cast(float, node.value))  # parse_formula admits numbers only
        if isinstance(node, ast.Name):
            if node.id not in scores:
                raise GraderError(f"calculate_output: unknown name {node.id!r}; graders are {sorted(scores)}")
            return float(scores[node.id])
        if isinstance(node, ast.UnaryOp):
            return -walk(node.operand) if isinstance(node.op, ast.USub) else walk(node.operand)
        if isinstance(node, ast.BinOp):
            return float(_BINARY[type(node.op)](walk(node.left), walk(node.right)))
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        return float(FUNCTIONS[node.func.id](*[walk(arg) for arg in node.args]))

    try:
        value = walk(parse_formula(formula))
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise GraderError(f"calculate_output: {exc}") from None
    if not math.isfinite(value):
        raise GraderError("calculate_output: the result is not a finite number")
    return value


def sub_graders(grader: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A multi grader's graders by the name its formula uses: the dict key (or a lone grader's name)."""
    graders = grader["graders"]
    return graders if "type" not in graders else {graders["name"]: graders}


# --- one entry point -----------------------------------------------------------------------------
PythonRunner = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], float]


def grade(grader: dict[str, Any], sample: dict[str, Any], item: dict[str, Any], run_python: PythonRunner) -> float:
    """The score of one sample; run_python(grader, sample, item) runs a python grader's grade()."""
    kind = grader["type"]
    if kind == "string_check":
        text, reference = render(grader["input"], sample, item), render(grader["reference"], sample, item)
        return string_check(grader["operation"], text, reference)
    if kind == "text_similarity":
        text, reference = render(grader["input"], sample, item), render(grader["reference"], sample, item)
        return SIMILARITY[grader["evaluation_metric"]](text, reference)
    if kind == "python":
        return float(run_python(grader, sample, item))
    if kind == "multi":
        scores = {name: grade(sub, sample, item, run_python) for name, sub in sub_graders(grader).items()}
        return evaluate_formula(grader["calculate_output"], scores)
    raise GraderError(f"grader type {kind!r} cannot run here")
