"""Issue 20, the Qt-free half: prior references, class lookup, layer meanings from the registry,
advanced parameters, the first-start choice, stepping in presentation mode and the comparison plan."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core.catalog import CatalogEntry
from explorer.core.errors import ExplorerError, UnknownNameError
from explorer.core.params import Param
from explorer.core.types import MapSpec, MethodResult, Placement
from explorer.methods import METHODS, method_names
from explorer.session import Session, priors, teaching
from explorer.session.classes import find_class
from explorer.session.layer_help import layer_help


def _exp(method="gradcam", layers=("salient", "signed"), value=1.0):
    raw = {n: np.full((8, 8), value + i, np.float32) for i, n in enumerate(layers)}
    return MethodResult(method, raw, {n: n == "signed" for n in layers}, Placement.whole((16, 16), (8, 8)), 3,
                       "cat", {}, 0, "m")


@pytest.fixture
def session():
    s = Session()
    s.set_image(np.zeros((16, 16, 3), np.uint8), "img.png")
    s.set_predictions([(3, "cat", 0.9), (5, "dog", 0.05)])
    return s


def _done(s, method="gradcam", title="Grad-CAM", **kw):
    run = s.new_run(method, {}, title=title)
    s.accept(run.id, run.generation, _exp(method, **kw), done=True)
    return run


# ---------------------------------------------------------------- priors
def test_prior_choices_list_finished_runs_and_layers_then_methods_and_flat(session):
    a = _done(session)
    failed = session.new_run("rise", {}, title="RISE")
    session.fail(failed.id, failed.generation, "boom")
    running = session.new_run("lime", {}, title="LIME")
    c = priors.choices(session, [("rise", "RISE")])
    values = [x.value for x in c]
    assert values[:2] == ["Grad-CAM #1", "Grad-CAM #1 · signed"]
    assert "RISE #2" not in values and "LIME #3" not in values  # failed / unfinished runs are not offered
    assert values[-2:] == ["rise", "flat"] and c[-2].text == "run RISE first"
    assert priors.choices(session, [], exclude=a.id)[0].value == "flat"  # a run never refines itself
    assert running.active


def test_priors_for_resolves_run_references_to_that_very_map(session):
    a = _done(session, value=1.0)
    b = _done(session, value=5.0)  # a newer Grad-CAM: the method name now means this one
    borex = session.new_run("borex", {"prior": "Grad-CAM #1 · signed"})
    maps = priors.priors_for(session, borex)
    assert float(maps["Grad-CAM #1"][0, 0]) == 1.0 and float(maps["Grad-CAM #1 · signed"][0, 0]) == 2.0
    assert float(maps["gradcam"][0, 0]) == 5.0 and float(maps["salient"][0, 0]) == 5.0
    # a reference whose title changed (e.g. typed before the catalog named the run) still finds it by #id
    borex.params["prior"] = "gradcam #2"
    assert float(priors.priors_for(session, borex)["gradcam #2"][0, 0]) == 5.0
    assert a.id != b.id


def test_a_refinement_starts_on_an_existing_map_of_this_photo_model_and_class(session):
    from explorer.session.model_choice import ModelChoice

    methods = ["rise", "gradcam", "integrated_gradients"]
    assert priors.default_prior(session, methods) is None  # nothing yet: the parameter's default, run RISE first
    _done(session, "integrated_gradients", "IG", layers=("signed",))
    assert priors.default_prior(session, methods) is None  # a signed map does not rank evidence
    cam = _done(session)
    assert priors.default_prior(session, methods) == cam.label  # another salient map, when there is no RISE
    rise = _done(session, "rise", "RISE", layers=("salient", "uncertainty"))
    dog = session.new_run("rise", {}, target=5, title="RISE")  # another class's RISE, newer
    session.accept(dog.id, 1, _exp("rise", layers=("salient", "uncertainty"), value=9.0), done=True)
    assert priors.default_prior(session, methods) == rise.label  # RISE of this class first
    c = {x.value: x.text for x in priors.choices(session, [("rise", "RISE")])}
    assert c["rise"] == f"the newest RISE ({rise.label})" and dog.label not in c  # "run RISE first" no more
    borex = session.new_run("borex", {"prior": "rise"})
    assert float(priors.priors_for(session, borex)["rise"][0, 0]) == 1.0  # by name: this class's, not dog's
    session.set_target(5)
    assert priors.default_prior(session, methods) == dog.label
    session.set_model_choice(ModelChoice("resnet18"))  # another model: its maps are not this one's
    assert priors.default_prior(session, methods) is None


def test_check_prior_refuses_removed_failed_unfinished_and_missing_layers(session):
    a = _done(session)
    priors.check_prior(session, "Grad-CAM #1")
    priors.check_prior(session, "rise")  # a method name is the method's business (it runs it first)
    with pytest.raises(priors.PriorError, match="no layer 'refined'"):
        priors.check_prior(session, "Grad-CAM #1 · refined")
    r = session.new_run("rise", {}, title="RISE")
    with pytest.raises(priors.PriorError, match="queued, not finished"):
        priors.check_prior(session, "RISE #2")
    session.fail(r.id, r.generation, "out of memory")
    with pytest.raises(priors.PriorError, match="failed \\(out of memory\\)"):
        priors.check_prior(session, "RISE #2")
    session.remove_run(a)
    with pytest.raises(priors.PriorError, match="removed"):
        priors.check_prior(session, "Grad-CAM #1")
    with pytest.raises(priors.PriorError, match="itself"):
        priors.check_prior(session, "RISE #2", run_id=2)
    assert isinstance(priors.PriorError("x"), ExplorerError)


# ---------------------------------------------------------------- classes
def test_find_class_by_index_list_text_and_name():
    labels = ["tench", "goldfish", "great white shark"]
    assert find_class(labels, "auto") is None and find_class(labels, "") is None
    assert find_class(labels, 2) == 2 and find_class(labels, "1") == 1
    assert find_class(labels, "2: great white shark") == 2 and find_class(labels, "GoldFish") == 1
    with pytest.raises(UnknownNameError, match="unknown class 'shark'.*great white shark"):
        find_class(labels, "shark")
    with pytest.raises(UnknownNameError, match="0..2"):
        find_class(labels, "7")


# ---------------------------------------------------------------- layer meanings
def test_every_layer_of_every_method_says_what_it_means_and_what_0_means():
    for name in method_names():
        d = METHODS.get(name).describe()
        for o in d["outputs"]:
            h = layer_help(METHODS.get(name).catalog_entry(), o["name"], o["signed"])
            assert h.meaning and h.zero, (name, o["name"])
            assert h.summary == d["summary"] and h.paper == d["paper"]
            if o["signed"]:
                assert h.colorbar_note() == h.zero and "0" in h.zero, (name, o)  # the bar says what 0 means
            else:
                assert h.colorbar_note() == ""
    # a method's own text wins over its role's default
    assert "mean score" in layer_help(METHODS.get("rise").catalog_entry(), "salient").zero


def test_layer_help_falls_back_to_the_role_and_escapes_html():
    h = layer_help(None, "target_hindering")
    assert "lowers the target" in h.meaning and h.method == ""
    spec = MapSpec("odd", help="a < b")
    assert spec.meaning == "a < b"  # no role: the formula is the best one-liner there is
    assert "a &lt; b" in layer_help(CatalogEntry("", "T", outputs=(spec,)), "odd").html()


# ---------------------------------------------------------------- advanced parameters
def test_batch_sizes_are_advanced_and_scientific_parameters_are_not():
    for name in method_names():
        for p in METHODS.get(name).params:
            if p.name in ("batch", "batch_size"):
                assert p.advanced, (name, p.name)
            if p.name in ("n", "iterations", "kappa", "layer", "steps", "prior"):
                assert not p.advanced, (name, p.name)
    prior = METHODS.get("borex").params["prior"]
    assert prior.picker == "prior" and prior.describe()["picker"] == "prior"
    with pytest.raises(ValueError, match="unknown picker"):
        Param("x", "str", "", picker="slider")


# ---------------------------------------------------------------- first start, presentation, compare
def test_first_method_default_and_overrides():
    assert teaching.first_method(None, None) == teaching.DEFAULT_METHOD == "gradcam"
    assert teaching.first_method("rise", None) == "rise"
    assert teaching.first_method("none", None) is None
    assert teaching.first_method(None, "saved.json") is None and teaching.first_method("rise", "s.json") is None
    assert teaching.first_method(None, None, remembered=True) is None  # reopening where the user left off
    assert teaching.first_method("rise", None, remembered=True) == "rise"
    assert teaching.DEFAULT_METHOD in METHODS and teaching.FOLLOW_UP in METHODS
    assert set(teaching.COMPARE_METHODS) <= set(method_names())


def test_step_target_and_step_run_wrap(session):
    preds = [(5, "a", 0.5), (7, "b", 0.3), (9, "c", 0.2)]
    assert teaching.step_target(preds, None, +1) == 7  # None = top-1, then the next one
    assert teaching.step_target(preds, 9, +1) == 5 and teaching.step_target(preds, 5, -1) == 9
    assert teaching.step_target([], 3, +1) == 3
    assert teaching.step_run(session, None, +1) is None
    a, b = _done(session), _done(session)
    session.new_run("rise", {})  # no map yet: skipped
    assert teaching.step_run(session, None, +1) == a.id
    assert teaching.step_run(session, a.id, +1) == b.id and teaching.step_run(session, b.id, +1) == a.id


def test_compare_plan_reuses_runs_for_the_same_target(session):
    g = _done(session)
    todo, reuse = teaching.compare_plan(session, {"gradcam", "rise", "lrp"}, ("gradcam", "rise", "lrp", "fido"))
    assert todo == ["rise", "lrp"] and reuse == [g]  # fido: not available on this model
    todo, reuse = teaching.compare_plan(session, {"gradcam"}, ("gradcam",), target=4)
    assert todo == ["gradcam"] and reuse == []  # another class: a new run


# ---------------------------------------------------------------- display defaults per layer kind
def test_display_defaults_floor_baseline_maps_and_fade_unsigned_ones():
    from explorer.session import render
    from explorer.session.display import BASELINE_FLOOR, display_defaults, on_baseline
    from explorer.session.document import DisplayLayer

    rng = np.random.default_rng(0)
    rise_like = (0.6 + 0.05 * rng.random((50, 50))).astype(np.float32)  # chelsea: 0.569..0.656
    cam_like = np.maximum(rng.standard_normal((50, 50)), 0).astype(np.float32)
    assert on_baseline(rise_like) and not on_baseline(cam_like) and not on_baseline(-rise_like)
    assert display_defaults("salient", False, rise_like)["floor"] == BASELINE_FLOOR
    assert display_defaults("salient", False, cam_like)["floor"] == 0.0
    assert "floor" not in display_defaults("signed", True, cam_like - 0.5)
    # the floor: the lower half of a baseline map is fully transparent, the rest fades in with the value
    layer = DisplayLayer(1, 1, "salient", **display_defaults("salient", False, rise_like))
    alpha = render.render_rgba(layer, rise_like)[..., 3]
    below = rise_like < np.percentile(rise_like, 49)
    assert (alpha[below] == 0).all() and alpha[rise_like >= np.percentile(rise_like, 99.5)].min() == 255
    old = DisplayLayer(1, 1, "salient", fade=False)  # the old default: min-max levels, every pixel opaque
    assert (render.render_rgba(old, rise_like)[..., 3] == 255).all()
    lo, hi = render.levels(False, render.stats(rise_like), 99.5, layer.floor)
    assert lo == pytest.approx(np.median(rise_like), abs=1e-3)


def test_new_session_layers_get_the_display_defaults(session):
    run = session.new_run("rise", {})
    exp = _exp("rise", layers=("salient", "uncertainty"), value=0.0)
    exp.raw["salient"] = (0.6 + 0.05 * np.random.default_rng(1).random((8, 8))).astype(np.float32)
    session.accept(run.id, run.generation, exp, done=True)
    sal, unc = session.layers_of(run)
    assert sal.floor == 50.0 and sal.fade and sal.opacity == pytest.approx(0.7)
    assert unc.floor == 0.0  # a constant map is not "on a baseline"


def test_display_defaults_follow_the_streaming_map_until_the_user_changes_them(session):
    run = session.new_run("rise", {})
    early = _exp("rise", layers=("salient",), value=0.0)
    early.raw["salient"] = np.random.default_rng(2).random((8, 8)).astype(np.float32) * 0.01  # near 0 at first
    session.accept(run.id, run.generation, early)
    (sal,) = session.layers_of(run)
    assert sal.floor == 0.0
    final = _exp("rise", layers=("salient",), value=0.0)
    final.raw["salient"] = (0.6 + 0.05 * np.random.default_rng(3).random((8, 8))).astype(np.float32)
    seen = []
    session.layer_changed.connect(lambda l, f: seen.append(f))
    session.accept(run.id, run.generation, final, done=True)
    assert sal.floor == 50.0 and "floor" in seen  # the finished map is on its baseline
    session.set_layer(sal, floor=10.0)  # the user decides ...
    session.requeue(run)
    session.accept(run.id, run.generation, final, done=True)
    assert sal.floor == 10.0  # ... and the defaults no longer move
