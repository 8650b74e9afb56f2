"""A layer's display fields are declared once (session/display_fields.py): the layer's defaults and record,
the document's checks, the canvas's recolouring, the session file's checks and the panel's controls follow."""

from __future__ import annotations

import dataclasses

import pytest

from explorer.io.session_file import _layer
from explorer.session import display_fields
from explorer.session.document import DisplayLayer, Session


def test_the_layer_takes_its_fields_defaults_and_record_order_from_the_table():
    layer = DisplayLayer(1, 2, "salient")
    for f in display_fields.FIELDS:
        assert getattr(layer, f.name) == f.default, f.name
    assert {f.name for f in dataclasses.fields(DisplayLayer)} >= set(display_fields.NAMES)
    # the record's keys (and so a session file's) in the order session files have always had
    assert list(layer.record()) == ["id", "run_id", "name", "signed", "label", "visible", "opacity", "colormap",
                                    "clip", "mode", "topk", "blend", "floor", "fade"]


def test_changes_are_checked_and_clamped_as_declared():
    assert DisplayLayer.checked("opacity", 3.0) == 1.0 and DisplayLayer.checked("floor", -5) == 0.0
    assert DisplayLayer.checked("clip", 99.9) == 99.9
    with pytest.raises(ValueError, match="display mode 'x'; valid: heat, top-k, contour"):
        DisplayLayer.checked("mode", "x")
    with pytest.raises(ValueError, match="blend mode 'x'"):
        DisplayLayer.checked("blend", "x")
    with pytest.raises(ValueError, match="colormap 'nope'"):
        DisplayLayer.checked("colormap", "nope")
    with pytest.raises(KeyError, match="not a display field"):
        DisplayLayer.checked("sharpness", 1)


def test_a_users_change_stops_the_defaults_following_the_map_only_for_the_declared_fields():
    s = Session()
    layer = DisplayLayer(1, 2, "salient")
    s._auto_display.add(layer.id), s._auto_colormap.add(layer.id)
    s.set_layer(layer, clip=99.0, topk=10.0, mode="contour", blend="add", visible=False)
    assert layer.id in s._auto_display and layer.id in s._auto_colormap
    s.set_layer(layer, fade=False)
    assert layer.id not in s._auto_display and layer.id in s._auto_colormap
    s.set_layer(layer, colormap="viridis")
    assert layer.id not in s._auto_colormap


@pytest.mark.parametrize("field", display_fields.NAMES)
def test_a_session_file_with_a_bad_value_of_any_field_is_refused(field):
    good = DisplayLayer(1, 2, "salient").record()
    _layer(good)
    bad = dict(good, **{field: "not this"})
    with pytest.raises((TypeError, ValueError), match=f"layer {field}"):
        _layer(bad)


def test_the_recolouring_fields_are_those_declared():
    assert set(display_fields.RECOLOUR_FIELDS) == {"colormap", "clip", "mode", "topk", "floor", "fade"}
