"""`config.toml`: precedence, where every value came from, and broken files that do not stop llmdeck."""

from __future__ import annotations

import math
import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmdeck.config import DEFAULT_HOST, Settings, load_settings
from llmdeck.config_file import default_config_path, key_lines

GIB = 1024**3
OLLAMA_SETTINGS = ("OLLAMA_HOST", "OLLAMA_CONTEXT_LENGTH", "OLLAMA_KV_CACHE_TYPE", "OLLAMA_GPU_OVERHEAD")


@pytest.fixture(autouse=True)
def no_ollama_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's own Ollama settings must not leak into what these tests expect."""
    for variable in OLLAMA_SETTINGS:
        monkeypatch.delenv(variable, raising=False)


def write_config(text: str, path: Path | None = None) -> Path:
    path = path or default_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_without_a_config_file_everything_is_a_default_and_nothing_is_wrong() -> None:
    settings = load_settings(environ={})
    assert settings.config_problems == ()
    assert settings.config_path == default_config_path()
    assert (settings.host.value, settings.hardware_refresh_s, settings.num_ctx) == (DEFAULT_HOST, 1.0, None)
    assert (settings.kv_cache_type, settings.gpu_overhead_bytes, dict(settings.keymap)) == ("f16", 0, {})
    assert (settings.default_model, settings.theme, settings.keep_alive) == (None, None, None)
    assert {setting.describe() for setting in settings.provenance.values()} == {"default"}


def test_the_file_is_found_through_xdg_config_home() -> None:
    # conftest points XDG_CONFIG_HOME at a temporary folder; the path is built from it, not
    # from platformdirs, so this checks where a Linux user must put the file.
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "llmdeck" / "config.toml"
    write_config('theme = "llmdeck-light"\n', path)
    settings = load_settings(environ={})
    assert settings.config_path == path
    assert settings.theme == "llmdeck-light"
    assert settings.provenance["theme"].describe() == f"config file {path}, line 1"


def test_every_key_of_a_good_file_is_used_with_its_line() -> None:
    path = write_config(
        "# llmdeck settings\n"
        'host = "gpu-box"\n'
        'default_model = "llama3.1:8b"\n'
        "context_length = 8192\n"
        'kv_cache_type = "q8_0"\n'
        "refresh = 2\n"
        'theme = "llmdeck-light"\n'
        "gpu_overhead = 1.5\n"
        'keep_alive = "10m"\n'
        "\n"
        "[keymap]\n"
        '"app.quit" = "ctrl+x"\n'
        'models.sort = "f10,s"\n'
    )
    settings = load_settings(environ={})
    assert settings.config_problems == ()
    assert settings.host.value == "http://gpu-box:11434"
    assert settings.default_model == "llama3.1:8b"
    assert (settings.num_ctx, settings.kv_cache_type, settings.hardware_refresh_s) == (8192, "q8_0", 2.0)
    assert settings.theme == "llmdeck-light"
    assert settings.gpu_overhead_bytes == int(1.5 * GIB)
    assert settings.keep_alive == "10m"
    # A quoted id and a dotted key name the same kind of binding.
    assert dict(settings.keymap) == {"app.quit": "ctrl+x", "models.sort": "f10,s"}
    lines = {key: setting.line for key, setting in settings.provenance.items()}
    assert lines == {
        "host": 2,
        "default_model": 3,
        "context_length": 4,
        "kv_cache_type": 5,
        "refresh": 6,
        "theme": 7,
        "gpu_overhead": 8,
        "keep_alive": 9,
        "keymap": 11,
        "keymap.app.quit": 12,
        "keymap.models.sort": 13,
    }
    assert {setting.path for setting in settings.provenance.values()} == {path}
    assert settings.provenance["gpu_overhead"].value == 1.5  # shown in the file's unit


