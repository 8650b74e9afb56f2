"""The input audit of docs/security.md: every kind of file a user can be handed, made hostile here, refused.

Each hostile file is generated in the test. Pickle payloads call ``os.system("touch MARKER")``; the tests
assert the marker never appears, and one control test shows the same file does create it when trust is
given on purpose (so the payload is real and the refusals are what stops it).
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from explorer.core.errors import ExplorerError, FileError, ImageReadError, ModelLoadError

ROOT = Path(__file__).resolve().parent.parent


class Payload:
    """Unpickling this runs a shell command: the classic malicious pickle."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def evil_torch(path: Path, marker: Path) -> Path:
    import torch

    torch.save({"state_dict": Payload(marker)}, path)  # the zip format torch.save writes
    return path


def evil_raw_pickle(path: Path, marker: Path) -> Path:
    with open(path, "wb") as f:
        pickle.dump(Payload(marker), f)  # the legacy format (a bare pickle), as .bin/.pkl files often are
    return path


def small_session(tmp_path: Path, name: str = "shared_session.json") -> Path:
    from explorer.io.session_file import save_session
    from explorer.session.document import Session

    s = Session()
    s.set_image(np.full((16, 16, 3), 120, np.uint8), "photo.png")
    return save_session(tmp_path / name, s)


def hostile_session(tmp_path: Path, marker: Path) -> tuple[Path, Path]:
    """The issue's shared session: its model entry names a pickle that runs code, and says to trust it."""
    evil = evil_torch(tmp_path / "evil.pt", marker)
    js = small_session(tmp_path)
    doc = json.loads(js.read_text())
    doc["model"] = {"spec": str(evil), "trust_pickle": True}
    js.write_text(json.dumps(doc))
    return js, evil


# --------------------------------------------------------------------------- trust: sessions and model files
def test_control_the_payload_is_real_when_trusted_on_purpose(tmp_path):
    marker = tmp_path / "marker"
    evil = evil_torch(tmp_path / "evil.pt", marker)
    code = ("import torch, sys\n"
            "try:\n    torch.load(sys.argv[1], weights_only=False)\nexcept Exception:\n    pass\n")
    subprocess.run([sys.executable, "-c", code, str(evil)], timeout=120, check=True)
    assert marker.exists()  # so the refusals below are what keeps it from running


@pytest.mark.slow  # a whole GUI process (offscreen): ~25 s on 2 cores
def test_hostile_shared_session_is_refused_without_running_its_payload(tmp_path, samples_dir):
    marker = tmp_path / "marker"
    js, evil = hostile_session(tmp_path, marker)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", EXPLORER_OFFLINE="1", XDG_CONFIG_HOME=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "explorer", "--session", str(js), "--screenshot",
                        str(tmp_path / "s.png")],
                       capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    out = r.stdout + r.stderr
    assert not marker.exists(), out[-3000:]
    assert "evil.pt" in out and "refused" in out and "--trust-pickle" in out, out[-3000:]
    assert "Traceback" not in out


def test_session_trust_flag_is_ignored_and_never_written(tmp_path):
    from explorer.io.session_file import load_session, save_session

    js = small_session(tmp_path)
    doc = json.loads(js.read_text())
    doc["model"] = {"spec": "efficientnet_lite0", "trust_pickle": True}
    js.write_text(json.dumps(doc))
    s = load_session(js)
    assert not hasattr(s.model_choice, "trust_pickle") and s.model_choice.spec == "efficientnet_lite0"
    again = save_session(tmp_path / "again.json", s)
    assert "trust" not in again.read_text()


@pytest.mark.parametrize("maker, name", [(evil_torch, "evil.pt"), (evil_torch, "evil.pth"),
                                         (evil_raw_pickle, "evil.bin"), (evil_raw_pickle, "evil.pkl")])
def test_model_and_weights_pickles_are_refused(tmp_path, maker, name):
    from explorer.models import load_model
    from explorer.models.loader import load_weights_file

    marker = tmp_path / "marker"
    evil = maker(tmp_path / name, marker)
    with pytest.raises(FileError, match="refused.*--trust-pickle"):
        load_weights_file(evil)
    with pytest.raises(ExplorerError, match=name):
        load_model(str(evil))  # TorchScript is tried first: torch.jit.load does not unpickle Python objects
    with pytest.raises(ExplorerError, match=name):
        load_model("torchvision:resnet18", weights=str(evil))
    assert not marker.exists()


def test_inpainter_and_explainer_checkpoint_pickles_are_refused(tmp_path):
    import torch

    from explorer.methods.explainer_net.model import read_checkpoint
    from explorer.perturb.infill import load_inpainter

    marker = tmp_path / "marker"
    for maker in (evil_torch, evil_raw_pickle):
        evil = maker(tmp_path / f"evil_{maker.__name__}.pt", marker)
        with pytest.raises(FileError, match="in-painter"):
            load_inpainter(evil, torch.device("cpu"), (16, 16))
        with pytest.raises(FileError, match="explainer checkpoint"):
            read_checkpoint(evil)
    assert not marker.exists()


