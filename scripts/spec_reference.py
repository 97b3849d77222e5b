"""Generate docs/job-spec.md, the reference of every job-spec field, from the pydantic models.

python -m scripts.spec_reference            # rewrite docs/job-spec.md
python -m scripts.spec_reference --check    # exit 1 if the file is stale (the tests run this)
"""

import argparse
import json
import sys
from typing import Any

from pydantic import BaseModel

from app.schemas.job import JobSpec
from scripts.stack import PROJECT_ROOT

TARGET = PROJECT_ROOT / "docs" / "job-spec.md"
HEADER = """# Job spec reference

Generated from the pydantic models in `app/schemas/` by `python -m scripts.spec_reference`; do not edit.
The same document is accepted by `POST /v1/jobs` and by `grpo-train spec.json`. Unknown fields are
rejected, so a typo is an error, not a silently ignored knob.
"""


def _type(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in schema:
        return f"[{schema['$ref'].rsplit('/', 1)[1]}](#{schema['$ref'].rsplit('/', 1)[1].lower()})"
    if "anyOf" in schema:
        return " \\| ".join(_type(option, defs) for option in schema["anyOf"])
    if "oneOf" in schema:
        return " \\| ".join(_type(option, defs) for option in schema["oneOf"])
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}), defs)}"
    if schema.get("type") == "object":
        return "object"
    return str(schema.get("type", "any"))


def _section(name: str, schema: dict[str, Any], defs: dict[str, Any]) -> str:
    lines = [f"## {name}", ""]
    if schema.get("description"):
        lines += [" ".join(schema["description"].split()), ""]
    lines += ["| field | type | default | meaning |", "| --- | --- | --- | --- |"]
    required = set(schema.get("required", []))
    for field, prop in schema.get("properties", {}).items():
        if field in required:
            default = "required"
        elif "default" in prop:
            default = f"`{json.dumps(prop['default'])}`"
        else:
            default = "its own defaults"
        description = " ".join(prop.get("description", "").split()).replace("|", "\\|")
        lines.append(f"| `{field}` | {_type(prop, defs)} | {default} | {description} |")
    return "\n".join(lines) + "\n"


def render(model: type[BaseModel] = JobSpec) -> str:
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    sections = [HEADER, _section(model.__name__, schema, defs)]
    sections += [_section(name, definition, defs) for name, definition in sorted(defs.items())]
    return "\n".join(sections)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python -m scripts.spec_reference", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(exist_ok=True)
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