def test_command_line_beats_environment_beats_file_beats_default() -> None:
    path = write_config(
        'host = "file-box"\ncontext_length = 8192\nkv_cache_type = "q8_0"\ngpu_overhead = 2\nrefresh = 2\n'
    )
    env = {
        "OLLAMA_HOST": "env-box",
        "OLLAMA_CONTEXT_LENGTH": "16384",
        "OLLAMA_KV_CACHE_TYPE": "q4_0",
        "OLLAMA_GPU_OVERHEAD": str(GIB // 2),  # bytes, as Ollama reads it
    }
    from_file = load_settings(environ={})
    from_env = load_settings(environ=env)
    from_flags = load_settings(host="cli-box", refresh_s=1.0, environ=env)

    assert (from_file.host.value, from_env.host.value, from_flags.host.value) == (
        "http://file-box:11434",
        "http://env-box:11434",
        "http://cli-box:11434",
    )
    assert [s.provenance["host"].describe() for s in (from_file, from_env, from_flags)] == [
        f"config file {path}, line 1",
        "environment OLLAMA_HOST",
        "command line",
    ]
    assert (from_file.num_ctx, from_env.num_ctx) == (8192, 16384)
    assert (from_file.kv_cache_type, from_env.kv_cache_type) == ("q8_0", "q4_0")
    assert (from_file.gpu_overhead_bytes, from_env.gpu_overhead_bytes) == (2 * GIB, GIB // 2)
    assert from_env.provenance["gpu_overhead"].value == 0.5
    for key, variable in [
        ("context_length", "OLLAMA_CONTEXT_LENGTH"),
        ("kv_cache_type", "OLLAMA_KV_CACHE_TYPE"),
        ("gpu_overhead", "OLLAMA_GPU_OVERHEAD"),
    ]:
        assert from_env.provenance[key].describe() == f"environment {variable}"
    # refresh has no environment variable: the flag beats the file.
    assert (from_env.hardware_refresh_s, from_flags.hardware_refresh_s) == (2.0, 1.0)
    assert from_flags.provenance["refresh"].describe() == "command line"
    assert from_file.config_problems == from_env.config_problems == from_flags.config_problems == ()


def test_zero_context_length_means_ollamas_default_in_the_file_and_the_environment() -> None:
    write_config("context_length = 0\n")
    assert load_settings(environ={}).num_ctx is None
    # An environment 0 still beats the file's value: the user asked for Ollama's default.
    write_config("context_length = 8192\n")
    settings = load_settings(environ={"OLLAMA_CONTEXT_LENGTH": "0"})
    assert settings.num_ctx is None
    assert settings.provenance["context_length"].describe() == "environment OLLAMA_CONTEXT_LENGTH"


def test_settings_built_by_hand_still_work() -> None:
    # tests/helpers.py and the UI tests build Settings directly.
    settings = Settings()
    assert (settings.hardware_refresh_s, settings.config_problems, settings.config_path) == (1.0, (), None)


KEEP_ALIVE_RULE = (
    'a duration such as "5m", "1h" or "30s", a number of seconds, -1 (keep the model loaded) or 0 '
    "(unload it after each reply)"
)
# Good keys before the bad one: after a bad table header they would belong to that table.
GOOD = 'theme = "llmdeck-light"\ncontext_length = 4096\n'


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('refresh = "fast"', 'refresh must be a number of seconds from 0.1 to 60, not "fast"'),
        ("refresh = 0.01", "refresh must be a number of seconds from 0.1 to 60, not 0.01"),
        ("refresh = true", "refresh must be a number of seconds from 0.1 to 60, not true"),
        ("refresh = nan", "refresh must be a number of seconds from 0.1 to 60, not nan"),
        ("gpu_overhead = -2", "gpu_overhead must be a number of GiB from 0 to 1024, not -2"),
        ("kv_cache_type = 'q5_1'", 'kv_cache_type must be one of "f16", "q8_0", "q4_0", not "q5_1"'),
        ("default_model = 7", 'default_model must be a model name such as "llama3.1:8b", not 7'),
        (
            "default_model = ''",
            'default_model must be a model name such as "llama3.1:8b", not an empty string',
        ),
        (
            "host = 'box:99999'",
            "host: invalid port '99999' in Ollama address 'box:99999'",
        ),
        ("host = [1, 2]", 'host must be an Ollama address such as "gpu-box:11434" (a string), not an array'),
        ("refesh = 2", "unknown key refesh, ignored (did you mean refresh?)"),
        ("[keymaps]\n'app.quit' = 'x'", "unknown table [keymaps], ignored (did you mean keymap?)"),
        (
            "[colours]\nborder = 'red'",
            "unknown table [colours], ignored (llmdeck reads host, default_model, context_length, "
            "kv_cache_type, refresh, theme, gpu_overhead, keep_alive and [keymap])",
        ),
        ("keymap = 'ctrl+q'", 'keymap must be a table of binding id = "keys" lines, not "ctrl+q"'),
        ("keep_alive = 'forever'", f'keep_alive must be {KEEP_ALIVE_RULE}, not "forever"'),
        ("keep_alive = '5 minutes'", f'keep_alive must be {KEEP_ALIVE_RULE}, not "5 minutes"'),
        ("keep_alive = true", f"keep_alive must be {KEEP_ALIVE_RULE}, not true"),
        ("keep_alive = inf", f"keep_alive must be {KEEP_ALIVE_RULE}, not inf"),
        ("keep_alive = 1e30", f"keep_alive must be {KEEP_ALIVE_RULE}, not 1e+30"),
        ("keep_alive_s = 60", "unknown key keep_alive_s, ignored (did you mean keep_alive?)"),
    ],
)
def test_a_bad_value_is_one_message_with_file_line_and_key_and_only_it_falls_back(
    bad: str, message: str
) -> None:
    path = write_config(GOOD + bad + "\n")
    before = path.read_bytes(), path.stat().st_mtime_ns
    settings = load_settings(environ={})
    assert settings.config_problems == (f"{path}, line 3: {message}",)
    # The good keys still apply; the bad one is back at its default.
    assert (settings.theme, settings.num_ctx) == ("llmdeck-light", 4096)
    default = Settings()
    assert settings.hardware_refresh_s == default.hardware_refresh_s
    assert (settings.host.value, settings.host.source) == (DEFAULT_HOST, "default")
    assert (settings.kv_cache_type, settings.gpu_overhead_bytes) == ("f16", 0)
    assert (settings.default_model, dict(settings.keymap)) == (None, {})
    assert settings.keep_alive is None
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


