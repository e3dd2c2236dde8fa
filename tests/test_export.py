"""Exporting a chat to Markdown: the figures in front matter any YAML reader takes, the talk verbatim."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from llmdeck.export import chat_markdown, export_filename, write_new_file
from llmdeck.history import History, MessageStatus, StoredChat, StoredMessage

EXPORTED = datetime(2026, 11, 22, 4, 55, 12, tzinfo=timezone(timedelta(hours=1)))
# Everything that breaks naive YAML or Markdown front matter: quotes, a colon and space, a line
# that closes the front matter, a comment sign, a YAML word, control and line-separator characters.
TRICKY = 'He said "hi": yes\n---\n# not a comment\nno\tTAB \\ back \x1b[31mred\x1b[0m \x7f \x85 \u2028 é 😀'


def message(
    number: int,
    role: str,
    content: str,
    status: MessageStatus = "complete",
    stats: dict[str, Any] | None = None,
    note: str = "",
) -> StoredMessage:
    return StoredMessage(number, 1, role, content, status, 1_700_000_000.0 + number, stats, note)


def chat(
    *messages: StoredMessage,
    title: str = "Llama facts",
    model: str | None = "llama3.1:8b",
    system_prompt: str = "",
    options: dict[str, Any] | None = None,
) -> StoredChat:
    return StoredChat(
        id=1,
        title=title,
        model=model,
        system_prompt=system_prompt,
        options={} if options is None else options,
        created_at=1_700_000_000.25,
        updated_at=1_700_000_100.75,
        messages=messages,
    )


def front_matter(document: str) -> dict[str, Any]:
    """Read back exactly the YAML subset the export writes, strictly; fail on anything else.

    `key: <JSON>`; `key:` then `  key: <JSON>` lines (a mapping); `key:` then `  - key: <JSON>`
    and `    key: <JSON>` lines (a list of mappings). Keys are bare words or JSON strings.
    """
    lines = document.split("\n")
    assert lines[0] == "---"
    end = lines.index("---", 1)
    data: dict[str, Any] = {}
    top = ""
    item: dict[str, Any] = {}
    for line in lines[1:end]:
        if line.startswith("    "):
            key, value = entry(line[4:])
            item[key] = value
        elif line.startswith("  - "):
            item = {}
            key, value = entry(line[4:])
            item[key] = value
            data[top] = [*(data[top] or []), item]
        elif line.startswith("  "):
            key, value = entry(line[2:])
            data[top] = {**(data[top] or {}), key: value}
        else:
            top, value = entry(line)
            assert top not in data, f"{top} twice"
            data[top] = value
    return data


def entry(text: str) -> tuple[str, Any]:
    if text.startswith('"'):
        key, end = json.JSONDecoder().raw_decode(text)
    else:
        end = text.index(":")
        key = text[:end]
        assert key.isidentifier(), text
    rest = text[end:]
    assert rest.startswith(":"), text
    value = rest[1:]
    if value == "":
        return key, None  # a block follows
    assert value.startswith(" ") and not value.startswith("  "), text
    return key, json.loads(value[1:])


def body(document: str) -> str:
    lines = document.split("\n")
    return "\n".join(lines[lines.index("---", 1) + 1 :])


@pytest.fixture
def local_time_in_kolkata() -> Iterator[None]:
    # A zone with a half-hour offset, far from UTC, so a time shown in the wrong zone is obvious.
    # Given as a POSIX rule, so no time zone database is needed.
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX")
    before = os.environ.get("TZ")
    os.environ["TZ"] = "IST-5:30"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


# Front matter


def test_front_matter_has_the_chat_and_its_figures(local_time_in_kolkata: None) -> None:
    stats_1 = {
        "decode_tokens_per_s": 40.0,
        "prompt_tokens_per_s": 900.5,
        "eval_count": 120,
        "prompt_eval_count": 31,
        "load_duration_s": 2.25,
        "time_to_first_token_s": 0.5,
    }
    stats_3 = {"decode_tokens_per_s": 45.5, "eval_count": 80}
    document = chat_markdown(
        chat(
            message(1, "user", "Legs?"),
            message(2, "assistant", "Four.", stats=stats_1),
            message(3, "user", "Ears?"),
            message(4, "assistant", "Two.", stats=None),
            message(5, "user", "Tail?"),
            message(6, "assistant", "One.", stats=stats_3),
            system_prompt="Be brief.",
            options={"num_ctx": 8192, "num_gpu": 99, "stop": ["</s>"]},
        ),
        EXPORTED,
    )
    data = front_matter(document)
    assert list(data) == [
        "title",
        "model",
        "options",
        "system_prompt",
        "created",
        "updated",
        "exported",
        "messages",
        "replies",
        "mean_decode_tokens_per_s",
    ]
    assert data["title"] == "Llama facts"
    assert data["model"] == "llama3.1:8b"
    assert data["options"] == {"num_ctx": 8192, "num_gpu": 99, "stop": ["</s>"]}
    assert data["system_prompt"] == "Be brief."
    assert data["messages"] == 6
    # Each reply with figures, numbered among the replies so they can be matched to the text.
    assert data["replies"] == [{"reply": 1, **stats_1}, {"reply": 3, **stats_3}]
    assert isinstance(data["replies"][0]["eval_count"], int)
    assert data["mean_decode_tokens_per_s"] == 42.75
    # Times carry their zone and name the same instants, shown in local time.
    created = datetime.fromisoformat(data["created"])
    assert created.timestamp() == int(1_700_000_000.25)
    assert created.utcoffset() == timedelta(hours=5, minutes=30)
    assert datetime.fromisoformat(data["updated"]).timestamp() == int(1_700_000_100.75)
    exported = datetime.fromisoformat(data["exported"])
    assert exported == EXPORTED and exported.utcoffset() == timedelta(hours=5, minutes=30)


def test_front_matter_of_a_bare_chat() -> None:
    data = front_matter(chat_markdown(chat(model=None), EXPORTED))
    assert data["model"] is None
    assert data["options"] == {}
    assert "system_prompt" not in data
    assert (data["messages"], data["replies"], data["mean_decode_tokens_per_s"]) == (0, [], None)
    assert "options: {}" in chat_markdown(chat(), EXPORTED).split("\n")


def test_mean_rate_counts_only_replies_that_have_one() -> None:
    document = chat_markdown(
        chat(
            message(1, "assistant", "a", stats={"decode_tokens_per_s": 30}),
            message(2, "assistant", "b", stats={"eval_count": 3}),  # no rate: not a zero
            message(3, "assistant", "c", stats={"decode_tokens_per_s": 20.0}),
            message(4, "assistant", "d", stats={"decode_tokens_per_s": float("nan")}),
        ),
        EXPORTED,
    )
    data = front_matter(document)
    assert data["mean_decode_tokens_per_s"] == 25.0
    assert [reply["reply"] for reply in data["replies"]] == [1, 2, 3, 4]
    # A figure that is not a number is written as null, which every reader accepts.
    assert data["replies"][3]["decode_tokens_per_s"] is None


def test_tricky_strings_survive_the_front_matter() -> None:
    options = {"stop": [TRICKY, "---"], "on": True, "odd key: yes": 1, "tiny": 1e-05}
    document = chat_markdown(
        chat(
            message(1, "assistant", "x", stats={"done_reason": TRICKY}),
            title=TRICKY,
            model=TRICKY,
            system_prompt=TRICKY,
            options=options,
        ),
        EXPORTED,
    )
    data = front_matter(document)
    assert data["title"] == data["model"] == data["system_prompt"] == TRICKY
    assert data["options"] == options
    assert data["replies"] == [{"reply": 1, "done_reason": TRICKY}]
    # The block closes where it should: one line per field (the options and the reply's two
    # figures on lines of their own), so nothing of the title leaked onto lines of its own.
    assert document.split("\n").index("---", 1) == 1 + len(data) + len(options) + 2


def test_front_matter_is_plain_text_yaml_can_take() -> None:
    document = chat_markdown(
        chat(title=TRICKY, system_prompt=TRICKY, options={"on": 1, "tiny": 1e-05}), EXPORTED
    )
    front = document.split("\n---\n", 1)[0]
    # Raw control characters, NEL and line separators are not allowed or not kept by YAML readers.
    assert not any(char in front for char in "\x1b\x7f\x85\u2028\t")
    # A YAML 1.1 reader takes a bare `on` for true: the key is quoted.
    assert '  "on": 1' in front.split("\n")
    # YAML 1.1 readers take "1e-05" for a string: a float is written with its dot.
    assert "  tiny: 1.0e-05" in front.split("\n")
    # Non-ASCII text stays readable in the file.
    assert "é 😀" in front


# Body


def test_body_has_the_talk_under_headings_naming_the_model() -> None:
    document = chat_markdown(
        chat(
            message(1, "user", "How many legs?"),
            message(2, "assistant", "**Four** legs:\n\n- front\n- back\n"),
            system_prompt="Answer briefly.\nUse lists.",
        ),
        EXPORTED,
    )
    assert body(document) == (
        "\n"
        "# Llama facts\n"
        "\n"
        "> Answer briefly.\n"
        "> Use lists.\n"
        "\n"
        "## You\n"
        "\n"
        "How many legs?\n"
        "\n"
        "## llama3.1:8b\n"
        "\n"
        "**Four** legs:\n"
        "\n"
        "- front\n"
        "- back\n"
    )


def test_the_text_is_kept_exactly_as_received() -> None:
    received = "colour \x1b[31mred\x1b[0m, a bell \x07, <b>html</b>, `code`, ---\n\n```\nunclosed"
    document = chat_markdown(chat(message(1, "user", TRICKY), message(2, "assistant", received)), EXPORTED)
    assert f"## You\n\n{TRICKY}\n\n" in document
    assert f"## llama3.1:8b\n\n{received}\n" in document


def test_unfinished_replies_say_so() -> None:
    document = chat_markdown(
        chat(
            message(1, "assistant", "complete reply"),
            message(2, "assistant", "stopped repl", status="stopped"),
            message(3, "assistant", "interrupted rep", status="interrupted"),
            message(4, "assistant", "", status="error", note="model 'x' not found\n(try `ollama pull x`)"),
        ),
        EXPORTED,
    )
    text = body(document)
    assert "complete reply\n\n## llama3.1:8b\n\nstopped repl\n\n*Stopped" in text
    assert "interrupted rep\n\n*Interrupted" in text
    # The error's text, on one italic line whose own markup cannot break it.
    assert "*The reply failed: model 'x' not found (try \\`ollama pull x\\`)*" in text.split("\n")
    notes = [line for line in text.split("\n") if line.startswith("*")]
    assert len(notes) == 3
    assert all("incomplete" in line for line in notes[:2])


def test_a_chat_without_a_model_or_title_still_reads_well() -> None:
    text = body(chat_markdown(chat(message(1, "assistant", "hi"), title="", model=None), EXPORTED))
    assert "\n# Chat\n" in text and "\n## Assistant\n" in text


# File names


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Llama facts", "llama-facts"),
        ("  Llama   facts!!  ", "llama-facts"),
        ("Café über naïve", "cafe-uber-naive"),
        ("C++ / Rust: which?", "c-rust-which"),
        ("../../etc/passwd", "etc-passwd"),
        ("", "chat"),
        ("!!!", "chat"),
        ("日本語のチャット", "chat"),
    ],
)
def test_export_filename_is_a_slug_and_the_local_time(title: str, slug: str) -> None:
    naive_local = datetime(2026, 11, 22, 4, 55)
    assert export_filename(chat(title=title), naive_local) == f"{slug}-2026-11-22-0455.md"


def test_a_long_title_gives_a_slug_of_at_most_50_characters() -> None:
    name = export_filename(chat(title="word " * 40), datetime(2026, 1, 2, 3, 4))
    slug = name.removesuffix("-2026-01-02-0304.md")
    assert 40 <= len(slug) <= 50
    assert not slug.endswith("-") and slug.startswith("word-word")


def test_export_filename_uses_local_time(local_time_in_kolkata: None) -> None:
    utc = datetime(2026, 11, 22, 4, 55, tzinfo=UTC)
    assert export_filename(chat(), utc) == "llama-facts-2026-11-22-1025.md"


# Writing the file


def test_write_new_file_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "llama-facts-2026-11-22-0455.md"
    target.write_text("the user's own notes")

    second = write_new_file(target, "export one")
    third = write_new_file(target, "export two")

    assert target.read_text() == "the user's own notes"
    assert second == tmp_path / "llama-facts-2026-11-22-0455-2.md"
    assert third == tmp_path / "llama-facts-2026-11-22-0455-3.md"
    assert (second.read_text(), third.read_text()) == ("export one", "export two")


def test_write_new_file_writes_the_text_unchanged(tmp_path: Path) -> None:
    text = "line\r\nother\n\x1b[0m é\n"
    written = write_new_file(tmp_path / "a.md", text)
    assert written == tmp_path / "a.md"
    assert written.read_bytes() == text.encode("utf-8")


def test_write_new_file_raises_os_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_new_file(tmp_path / "missing-folder" / "a.md", "text")


def test_a_stored_chat_exports_end_to_end(tmp_path: Path) -> None:
    history = History(tmp_path / "history.sqlite3")
    try:
        stored = history.create_chat("Killed mid-reply", "phi3", options={"num_ctx": 2048})
        history.add_message(stored.id, "user", "Tell me a story")
        reply = history.add_message(stored.id, "assistant", "Once", status="streaming")
        history.update_message(reply.id, "Once upon", status="interrupted")
        [loaded] = history.chats()
    finally:
        history.close()
    path = write_new_file(tmp_path / export_filename(loaded, EXPORTED), chat_markdown(loaded, EXPORTED))
    document = path.read_text(encoding="utf-8")
    assert path.name.startswith("killed-mid-reply-")
    assert front_matter(document)["options"] == {"num_ctx": 2048}
    assert "## phi3\n\nOnce upon\n\n*Interrupted" in document
