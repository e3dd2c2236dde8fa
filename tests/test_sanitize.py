from llmdeck.sanitize import inert


def test_terminal_title_change_from_a_reply_is_inert() -> None:
    reply = "before \x1b]0;pwned\x07 after"
    shown = inert(reply)
    assert "\x1b" not in shown
    assert "\x07" not in shown
    assert shown == "before ]0;pwned after"


def test_clipboard_write_and_8bit_csi_are_inert() -> None:
    shown = inert("\x1b]52;c;ZXZpbA==\x1b\\ and \x9b31m red")
    assert all(ord(char) >= 0x20 or char in "\n\t" for char in shown)
    assert not any(0x80 <= ord(char) < 0xA0 for char in shown)


def test_text_layout_and_unicode_survive() -> None:
    text = "# Title\n\n\tcode\n- ünïcødé 🦙 ✓\n"
    assert inert(text) == text