@pytest.mark.parametrize(
    ("line", "value"),
    [
        # Ollama's own spellings: a Go duration, seconds, negative for ever, 0 to unload at once.
        ('keep_alive = "5m"', "5m"),
        ('keep_alive = " 1h30m "', "1h30m"),
        ('keep_alive = "-1s"', "-1s"),
        ("keep_alive = 300", 300),
        ("keep_alive = 2.5", 2.5),
        ("keep_alive = -1", -1),
        ("keep_alive = 0", 0),
        # Bare seconds in a string, as OLLAMA_KEEP_ALIVE takes them: sent as the number, which
        # the API's JSON field accepts (it refuses a string without a unit).
        ('keep_alive = "-1"', -1),
        ('keep_alive = "600"', 600),
    ],
)
def test_keep_alive_is_read_as_ollama_reads_it_with_its_line(line: str, value: object) -> None:
    path = write_config(f"# llmdeck\ntheme = 'llmdeck-light'\n{line}\n")
    settings = load_settings(environ={})
    assert settings.config_problems == ()
    assert settings.keep_alive == value and type(settings.keep_alive) is type(value)
    assert settings.provenance["keep_alive"].describe() == f"config file {path}, line 3"


def test_ollama_keep_alive_in_the_environment_is_the_servers_not_llmdecks() -> None:
    # The server reads it for its own default, which applies when llmdeck sends none.
    settings = load_settings(environ={"OLLAMA_KEEP_ALIVE": "24h"})
    assert settings.keep_alive is None
    assert settings.provenance["keep_alive"].describe() == "default"
    write_config('keep_alive = "10m"\n')
    assert load_settings(environ={"OLLAMA_KEEP_ALIVE": "24h"}).keep_alive == "10m"


def test_a_keymap_value_that_is_not_a_string_is_named_and_the_other_bindings_stay() -> None:
    path = write_config(
        '[keymap]\n"app.quit" = "ctrl+x"\n"models.sort" = 3\nchat.stop = ["escape"]\n"no.such.id" = "f9"\n'
    )
    settings = load_settings(environ={})
    assert settings.config_problems == (
        f'{path}, line 3: keymap."models.sort" must be a key such as "ctrl+x", or keys separated by commas '
        'such as "f10,ctrl+x", not 3',
        f'{path}, line 4: keymap.chat.stop must be a key such as "ctrl+x", or keys separated by commas '
        'such as "f10,ctrl+x", not an array',
    )
    # Binding ids are the UI's to check: an unknown one is passed on, not refused here.
    assert dict(settings.keymap) == {"app.quit": "ctrl+x", "no.such.id": "f9"}


