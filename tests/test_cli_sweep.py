"""The failure sweep: every option of every subcommand, read from the argparse objects, given bad values.

Nothing here lists the options by hand: the parsers are walked (the top level, which opens the GUI, and
every subparser), so a new option is swept as soon as it exists. Each value-taking option must declare
what it accepts (an ``explorer.core.argtypes`` type, whose ``kind`` chooses the bad values, or
``choices``); one that does not fails ``test_every_option_declares_what_it_accepts``.
Every bad value must end in exit code 2 and one line that names the option and the reason, no traceback.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explorer.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent


def _parsers() -> list[tuple[list[str], argparse.ArgumentParser]]:
    """(argv prefix, parser) for the top level and every subcommand."""
    top = build_parser()
    out = [([], top)]
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            out += [([name], sub) for name, sub in action.choices.items()]
    return out


def _value_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, (argparse._SubParsersAction, argparse._HelpAction))
            and a.nargs != 0 and not (a.option_strings and a.nargs == 0)]


def _label(a: argparse.Action) -> str:
    return a.option_strings[-1] if a.option_strings else (a.metavar or a.dest)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    img = d / "photo.png"
    Image.fromarray(np.full((12, 12, 3), 90, np.uint8)).save(img)
    (d / "folder").mkdir()
    Image.fromarray(np.full((12, 12, 3), 90, np.uint8)).save(d / "folder" / "a.png")
    (d / "afile.txt").write_text("a file, where a folder is wanted")
    return {"dir": d, "image": str(img), "folder": str(d / "folder"), "file": str(d / "afile.txt"),
            "missing": str(d / "missing.png"), "out": str(d / "out")}


def _good(a: argparse.Action, w: dict) -> str:
    """A valid value, for the positionals and required options around the one being swept."""
    kind = getattr(a.type, "kind", None)
    if kind in ("file", "path"):
        return w["image"]
    if kind == "dir":
        return w["folder"]
    if kind == "out_dir":
        return w["out"]
    if kind in ("name", "names"):
        valid = a.type.valid() if getattr(a.type, "valid", None) else ["gradient"]
        return "gradient" if "gradient" in valid else valid[0]
    raise AssertionError(f"no valid filler for {_label(a)} ({kind})")


def _bad(a: argparse.Action, w: dict) -> list[str]:
    t = a.type
    kind = getattr(t, "kind", None)
    under_file = str(Path(w["file"]) / "below")
    if kind is None:
        return ["no_such_name"]  # choices
    bad = {
        "file": [w["missing"], w["folder"], ""],
        "dir": [w["missing"], w["file"], ""],
        "path": [w["missing"], ""],
        "out_dir": [w["file"], under_file, ""],
        "out_file": [w["folder"], under_file + ".png", ""],
        "int": ["abc", "nan", "1.5", ""],
        "float": ["abc", "nan", "inf", "-inf", ""],
        "floats": ["abc", "nan", "0.5,abc", ",", ""],
        "name": ["", "bad name!"],
        "names": ["", ",", "no_such_name"],
        "assign": ["", "novalue", "=3"],
        "target": ["", "-1", "nan"],
        "device": ["", "no_such_device", "cuda:x"],
        "model": ["", "no_such_name", w["missing"][:-4] + ".pt", w["folder"]],
        "shard": ["", "abc", "3/2", "1/0", "-1/2"],
        "substrate": ["", "no_such_name", "blur:nan", "blur:-1", "blur:5:4"],
        "address": ["", "nowhere", "host:0", "host:abc"],
    }[kind]
    if kind == "int":
        if t.low is not None:
            bad.append(str(t.low - 1))
        if t.high is not None:
            bad.append(str(t.high + 1))
    if kind in ("float", "floats"):
        if t.low is not None:
            bad.append(str(t.low if t.low_open else t.low - 1))
        if t.high is not None:
            bad.append(str(t.high if getattr(t, "high_open", False) else t.high + 1))
    if kind == "name" and getattr(t, "valid", None):
        bad.append("no_such_name")
    return bad


def _cases():
    out = []
    for prefix, parser in _parsers():
        for a in _value_actions(parser):
            if getattr(a.type, "kind", None) is None and a.choices is None:
                continue  # reported by test_every_option_declares_what_it_accepts
            out.append(pytest.param(prefix, parser.prog, a.dest, id=f"{' '.join(prefix) or 'gui'}:{_label(a)}"))
    return out


def test_every_option_declares_what_it_accepts():
    undeclared = [f"{parser.prog} {_label(a)}" for _, parser in _parsers() for a in _value_actions(parser)
                  if getattr(a.type, "kind", None) is None and a.choices is None]
    assert not undeclared, f"give these options an explorer.core.argtypes type: {undeclared}"
    assert len(_cases()) > 40  # the walk found the subcommands (explain, evaluate, train-explainer, ...)


@pytest.mark.parametrize("prefix, prog, dest", _cases())
def test_every_bad_value_is_one_line_exit_2(prefix, prog, dest, world, capsys):
    parser = dict((p.prog, p) for _, p in _parsers())[prog]
    actions = _value_actions(parser)
    target = next(a for a in actions if a.dest == dest)
    base = list(prefix)
    for a in actions:  # valid positionals and required options around the swept one
        if a is target:
            continue
        if not a.option_strings:
            base.append(_good(a, world))
        elif a.required:
            base.append(f"{a.option_strings[-1]}={_good(a, world)}")
    tried = 0
    for bad in _bad(target, world):
        if target.option_strings:
            argv = base + [f"{target.option_strings[-1]}={bad}"]
        else:
            pos = [a for a in actions if not a.option_strings]
            argv = list(prefix)
            for a in pos:
                argv.append(bad if a is target else _good(a, world))
            argv += base[len(prefix) + len(pos) - 1:]
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(argv)  # what main() does first; nothing else runs
        err = capsys.readouterr().err
        lines = [l for l in err.splitlines() if l.strip()]
        assert e.value.code == 2, (argv, err)
        assert len(lines) == 1, (argv, err)
        assert _label(target) in lines[0] and "error" in lines[0] and "Traceback" not in err, (argv, err)
        tried += 1
    assert tried >= 1


def test_main_returns_2_for_a_bad_option(world, capsys):
    assert main(["explain", world["image"], "--method", "gradient", "--seed", "-5", "--out", world["out"]]) == 2
    assert "argument --seed: -5 is below the minimum 0" in capsys.readouterr().err


# --------------------------------------------------------------------------- after parsing: the commands' own checks
def test_semantic_errors_are_one_line_exit_2(world, capsys, tmp_path):
    binary = tmp_path / "labels.txt"
    binary.write_bytes(b"\x00\x01\x02")
    boxes = tmp_path / "boxes.json"
    boxes.write_text('{"a.png": [0, 0, NaN, 4]}')
    cases = [
        (["explain", world["image"], "--method", "gradient", "--target", "no_such_class", "--out", world["out"]],
         "unknown class 'no_such_class'"),
        (["explain", world["image"], "--method", "gradient", "--labels", str(binary), "--out", world["out"]],
         "labels.txt: a binary file"),
        (["explain", world["image"], "--method", "gradient", "--model", "torchvision:no_such_net", "--out",
          world["out"]],
         "unknown torchvision model 'no_such_net'"),
        (["evaluate", world["folder"], "--methods", "gradient", "--metric", "pointing", "--boxes", str(boxes),
          "--out", world["out"]], "boxes.json: entry 'a.png'"),
    ]
    for argv, text in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and text in lines[0] and "Traceback" not in err, (argv, err)


def _run(args, tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", EXPLORER_OFFLINE="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "explorer", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)


def test_subprocess_existing_file_as_out_and_version(world, tmp_path):
    r = _run(["explain", world["image"], "--method", "gradient", "--out", world["file"]], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"explorer explain: error: argument --out: {world['file']}: is a file, not an output folder "
        "(see explorer explain --help)"]
    r = _run(["evaluate", world["folder"], "--methods", "gradient", "--topk", "nan", "--out", world["out"]], tmp_path)
    assert r.returncode == 2 and "--topk" in r.stderr and "Traceback" not in r.stderr
    r = _run(["--version"], tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("explorer ") and "torch" in r.stdout and "device" in r.stdout
