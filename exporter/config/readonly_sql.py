"""The one check of configured SQL: exactly one read-only statement, no side-effect functions.

Run at configuration load, before any database is reached, so a bad `metrics.*.sql` is a
one-line error whether or not the database is up. It is a lexical check (strings, quoted
names, comments and dollar quotes are skipped, never parsed as SQL); the PostgreSQL source
adds the runtime guarantees (a server-side cursor: one statement, SELECT or VALUES only, in
a READ ONLY transaction). Functions the check cannot see through (a user's own function,
a view) are the database role's business: docs/security.md gives the grants.
"""

from __future__ import annotations

import re

# Statements a metric may start with; DECLARE CURSOR accepts nothing else either.
_STARTS = frozenset({"select", "with", "values", "table"})
# Keywords that write, lock or create even inside a SELECT (`SELECT … INTO t`, `FOR UPDATE`).
_WRITING = frozenset({"insert", "update", "delete", "merge", "into", "truncate", "lock"})
# Functions a read-only transaction still lets run and that change the database or the
# server, read the server's files, or run SQL text the check cannot see (docs/security.md).
DENIED_FUNCTIONS = frozenset(
    {
        "loread",
        "lowrite",
        "set_config",
        "nextval",
        "setval",
        "lastval",
        "pg_notify",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_promote",
        "pg_log_backend_memory_contexts",
        "pg_logical_emit_message",
        "pg_read_file",
        "pg_read_binary_file",
        "pg_stat_file",
        "pg_import_system_collations",
        "txid_current",
        "pg_current_xact_id",
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
        "ts_stat",
        "ts_rewrite",
    }
)
DENIED_PREFIXES = (
    "lo_",  # large objects: lo_from_bytea, lo_import, lo_export, lo_create, lo_unlink, …
    "pg_advisory",
    "pg_try_advisory",
    "dblink",
    "pg_ls_",
    "pg_file_",
    "pg_create_",
    "pg_drop_",
    "pg_replication_",
    "pg_stat_reset",
)

# An identifier starts with a letter, `_` or any non-ASCII character and goes on with those,
# digits and `$`. Written as the complement of the ASCII characters that may not appear: the
# same sets as `[A-Za-z_\u0080-\U0010ffff]`, but a class up to U+10FFFF costs ~35 ms to
# compile on every start of the exporter, this one well under 1 ms.
_START = r"[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f]"
_PART = r"[^\x00-\x23\x25-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"  # with digits and `$`
_TAG_PART = r"[^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"  # with digits, no `$`
_WORD = re.compile(f"{_START}{_PART}*")
_DOLLAR_TAG = re.compile(rf"\$({_START}{_TAG_PART}*)?\$")


class _Unsafe(ValueError):
    pass


def sql_problem(text: str) -> str | None:
    """Why ``text`` is not exactly one read-only statement, or None when it is."""
    try:
        statements = _statements(_tokens(text))
    except _Unsafe as exc:
        return str(exc)
    if not statements:
        return "must not be empty"
    if len(statements) > 1:
        return "must be exactly one statement (found a ';' followed by another)"
    return _statement_problem(statements[0])


def _statement_problem(words: list[str]) -> str | None:
    first = words[0]
    if first != "(" and first not in _STARTS:
        return f"must be a SELECT (or WITH … SELECT, VALUES, TABLE), not {first.upper()}"
    for word, following in zip(words, [*words[1:], ""], strict=True):
        if word in _WRITING:
            return f"must only read: {word.upper()} is not allowed"
        called = following == "("  # a column or alias may share a denied name's prefix
        if called and (word in DENIED_FUNCTIONS or word.startswith(DENIED_PREFIXES)):
            return f"calls {word}(), which can change the database or the server (docs/security.md)"
    return None


def _tokens(text: str) -> list[str]:
    """Lower-cased words, quoted names as written, and the punctuation ``;`` and ``(``."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            i = _skip_block_comment(text, i)
        elif c == "'":
            i = _skip_string(text, i, backslashes=_escape_prefix(text, i))
        elif c == '"':
            if text[max(0, i - 2) : i].lower() == "u&":
                raise _Unsafe('must not use U&"…" identifiers (write the name plainly)')
            end = _skip_quoted(text, i, '"', "quoted name")
            out.append(text[i + 1 : end - 1].replace('""', '"'))
            i = end
        elif c == "$" and (tag := _DOLLAR_TAG.match(text, i)) is not None:
            close = text.find(tag.group(0), tag.end())
            if close < 0:
                raise _Unsafe("has an unterminated dollar-quoted string")
            i = close + len(tag.group(0))
        elif (word := _WORD.match(text, i)) is not None:
            out.append(word.group(0).lower())
            i = word.end()
        else:
            if c in ";(":
                out.append(c)
            i += 1
    return out


def _statements(tokens: list[str]) -> list[list[str]]:
    statements: list[list[str]] = [[]]
    for word in tokens:
        if word == ";":
            statements.append([])
        else:
            statements[-1].append(word)
    return [s for s in statements if s]


def _escape_prefix(text: str, quote: int) -> bool:
    """True for E'…' strings, where a backslash escapes the next character."""
    if quote == 0 or text[quote - 1] not in "eE":
        return False
    return quote == 1 or not (text[quote - 2].isalnum() or text[quote - 2] in "_$")


def _skip_string(text: str, start: int, *, backslashes: bool) -> int:
    i = start + 1
    while i < len(text):
        c = text[i]
        if backslashes and c == "\\":
            i += 2
            continue
        if c == "'":
            if text.startswith("''", i):
                i += 2
                continue
            return i + 1
        i += 1
    raise _Unsafe("has an unterminated string")


def _skip_quoted(text: str, start: int, quote: str, what: str) -> int:
    i = start + 1
    while True:
        end = text.find(quote, i)
        if end < 0:
            raise _Unsafe(f"has an unterminated {what}")
        if text.startswith(quote * 2, end):
            i = end + 2
            continue
        return end + 1


def _skip_block_comment(text: str, start: int) -> int:
    depth, i = 0, start
    while i < len(text):
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise _Unsafe("has an unterminated /* comment")