def test_several_problems_are_one_message_each_in_the_order_of_the_file() -> None:
    path = write_config("colour = 'red'\nrefresh = 'fast'\n[keymap]\n'app.quit' = 1\n")
    problems = load_settings(environ={}).config_problems
    assert [problem.split(":")[0] for problem in problems] == [
        f"{path}, line 1",
        f"{path}, line 2",
        f"{path}, line 4",
    ]


def test_a_syntax_error_ignores_the_whole_file_and_says_where() -> None:
    path = write_config('theme = "llmdeck-light"\ncontext_length = 8192\nrefresh = 2 seconds\n')
    before = path.read_bytes(), path.stat().st_mtime_ns
    settings = load_settings(environ={})
    [problem] = settings.config_problems
    assert problem.startswith(f"{path}, line 3, column ")
    assert problem.endswith("; llmdeck ignores the whole file")
    assert "not valid TOML" in problem
    assert (settings.theme, settings.num_ctx, settings.hardware_refresh_s) == (None, None, 1.0)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_a_file_that_is_not_utf8_is_ignored_with_the_line() -> None:
    path = default_config_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b'theme = "a"\ndefault_model = "caf\xe9"\n')
    settings = load_settings(environ={})
    assert settings.config_problems == (f"{path}, line 2: not UTF-8 text; llmdeck ignores the whole file",)
    assert settings.theme is None


def test_a_byte_order_mark_is_not_an_error() -> None:
    path = default_config_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b'\xef\xbb\xbftheme = "llmdeck-light"\n')
    settings = load_settings(environ={})
    assert (settings.theme, settings.config_problems) == ("llmdeck-light", ())


def test_a_folder_where_the_file_should_be_is_a_problem_not_a_crash() -> None:
    path = default_config_path()
    path.mkdir(parents=True)
    settings = load_settings(environ={})
    [problem] = settings.config_problems
    assert problem.startswith(f"{path}: cannot read the config file (")
    assert problem.endswith("); llmdeck uses the defaults")
    assert settings.hardware_refresh_s == 1.0


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0,
    reason="root (and Windows) can read a file without permission",
)
def test_an_unreadable_file_is_a_problem_and_stays_as_it_is() -> None:
    path = write_config("refresh = 2\n")
    path.chmod(0)
    try:
        settings = load_settings(environ={})
        assert settings.config_problems == (
            f"{path}: cannot read the config file (Permission denied); llmdeck uses the defaults",
        )
        assert settings.hardware_refresh_s == 1.0
    finally:
        path.chmod(0o600)
    assert path.read_text() == "refresh = 2\n"


def test_a_file_named_with_config_must_exist_the_default_one_need_not(tmp_path: Path) -> None:
    named = tmp_path / "mine.toml"
    assert load_settings(config_path=named, environ={}).config_problems == (
        f"{named}: no such config file; llmdeck uses the defaults",
    )
    write_config("refresh = 3\n", named)
    write_config("refresh = 4\n")  # the default file is not read when another is named
    settings = load_settings(config_path=named, environ={})
    assert (settings.hardware_refresh_s, settings.config_path) == (3.0, named)
    assert settings.provenance["refresh"].describe() == f"config file {named}, line 1"


@pytest.mark.parametrize(
    ("variable", "raw", "rule"),
    [
        ("OLLAMA_CONTEXT_LENGTH", "8k", "a whole number of tokens from 0 to 16777216"),
        ("OLLAMA_KV_CACHE_TYPE", "q5_1", 'one of "f16", "q8_0", "q4_0"'),
        ("OLLAMA_GPU_OVERHEAD", "1GiB", "a whole number of bytes"),
    ],
)
def test_an_unreadable_ollama_variable_is_ignored_as_ollama_ignores_it(
    variable: str, raw: str, rule: str
) -> None:
    write_config("context_length = 4096\nkv_cache_type = 'q8_0'\ngpu_overhead = 1\n")
    settings = load_settings(environ={variable: raw})
    assert settings.config_problems == (
        f'{variable} in the environment must be {rule}, not "{raw}"; llmdeck ignores it, as Ollama does',
    )
    # The next layer, the file, applies.
    assert (settings.num_ctx, settings.kv_cache_type, settings.gpu_overhead_bytes) == (4096, "q8_0", GIB)


