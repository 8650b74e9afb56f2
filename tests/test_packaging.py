"""Packaging and first-run checks that build nothing heavy (the full wheel build + install + offline run is
packaging/check_wheel.sh; the frozen app is packaging/smoke_frozen.sh).

- setup.py's build hook copies resources/ into a wheel's explorer/_resources (run directly, fast) and the
  sdist manifest carries resources/;
- explorer.resources finds the installed copy first, and a broken install (missing folder or file) stops
  the CLI and the GUI start with one line naming the file and exit code 2;
- the desktop entry, AppStream metainfo, icons, PyInstaller spec and CHANGELOG are well-formed and agree
  with each other and with the package version.
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import shutil
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import explorer
from explorer import cli, resources
from explorer.core.errors import ExplorerError

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
LINUX = PACKAGING / "linux"
APP_ID = "io.github.explorer.Explorer"


# --------------------------------------------------------------------------- wheel / sdist configuration
def _setup_module():
    spec = importlib.util.spec_from_file_location("explorer_setup_under_test", ROOT / "setup.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # the guard keeps setup() from running on import
    return mod


def _run_build_py(build_lib: Path, editable: bool = False) -> None:
    from setuptools.dist import Distribution

    mod = _setup_module()
    dist = Distribution({"name": "explorer", "packages": []})
    cmd = mod.build_py_with_resources(dist)
    cmd.initialize_options()
    cmd.build_lib = str(build_lib)
    if editable:
        cmd.editable_mode = True
    cmd.finalize_options()
    cmd.run()


@pytest.fixture(scope="module")
def built_resources(tmp_path_factory) -> Path:
    lib = tmp_path_factory.mktemp("build_lib")
    _run_build_py(lib)
    return lib / "explorer" / "_resources"


def test_build_hook_copies_every_resource_into_the_package(built_resources):
    src = ROOT / "resources"
    want = {p.relative_to(src) for p in src.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and "screenshots" not in p.parts
            and not p.name.startswith(".")}
    got = {p.relative_to(built_resources) for p in built_resources.rglob("*") if p.is_file()}
    assert want == got
    for rel in ("labels/imagenet1k.txt", "samples/chelsea.png", "samples/LICENSE.md", "icons/explorer.svg"):
        assert (built_resources / rel).is_file(), rel
    assert (built_resources / "samples" / "chelsea.png").read_bytes() == (src / "samples" / "chelsea.png").read_bytes()


def test_editable_build_copies_nothing(tmp_path):
    _run_build_py(tmp_path, editable=True)
    assert not (tmp_path / "explorer" / "_resources").exists()


def test_installed_copy_is_found_first(built_resources, monkeypatch):
    monkeypatch.setattr(resources, "_CANDIDATES", (built_resources, ROOT / "resources"))
    assert resources.root() == built_resources
    assert resources.check() == built_resources
    assert resources.sample() == built_resources / "samples" / "chelsea.png"
    assert resources.icon(48) == built_resources / "icons" / "explorer-48.png"


def test_checkout_fallback_and_package_config():
    # in this checkout (editable install) nothing is copied into the package: resources come from the repo
    assert not (ROOT / "explorer" / "_resources").exists()
    assert resources.root() == ROOT / "resources"
    manifest = (ROOT / "MANIFEST.in").read_text().split("\n")
    assert "graft resources" in manifest and "include README.md CHANGELOG.md setup.py" in manifest
    # the frozen build (GBs) lives under packaging/: it must never reach the sdist
    assert "prune packaging/build" in manifest and "prune packaging/dist" in manifest
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'explorer = "explorer.cli:run"' in pyproject
    deps = pyproject.split("dependencies = [", 1)[1].split("]", 1)[0]
    for dev_tool in ("pyinstaller", '"build'):
        assert dev_tool not in deps.lower(), f"{dev_tool} is a dev tool, not a runtime dependency"


# --------------------------------------------------------------------------- broken installs
@pytest.fixture
def no_window(monkeypatch):
    """Stands in for the GUI module: if the resource check ever let a broken install through, the test
    gets exit code 99 instead of a window that blocks."""
    fake = types.ModuleType("explorer.gui.app")
    fake.main = lambda args: 99
    monkeypatch.setitem(sys.modules, "explorer.gui.app", fake)


@pytest.fixture
def broken_copy(tmp_path, monkeypatch):
    """A copy of resources/ installed as the package's _resources; tests delete files from it."""
    copy = tmp_path / "explorer" / "_resources"
    shutil.copytree(ROOT / "resources", copy, ignore=shutil.ignore_patterns("checkpoints", "screenshots"))
    monkeypatch.setattr(resources, "_CANDIDATES", (copy,))
    return copy


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("explorer: error: "), err
    return err


