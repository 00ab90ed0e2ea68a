"""Every case of the README's Reliability table (benchmarks/bad_inputs.py): exit code 2, one
stderr line naming the file or flag, no traceback, nothing written outside the case."""

from __future__ import annotations

import sys

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bad_inputs  # noqa: E402


@pytest.mark.parametrize("case", list(bad_inputs.CASES))
def test_bad_input_is_one_clear_line(case, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("case")
    r = bad_inputs.run_case(case, tmp)
    assert r["exit"] == 2 and r["lines"] == 1 and not r["traceback"], r
    assert r["message"].startswith(("error: ", f"{r['script']}: error: ")), r
    assert str(tmp) in r["message"] or "--" in r["message"], r  # names the file or the flag
    assert not (tmp / "runs").exists() or not any((tmp / "runs").iterdir()), "left a run folder"
