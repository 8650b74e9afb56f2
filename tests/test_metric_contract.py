"""Contract over the metric registry (issue 32), as tests/test_contract.py is over the methods: every registered
metric declares itself completely, each of its settings is a flag of ``explorer evaluate``, a keyword of
``explorer.evaluate`` and an attribute of ``Options``; and adding a metric is one module: a toy metric
registered here, and nowhere else, appears in the command's help, the Python API, the per-image CSVs and the
GUI's evaluation settings."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

import explorer
from explorer.cli import build_parser, main
from explorer.cli.evaluate import config_from_args, param_argtype
from explorer.core.errors import ParamError
from explorer.core.params import Param, Params
from explorer.evaluation import registry
from explorer.evaluation.metric_spec import NEEDS, MetricSpec

NAMES = registry.metric_names()


def _evaluate_parser():
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices["evaluate"]


@pytest.mark.parametrize("name", NAMES)
def test_declaration(name):
    s = registry.spec(name)
    assert s.name == name and s.summary and s.better
    assert isinstance(s.params, Params) and set(s.needs) <= set(NEEDS)
    assert not (s.score_only and s.reruns_method)
    for p in s.params:
        assert p.help, f"{name}.{p.name} has no help (it is the flag's help and the GUI's tip)"
        param_argtype(p)  # every setting has a command-line type
        assert p.coerce(p.default) == p.default or p.default is None


def test_every_setting_is_a_flag_and_reaches_the_options(samples_dir, tmp_path):
    flags = {o for a in _evaluate_parser()._actions for o in a.option_strings}
    for p in registry.option_params():
        assert "--" + p.name.replace("_", "-") in flags, p.name
    args = build_parser().parse_args(["evaluate", str(samples_dir / "chelsea.png"), "--methods", "random",
                                      "--emprt-bins", "7", "--road-fractions", "0.25,0.5", "--out",
                                      str(tmp_path / "o")])
    opts = config_from_args(args).options
    assert opts.emprt_bins == 7 and opts.road_fractions == (0.25, 0.5)
    assert opts.tolerance == 15 and opts.deletion_substrate == "zero"  # untouched settings keep their defaults
    assert registry.Options() == registry.Options().validate()
    import inspect

    keywords = inspect.signature(explorer.evaluate).parameters  # the API's keywords, from the same declarations
    assert all(keywords[p.name].default == p.default for p in registry.option_params())


def test_options_refuse_out_of_range_and_unknown_settings():
    with pytest.raises(ParamError, match="--emprt-bins"):
        registry.Options(emprt_bins=1).validate()
    with pytest.raises(ParamError, match=r"--topk = 0\.0 must be in \(0, 1\]"):
        registry.Options(topk=0.0).validate()
    with pytest.raises(ParamError, match="--road-fractions"):
        registry.Options(road_fractions=(0.5, 1.0)).validate()
    with pytest.raises(ParamError, match="unknown metric setting.*'no_such'"):
        registry.Options(no_such=1)


def test_a_second_registration_of_a_name_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(MetricSpec("deletion", "again", "-", lambda call: {}))
    with pytest.raises(ValueError, match="unlike metric"):  # a shared flag must mean one thing
        registry.register(MetricSpec("toy_step", "x", "-", lambda call: {},
                                     Params(Param("step", "int", 3, "another step", low=1))))
    assert "toy_step" not in registry.METRICS


def _toy(call) -> dict:
    from explorer.evaluation.base import input_space

    m = input_space(call.saliency, call.context.placement)
    return {"mass": float(np.mean(m)) * call.options.toy_gain, "target": int(call.context.target)}


@pytest.fixture()
def toy():
    spec = registry.register(MetricSpec("toy_mass", "the map's mean times a gain (a test's metric)", "-", _toy,
                                        Params(Param("toy_gain", "float", 1.0, "toy_mass: the gain", low=0.0))))
    yield spec
    registry.unregister("toy_mass")
    assert "toy_mass" not in registry.METRICS


def test_a_metric_registered_alone_reaches_cli_api_csv_and_gui(toy, tiny_model, samples_dir, tmp_path, capsys,
                                                               qtbot):
    # the command's help: the metric and its setting's flag
    assert main(["evaluate", "--help"]) == 0
    helptext = capsys.readouterr().out
    assert "toy_mass" in helptext and "--toy-gain" in helptext and "toy_mass: the gain" in helptext

    # the Python API: a metric name and a keyword, checked like the others
    rgb = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)
    sal = np.random.default_rng(1).random((40, 48)).astype(np.float32)
    one = explorer.evaluate(tiny_model, rgb, sal, metrics=["toy_mass"])["toy_mass"]["mass"]
    two = explorer.evaluate(tiny_model, rgb, sal, metrics=["toy_mass"], toy_gain=2.0)["toy_mass"]["mass"]
    assert two == pytest.approx(2 * one) and one > 0
    with pytest.raises(ParamError, match="toy_gain"):
        explorer.evaluate(tiny_model, rgb, sal, metrics=["toy_mass"], toy_gain=-1.0)
    with pytest.raises(ParamError, match="valid: .*toy_gain"):
        explorer.evaluate(tiny_model, rgb, sal, metrics=["toy_mass"], toy_gian=2.0)
    from explorer.api import run

    assert "toy_mass" in run.EVALUATE_METRICS

    # the evaluation output: its rows in the per-image CSV, its flag applied (the target is every row's column)
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(samples_dir / "chelsea.png", folder / "chelsea.png")
    out = tmp_path / "out"
    assert main(["evaluate", str(folder), "--methods", "random", "--metric", "deletion,toy_mass", "--step", "12544",
                 "--toy-gain", "3", "--out", str(out)]) == 0
    with open(out / "per_image" / "chelsea.png__random.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    toy_rows = [(r["quantity"], float(r["value"])) for r in rows if r["metric"] == "toy_mass"]
    assert [q for q, _ in toy_rows] == ["mass"] and toy_rows[0][1] > 0
    assert [r["metric"] for r in rows].index("toy_mass") > [r["metric"] for r in rows].index("deletion")
    assert "toy_mass" in (out / "summary.md").read_text()

    # the GUI's evaluation settings: a control generated from the declaration
    from explorer.gui.evaluation_settings import EvaluationSettings

    w = EvaluationSettings(["deletion", "toy_mass"])
    qtbot.addWidget(w)
    assert list(w.controls) == ["step", "deletion_substrate", "toy_gain"]
    w.controls["toy_gain"].setValue(2.5)
    assert w.resolved()["toy_gain"] == 2.5 and w.resolved()["step"] is None


def test_registry_and_gui_settings_import_no_torch():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "import explorer.evaluation.registry as r\nprint(len(r.option_params()))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and int(res.stdout) > 10, res.stderr


def test_the_evaluation_tabs_settings_reach_the_workers_curves(tiny_model, qtbot):
    """The Evaluation tab's settings (generated from the drawn metrics' Params) go to the worker's job, which
    computes each curve through the registry; a value out of range is refused before anything is queued."""
    from explorer.gui.evaluation_settings import EvaluationSettings
    from explorer.workers.jobs import CURVE_METRICS, causal_curves

    w = EvaluationSettings(CURVE_METRICS)
    qtbot.addWidget(w)
    assert {"step", "deletion_substrate", "flip_substrate", "road_noise", "road_fractions"} <= set(w.controls)
    w.set_values({"deletion_substrate": "black", "road_fractions": (0.25, 0.5), "road_noise": 0.0})
    options = w.resolved()
    assert options["road_fractions"] == (0.25, 0.5) and options["deletion_substrate"] == "black"
    rng = np.random.default_rng(0)
    rgb = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
    sal = rng.random((32, 32)).astype(np.float32)
    result = causal_curves(sal, 3, step=64, options=options)(tiny_model, rgb)
    assert set(result) == {"deletion", "insertion", "pixel_flipping", "road_morf", "road_lerf"}
    assert result["deletion"][0]["substrate"] == "black" and result["deletion"][0]["step"] == 64
    assert result["insertion"][0]["substrate"].startswith("blur")  # untouched: the default
    morf, frames = result["road_morf"]
    assert len(morf["fractions"]) == len(frames) == 3 and "noise 0" in morf["substrate"]
    w.controls["road_fractions"].setValue("0.5,2")
    with pytest.raises(ParamError, match="road_fractions"):
        w.resolved()
