"""DynamoDB typed attribute values: decoding every tag exactly, rejecting what DynamoDB rejects."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receipt_events.attributes import (
    MAX_DEPTH,
    AttributeValueError,
    decode_binary,
    decode_item,
    decode_number,
    decode_value,
    encode_item,
    encode_value,
)


def _error(av: object, path: str = "$") -> AttributeValueError:
    with pytest.raises(AttributeValueError) as caught:
        decode_value(av, path)
    return caught.value


# -- S, BOOL, NULL, B ----------------------------------------------------------------------------


def test_string_decodes_as_is() -> None:
    assert decode_value({"S": "Café #1"}) == "Café #1"
    assert decode_value({"S": ""}) == ""


def test_string_of_wrong_type_is_rejected() -> None:
    error = _error({"S": 5}, "NewImage.name")
    assert error.path == "NewImage.name"
    assert error.problem == "S must be a string, got a number"
    assert str(error) == "NewImage.name: S must be a string, got a number"


@pytest.mark.parametrize("flag", [True, False])
def test_bool_decodes(flag: bool) -> None:
    assert decode_value({"BOOL": flag}) is flag


@pytest.mark.parametrize(
    ("raw", "kind"), [("true", "a string"), (1, "a number"), (None, "null"), ([], "a list")]
)
def test_bool_of_wrong_type_is_rejected(raw: object, kind: str) -> None:
    assert _error({"BOOL": raw}).problem == f"BOOL must be true or false, got {kind}"


def test_null_true_decodes_to_none() -> None:
    assert decode_value({"NULL": True}) is None


@pytest.mark.parametrize(("raw", "shown"), [(False, "False"), ("true", "'true'"), (1, "1")])
def test_null_other_than_true_is_rejected(raw: object, shown: str) -> None:
    assert _error({"NULL": raw}).problem == f"NULL must be true, got {shown}"


def test_binary_decodes_from_base64() -> None:
    payload = bytes(range(256))
    assert decode_value({"B": base64.b64encode(payload).decode()}) == payload
    assert decode_value({"B": ""}) == b""


@pytest.mark.parametrize("text", ["not base64!", "QUJ", "QU=D", "Q===", "QU JD"])
def test_binary_invalid_base64_is_rejected(text: str) -> None:
    assert _error({"B": text}, "NewImage.blob").problem == "B value is not valid base64"


def test_binary_of_wrong_type_is_rejected() -> None:
    with pytest.raises(AttributeValueError, match=r"^p: B must be a base64 string, got a list$"):
        decode_binary([1], "p")


# -- N -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.1", ("0.1", (0, (1,), -1))),
        ("-0", ("-0", (1, (0,), 0))),
        ("1E+2", ("1E+2", (0, (1,), 2))),
        ("1e2", ("1E+2", (0, (1,), 2))),
        ("1.50", ("1.50", (0, (1, 5, 0), -2))),
        ("+7", ("7", (0, (7,), 0))),
        (".5", ("0.5", (0, (5,), -1))),
        ("5.", ("5", (0, (5,), 0))),
        ("-12.345e-3", ("-0.012345", (1, (1, 2, 3, 4, 5), -6))),
    ],
)
def test_number_decodes_exactly_as_decimal(
    text: str, expected: tuple[str, tuple[Any, ...]]
) -> None:
    number = decode_value({"N": text})
    assert type(number) is Decimal
    assert (str(number), tuple(number.as_tuple())) == expected  # type: ignore[union-attr]


def test_number_is_never_read_through_float() -> None:
    number = decode_value({"N": "0.1"})
    assert number == Decimal("0.1")
    assert number != Decimal.from_float(0.1)  # the float 0.1 is 0.1000000000000000055511...


def test_number_with_38_significant_digits_is_exact() -> None:
    text = "1234567890123456789012345678901234567.8"  # 38 digits
    number = decode_number(text, "p")
    assert str(number) == text
    assert len(number.as_tuple().digits) == 38


def test_number_with_39_significant_digits_is_rejected() -> None:
    text = "123456789012345678901234567890123456789"
    with pytest.raises(AttributeValueError) as caught:
        decode_number(text, "NewImage.total")
    assert str(caught.value) == f"NewImage.total: N value {text!r} has more than 38 digits"


def test_leading_and_trailing_zeros_are_not_significant() -> None:
    # DynamoDB trims them: 38 significant digits padded with zeros on both sides still fit.
    digits = "9" * 38
    assert decode_number("000" + digits + "0" * 20, "p") == Decimal(digits + "0" * 20)
    assert decode_number("0.000" + digits, "p") == Decimal("0.000" + digits)


@pytest.mark.parametrize(
    "text", ["1E+125", "9.9999999999999999999999999999999999999E+125", "1E-130"]
)
def test_number_at_the_edges_of_dynamodb_range(text: str) -> None:
    assert decode_number(text, "p") == Decimal(text)


@pytest.mark.parametrize(
    "text",
    ["1E+126", "1E-131", "-1E+126", "1e99999999999999999999999999", "1e-99999999999999999999999"],
)
def test_number_out_of_range_is_rejected(text: str) -> None:
    with pytest.raises(AttributeValueError) as caught:
        decode_number(text, "p")
    assert caught.value.problem == f"N value {text!r} is out of DynamoDB's range"


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "inf",
        " 1",
        "1 ",
        "1_000",
        "",
        "0x10",
        "1e",
        ".",
        "--1",
        "\u0661",
    ],
)
def test_number_text_that_is_not_a_number_is_rejected(text: str) -> None:
    with pytest.raises(AttributeValueError) as caught:
        decode_value({"N": text}, "M.n")
    assert caught.value.path == "M.n"
    assert caught.value.problem == f"N value {text!r} is not a number"


@pytest.mark.parametrize(("raw", "kind"), [(1, "a number"), (1.5, "a number"), (None, "null")])
def test_number_not_given_as_a_string_is_rejected(raw: object, kind: str) -> None:
    assert _error({"N": raw}).problem == f"N must be a string of digits, got {kind}"


def test_long_bad_number_is_clipped_in_the_message() -> None:
    problem = _error({"N": "x" * 500}).problem
    assert problem == f"N value {'x' * 59 + '…'!r} is not a number"


# -- SS, NS, BS ----------------------------------------------------------------------------------


def test_sets_decode_to_frozensets() -> None:
    assert decode_value({"SS": ["b", "a"]}) == frozenset({"a", "b"})
    assert decode_value({"NS": ["1.5", "-2"]}) == frozenset({Decimal("1.5"), Decimal(-2)})
    assert decode_value({"BS": ["AAE=", "Ag=="]}) == frozenset({b"\x00\x01", b"\x02"})
    assert type(decode_value({"SS": ["a"]})) is frozenset


@pytest.mark.parametrize("tag", ["SS", "NS", "BS"])
def test_empty_set_is_rejected(tag: str) -> None:
    error = _error({tag: []}, "NewImage.tags")
    assert str(error) == f"NewImage.tags: {tag} must not be empty (DynamoDB has no empty sets)"


@pytest.mark.parametrize(
    ("tag", "members"), [("SS", ["a", "a"]), ("NS", ["1", "1.0"]), ("BS", ["AA==", "AA=="])]
)
def test_set_with_duplicates_is_rejected(tag: str, members: list[str]) -> None:
    assert _error({tag: members}, "x").problem == f"{tag} holds duplicate members"


@pytest.mark.parametrize("tag", ["SS", "NS", "BS"])
def test_set_that_is_not_a_list_is_rejected(tag: str) -> None:
    assert _error({tag: "a"}).problem == f"{tag} must be a list, got a string"


@pytest.mark.parametrize(
    ("av", "path", "problem"),
    [
        ({"SS": ["a", "b", 3]}, "NewImage.tags[2]", "S must be a string, got a number"),
        ({"NS": ["1", "x"]}, "NewImage.tags[1]", "N value 'x' is not a number"),
        ({"NS": [1]}, "NewImage.tags[0]", "N must be a string of digits, got a number"),
        ({"BS": ["AA==", "AA==", "!"]}, "NewImage.tags[2]", "B value is not valid base64"),
    ],
)
def test_set_member_errors_name_the_index(av: object, path: str, problem: str) -> None:
    error = _error(av, "NewImage.tags")
    assert (error.path, error.problem) == (path, problem)


# -- L and M -------------------------------------------------------------------------------------


def test_list_and_map_decode_recursively() -> None:
    av = {
        "M": {
            "items": {
                "L": [{"M": {"price": {"N": "1.25"}, "name": {"S": "milk"}}}, {"NULL": True}]
            },
            "paid": {"BOOL": True},
        }
    }
    assert decode_value(av) == {
        "items": [{"price": Decimal("1.25"), "name": "milk"}, None],
        "paid": True,
    }


def test_error_deep_inside_an_item_names_the_full_path() -> None:
    image = {
        "items": {
            "L": [
                {"M": {"price": {"N": "1"}}},
                {"M": {"price": {"N": "2"}}},
                {"M": {"price": {"N": "1,5"}}},
            ]
        }
    }
    with pytest.raises(AttributeValueError) as caught:
        decode_item(image, "NewImage")
    assert caught.value.path == "NewImage.items[2].price"
    assert str(caught.value) == "NewImage.items[2].price: N value '1,5' is not a number"


@pytest.mark.parametrize(
    ("av", "problem"),
    [
        ({"L": {"a": 1}}, "L must be a list, got an object"),
        ({"M": []}, "M must be an object, got a list"),
    ],
)
def test_list_and_map_of_wrong_type_are_rejected(av: object, problem: str) -> None:
    assert _error(av).problem == problem


def _nested(levels: int, tag: str) -> dict[str, Any]:
    av: dict[str, Any] = {"S": "leaf"}
    for _ in range(levels):
        av = {"L": [av]} if tag == "L" else {"M": {"k": av}}
    return av


@pytest.mark.parametrize("tag", ["L", "M"])
def test_nesting_up_to_the_depth_limit_decodes(tag: str) -> None:
    value = decode_value(_nested(MAX_DEPTH, tag))
    for _ in range(MAX_DEPTH):
        value = value[0] if tag == "L" else value["k"]  # type: ignore[index,call-overload]
    assert value == "leaf"


@pytest.mark.parametrize(("tag", "step"), [("L", "[0]"), ("M", ".k")])
def test_nesting_past_the_depth_limit_is_rejected(tag: str, step: str) -> None:
    assert MAX_DEPTH == 32
    error = _error(_nested(MAX_DEPTH + 1, tag))
    assert error.path == "$" + step * MAX_DEPTH
    assert error.problem == "nested deeper than 32 levels"


# -- tags and shapes -----------------------------------------------------------------------------


def test_zero_tags_is_rejected() -> None:
    assert _error({}).problem == "expected exactly one type tag, got none"


def test_two_tags_are_rejected_and_named() -> None:
    assert _error({"S": "a", "N": "1"}).problem == "expected exactly one type tag, got N, S"


def test_unknown_tag_is_rejected() -> None:
    assert _error({"X": "a"}, "Keys.PK").problem == "unknown attribute type tag 'X'"
    assert _error({"s": "a"}).problem == "unknown attribute type tag 's'"


@pytest.mark.parametrize(
    ("av", "kind"), [("x", "a string"), (None, "null"), ([{"S": "a"}], "a list"), (3, "a number")]
)
def test_non_object_attribute_value_is_rejected(av: object, kind: str) -> None:
    assert _error(av).problem == f'expected a typed attribute value like {{"S": "..."}}, got {kind}'


@pytest.mark.parametrize(("image", "kind"), [([], "a list"), ("x", "a string"), (None, "null")])
def test_decode_item_on_a_non_object_is_rejected(image: object, kind: str) -> None:
    with pytest.raises(AttributeValueError) as caught:
        decode_item(image, "OldImage")
    assert str(caught.value) == f"OldImage: expected an object of attributes, got {kind}"


def test_decode_item_names_each_attribute() -> None:
    image = {"PK": {"S": "IMAGE#x"}, "n": {"N": "2"}}
    assert decode_item(image, "NewImage") == {"PK": "IMAGE#x", "n": Decimal(2)}
    with pytest.raises(AttributeValueError, match=r"^NewImage\.flag: BOOL must be"):
        decode_item({**image, "flag": {"BOOL": "yes"}}, "NewImage")


# -- encoding ------------------------------------------------------------------------------------


def test_encode_every_type() -> None:
    assert encode_value("a") == {"S": "a"}
    assert encode_value(Decimal("1.50")) == {"N": "1.50"}
    assert encode_value(7) == {"N": "7"}
    assert encode_value(True) == {"BOOL": True}
    assert encode_value(None) == {"NULL": True}
    assert encode_value(b"\x00\xff") == {"B": "AP8="}
    assert encode_value([1, "a"]) == {"L": [{"N": "1"}, {"S": "a"}]}
    assert encode_value({"a": {"b": False}}) == {"M": {"a": {"M": {"b": {"BOOL": False}}}}}


def test_encode_sorts_sets() -> None:
    assert encode_value(frozenset({"b", "c", "a"})) == {"SS": ["a", "b", "c"]}
    assert encode_value({Decimal(10), Decimal("-1.5"), Decimal(2)}) == {"NS": ["-1.5", "2", "10"]}
    assert encode_value(frozenset({b"\x02", b"\x01\xff"})) == {"BS": ["Af8=", "Ag=="]}


def test_encode_sorts_larger_sets_whatever_their_iteration_order() -> None:
    # Twenty members: iterating a set in sorted order by chance is vanishingly unlikely.
    words = [f"w{n:02d}" for n in range(20)]
    numbers = [Decimal(n) / 4 - 2 for n in range(20)]  # -2, -1.75, ..., 2.75
    blobs = [bytes([n, 255 - n]) for n in range(20)]
    assert encode_value(set(words)) == {"SS": words}
    assert encode_value(frozenset(numbers)) == {"NS": [str(n) for n in numbers]}
    assert encode_value(set(blobs)) == {"BS": [base64.b64encode(b).decode() for b in blobs]}


def test_encode_item_encodes_each_attribute() -> None:
    assert encode_item({"PK": "IMAGE#x", "n": Decimal(1)}) == {
        "PK": {"S": "IMAGE#x"},
        "n": {"N": "1"},
    }


def test_encode_errors() -> None:
    with pytest.raises(ValueError, match=r"^DynamoDB has no empty sets$"):
        encode_value(frozenset())
    with pytest.raises(ValueError, match=r"^a DynamoDB set holds members of one type"):
        encode_value(frozenset({"a", Decimal(1)}))
    with pytest.raises(ValueError, match=r"^a DynamoDB set holds members of one type"):
        encode_value(frozenset({True}))
    with pytest.raises(TypeError, match=r"^cannot encode float as a DynamoDB attribute value$"):
        encode_value(0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^cannot encode tuple"):
        encode_value({"a": (1,)})  # type: ignore[dict-item]


# -- properties ----------------------------------------------------------------------------------

# Decimals DynamoDB can hold: up to 38 significant digits, adjusted exponent in [-130, 125].
decimals = st.builds(
    lambda sign, digits, exponent: Decimal((sign, tuple(int(d) for d in digits), exponent)),
    st.integers(0, 1),
    st.text("0123456789", min_size=1, max_size=38).map(lambda d: d.lstrip("0") or "0"),
    st.integers(-130, 88),
).filter(lambda d: not d or -130 <= d.adjusted() <= 125)
scalars = st.one_of(
    st.text(max_size=20),
    decimals,
    st.booleans(),
    st.none(),
    st.binary(max_size=20),
)
sets = st.one_of(
    st.frozensets(st.text(max_size=10), min_size=1, max_size=5),
    st.frozensets(decimals, min_size=1, max_size=5),
    st.frozensets(st.binary(max_size=10), min_size=1, max_size=5),
)
values = st.recursive(
    st.one_of(scalars, sets),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _same(left: object, right: object) -> bool:
    """Equal and of the same types all the way down, Decimals equal digit for digit."""
    if type(left) is not type(right):
        return False
    if isinstance(left, Decimal):
        return left.as_tuple() == right.as_tuple()  # type: ignore[attr-defined]
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_same, left, right))  # type: ignore[arg-type]
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)  # type: ignore[attr-defined,index]
    if isinstance(left, frozenset):
        return {(type(m), str(m)) for m in left} == {(type(m), str(m)) for m in right}  # type: ignore[attr-defined]
    return left == right


@settings(max_examples=150, deadline=None)
@given(values)
def test_decode_inverts_encode(value: Any) -> None:
    assert _same(decode_value(encode_value(value)), value)


@settings(max_examples=150, deadline=None)
@given(values)
def test_decode_inverts_encode_through_json(value: Any) -> None:
    wire = msgspec.json.decode(msgspec.json.encode(encode_value(value)))
    assert _same(decode_value(wire), value)


number_texts = decimals.map(str)
typed_scalars = st.one_of(
    st.builds(lambda s: {"S": s}, st.text(max_size=20)),
    st.builds(lambda n: {"N": n}, number_texts),
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda b: {"B": base64.b64encode(b).decode()}, st.binary(max_size=20)),
    st.builds(
        lambda s: {"SS": sorted(s)}, st.frozensets(st.text(max_size=8), min_size=1, max_size=5)
    ),
    st.builds(
        lambda s: {"NS": [str(n) for n in sorted(s)]},
        st.frozensets(decimals, min_size=1, max_size=5),
    ),
    st.builds(
        lambda s: {"BS": [base64.b64encode(b).decode() for b in sorted(s)]},
        st.frozensets(st.binary(max_size=8), min_size=1, max_size=5),
    ),
)
typed_values = st.recursive(
    typed_scalars,
    lambda children: st.one_of(
        st.builds(lambda items: {"L": items}, st.lists(children, max_size=4)),
        st.builds(
            lambda items: {"M": items}, st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(typed_values)
def test_encode_inverts_decode_of_canonical_typed_values(av: dict[str, Any]) -> None:
    assert encode_value(decode_value(av)) == av
