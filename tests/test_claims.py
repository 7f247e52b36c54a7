import math
import textwrap

import pytest

from tlcourse.claims import ClaimFailedError, expect
from tlcourse.profiles import get_profile


def test_a_claim_that_holds_returns_true_and_says_so(capsys):
    assert expect("fine-tuning beats chance", 0.9, above=0.1, profile=get_profile("cpu")) is True
    assert "claim holds: fine-tuning beats chance (measured 0.9 > 0.1)" in capsys.readouterr().out


def test_a_failed_claim_raises_in_checking_profiles():
    for name in ("cpu", "gpu"):
        with pytest.raises(ClaimFailedError, match=r"claim does not hold: LP-FT beats full \(measured -0.02 > 0\)"):
            expect("LP-FT beats full", -0.02, above=0.0, profile=get_profile(name))


def test_both_bounds_and_the_boundary_is_not_enough():
    assert expect("in range", 0.5, above=0.0, below=1.0, profile=get_profile("cpu"))
    with pytest.raises(ClaimFailedError):
        expect("strictly above", 0.0, above=0.0, profile=get_profile("cpu"))
    with pytest.raises(ClaimFailedError, match="< 0.1"):
        expect("gap is small", 0.2, below=0.1, profile=get_profile("cpu"))


def test_smoke_prints_not_checked_and_never_raises(capsys):
    assert expect("anything", -1.0, above=0.0, profile=get_profile("smoke")) is False
    assert "claim not checked in the smoke profile: anything" in capsys.readouterr().out


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="expect needs a bound"):
        expect("no bound", 1.0, profile=get_profile("cpu"))
    with pytest.raises(ValueError, match="measured must be a real number, got nan"):
        expect("nan", math.nan, above=0.0, profile=get_profile("cpu"))
    with pytest.raises(ValueError, match="above must be a real number"):
        expect("bad bound", 1.0, above="0", profile=get_profile("cpu"))


def test_a_failed_claim_fails_a_notebook_run(tmp_path):
    """The mechanism `make test` relies on: a claim broken on purpose makes executing the notebook fail."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    source = textwrap.dedent("""
        from tlcourse.claims import expect
        from tlcourse.profiles import get_profile
        expect("a lesson broken on purpose", 0.1, above=0.5, profile=get_profile("cpu"))
    """)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3")
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="ClaimFailedError"):
        client.execute()
    outputs = notebook.cells[0].outputs
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "Claim failed" in html  # the warning box the rendered page shows
