"""Search space: validation errors, encode/decode round trips, Sobol design."""

import math

import pytest

from lightning_ticktock import Choice, Float, Int, SearchSpace, TickTockError
from lightning_ticktock.space import Parameter


def make_space() -> SearchSpace:
    return SearchSpace([
        Float("lr", 1e-4, 1.0, log=True),
        Float("dropout", 0.0, 0.5),
        Int("epochs", 2, 60, log=True),
        Int("layers", 1, 4),
        Choice("optimizer", ["adam", "sgd", "rmsprop"]),
    ])


@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda: Float("x", 1.0, 1.0), r"Float\('x', low=1.0, high=1.0\): low must be < high"),
        (lambda: Float("x", 2.0, 1.0), "low must be < high"),
        (lambda: Int("n", 5, 3), r"Int\('n'.*low must be < high"),
        (lambda: Float("x", 0.0, 1.0, log=True), "log-scale parameter needs low > 0"),
        (lambda: Int("n", -1, 4, log=True), "log-scale parameter needs low > 0"),
        (lambda: Float("x", "a", 1.0), "low='a' must be a real number"),
        (lambda: Float("x", 0.0, None), "high=None must be a real number"),
        (lambda: Float("x", 0.0, math.inf), "must be finite"),
        (lambda: Int("n", 0.5, 3), "low=0.5 must be an integer"),
        (lambda: Float("", 0.0, 1.0), "name must be a non-empty string"),
        (lambda: Choice("c", []), "options must not be empty"),
        (lambda: Choice("c", ["a", "a"]), "duplicate option 'a'"),
        (lambda: Choice("c", "ab"), "must be a list of values"),
        (lambda: SearchSpace([Float("x", 0, 1), Int("x", 0, 3)]), "duplicate parameter name 'x'"),
        (lambda: SearchSpace([]), "at least one parameter"),
        (lambda: SearchSpace(["x"]), "is not a parameter"),
    ],
)
def test_validation_errors_name_the_parameter(factory, match):
    with pytest.raises(TickTockError, match=match):
        factory()


def test_errors_are_value_or_type_errors():
    with pytest.raises(ValueError):
        Float("x", 1.0, 0.0)
    with pytest.raises(TypeError):
        Float("x", "0", 1.0)


def test_encode_decode_round_trip():
    space = make_space()
    for params in space.sobol(32, seed=3):
        x = space.encode(params)
        assert len(x) == space.dim
        for p, v in zip(space.params, x):
            lo, hi = (0.0, len(p.options) - 1) if isinstance(p, Choice) else (0.0, 1.0)
            assert lo <= v <= hi
        assert space.decode(x) == params
        assert space.round_encoded(x) == pytest.approx(x)


def test_decode_rounds_integers_and_categories():
    space = make_space()
    p = space.decode([0.5, 0.2, 0.37, 0.49, 1.4])
    assert isinstance(p["epochs"], int) and isinstance(p["layers"], int)
    assert p["layers"] == 2  # 1 + 0.49 * 3 = 2.47 -> 2
    assert p["optimizer"] == "sgd"  # category index 1
    assert space.decode([0.0, 0.0, 0.0, 0.0, 0.0])["lr"] == pytest.approx(1e-4)
    assert space.decode([1.0, 1.0, 1.0, 1.0, 2.0]) == {
        "lr": 1.0, "dropout": 0.5, "epochs": 60, "layers": 4, "optimizer": "rmsprop"}


def test_log_scale_encoding_is_log_linear():
    p = Float("lr", 1e-4, 1.0, log=True)
    assert p.encode(1e-2) == pytest.approx(0.5)
    assert Int("e", 1, 100, log=True).encode(10) == pytest.approx(0.5)


def test_categories_are_indices_not_ordered_numbers():
    space = SearchSpace([Float("x", 0, 1), Choice("c", ["a", "b", "c"])])
    assert space.cat_dims == [1]
    assert space.bounds == [[0.0, 0.0], [1.0, 2.0]]


@pytest.mark.parametrize(
    "params, match",
    [
        ({"lr": 2.0, "dropout": 0.1, "epochs": 3, "layers": 1, "optimizer": "adam"},
         r"parameter 'lr': value 2.0 is outside \[0.0001, 1.0\]"),
        ({"lr": 0.1, "dropout": 0.1, "epochs": 3.5, "layers": 1, "optimizer": "adam"},
         "'epochs': value 3.5 must be an integer in"),
        ({"lr": 0.1, "dropout": 0.1, "epochs": 3, "layers": 1, "optimizer": "lion"},
         r"'optimizer': value 'lion' is not one of \['adam', 'sgd', 'rmsprop'\]"),
        ({"lr": 0.1, "dropout": 0.1, "epochs": 3, "layers": 1}, r"missing parameter\(s\)"),
        ({"lr": 0.1, "dropout": 0.1, "epochs": 3, "layers": 1, "optimizer": "adam", "z": 1},
         r"unknown parameter\(s\) \['z'\]"),
        ({"lr": "x", "dropout": 0.1, "epochs": 3, "layers": 1, "optimizer": "adam"},
         "must be a number"),
        ({"lr": float("nan"), "dropout": 0.1, "epochs": 3, "layers": 1, "optimizer": "adam"},
         "is outside"),
    ],
)
def test_validate_rejects_bad_configurations(params, match):
    with pytest.raises(TickTockError, match=match):
        make_space().validate(params)


def test_validate_normalizes_types():
    space = make_space()
    p = space.validate({"optimizer": "adam", "lr": 1, "dropout": 0, "epochs": 4.0, "layers": 2})
    assert list(p) == space.names
    assert type(p["epochs"]) is int and type(p["lr"]) is float


def test_sobol_is_seeded_and_covers_the_space():
    space = make_space()
    a, b = space.sobol(16, seed=0), space.sobol(16, seed=0)
    assert a == b
    assert a != space.sobol(16, seed=1)
    assert space.sobol(4, seed=0, skip=4) == a[4:8]
    assert {p["optimizer"] for p in a} == {"adam", "sgd", "rmsprop"}
    assert {p["layers"] for p in a} == {1, 2, 3, 4}


def test_serialization_round_trip_and_diff():
    space = make_space()
    again = SearchSpace.from_dict(space.to_dict())
    assert again == space and not space.diff(again)
    other = SearchSpace([Float("lr", 1e-3, 1.0, log=True), Int("width", 8, 64)])
    diff = space.diff(other)
    assert any("'lr' differs" in d for d in diff)
    assert any("'width' only in the second" in d for d in diff)
    assert isinstance(space.params[0], Parameter)
