"""DynamoDB typed attribute values (``{"S": "x"}``, ``{"N": "1.50"}``, ...) to Python and back.

Numbers decode to :class:`decimal.Decimal` from their exact text, never through ``float``, so
no digit is lost; binary (``B``/``BS``) decodes from base64. Anything that is not a valid
DynamoDB attribute value raises :class:`AttributeValueError` naming the attribute's path, so
the record can be parked with a reason instead of being misread.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias

Value: TypeAlias = (
    str
    | Decimal
    | bool
    | bytes
    | frozenset[str]
    | frozenset[Decimal]
    | frozenset[bytes]
    | list["Value"]
    | dict[str, "Value"]
    | None
)
Item: TypeAlias = dict[str, Value]

MAX_DEPTH = 32  # DynamoDB's own nesting limit for lists and maps
MAX_NUMBER_DIGITS = 38
_NUMBER_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")


class AttributeValueError(ValueError):
    """A value that is not a DynamoDB typed attribute value; ``path`` names where it sits."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def decode_number(text: object, path: str) -> Decimal:
    """Decode DynamoDB number text exactly, enforcing DynamoDB's precision and range."""
    if not isinstance(text, str):
        raise AttributeValueError(path, f"N must be a string of digits, got {_kind(text)}")
    if not _NUMBER_TEXT.match(text):
        raise AttributeValueError(path, f"N value {_clip(text)!r} is not a number")
    try:
        number = Decimal(text)
    except InvalidOperation:  # well-formed, but an exponent beyond what Decimal can hold
        raise AttributeValueError(
            path, f"N value {_clip(text)!r} is out of DynamoDB's range"
        ) from None
    if number:
        # Significant digits: DynamoDB trims leading and trailing zeros. Not normalize(), which
        # rounds to the context's 28 digits and so would let 39 digits through.
        digits = "".join(map(str, number.as_tuple().digits)).strip("0")
        if len(digits) > MAX_NUMBER_DIGITS:
            raise AttributeValueError(
                path, f"N value {_clip(text)!r} has more than {MAX_NUMBER_DIGITS} digits"
            )
        if not -130 <= number.adjusted() <= 125:
            raise AttributeValueError(path, f"N value {_clip(text)!r} is out of DynamoDB's range")
    return number


