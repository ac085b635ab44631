"""The one error type every configuration problem is reported with."""

from __future__ import annotations

import re


class ConfigError(Exception):
    """Bad input: names the file, the path inside it and what is wrong.

    ``str()`` gives the one line the CLI prints before exiting with code 2.
    """

    def __init__(self, source: str, path: str, reason: str) -> None:
        self.source = source
        self.path = path
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}" if self.path else self.source
        # One line whatever the input held: a key or value may carry CR, LF or ESC.
        return _CONTROL.sub(_escape, f"{where}: {self.reason}")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escape(match: re.Match[str]) -> str:
    return repr(match.group(0))[1:-1]
