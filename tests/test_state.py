"""state.toml: what llmdeck remembers between runs, and that no crash or bad edit loses it."""

from __future__ import annotations

import errno
import math
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmdeck.state import Calibration, State, StateError, load_state, save_state, state_path, update_state

HOST = "http://127.0.0.1:11434"
MODEL = "hf.co/org/repo:Q4_K_M"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "llmdeck" / "state.toml"


def full_state() -> State:
    state = State(
        last_model=MODEL,
        theme="llmdeck-dark",
        contexts={MODEL: 8192, "llama3.1:8b": 131072, "qwen2.5/coder:7b": 2048},
    )
    state.calibrations = {
        HOST: {MODEL: Calibration(0.83, 5), "llama3.1:8b": Calibration(1.1, 1)},
        "http://[::1]:11500/ollama": {MODEL: Calibration(0.4, 12)},
    }
    return state


def temp_files(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def moved_aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.broken-*"))


# Where the file lives


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="XDG folders are a Linux/BSD convention")
def test_state_file_is_in_the_xdg_state_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # conftest points XDG_STATE_HOME at the test's home; another value must be followed too.
    assert state_path() == Path(os.environ["XDG_STATE_HOME"]) / "llmdeck" / "state.toml"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "elsewhere"))
    assert state_path() == tmp_path / "elsewhere" / "llmdeck" / "state.toml"


# Saving and loading


def test_everything_saved_comes_back(path: Path) -> None:
    save_state(path, full_state())
    assert load_state(path) == (full_state(), None)


def test_state_file_is_private_to_the_user(path: Path) -> None:
    save_state(path, full_state())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Every folder llmdeck had to create, not only the last one.
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    # An existing file with looser permissions is replaced by a private one.
    path.chmod(0o644)
    save_state(path, full_state())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_file_is_plain_toml_with_the_names_as_written(path: Path) -> None:
    save_state(path, full_state())
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data["last_model"] == MODEL
    assert data["contexts"]["qwen2.5/coder:7b"] == 2048
    assert data["calibrations"][HOST][MODEL] == {"ratio": 0.83, "samples": 5}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=4, unique=True),
    ratio=st.floats(min_value=0.05, max_value=20),
)
def test_any_model_or_host_name_comes_back(path: Path, names: list[str], ratio: float) -> None:
    state = State(last_model=names[0], contexts={name: 4096 for name in names})
    state.calibrations = {name: {other: Calibration(ratio, 3) for other in names} for name in names}
    save_state(path, state)
    assert load_state(path) == (state, None)


def test_missing_file_is_a_first_run(path: Path) -> None:
    assert load_state(path) == (State(), None)
    assert not path.parent.exists()


# Speed calibrations


def test_calibration_is_the_mean_of_the_replies_and_survives_a_restart(path: Path) -> None:
    state = State()
    assert state.calibration(HOST, MODEL) is None
    assert state.record_calibration(HOST, MODEL, measured_tps=40.0, estimated_tps=50.0) == Calibration(0.8, 1)
    second = state.record_calibration(HOST, MODEL, measured_tps=60.0, estimated_tps=50.0)
    assert second is not None
    assert second.ratio == pytest.approx(1.0) and second.samples == 2
    save_state(path, state)
    assert load_state(path)[0].calibration(HOST, MODEL) == second


def test_calibration_belongs_to_one_server_and_one_model() -> None:
    state = State()
    state.record_calibration(HOST, MODEL, 10.0, 20.0)
    assert state.calibration("http://gpu-box:11434", MODEL) is None
    assert state.calibration(HOST, "llama3.1:8b") is None


def test_later_replies_weigh_one_eighth() -> None:
    state = State()
    for _ in range(8):
        state.record_calibration(HOST, MODEL, 50.0, 50.0)
    ninth = state.record_calibration(HOST, MODEL, 100.0, 50.0)
    assert ninth is not None
    assert ninth.ratio == pytest.approx(1.125) and ninth.samples == 9
    # However many replies went before, a new one still moves the figure by an eighth.
    state.calibrations[HOST][MODEL] = Calibration(1.0, 500)
    assert state.record_calibration(HOST, MODEL, 100.0, 50.0) == Calibration(1.125, 501)


