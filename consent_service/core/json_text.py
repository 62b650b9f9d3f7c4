"""The JSON text of many values that differ only in a few places, serialized once and filled in.

A bulk import writes thousands of receipts' claims and audit payloads that share everything but
an id, a pseudonym, a line number and the namings of their rows. ``Template`` serializes one
value whose varying places hold marks, with the caller's own ``dumps`` (so the key order and
separators are the caller's), and then writes each value by putting the varying parts' JSON
where the marks were: the same text ``dumps`` gives the full value.

A mark is a private-use character pair around a random nonce and a slot number, so no other
text of the value can be taken for one. A slot that is a whole JSON value takes any value
(written with ``dumps``); a slot inside a string (``f"consents/{id}/revoke"``) takes a string,
escaped as JSON escapes it there.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Sequence
from typing import Any

_string = json.encoder.encode_basestring


class Template:
    """``dumps(build(*values))`` for any ``values``, from one call of each.

    ``build`` makes the value from its ``slots`` varying parts (called once, with marks); each
    part must appear in it at least once, as a whole value or inside strings (never in a key), and
    must not be transformed on the way (the mark is looked for as given).
    """

    def __init__(self, build: Callable[..., Any], slots: int, dumps: Callable[[Any], str]) -> None:
        nonce = secrets.token_hex(8)
        marks = [f"\ue000{nonce}:{n}\ue001" for n in range(slots)]
        text = dumps(build(*marks))
        found = re.compile(f'("?)(\ue000{nonce}:(\\d+)\ue001)("?)')
        self._dumps = dumps
        self._pieces: list[str] = []
        self._slots: list[tuple[int, bool]] = []  # (the part's position, whether it is a whole value)
        start = 0
        for match in found.finditer(text):
            # A whole value: the mark between its string's own quotes (inside a string a quote is
            # escaped, so the one before the mark would follow a backslash).
            whole = (
                match.group(1) == match.group(4) == '"' and text[match.start() - 1 : match.start()] != "\\"
            )
            begin, end = (match.start(), match.end()) if whole else (match.start(2), match.end(2))
            self._pieces.append(text[start:begin])
            self._slots.append((int(match.group(3)), whole))
            start = end
        self._pieces.append(text[start:])
        if {n for n, _ in self._slots} != set(range(slots)):
            raise ValueError("every varying part must appear in the value as given")

    def fill(self, values: Sequence[Any]) -> str:
        """The JSON text of the value with these varying parts (in the order ``build`` takes them)."""
        pieces = self._pieces
        out = [pieces[0]]
        for k, (n, whole) in enumerate(self._slots):
            value = values[n]
            if whole:
                kind = type(value)
                out.append(
                    _string(value)
                    if kind is str
                    else int.__repr__(value)
                    if kind is int
                    else self._dumps(value)
                )
            elif type(value) is str:
                out.append(_string(value)[1:-1])
            else:
                raise TypeError("a part inside a string must be a string")
            out.append(pieces[k + 1])
        return "".join(out)
