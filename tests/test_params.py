import pytest

from explorer.core.errors import ParamError
from explorer.core.params import Param, Params, parse_assignments

P = Params(
    Param("n", "int", 100, low=10, high=1000, gpu_default=400),
    Param("p", "float", 0.5, low=0.0, high=1.0),
    Param("mode", "choice", "a", choices=("a", "b")),
    Param("flag", "bool", False),
    Param("layer", "layer", None),
)


def test_defaults_and_gpu_defaults():
    assert P.resolve({})["n"] == 100
    assert P.resolve({}, device="cuda:0")["n"] == 400


def test_coercion_from_strings():
    r = P.resolve(parse_assignments(["n=20", "p=0.25", "mode=b", "flag=yes", "layer=auto"]))
    assert r == {"n": 20, "p": 0.25, "mode": "b", "flag": True, "layer": None}


@pytest.mark.parametrize("values, text", [
    ({"n": 5}, "between 10 and 1000"),
    ({"n": "2.5"}, "not a valid int"),
    ({"p": "nan"}, "not a valid float"),
    ({"mode": "c"}, "one of a, b"),
    ({"bogus": 1}, "unknown parameter"),
    ({"flag": "maybe"}, "not a valid bool"),
])
def test_refusals_name_the_bounds(values, text):
    with pytest.raises(ParamError, match=text):
        P.resolve(values)


def test_bad_assignment():
    with pytest.raises(ParamError):
        parse_assignments(["novalue"])