@pytest.mark.parametrize(("measured", "clamped"), [(5000.0, 20.0), (0.0001, 0.05)])
def test_one_absurd_reading_is_clamped(measured: float, clamped: float) -> None:
    state = State()
    assert state.record_calibration(HOST, MODEL, measured, 10.0) == Calibration(clamped, 1)
    state.record_calibration(HOST, MODEL, 10.0, 10.0)
    state.calibrations[HOST][MODEL] = Calibration(1.0, 8)
    after = state.record_calibration(HOST, MODEL, measured, 10.0)
    assert after is not None and after.ratio == pytest.approx(1.0 + (clamped - 1.0) / 8)


@pytest.mark.parametrize(
    ("measured", "estimated"),
    [
        (math.nan, 50.0),
        (50.0, math.nan),
        (0.0, 50.0),
        (50.0, 0.0),
        (-5.0, 50.0),
        (math.inf, 50.0),
        (50.0, -1.0),
    ],
)
def test_a_figure_that_is_not_a_speed_changes_nothing(measured: float, estimated: float) -> None:
    state = full_state()
    assert state.record_calibration(HOST, MODEL, measured, estimated) is None
    assert state.record_calibration("http://new-host:1", "new-model", measured, estimated) is None
    assert state == full_state()


# A file llmdeck cannot use