def test_ollama_variables_are_read_as_ollama_reads_them() -> None:
    settings = load_settings(
        environ={
            "OLLAMA_CONTEXT_LENGTH": ' "8192" ',
            "OLLAMA_KV_CACHE_TYPE": "Q8_0",
            "OLLAMA_GPU_OVERHEAD": "  ",
        }
    )
    assert (settings.num_ctx, settings.kv_cache_type, settings.gpu_overhead_bytes) == (8192, "q8_0", 0)
    assert settings.provenance["gpu_overhead"].source == "default"  # blank is unset, not an error
    assert settings.config_problems == ()


def test_control_characters_in_the_file_cannot_reach_the_terminal() -> None:
    write_config('"\\u001b]0;owned\\u0007" = 1\ntheme = 5\nrefresh = "\\u009b2J"\n')
    for problem in load_settings(environ={}).config_problems:
        assert not any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in problem), problem


def test_key_lines_skip_comments_and_multiline_strings_and_follow_tables() -> None:
    text = (
        "# refresh = 1 in a comment\n"  # 1
        'notes = """\n'  # 2
        "refresh = 2 inside a string\n"  # 3
        '"""\n'  # 4
        "  refresh   = 3\n"  # 5
        "[keymap]\n"  # 6
        "refresh = 'f5'\n"  # 7
        " 'app.quit' = 'x'\n"  # 8
        "models . sort = 'y'\n"  # 9
        "[ keymap.chat ]  # a sub-table\n"  # 10
        'stop = "escape"\n'  # 11
    )
    lines = key_lines(text)
    assert lines[("notes",)] == 2
    assert lines[("refresh",)] == 5
    assert lines[("keymap",)] == 6
    assert lines[("keymap", "refresh")] == 7
    assert lines[("keymap", "app.quit")] == 8
    assert (lines[("keymap", "models")], lines[("keymap", "models", "sort")]) == (9, 9)
    assert (lines[("keymap", "chat")], lines[("keymap", "chat", "stop")]) == (10, 11)


# Lines that look like a config file, correct or not, so the generator reaches the validation
# and not only the TOML parser's first error.
KEYS = ["host", "refresh", "context_length", "kv_cache_type", "theme", "gpu_overhead", "default_model",
        "keep_alive", "keymap", "x", "models.sort", '"app.quit"']  # fmt: skip
HEADERS = ["[keymap]", "[keymap.app]", "[[keymap]]", "[other]", '["keymap"]']
VALUES = ["true", "nan", "-inf", "[1, 2]", "{a = 1}", "{}", '"q8_0"', "'f16'", '""', "1979-05-27", "0x10",
          '"""\nx = 1\n"""', "[[[[", '"ftp://x"', "'gpu-box:11434'", '"app.quit"',
          '"5m"', '"-1"']  # fmt: skip
_VALUE = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats().map(lambda number: str(number).replace("e+", "e")),
    st.sampled_from(VALUES),
    st.text(max_size=12).map(lambda text: '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'),
)
_LINE = st.one_of(
    st.tuples(st.sampled_from(KEYS), _VALUE).map(" = ".join),
    st.sampled_from(HEADERS),
    st.text(max_size=30),
)


@given(st.lists(_LINE, max_size=12).map("\n".join))
@settings(max_examples=300, deadline=None)
def test_any_text_in_the_file_gives_settings_and_messages_never_an_exception(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        before = path.read_bytes()
        settings = load_settings(config_path=path, environ={})
        assert path.read_bytes() == before
    assert isinstance(settings, Settings)
    assert all(problem.startswith(str(path)) for problem in settings.config_problems)
    assert 0.1 <= settings.hardware_refresh_s <= 60
    assert settings.kv_cache_type in ("f16", "q8_0", "q4_0")
    assert all(isinstance(keys, str) for keys in settings.keymap.values())
    keep_alive = settings.keep_alive
    assert keep_alive is None or isinstance(keep_alive, str) or math.isfinite(keep_alive)
