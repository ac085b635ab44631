"""The one error type every configuration problem is reported with."""

from __future__ import annotations

import re
from collections.abc import Mapping


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


def blamed(origins: Mapping[str, str], source: str, path: str, reason: str) -> ConfigError:
    """The error at ``path``, blamed on the variable or flag that set it or an ancestor.

    A mapping set whole from the environment (``BOXOFFICE_SMS_BRIDGE_GROUPS``) names the
    variable and the path inside its value; anything else names the file.
    """
    cuts = [i for i, char in enumerate(path) if char in ".["]
    for end in [len(path), *reversed(cuts)]:
        origin = origins.get(path[:end])
        if origin is not None:
            return ConfigError(origin, path[end:].lstrip("."), reason)
    return ConfigError(source, path or "(top level)", reason)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escape(match: re.Match[str]) -> str:
    return repr(match.group(0))[1:-1]
