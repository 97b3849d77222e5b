"""Built-in graders that run in the sandbox: each file is a self-contained program (stdlib plus
installed libraries, no project imports) defining `reward(prompt, completion, row)` and reading the
global CONFIG the sandbox injects. They run sandboxed because they parse model output with libraries
that can take unbounded time (sympy simplification, schema regexes) or evaluate text (sympy's
parse_expr uses eval); a process can be killed on timeout, a thread cannot.

Importing a program module directly (tests) gives its pure `score` function; CONFIG is then unused.
"""

from pathlib import Path

_HERE = Path(__file__).parent


def program_source(name: str) -> str:
    """The source text of built-in program `name` (e.g. 'math_equivalence'), sent to the sandbox."""
    return (_HERE / f"{name}.py").read_text()
