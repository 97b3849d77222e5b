"""Generated documentation stays in step with the code."""

import subprocess
import sys

from scripts.stack import PROJECT_ROOT


def test_job_spec_reference_is_up_to_date():
    result = subprocess.run(
        [sys.executable, "-m", "scripts.spec_reference", "--check"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_app_does_not_import_training_code():
    code = "import app.main, sys; bad = {'torch', 'transformers', 'peft'} & set(sys.modules); print(sorted(bad))"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
