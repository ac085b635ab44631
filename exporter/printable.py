"""Text from outside (labels, annotations, request lines) made safe to show.

Two uses, two functions. :func:`plain_text` is for text a person reads as-is (an SMS):
control characters, line and paragraph separators and bidirectional overrides become
spaces, runs of whitespace one space, and a lone surrogate (JSON can carry one, UTF-8
cannot) a ``?``, so the result is one line and always encodable. :func:`log_safe` is for a
log line: nothing is dropped, control characters are escaped (``\\r``, ``\\x1b``), so a
forged line or a terminal escape shows as text, and the value is cut to a length.
"""

from __future__ import annotations

import unicodedata

# Categories that are never shown as themselves: controls (C0, DEL, C1), surrogates, and
# the line and paragraph separators that end a line in many viewers.
_UNSAFE = frozenset({"Cc", "Cs", "Zl", "Zp"})
# Bidirectional embeddings, overrides and isolates (Cf): they reorder the text after them,
# so "Pay\u202eOK" reads differently than it is. Other Cf characters (the zero-width joiner
# of emoji sequences) stay.
_BIDI = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
LOG_VALUE_LIMIT = 200


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE or char in _BIDI


def plain_text(value: str) -> str:
    """One line of printable, encodable text: see the module doc."""
    if value.isascii() and value.isprintable():
        return " ".join(value.split())  # the common case, without a pass per character
    shown = []
    for char in value:
        if unicodedata.category(char) == "Cs":
            shown.append("?")
        elif _unsafe(char):
            shown.append(" ")
        else:
            shown.append(char)
    return " ".join("".join(shown).split())


def log_safe(value: str, limit: int = LOG_VALUE_LIMIT) -> str:
    """``value`` cut to ``limit`` characters with controls escaped (an ellipsis if cut)."""
    cut = value[:limit]
    shown = []
    for char in cut:
        if char in _ESCAPES:
            shown.append(_ESCAPES[char])
        elif _unsafe(char):
            code = ord(char)
            shown.append(f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
        else:
            shown.append(char)
    return "".join(shown) + ("…" if len(value) > limit else "")
