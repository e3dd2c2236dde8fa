"""What importing the app loads, and what it leaves for later: start-up is timed to the model
list on screen (target 0.6 s, bench/startup.py), and most of it is importing. Dialogs, the
Markdown stack, the GGUF reader and the official client are imported where they are first used
(the Markdown stack by a warm-up thread once the list shows, the client in a thread when the
server is first asked), never at a module's top: this checks the modules the `llmdeck` command
imports before `App.run`, not what the running app loads by then."""

import subprocess
import sys

# Each stands for a part kept off the start; a module that moved or was renamed fails the check
# below that it exists at all.
LOADED_LATER = (
    "llmdeck.ui.help_screen",
    "llmdeck.ui.log_screen",
    "llmdeck.ui.pull_screen",
    "llmdeck.ui.catalog_screen",
    "llmdeck.ui.details_screen",
    "llmdeck.ui.confirm_screen",
    "llmdeck.ui.text_prompt",
    "llmdeck.ui.markdown_blocks",
    "llmdeck.export",
    "llmdeck.pull_progress",
    "markdown_it",
    "pygments",
    "gguf",
    # The official client and what it is built on: imported in a thread on first use.
    "ollama",
    "httpx",
    "pydantic",
)


def loaded_after(imports: str) -> set[str]:
    script = f"import sys\n{imports}\nprint('\\n'.join(sys.modules))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_starting_the_tui_leaves_dialogs_markdown_and_the_client_unloaded() -> None:
    # What `llmdeck` imports before `App.run`: the CLI, the client's module and the app.
    loaded = loaded_after("import llmdeck.cli, llmdeck.ollama_api, llmdeck.ui.app")
    assert "llmdeck.ui.app" in loaded
    assert sorted(name for name in LOADED_LATER if name in loaded) == []


def test_the_parts_kept_off_the_start_exist() -> None:
    imports = "\n".join(f"import {name}" for name in LOADED_LATER)
    assert set(LOADED_LATER) <= loaded_after(imports)