def test_safetensors_garbage_and_lying_header_refused(tmp_path):
    from explorer.models.loader import load_weights_file

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 7)
    lying = tmp_path / "lying.safetensors"
    lying.write_bytes((10 ** 12).to_bytes(8, "little") + b"{}")  # a header "a terabyte long"
    for p in (junk, lying):
        with pytest.raises(FileError, match=p.name):
            load_weights_file(p)


def test_onnx_custom_operator_and_escaping_external_data_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from explorer.models import load_model

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    g = helper.make_graph([helper.make_node("Evil", ["x"], ["y"], domain="com.evil")], "g", [x], [y])
    custom = tmp_path / "custom.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.evil", 1)]),
              custom)
    with pytest.raises(FileError, match="custom operator com.evil:Evil"):
        load_model(str(custom))
    (tmp_path / "secret.bin").write_bytes(np.arange(10, dtype=np.float32).tobytes())
    w = numpy_helper.from_array(np.zeros(10, np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../secret.bin"), ("offset", "0"), ("length", "40")):
        e = w.external_data.add()
        e.key, e.value = k, v
    xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])
    g2 = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g2", [xi], [y], initializer=[w])
    (tmp_path / "sub").mkdir()
    ext = tmp_path / "sub" / "ext.onnx"
    ext.write_bytes(helper.make_model(g2, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    with pytest.raises(FileError, match="external data outside"):
        load_model(str(ext))


# --------------------------------------------------------------------------- arrays: NPZ, NPY
def _npy_header(shape, descr="<f4") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def _reseal(js):
    """Record the (tampered) arrays file's SHA-256 in the session JSON, as an attacker writing both would."""
    import hashlib
    import json

    doc = json.loads(js.read_text())
    doc["arrays_sha256"] = hashlib.sha256(js.with_suffix(".npz").read_bytes()).hexdigest()
    js.write_text(json.dumps(doc))


def test_npz_header_claiming_10_gb_is_refused_before_allocating(tmp_path):
    from explorer.io.arrays import read_npz
    from explorer.io.session_file import load_session

    js = small_session(tmp_path)
    npz = js.with_suffix(".npz")
    with zipfile.ZipFile(npz, "a") as z:
        z.writestr("run1_map0.npy", _npy_header((50_000, 50_000)) + b"\x00" * 64)  # claims 10 GB
    _reseal(js)  # the JSON vouches for the hostile arrays: the array reader itself must refuse them
    with pytest.raises(FileError, match="claims.*10.00 GB.*before allocating"):
        read_npz(npz)
    with pytest.raises(FileError, match="before allocating"):
        load_session(js)


def test_npz_object_array_is_refused_without_unpickling(tmp_path):
    from explorer.io.session_file import load_session

    marker = tmp_path / "marker"
    js = small_session(tmp_path)
    buf = tmp_path / "obj.npy"
    np.save(buf, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(js.with_suffix(".npz"), "a") as z:
        z.write(buf, "run1_map0.npy")
    _reseal(js)  # the JSON vouches for the hostile arrays: the array reader itself must refuse them
    with pytest.raises(FileError, match="object.*never pickled"):
        load_session(js)
    assert not marker.exists()


def test_npy_maps_never_unpickle_and_lying_headers_refused(tmp_path):
    from explorer.evaluation.inputs import load_reference
    from explorer.io.arrays import read_npy
    from explorer.methods.prior_maps import read_prior_file

    marker = tmp_path / "marker"
    obj = tmp_path / "photo.npy"
    np.save(obj, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    big = tmp_path / "big.npy"
    big.write_bytes(_npy_header((100_000, 100_000)))  # claims 40 GB, holds nothing
    short = tmp_path / "short.npy"
    short.write_bytes(_npy_header((100, 100)) + b"\x00" * 16)  # truncated
    for p, why in ((obj, "never pickled"), (big, "before allocating"), (short, "truncated")):
        with pytest.raises(FileError, match=why):
            read_npy(p)
        with pytest.raises(FileError, match=why):
            read_prior_file(p)
    with pytest.raises(FileError, match="never pickled"):
        load_reference(str(tmp_path), "photo.jpg")  # the evaluate CLI's --reference folder
    assert not marker.exists()


# --------------------------------------------------------------------------- session JSON
@pytest.mark.parametrize("change, why", [
    (lambda d: d.update(arrays="../elsewhere.npz"), "file name next to the .json"),
    (lambda d: d.update(arrays="/etc/passwd"), "file name next to the .json"),
    (lambda d: d.update(version="1; rm -rf"), "not an integer"),
    (lambda d: d.update(layers="abc"), "damaged"),
    (lambda d: d.update(layers=[{"id": 1, "run_id": 1, "name": "x", "opacity": float("nan")}]), "opacity"),
    (lambda d: d.update(layers=[{"id": 1, "run_id": 1, "name": "x", "colormap": "evil"}]), "colormap"),
    (lambda d: d.update(model={"spec": ["not", "a", "string"]}), "model spec"),
    (lambda d: d.update(runs=[{"id": 1, "method": "rise", "status": "running", "explanation": {
        "placement": {"image_hw": [16, 16], "input_hw": [8, 8], "box": [0, 0, 99, 99]}, "arrays": {}}}]),
     "not inside"),
])
def test_damaged_session_fields_are_refused_by_name(tmp_path, change, why):
    from explorer.io.session_file import load_session

    js = small_session(tmp_path)
    doc = json.loads(js.read_text())
    change(doc)
    js.write_text(json.dumps(doc))
    with pytest.raises(FileError, match=why) as e:
        load_session(js)
    assert js.name in str(e.value)


def test_session_json_deeply_nested_or_huge_is_refused(tmp_path, monkeypatch):
    from explorer.io import session_file

    js = small_session(tmp_path)
    js.write_text('{"format": "explorer-session", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(FileError, match="nested too deeply|not a readable"):
        session_file.load_session(js)
    monkeypatch.setattr(session_file, "MAX_JSON_BYTES", 1000)
    js.write_text(" " * 2000)
    with pytest.raises(FileError, match="too large"):
        session_file.load_session(js)


# --------------------------------------------------------------------------- images
def test_hostile_and_unusual_images(tmp_path):
    from PIL import Image

    from explorer.io.images import read_image

    bomb = tmp_path / "bomb.png"
    Image.new("1", (12_000, 10_000)).save(bomb)  # 120 megapixels in a few kB
    with pytest.raises(ImageReadError, match="decompression-bomb"):
        read_image(bomb)
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((6, 5), 65535, np.uint16)).save(deep)  # 16-bit grey
    assert read_image(deep).rgb.shape == (6, 5, 3) and read_image(deep).rgb.max() == 255
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (7, 4), (0, 255, 255, 0)).save(cmyk)  # print red
    rgb = read_image(cmyk).rgb
    assert rgb.shape == (4, 7, 3) and rgb[..., 0].mean() > 200 and rgb[..., 1].mean() < 60
    anim = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (5, 5), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(anim, save_all=True, append_images=frames[1:])
    assert read_image(anim).rgb[..., 0].mean() > 200  # the first frame
    cut = tmp_path / "cut.png"
    Image.new("RGB", (64, 64), (9, 9, 9)).save(cut)
    cut.write_bytes(cut.read_bytes()[:60])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(cut)


# --------------------------------------------------------------------------- labels
def _script_classifier(path: Path, k: int = 10) -> Path:
    import torch

    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, k)).eval()
    torch.jit.save(torch.jit.script(net), str(path))
    return path


def test_labels_binary_huge_and_wrong_count_refused(tmp_path):
    from explorer.models import load_model
    from explorer.models.labels import MAX_LABELS_BYTES, read_labels

    binary = tmp_path / "labels.txt"
    binary.write_bytes(b"cat\x00\x01\x02dog\n")
    with pytest.raises(FileError, match="binary"):
        read_labels(binary)
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9\n")
    with pytest.raises(FileError, match="not UTF-8"):
        read_labels(latin)
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as f:
        f.truncate(MAX_LABELS_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(FileError, match="too large"):
        read_labels(huge)
    holes = tmp_path / "holes.json"
    holes.write_text('{"0": "cat", "5": "dog"}')
    with pytest.raises(FileError, match="0, 1, ..., K-1"):
        read_labels(holes)
    three = tmp_path / "three.txt"
    three.write_text("a\nb\nc\n")
    with pytest.raises(ModelLoadError, match="10 outputs but its labels file names 3"):
        load_model(str(_script_classifier(tmp_path / "net.pt")), labels=str(three), input_size=16)


# --------------------------------------------------------------------------- output paths
def test_output_folder_that_is_a_file_or_unwritable(tmp_path, monkeypatch):
    from explorer.io import safe_files

    f = tmp_path / "taken"
    f.write_text("mine")
    with pytest.raises(FileError, match="is a file"):
        safe_files.output_dir(f)
    with pytest.raises(FileError, match="part of the path is a file"):
        safe_files.output_dir(f / "below")
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o500)
    else:  # root may write anywhere: emulate a read-only folder at the permission check
        monkeypatch.setattr(safe_files.os, "access", lambda p, m: Path(p) != ro)
    with pytest.raises(FileError, match="not writable"):
        safe_files.output_dir(ro)
    assert f.read_text() == "mine"


def test_full_disk_leaves_no_file_that_looks_complete(tmp_path, monkeypatch):
    from explorer.core.types import MethodResult, Placement
    from explorer.io import export
    from explorer.io.session_file import save_session

    def full_disk_save(f, *a, **k):
        f.write(b"\x93NUMPY half an array")
        raise OSError(errno.ENOSPC, "No space left on device")

    exp = MethodResult(method="gradient", raw={"salient": np.ones((4, 4), np.float32)}, signed={"salient": False},
                      placement=Placement.whole((4, 4), (4, 4)), target=1, target_name="one", params={}, seed=0,
                      model_id="m")
    out = tmp_path / "out"
    monkeypatch.setattr(export.np, "save", full_disk_save)
    with pytest.raises(FileError, match="No space left"):
        export.write_explanation(out, exp, np.zeros((4, 4, 3), np.uint8))
    assert sorted(p.name for p in out.iterdir()) == []  # no salient.npy, no manifest, no .part left behind
    monkeypatch.undo()

    js = small_session(tmp_path)
    before = (js.read_bytes(), js.with_suffix(".npz").read_bytes())
    from explorer.io.session_file import load_session

    s = load_session(js)
    monkeypatch.setattr("explorer.io.session_file.np.savez_compressed", full_disk_save)
    with pytest.raises(FileError, match="No space left"):
        save_session(js, s)
    assert (js.read_bytes(), js.with_suffix(".npz").read_bytes()) == before  # the previous session is intact
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_boxes_file_hostile_values_refused(tmp_path):
    from explorer.evaluation.inputs import load_boxes

    for text, why in (('{"a.png": [0, 0, NaN, 5]}', "finite"), ('{"a.png": [0, 0, -3, 5]}', "height/width"),
                      ("[" * 100_000, "nested too deeply|not a JSON"), ('["a"]', "must be a JSON object")):
        p = tmp_path / "boxes.json"
        p.write_text(text)
        with pytest.raises(FileError, match=why):
            load_boxes(str(p))


# --------------------------------------------------------------------------- fresh desktop: Qt's xcb libraries
def test_xcb_check_names_missing_libraries_and_the_apt_command(tmp_path):
    from explorer.gui import platform_check as pc

    plugin = tmp_path / "libqxcb.so"
    plugin.write_bytes(b"\x7fELF")

    class R:
        returncode = 1
        stdout = ("\tlibQt6XcbQpa.so.6 => /x/libQt6XcbQpa.so.6 (0x1)\n\tlibxcb-cursor.so.0 => not found\n"
                  "\tlibxcb-icccm.so.4 => not found\n\tlibxcb-keysyms.so.1 => not found\n"
                  "\tlibxcb-icccm.so.4 => not found\n\tlibweird.so.9 => not found\n")

    missing = pc.missing_by_ldd(plugin, run=lambda *a, **k: R())
    assert missing == ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libweird.so.9"]
    line = pc.check_xcb({"DISPLAY": ":0"}, "linux", plugin, ldd=lambda p: missing)
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" in line
    assert "libweird.so.9" in line and "\n" not in line
    # no ldd: dlopen attempts on the known list
    line = pc.check_xcb({"DISPLAY": ":0"}, "linux", plugin, ldd=lambda p: None,
                        dlopen=lambda: pc.missing_by_dlopen(load=lambda n: (_ for _ in ()).throw(OSError(n))
                                                            if "keysyms" in n else None))
    assert line.endswith("sudo apt-get install libxcb-keysyms1")
    assert pc.check_xcb({"DISPLAY": ":0"}, "linux", plugin, ldd=lambda p: []) is None
    for env in ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, {"WAYLAND_DISPLAY": "wayland-0"}):
        assert pc.check_xcb(env, "linux", plugin, ldd=lambda p: missing) is None
    assert "DISPLAY" in pc.skip_reason({"WAYLAND_DISPLAY": "w"}, "linux")
    assert pc.check_xcb({"DISPLAY": ":0"}, "darwin", plugin, ldd=lambda p: missing) is None


def test_gui_command_stops_with_one_line_before_qt(monkeypatch, capsys):
    from explorer import cli
    from explorer.gui import platform_check

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(platform_check, "check_xcb", lambda: "Qt cannot open a window: ... sudo apt-get install x")
    assert cli.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sudo apt-get install" in err[0]


def test_version_prints_explorer_torch_and_device(capsys):
    from explorer import __version__
    from explorer.cli import main

    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    import torch

    assert out.startswith(f"explorer {__version__} (torch {torch.__version__}, device ")
    assert ("device cuda" if torch.cuda.is_available() else "device cpu") in out
