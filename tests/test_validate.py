"""Tests for kbench._validate: each check accepts what it should and quotes what it refuses."""

import math

import numpy as np
import pytest

from kbench import _validate


class OwnError(ValueError):
    pass


@pytest.mark.parametrize("value", [1, 7, np.int64(3)])
def test_positive_ints_pass_and_come_back_as_int(value):
    assert _validate.check_positive_int("n", value) == int(value)
    assert type(_validate.check_positive_int("n", value)) is int


@pytest.mark.parametrize("value", [0, -3, True, 1.0, "2", None, np.bool_(True)])
def test_non_positive_ints_are_refused_with_the_value_quoted(value):
    with pytest.raises(OwnError, match=r"^where: n must be a positive int, got ") as info:
        _validate.check_positive_int("n", value, error=OwnError, where="where")
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("minimum, maximum, text", [(0, None, "a non-negative int"),
                                                    (2, None, "an int >= 2"),
                                                    (None, 5, "an int <= 5"),
                                                    (1, 3, "an int from 1 to 3")])
def test_int_bounds_are_said_in_words(minimum, maximum, text):
    with pytest.raises(ValueError, match=f"must be {text}, got 99|must be {text}, got -9"):
        _validate.check_int("x", 99 if maximum is not None else -9, minimum=minimum,
                            maximum=maximum)


@pytest.mark.parametrize("kwargs, good, bad", [
    ({"low": 0, "low_open": True}, 1e-9, 0.0),
    ({"low": 1}, 1.0, 0.999),
    ({"high": 1, "high_open": True}, 0.5, 1.0),
    ({"low": 0, "high": 100}, 100, 100.5),
])
def test_number_bounds_open_and_closed(kwargs, good, bad):
    assert _validate.check_number("x", good, **kwargs) == good
    with pytest.raises(ValueError, match=repr(bad)):
        _validate.check_number("x", bad, **kwargs)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "1", None])
def test_numbers_must_be_finite_and_not_bools(value):
    with pytest.raises(ValueError, match="must be a finite number"):
        _validate.check_number("x", value)


def test_fraction_is_strictly_inside_the_unit_interval():
    assert _validate.check_fraction("alpha", 0.01) == 0.01
    for bad in (0, 1, 1.5):
        with pytest.raises(ValueError, match=f"alpha must be a number strictly between 0 and 1, "
                                             f"got {bad!r}"):
            _validate.check_fraction("alpha", bad)


def test_a_custom_description_replaces_the_generated_one():
    with pytest.raises(ValueError, match="share must be a fraction of throughput, got 2"):
        _validate.check_fraction("share", 2, what="a fraction of throughput")


def test_bool_choice_and_str():
    assert _validate.check_bool("flag", np.bool_(False)) is False
    with pytest.raises(ValueError, match="flag must be a bool, got 1"):
        _validate.check_bool("flag", 1)
    assert _validate.check_choice("loop", "fit", ("fit", "custom")) == "fit"
    with pytest.raises(ValueError, match=r"loop must be one of \('fit', 'custom'\), got 'fitt'"):
        _validate.check_choice("loop", "fitt", ("fit", "custom"))
    with pytest.raises(ValueError, match="name must be a non-empty str, got ''"):
        _validate.check_str("name", "")


def test_is_int_and_is_number_exclude_bools():
    assert _validate.is_int(np.int32(1)) and not _validate.is_int(True) \
        and not _validate.is_int(1.0)
    assert _validate.is_number(1.5) and _validate.is_number(np.float32(1)) \
        and not _validate.is_number(False)


def test_a_schema_version_is_an_int_this_kbench_reads():
    assert _validate.check_version("schema", 2, (1, 2)) == 2
    for bad in (True, 3, "1", 1.0):
        with pytest.raises(ValueError, match=r"schema must be one of \(1, 2\), got "):
            _validate.check_version("schema", bad, (1, 2))