def decode_binary(text: object, path: str) -> bytes:
    if isinstance(text, bytes):
        return text  # boto3's Scan hands binary values over already decoded
    if not isinstance(text, str):
        raise AttributeValueError(path, f"B must be a base64 string, got {_kind(text)}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise AttributeValueError(path, "B value is not valid base64") from None


def _decode_string(raw: object, path: str) -> str:
    if not isinstance(raw, str):
        raise AttributeValueError(path, f"S must be a string, got {_kind(raw)}")
    return raw


def _decode_bool(raw: object, path: str) -> bool:
    if not isinstance(raw, bool):
        raise AttributeValueError(path, f"BOOL must be true or false, got {_kind(raw)}")
    return raw


def _check_null(raw: object, path: str) -> None:
    if raw is not True:
        raise AttributeValueError(path, f"NULL must be true, got {_clip(repr(raw))}")


def _decode_set(raw: object, path: str, tag: str) -> frozenset[Any]:
    if not isinstance(raw, list):
        raise AttributeValueError(path, f"{tag} must be a list, got {_kind(raw)}")
    if not raw:
        raise AttributeValueError(path, f"{tag} must not be empty (DynamoDB has no empty sets)")
    if tag == "SS":
        members: list[Any] = [_decode_string(m, f"{path}[{i}]") for i, m in enumerate(raw)]
    elif tag == "NS":
        members = [decode_number(m, f"{path}[{i}]") for i, m in enumerate(raw)]
    else:
        members = [decode_binary(m, f"{path}[{i}]") for i, m in enumerate(raw)]
    result = frozenset(members)
    if len(result) != len(members):
        raise AttributeValueError(path, f"{tag} holds duplicate members")
    return result


class _NotPlain(Exception):
    """Something the fast path does not handle; the careful path decodes it (or says why not)."""


def _fast(av: object, depth: int) -> Value:
    """Decode a well-formed value without building error paths (most values, most of the time)."""
    if type(av) is not dict or len(av) != 1:
        raise _NotPlain
    ((tag, raw),) = av.items()
    kind = type(raw)
    if tag == "S" and kind is str:
        return raw  # type: ignore[no-any-return]
    if tag == "N" and kind is str:
        try:
            return decode_number(raw, "")
        except AttributeValueError:
            raise _NotPlain from None
    if tag == "NULL" and raw is True:
        return None
    if tag == "BOOL" and kind is bool:
        return raw  # type: ignore[no-any-return]
    if tag == "M" and kind is dict and depth < MAX_DEPTH:
        return {key: _fast(value, depth + 1) for key, value in raw.items()}
    if tag == "L" and kind is list and depth < MAX_DEPTH:
        return [_fast(value, depth + 1) for value in raw]
    raise _NotPlain


def _fast_item(image: dict[str, Any]) -> Item:
    """:func:`_fast` over an image's attributes, strings (most of them) without a call each."""
    item: Item = {}
    for name, av in image.items():
        text = av.get("S") if type(av) is dict and len(av) == 1 else None
        item[name] = text if type(text) is str else _fast(av, 0)
    return item


def decode_value(av: object, path: str = "$", depth: int = 0) -> Value:
    """Decode one typed attribute value such as ``{"N": "1.5"}``."""
    try:
        return _fast(av, depth)
    except _NotPlain:
        return _decode_carefully(av, path, depth)


def _decode_carefully(av: object, path: str, depth: int) -> Value:
    """Decode any value, naming the exact path of what is wrong."""
    if not isinstance(av, Mapping) or len(av) != 1:
        if isinstance(av, Mapping):
            tags = ", ".join(sorted(map(str, av))) or "none"
            raise AttributeValueError(path, f"expected exactly one type tag, got {tags}")
        raise AttributeValueError(
            path, f'expected a typed attribute value like {{"S": "..."}}, got {_kind(av)}'
        )
    ((tag, raw),) = av.items()
    if tag == "S":
        return _decode_string(raw, path)
    if tag == "N":
        return decode_number(raw, path)
    if tag == "BOOL":
        return _decode_bool(raw, path)
    if tag == "NULL":
        _check_null(raw, path)
        return None
    if tag in ("SS", "NS", "BS"):
        return _decode_set(raw, path, tag)
    if tag == "B":
        return decode_binary(raw, path)
    if tag in ("L", "M"):
        if depth >= MAX_DEPTH:
            raise AttributeValueError(path, f"nested deeper than {MAX_DEPTH} levels")
        if tag == "L":
            if not isinstance(raw, list):
                raise AttributeValueError(path, f"L must be a list, got {_kind(raw)}")
            return [_decode_carefully(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(raw)]
        if not isinstance(raw, Mapping):
            raise AttributeValueError(path, f"M must be an object, got {_kind(raw)}")
        return {str(k): _decode_carefully(v, f"{path}.{k}", depth + 1) for k, v in raw.items()}
    raise AttributeValueError(path, f"unknown attribute type tag {_clip(str(tag))!r}")


def decode_item(image: object, path: str) -> Item:
    """Decode a whole image (``NewImage``, ``OldImage`` or ``Keys``): name → typed value."""
    if type(image) is dict:
        try:
            return _fast_item(image)
        except _NotPlain:
            pass
    if not isinstance(image, Mapping):
        raise AttributeValueError(path, f"expected an object of attributes, got {_kind(image)}")
    return {str(name): _decode_carefully(av, f"{path}.{name}", 0) for name, av in image.items()}


def encode_value(value: Value) -> dict[str, Any]:
    """Encode a Python value as a typed attribute value (sets in sorted order, for determinism)."""
    if isinstance(value, bool):  # before numbers: bool is not a number here
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, Decimal | int):
        return {"N": str(value)}
    if isinstance(value, bytes):
        return {"B": base64.b64encode(value).decode("ascii")}
    if isinstance(value, frozenset | set):
        return _encode_set(value)
    if isinstance(value, list):
        return {"L": [encode_value(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {k: encode_value(v) for k, v in value.items()}}
    raise TypeError(f"cannot encode {type(value).__name__} as a DynamoDB attribute value")


def _encode_set(members: frozenset[Any] | set[Any]) -> dict[str, Any]:
    if not members:
        raise ValueError("DynamoDB has no empty sets")
    if all(isinstance(m, str) for m in members):
        return {"SS": sorted(members)}
    if all(isinstance(m, bytes) for m in members):
        return {"BS": [base64.b64encode(m).decode("ascii") for m in sorted(members)]}
    if all(isinstance(m, Decimal | int) and not isinstance(m, bool) for m in members):
        return {"NS": [str(m) for m in sorted(members)]}
    raise ValueError("a DynamoDB set holds members of one type: strings, numbers or bytes")


def encode_item(item: Mapping[str, Value]) -> dict[str, dict[str, Any]]:
    return {name: encode_value(value) for name, value in item.items()}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