def test_broken_toml_is_reported_with_its_line_kept_and_moved_aside_on_save(path: Path) -> None:
    path.parent.mkdir(parents=True)
    broken = b'last_model = "llama3.1:8b"\ntheme = \n[contexts]\n'
    path.write_bytes(broken)

    state, message = load_state(path)

    assert state == State()
    assert message is not None and str(path) in message and "line 2" in message
    assert path.read_bytes() == broken

    save_state(path, State(last_model=MODEL))

    [aside] = moved_aside(path)
    assert aside.read_bytes() == broken
    assert load_state(path) == (State(last_model=MODEL), None)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('contexts = "x"\n', "contexts must be a table, not a string"),
        ("last_model = 3\n", "last_model must be a string, not 3"),
        ("theme = true\n", "theme must be a string, not a boolean"),
        (
            '[contexts]\n"llama3:8b" = "big"\n',
            'contexts."llama3:8b" must be a positive integer, not a string',
        ),
        ("[contexts]\nphi3 = 0\n", "contexts.phi3 must be a positive integer, not 0"),
        ('calibrations = ["x"]\n', "calibrations must be a table, not an array"),
        (
            '[calibrations."http://h:1".phi3]\nratio = nan\nsamples = 1\n',
            'calibrations."http://h:1".phi3.ratio must be a positive number, not nan',
        ),
        (
            '[calibrations."http://h:1".phi3]\nratio = 1.0\n',
            'calibrations."http://h:1".phi3.samples is missing',
        ),
        (
            '[calibrations."http://h:1".phi3]\nratio = 1.0\nsamples = 1.5\n',
            'calibrations."http://h:1".phi3.samples must be a positive integer, not 1.5',
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_named_and_the_file_kept(path: Path, text: str, key: str) -> None:
    path.parent.mkdir(parents=True)
    # A good value beside the bad one: the whole file is set aside, not half of it used.
    content = ('last_model = "phi3"\n' if "last_model" not in text else "") + text
    path.write_text(content, encoding="utf-8")

    state, message = load_state(path)

    assert state == State()
    assert message is not None and str(path) in message and key in message
    assert path.read_text(encoding="utf-8") == content

    save_state(path, State(theme="x"))
    [aside] = moved_aside(path)
    assert aside.read_text(encoding="utf-8") == content


def test_text_that_is_not_utf8_is_reported_with_its_line(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b'theme = "a"\nlast_model = "\xff"\n')
    state, message = load_state(path)
    assert state == State()
    assert message is not None and "not UTF-8" in message and "line 2" in message


def test_an_unreadable_file_is_reported(path: Path) -> None:
    path.mkdir(parents=True)  # a folder where the file should be: unreadable even for root
    state, message = load_state(path)
    assert state == State()
    assert message is not None and str(path) in message and os.strerror(errno.EISDIR) in message


def test_unknown_keys_from_a_newer_llmdeck_are_kept(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(
        'last_model = "phi3"\nwindow_width = 120\n[pinned]\nmodels = ["phi3", "qwen2.5:7b"]\n',
        encoding="utf-8",
    )

    state, message = load_state(path)
    assert message is None and state.last_model == "phi3"
    assert state.extra == {"window_width": 120, "pinned": {"models": ["phi3", "qwen2.5:7b"]}}

    state.theme = "llmdeck-light"
    save_state(path, state)
    update_state(path, lambda state: state.record_calibration(HOST, "phi3", 10.0, 10.0))

    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data["window_width"] == 120 and data["pinned"] == {"models": ["phi3", "qwen2.5:7b"]}
    assert data["theme"] == "llmdeck-light" and data["calibrations"][HOST]["phi3"]["samples"] == 1


# A save that fails or is cut short


def no_space(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("step", ["dumps", "fsync", "replace"])
def test_failed_save_leaves_the_previous_file_as_it_was(
    path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    save_state(path, full_state())
    before = path.read_bytes()
    # The module calls os.fsync and os.replace through the os module, so patching it reaches them.
    target = tomli_w if step == "dumps" else os
    monkeypatch.setattr(target, step, no_space)

    changed = full_state()
    changed.last_model = "phi3"
    with pytest.raises(StateError) as raised:
        save_state(path, changed)

    assert str(raised.value) == f"cannot save llmdeck state to {path}: No space left on device"
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert temp_files(path.parent) == []


def test_folder_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("")
    path = tmp_path / "plain-file" / "llmdeck" / "state.toml"
    with pytest.raises(StateError, match=r"cannot save llmdeck state to .*plain-file.*: "):
        save_state(path, full_state())


CRASHING_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from llmdeck.state import Calibration, State, save_state

    path = Path(sys.argv[1])
    for n in range(1, 10**9):
        models = [f"hf.co/org/model-{i}:Q4_K_M" for i in range(2000)]
        state = State(last_model=f"run-{n}", contexts={model: n for model in models})
        state.calibrations = {"http://127.0.0.1:11434": {model: Calibration(0.5, n) for model in models}}
        save_state(path, state)
        if n == 1:
            print("saved", flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_killed_while_saving_the_file_is_always_whole(path: Path) -> None:
    rng = random.Random(7)
    for _ in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-c", CRASHING_WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None
        assert writer.stdout.readline() == "saved\n"
        try:
            writer.wait(timeout=rng.uniform(0.02, 0.2))
        except subprocess.TimeoutExpired:
            writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        assert writer.returncode == -signal.SIGKILL

        state, message = load_state(path)
        assert message is None
        # Every value is from the same save: no mix of an old and a new file.
        assert state.last_model is not None
        run = int(state.last_model.removeprefix("run-"))
        assert len(state.contexts) == 2000 and set(state.contexts.values()) == {run}

    # The next save clears what a killed writer left behind.
    (path.parent / f".{path.name}.left-by-a-crash.tmp").write_text("x")
    save_state(path, full_state())
    assert temp_files(path.parent) == []


# Two windows


def test_update_keeps_what_another_window_saved_meanwhile(path: Path) -> None:
    save_state(path, full_state())
    window_a, _ = load_state(path)

    update_state(path, lambda state: state.record_calibration(HOST, "phi3", 30.0, 20.0))
    result = update_state(path, lambda state: state.record_calibration(HOST, "gemma2:9b", 10.0, 20.0))

    assert result.calibration(HOST, "phi3") == Calibration(1.5, 1)
    assert result.calibration(HOST, "gemma2:9b") == Calibration(0.5, 1)
    assert result.calibration(HOST, MODEL) == window_a.calibration(HOST, MODEL)
    assert load_state(path) == (result, None)


def test_update_of_a_broken_file_keeps_it_aside(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"[[[")
    result = update_state(path, lambda state: setattr(state, "theme", "llmdeck-dark"))
    assert result == State(theme="llmdeck-dark")
    assert [aside.read_bytes() for aside in moved_aside(path)] == [b"[[["]
    assert load_state(path) == (result, None)


CONCURRENT_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from llmdeck.state import update_state

    path, model = Path(sys.argv[1]), sys.argv[2]
    for _ in range(20):
        update_state(path, lambda state: state.record_calibration("http://127.0.0.1:11434", model, 1.0, 2.0))
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="no file lock on Windows")
def test_windows_saving_at_the_same_time_lose_nothing(path: Path) -> None:
    models = [f"model-{i}:7b" for i in range(4)]
    writers = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, str(path), model]) for model in models
    ]
    assert [writer.wait(timeout=30) for writer in writers] == [0] * len(models)
    state, message = load_state(path)
    assert message is None
    assert {model: state.calibration(HOST, model) for model in models} == dict.fromkeys(
        models, Calibration(0.5, 20)
    )
