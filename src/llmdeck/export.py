"""One chat as a Markdown document the user keeps: YAML front matter with the figures, then the talk.

The front matter is written by hand in a small subset of YAML (every string a JSON string, which
YAML reads the same), so any title, prompt or model name survives a round trip through any YAML
reader without a YAML library here.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from llmdeck.history import StoredChat, StoredMessage

SLUG_MAX = 50
# A file name the user did not choose should not end up -9999.md; past this something is wrong.
MAX_SUFFIX = 10_000

_INCOMPLETE = {
    "streaming": "Still streaming when exported: this reply is incomplete.",
    "stopped": "Stopped before the end: this reply is incomplete.",
    "interrupted": "Interrupted (llmdeck closed while it was streaming): this reply is incomplete.",
}
# Keys YAML 1.1 readers take as booleans or null when written bare.
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})
_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Characters a JSON string may hold raw but YAML does not: DEL and the C1 controls are not
# printable in YAML, NEL and the Unicode line separators are line breaks that a YAML reader folds,
# and a byte order mark or a lone surrogate is not text at all.
_NOT_YAML = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]")


def chat_markdown(chat: StoredChat, exported_at: datetime) -> str:
    front = _front_matter(chat, exported_at)
    body = [f"# {_one_line(chat.title) or 'Chat'}", ""]
    if chat.system_prompt:
        body += [_quoted(chat.system_prompt), ""]
    assistant = chat.model or "Assistant"
    for message in chat.messages:
        body += [f"## {'You' if message.role == 'user' else _one_line(assistant)}", ""]
        if message.content:
            body += [message.content.rstrip("\n"), ""]
        note = _status_line(message)
        if note:
            body += [note, ""]
    return front + "\n" + "\n".join(body)


def export_filename(chat: StoredChat, exported_at: datetime) -> str:
    """A file name from the title and the local time, e.g. "llama-facts-2026-11-22-0455.md"."""
    return f"{_slug(chat.title)}-{_local(exported_at):%Y-%m-%d-%H%M}.md"


def write_new_file(path: Path, text: str) -> Path:
    """Write `text` to `path`, or to "NAME-2.md", "NAME-3.md"... if taken; return the path written.

    An existing file is never touched. OSError is raised as is, for the caller to show.
    """
    for number in range(1, MAX_SUFFIX + 1):
        candidate = path if number == 1 else path.with_name(f"{path.stem}-{number}{path.suffix}")
        try:
            file = candidate.open("x", encoding="utf-8", newline="")
        except FileExistsError:
            continue
        try:
            with file:
                file.write(text)
        except BaseException:
            # Only this call created the file: a half-written export is no one's document.
            candidate.unlink(missing_ok=True)
            raise
        return candidate
    raise FileExistsError(f"{path} and its numbered alternatives up to -{MAX_SUFFIX} exist already")


# Front matter


def _front_matter(chat: StoredChat, exported_at: datetime) -> str:
    fields: dict[str, Any] = {"title": chat.title, "model": chat.model, "options": dict(chat.options)}
    if chat.system_prompt:
        fields["system_prompt"] = chat.system_prompt
    fields["created"] = _timestamp(datetime.fromtimestamp(chat.created_at))
    fields["updated"] = _timestamp(datetime.fromtimestamp(chat.updated_at))
    fields["exported"] = _timestamp(exported_at)
    fields["messages"] = len(chat.messages)
    replies: list[dict[str, Any]] = []
    rates: list[float] = []
    number = 0
    for message in chat.messages:
        if message.role != "assistant":
            continue
        number += 1
        if not message.stats:
            continue
        # The reply's number lets a reader match figures to replies when some replies have none.
        replies.append({"reply": number, **message.stats})
        rate = message.stats.get("decode_tokens_per_s")
        if isinstance(rate, int | float) and not isinstance(rate, bool) and math.isfinite(rate):
            rates.append(float(rate))
    fields["replies"] = replies
    fields["mean_decode_tokens_per_s"] = round(sum(rates) / len(rates), 2) if rates else None
    lines = ["---"]
    for key, value in fields.items():
        lines += _yaml_entry(key, value, "")
    lines.append("---")
    return "\n".join(lines) + "\n"


def _yaml_entry(key: str, value: Any, indent: str) -> list[str]:
    """`key: value` in block style for a mapping or a list of mappings, flow (JSON) style otherwise."""
    head = f"{indent}{_yaml_key(key)}:"
    if isinstance(value, Mapping) and value:
        lines = [head]
        for inner_key, inner in value.items():
            lines += _yaml_entry(str(inner_key), inner, indent + "  ")
        return lines
    if _is_list_of_mappings(value):
        lines = [head]
        for item in value:
            entries = [line for k, v in item.items() for line in _yaml_entry(str(k), v, indent + "    ")]
            # The first key shares the line with the dash: "  - reply: 1".
            lines.append(f"{indent}  - {entries[0].lstrip()}")
            lines += entries[1:]
        return lines
    return [f"{head} {_yaml_value(value)}"]


def _yaml_key(key: str) -> str:
    if _BARE_KEY.fullmatch(key) and key.lower() not in _YAML_WORDS:
        return key
    return _yaml_value(key)


def _yaml_value(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "null"
        text = repr(value)
        # YAML 1.1 readers take "1e-05" for a string: a float needs its dot.
        if "e" in text and "." not in text:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, str):
        return _NOT_YAML.sub(
            lambda match: f"\\u{ord(match.group()):04x}", json.dumps(value, ensure_ascii=False)
        )
    if isinstance(value, Mapping):
        items = (f"{_yaml_value(str(k))}: {_yaml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_yaml_value(item) for item in value) + "]"
    return _yaml_value(str(value))


def _is_list_of_mappings(value: Any) -> bool:
    return (
        isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) and item for item in value)
    )


def _timestamp(moment: datetime) -> str:
    return _local(moment).isoformat(timespec="seconds")


def _local(moment: datetime) -> datetime:
    # A naive time is taken as local time, as datetime.now() gives it.
    return moment.astimezone()


# Body


def _status_line(message: StoredMessage) -> str:
    if message.status == "error":
        reason = _one_line(message.note)
        return f"*The reply failed: {_escape(reason)}*" if reason else "*The reply failed.*"
    text = _INCOMPLETE.get(message.status)
    return f"*{text}*" if text else ""


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}".rstrip() for line in text.rstrip("\n").split("\n"))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _escape(text: str) -> str:
    # The note sits inside an italic line: its own markup characters must not end it early.
    return re.sub(r"([\\`*_\[\]<>])", r"\\\1", text)


def _slug(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:SLUG_MAX].rstrip("-") or "chat"
