"""The layout rules of the README's architecture section that code can check."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_platform_still_means_the_standard_library():
    assert not (ROOT / "platform" / "__init__.py").exists()
    out = subprocess.run(
        [sys.executable, "-c", "import platform; print(platform.__file__, platform.system())"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path, system = out.split()
    assert not path.startswith(str(ROOT)) and system


def test_the_core_never_imports_ray():
    code = (
        "import sys, unireward.judge, unireward.curate, unireward.curate.export, unireward.curate.report, "
        "unireward.generate, unireward.io.staging, unireward.io.media, unireward.io.storage, unireward.io.schema, "
        "unireward.synth, unireward.models.tiny, unireward.config; "
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci
    assert (ROOT / ".ci" / "run").stat().st_mode & 0o111