@pytest.mark.parametrize("missing", ["labels/imagenet1k.txt", "samples/chelsea.png", "samples/astronaut.png",
                                     "icons/explorer.svg"])
def test_gui_start_names_a_missing_resource(broken_copy, no_window, missing, capsys):
    (broken_copy / missing).unlink()
    with pytest.raises(ExplorerError, match="missing resource file .*" + Path(missing).name):
        resources.check()
    # the window never opens: the check runs before Qt is touched
    assert cli.main(["--image", str(ROOT / "resources" / "samples" / "coffee.png")]) == 2
    err = _one_line_error(capsys)
    assert str(broken_copy / missing) in err and "reinstall" in err


def test_missing_resources_folder_names_where_it_looked(tmp_path, monkeypatch, no_window, capsys):
    gone = (tmp_path / "explorer" / "_resources", tmp_path / "resources")
    monkeypatch.setattr(resources, "_CANDIDATES", gone)
    assert cli.main([]) == 2
    err = _one_line_error(capsys)
    assert "resources folder is missing" in err and all(str(p) in err for p in gone)


def test_cli_explain_names_missing_labels(broken_copy, tmp_path, capsys):
    (broken_copy / "labels" / "imagenet1k.txt").unlink()
    out = tmp_path / "out"
    rc = cli.main(["explain", str(ROOT / "resources" / "samples" / "chelsea.png"), "--method", "rise",
                   "--param", "n=8", "--offline", "--device", "cpu", "--out", str(out)])
    assert rc == 2
    assert "imagenet1k.txt" in _one_line_error(capsys)
    assert not (out / "manifest.json").exists()


def test_gui_start_passes_the_check_when_complete(no_window, capsys):
    assert cli.main(["--image", str(ROOT / "resources" / "samples" / "coffee.png")]) == 99


def test_icon_rejects_unknown_size():
    with pytest.raises(ValueError, match="sizes"):
        resources.icon(17)


# --------------------------------------------------------------------------- desktop integration
def _desktop_entry() -> configparser.SectionProxy:
    cp = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    cp.optionxform = str  # keys are case-sensitive
    cp.read(LINUX / "explorer.desktop", encoding="utf-8")
    return cp["Desktop Entry"]


def test_desktop_entry_fields():
    e = _desktop_entry()
    assert e["Type"] == "Application" and e["Name"] == "explorer" and e["Icon"] == "explorer"
    assert e["Exec"].split()[0] == "explorer" and e["Terminal"] == "false"
    assert e["Categories"].endswith(";") and "Science" in e["Categories"].split(";")


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed")
def test_desktop_entry_validates():
    r = subprocess.run(["desktop-file-validate", str(LINUX / "explorer.desktop")], capture_output=True, text=True)
    assert r.returncode == 0 and "error" not in r.stdout, r.stdout + r.stderr


