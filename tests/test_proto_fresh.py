"""The generated API in shoal/api must match proto/: regenerate and compare."""

import filecmp
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_generated_code_is_fresh(tmp_path: pathlib.Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "genproto.py"), str(tmp_path)], check=True)
    fresh = sorted(p.name for p in (tmp_path / "shoal" / "api").iterdir() if "_pb2" in p.name)
    committed = sorted(p.name for p in (ROOT / "shoal" / "api").iterdir() if "_pb2" in p.name)
    assert fresh == committed, "generated file set differs: run `make proto`"
    stale = [
        n
        for n in fresh
        if not filecmp.cmp(tmp_path / "shoal" / "api" / n, ROOT / "shoal" / "api" / n, shallow=False)
    ]
    assert not stale, f"stale generated code: {stale}; run `make proto`"
