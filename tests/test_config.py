import pytest

from llmdeck.config import DEFAULT_HOST, HostError, normalize_host, resolve_host


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        # The same answers as ollama-python's _parse_host and Ollama's envconfig.Host.
        ("", "http://127.0.0.1:11434"),
        ("1.2.3.4", "http://1.2.3.4:11434"),
        (":56789", "http://127.0.0.1:56789"),
        ("1.2.3.4:56789", "http://1.2.3.4:56789"),
        ("http://1.2.3.4", "http://1.2.3.4:80"),
        ("https://1.2.3.4", "https://1.2.3.4:443"),
        ("https://example.com:56789", "https://example.com:56789"),
        ("example.com/", "http://example.com:11434"),
        ("example.com:56789/path/", "http://example.com:56789/path"),
        ("0.0.0.0", "http://0.0.0.0:11434"),
        ("[::1]", "http://[::1]:11434"),
        ("[0001:002:003:0004::1]:56789", "http://[0001:002:003:0004::1]:56789"),
        ("::1", "http://[::1]:11434"),
        ("  localhost:11500  ", "http://localhost:11500"),
        ('"0.0.0.0:11434"', "http://0.0.0.0:11434"),  # quotes from a unit file, stripped as Ollama does
        ("'gpu-box'", "http://gpu-box:11434"),
        ("HTTP://gpu-box", "http://gpu-box:80"),
    ],
)
def test_host_is_read_like_ollama_reads_it(raw: str, url: str) -> None:
    assert normalize_host(raw) == url


@pytest.mark.parametrize(
    "raw", ["ftp://host", "host:99999", "host:port", "[::1", "[::1]x", "[zz]", "box?x=1", "user@box", "-box"]
)
def test_unusable_host_is_refused_with_the_value_named(raw: str) -> None:
    with pytest.raises(HostError, match=r"Ollama address"):
        normalize_host(raw)


def test_command_line_beats_environment_beats_default() -> None:
    env = {"OLLAMA_HOST": "gpu-box:11434"}
    assert resolve_host("localhost:1", env).value == "http://localhost:1"
    assert resolve_host("localhost:1", env).source == "command line"
    assert resolve_host(None, env).value == "http://gpu-box:11434"
    assert resolve_host(None, env).source == "environment"
    assert resolve_host(None, {}).value == DEFAULT_HOST
    assert resolve_host(None, {"OLLAMA_HOST": "  "}).source == "default"


def test_the_environment_source_names_its_variable() -> None:
    assert resolve_host(None, {"OLLAMA_HOST": "gpu-box"}).describe() == "environment OLLAMA_HOST"
    assert resolve_host("gpu-box", {}).describe() == "command line"
    assert resolve_host(None, {}).describe() == "default"
