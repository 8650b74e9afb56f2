"""The command line end to end (in-process for speed, one real subprocess for the entry point)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from explorer.cli import main


def test_explain_rise_writes_maps_overlay_manifest(tmp_path, samples_dir, capsys):
    out = tmp_path / "out"
    rc = main(["explain", str(samples_dir / "chelsea.png"), "--method", "rise", "--param", "n=64", "--out", str(out)])
    assert rc == 0
    sal = np.load(out / "salient.npy")
    assert sal.shape == (300, 451) and sal.dtype == np.float32
    assert (out / "uncertainty.npy").exists() and (out / "overlay.png").exists()
    man = json.loads((out / "manifest.json").read_text())
    assert man["method"] == "rise" and man["params"]["n"] == 64 and man["seed"] == 0
    assert man["target_name"] in ("Egyptian cat", "tabby", "tiger cat")
    assert len(man["top5"]) == 5 and "torch" in man["versions"] and man["timings"]["seconds"] > 0


def test_explain_with_named_target(tmp_path, samples_dir):
    out = tmp_path / "g"
    assert main(["explain", str(samples_dir / "coffee.png"), "--method", "gradient", "--target", "cup", "--out",
                 str(out)]) == 0
    assert json.loads((out / "manifest.json").read_text())["target"] == 968


@pytest.mark.parametrize("argv, text", [
    (["explain", "IMG", "--method", "nope", "--out", "O"], "unknown method 'nope'; valid:"),
    (["explain", "IMG", "--method", "rise", "--param", "n=3", "--out", "O"], "between 10 and"),
    (["explain", "IMG", "--method", "rise", "--param", "bogus=3", "--out", "O"], "unknown parameter"),
    (["explain", "IMG", "--method", "rise", "--model", "nomodel", "--out", "O"], "unknown model"),
    (["explain", "MISSING", "--method", "rise", "--out", "O"], "no such file"),
])
def test_bad_input_exit_code_2_no_traceback(tmp_path, samples_dir, capsys, argv, text):
    argv = [a.replace("IMG", str(samples_dir / "chelsea.png")).replace("MISSING", str(tmp_path / "x.png"))
            .replace("O", str(tmp_path / "o")) if a in ("IMG", "MISSING", "O") else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err


def test_methods_listing(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "rise" in out and "--param n=1000" in out
    assert main(["methods", "--json"]) == 0
    names = [d["name"] for d in json.loads(capsys.readouterr().out)]
    assert "gradient" in names


def test_entry_point_subprocess(tmp_path):
    r = subprocess.run([sys.executable, "-m", "explorer", "explain", str(tmp_path / "none.png"),
                        "--method", "gradient", "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "none.png: no such file" in r.stderr and "Traceback" not in r.stderr


def test_entry_point_fast_exit_keeps_output_and_files(tmp_path, samples_dir):
    """The console script leaves without the interpreter's teardown after a headless command: what it printed
    into a pipe and every file it wrote must still be complete; a failing command keeps its exit code."""
    out = tmp_path / "o"
    r = subprocess.run([sys.executable, "-m", "explorer", "explain", str(samples_dir / "coffee.png"),
                        "--method", "gradient", "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("gradient: target") and r.stdout.endswith(f"manifest.json to {out}\n")
    man = json.loads((out / "manifest.json").read_text())
    assert man["complete"] is True and np.load(out / "salient.npy").shape == (400, 600)
    r = subprocess.run([sys.executable, "-m", "explorer", "methods"], capture_output=True, text=True)
    assert r.returncode == 0 and "rise" in r.stdout and r.stdout.endswith("\n")


def test_parser_and_gui_entry_do_not_import_torch():
    """The GUI must open before torch loads: building the parser (every subcommand's) imports no heavy module."""
    code = ("import sys\nfrom explorer.cli import build_parser\n"
            "p = build_parser(); p.parse_args([]); p.parse_args(['methods']); p.format_help()\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr
