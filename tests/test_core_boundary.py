"""The core must stay usable without Textual (CLI, scripts, other front ends)."""

import ast
import subprocess
import sys
from pathlib import Path

import llmdeck

PACKAGE = Path(llmdeck.__file__).parent


def core_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = relative.parts
        if parts[1:2] == ("ui",) or parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_core_modules_exist() -> None:
    # Guards the test below against passing vacuously if the layout changes.
    assert {"llmdeck.cli", "llmdeck.config", "llmdeck.chat", "llmdeck.ollama_api", "llmdeck.hardware"} <= set(
        core_modules()
    )


def test_importing_the_core_does_not_load_textual() -> None:
    modules = core_modules()
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"core imports Textual: {result.stdout.strip()}"


def test_no_core_source_imports_textual_even_lazily() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "ui" in path.relative_to(PACKAGE).parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {name}" for name in names if name.split(".")[0] == "textual"]
    assert offenders == []