def test_metainfo_agrees_with_entry_and_version():
    path = LINUX / f"{APP_ID}.metainfo.xml"
    comp = ET.parse(path).getroot()
    assert comp.tag == "component" and comp.get("type") == "desktop-application"
    assert comp.findtext("id") == APP_ID
    assert comp.find("launchable").text == "explorer.desktop" and (LINUX / "explorer.desktop").is_file()
    assert comp.find("provides/binary").text == "explorer"
    assert comp.findtext("metadata_license") == "CC0-1.0" and comp.findtext("project_license") == "MIT"
    versions = [r.get("version") for r in comp.iter("release")]
    assert versions and versions[0] == explorer.__version__


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="appstream not installed")
def test_metainfo_validates():
    r = subprocess.run(["appstreamcli", "validate", "--no-net", str(LINUX / f"{APP_ID}.metainfo.xml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_icons_svg_and_png_sizes():
    from PIL import Image

    svg = ET.parse(resources.icon()).getroot()
    assert svg.tag.endswith("svg") and svg.get("viewBox") == "0 0 256 256"
    for n in resources.ICON_SIZES:
        with Image.open(resources.icon(n)) as im:
            assert im.size == (n, n) and im.mode == "RGBA", (n, im.size, im.mode)
            alpha = im.getchannel("A")
            assert alpha.getpixel((0, 0)) == 0 and alpha.getpixel((n // 2, n // 2)) == 255  # rounded tile


def test_render_icons_script_reproduces_the_pngs(tmp_path):
    spec = importlib.util.spec_from_file_location("render_icons_under_test", PACKAGING / "render_icons.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import numpy as np
    from PIL import Image, ImageChops

    (out,) = mod.render(out_dir=tmp_path, sizes=(32,))
    with Image.open(out) as a, Image.open(resources.icon(32)) as b:
        # the committed PNGs come from the committed SVG (another Qt version may anti-alias a little differently)
        diff = np.asarray(ImageChops.difference(a.convert("RGBA"), b.convert("RGBA")), dtype=np.float64)
        assert diff.mean() < 1.0 and diff.max() <= 64, (diff.mean(), diff.max())


# --------------------------------------------------------------------------- frozen app and changelog
def test_pyinstaller_spec_is_cpu_only_and_bundles_resources():
    src = (PACKAGING / "explorer.spec").read_text()
    ast.parse(src)
    for needle in ("Analysis(", "COLLECT(", "_resources", "nvidia", "triton", "console=", "pyi_rth_torchvision_cpu.py"):
        assert needle in src, needle
    hook = PACKAGING / "pyi_rth_torchvision_cpu.py"
    ast.parse(hook.read_text())
    assert "_meta_registrations" in hook.read_text()
    smoke = (PACKAGING / "smoke_frozen.sh").read_text()
    assert "--screenshot" in smoke


def test_changelog_has_this_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog")
    assert f"## [{explorer.__version__}]" in text


@pytest.mark.gui
def test_gui_sets_the_application_icon(qapp):
    from explorer.gui.app import _set_icon

    old = qapp.windowIcon()
    try:
        _set_icon(qapp)
        sizes = {(s.width(), s.height()) for s in qapp.windowIcon().availableSizes()}
        assert {(16, 16), (48, 48), (256, 256)} <= sizes
        assert qapp.desktopFileName() == "explorer"
    finally:
        qapp.setWindowIcon(old)


def test_gui_without_a_display_says_so(no_window, monkeypatch, capsys):
    monkeypatch.setattr(sys, "platform", "linux")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    assert cli.main([]) == 2
    err = _one_line_error(capsys)
    assert "no display" in err and "QT_QPA_PLATFORM=offscreen" in err
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert cli.main([]) == 99  # with a platform the window (here: its stand-in) opens


def test_readme_links_and_images_exist():
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert text.startswith("# explorer\n")
    assert "bash packaging/dev.sh          # opens the GUI" in text and "bash packaging/dev.sh test" in text
    targets = re.findall(r"\]\(([^)#\s]+)\)", text)
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert local, "the README should link its screenshots and packaging notes"
    for t in local:
        assert (ROOT / t).exists(), f"README links {t}, which does not exist"


def test_readme_is_a_newcomers_page_and_the_docs_links_hold():
    import re

    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250  # issue 32: read in five minutes
    broken = []
    for page in (ROOT / "docs").glob("*.md"):
        for t in re.findall(r"\]\(([^)#\s]+)\)", page.read_text(encoding="utf-8")):
            if not t.startswith(("http://", "https://")) and not (page.parent / t).exists():
                broken.append(f"{page.name} links {t}")
    assert not broken, broken


def test_the_performance_table_is_rewritten_on_its_docs_page():
    """``bench_cold.py --readme`` rewrites docs/performance.md (the README held the table until issue 32)."""
    spec = importlib.util.spec_from_file_location("bench_cold", ROOT / "benchmarks" / "bench_cold.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.TABLE_DOC == ROOT / "docs" / "performance.md"
    text = bench.TABLE_DOC.read_text(encoding="utf-8")
    assert text.count(bench.MARK_START) == 1 and text.count(bench.MARK_END) == 1
    assert bench.MARK_START not in (ROOT / "README.md").read_text(encoding="utf-8")
