"""Dependencies point one way (issue 15): `app/` imports nothing from `workers/` (the API sends tasks by
name), and the engine and the rewards package import neither Celery, FastAPI, SQLAlchemy nor `app`.

Checked on the source (every import statement, including those inside functions) and, for the two
pure packages, on what importing them actually loads. One exception, listed here rather than hidden:
the rewards package reads the reward *spec* schemas (`app.schemas.reward` and `app.schemas.judge`, pydantic
only, and the text sanitizer they use) until those move to a package of their own.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("celery", "kombu", "fastapi", "starlette", "sqlalchemy", "alembic")
CONTRACTS = {
    # package: (forbidden module prefixes, allowed exceptions)
    "app": (("workers",), ()),
    "workers/engine": ((*FRAMEWORKS, "app"), ()),
    "workers/rewards": ((*FRAMEWORKS, "app"), ("app.schemas.reward", "app.schemas.judge", "app.core.sanitize")),
}


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file; relative imports resolved against `package`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found


def _matches(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations(root: Path, directory: str, forbidden: tuple[str, ...], allowed: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((root / directory).rglob("*.py")):
        relative = path.relative_to(root)
        package = (
            ".".join(relative.with_suffix("").parts[:-1])
            if path.name != "__init__.py"
            else ".".join(relative.parts[:-1])
        )
        for line, module in imported_modules(path, package):
            if _matches(module, forbidden) and not _matches(module, allowed):
                bad.append(f"{relative}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("directory", sorted(CONTRACTS))
def test_imports_point_one_way(directory: str) -> None:
    forbidden, allowed = CONTRACTS[directory]
    assert violations(ROOT, directory, forbidden, allowed) == []


def test_the_pure_packages_load_no_framework() -> None:
    """What `import workers.rewards` pulls in, indirectly too, in a fresh interpreter (the engine is
    checked on its source only: importing torch in a subprocess costs seconds)."""
    code = (
        f"import sys, workers.rewards\nprint(sorted({{m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"


def test_a_deliberate_violation_is_caught(tmp_path: Path) -> None:
    """The checker itself: a wrong import, relative or inside a function, is reported with its line."""
    (tmp_path / "app" / "api").mkdir(parents=True)
    (tmp_path / "workers" / "rewards").mkdir(parents=True)
    (tmp_path / "app" / "api" / "routes.py").write_text("import json\n\ndef f():\n    from workers.rewards import x\n")
    (tmp_path / "workers" / "rewards" / "a.py").write_text("from ..tasks import y\nimport sqlalchemy.orm\n")
    assert violations(tmp_path, "app", ("workers",), ()) == ["app/api/routes.py:4 imports workers.rewards"]
    assert violations(tmp_path, "workers/rewards", CONTRACTS["workers/rewards"][0], ()) == [
        "workers/rewards/a.py:2 imports sqlalchemy.orm"
    ]
    (tmp_path / "workers" / "rewards" / "b.py").write_text("from ...app.core import db\n")
    assert "workers/rewards/b.py:1 imports app.core" in violations(tmp_path, "workers/rewards", ("app",), ())
