"""Floating-point tensor data in JSON, counted rather than parsed.

A JSON client's FP32 batch goes upstream as the text it came in (``Tensor.text``), so all the
gateway must know of it is that it is well-formed and holds as many numbers as its shape
says. Parsing it into Python floats to learn that was the costliest step of such a request
(measured for a ``[64, 128]`` FP32 batch: ~0.4 ms of the ~2 ms of CPU failwell spent on it,
more than all of the JSON around it). :func:`number_count` answers from the text with a few
C-speed scans instead; a tier that needs the values parses them then (``Tensor.data``).

It answers only where counting gives exactly what parsing would: a flat array of numbers, none
of which can be out of a float's range. Anything else (strings, literals, nested arrays, long
numbers, three-digit exponents, small texts, where parsing costs little) is left to the parser,
so a request is accepted or refused, and with the same message, whichever way it was checked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Below this many bytes parsing costs a few µs: not worth a second way to the same answer.
COUNT_FROM = 4096
# Not in a JSON array of numbers: strings, objects, true/false/null.
_NOT_NUMBERS = (b'"', b"{", b"t", b"f", b"n")
_COMMA = ord(",")
# Every aligned window of this many bytes must hold a comma: then no element is as long as
# 3 windows (190 bytes), so with an exponent of at most two digits every number is below
# 10**(190 + 99), within an FP64's range.
_WINDOW = 64
_EXPONENTS = 256  # more than this many exponents: parsing costs about as much as looking


def number_count(text: bytes) -> int | None:
    """How many numbers ``text`` holds when it is a flat JSON array of numbers that all fit an
    FP64; None when counting could differ from parsing (the caller parses it then).

    ``text`` must be well-formed JSON (msgspec checked it while skipping over it as ``Raw``):
    then a text without quotes, braces or the letters t, f and n holds only numbers and
    arrays, with one ``[`` it is a flat array, and it holds one number more than commas.
    """
    if len(text) < COUNT_FROM or any(mark in text for mark in _NOT_NUMBERS):
        return None
    start = text.find(b"[")
    if start < 0 or text.find(b"[", start + 1) >= 0:
        return None  # a bare number, or nested arrays
    commas = np.frombuffer(text, np.uint8) == _COMMA
    if not _in_every_window(commas) or not _short_exponents(text):
        return None
    return int(np.count_nonzero(commas)) + 1


def _in_every_window(marks: np.ndarray[Any, Any]) -> bool:
    """Whether every whole aligned window of ``_WINDOW`` bytes holds a mark: the windows as
    rows of eight 8-byte words, OR-ed pairwise (numpy's ``any(axis=1)`` over short rows
    costs three times as much)."""
    whole = len(marks) // _WINDOW * _WINDOW
    words = marks[:whole].view(np.uint64).reshape(-1, _WINDOW // 8)
    while words.shape[1] > 1:
        words = words[:, 0::2] | words[:, 1::2]
    return bool(words.all())


def _short_exponents(text: bytes) -> bool:
    """Whether every exponent has one or two digits (and there are not too many to look at)."""
    seen = 0
    for letter in (b"e", b"E"):
        at = text.find(letter)
        while at >= 0:
            seen += 1
            if seen > _EXPONENTS or text[at + 1 : at + 5].lstrip(b"+-")[:3].isdigit():
                return False
            at = text.find(letter, at + 1)
    return True
