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
    assert 'class="admonition warning tl-claim tl-claim-fails"' in html


def test_the_rendered_page_shows_a_box_per_outcome(tmp_path):
    """In a notebook a claim is a styled box (lesson in words, value, interval), not a log line."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    setup = textwrap.dedent("""
        from tlcourse.claims import expect
        from tlcourse.metrics import paired_difference
        from tlcourse.profiles import get_profile
        difference = paired_difference([0.9, 0.92, 0.91], [0.8, 0.83, 0.8])
    """)
    cells = [
        setup,
        'expect("fine-tuning beats <feature> extraction", difference.low, above=0.0,'
        ' interval=difference, profile=get_profile("cpu"))',
        'expect("anything", -1.0, above=0.0, profile=get_profile("smoke"))',
        'expect("a lesson broken on purpose", 0.1, above=0.5, profile=get_profile("cpu"))',
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell) for cell in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3")
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="ClaimFailedError"):
        client.execute()

    def shown(cell, kind):
        return "".join(o.get("data", {}).get(kind, "") for o in notebook.cells[cell].outputs
                       if o["output_type"] == "display_data")

    held = shown(1, "text/html")
    assert 'class="tl-claim tl-claim-holds"' in held and ">Checked<" in held
    assert "fine-tuning beats &lt;feature&gt; extraction" in held  # the lesson, escaped
    assert f"measured {difference_low(notebook):.4g} &gt; 0" in held
    assert "95% interval [" in held and "mean 0.1" in held
    assert shown(1, "text/plain").startswith("claim holds: fine-tuning beats <feature> extraction")
    not_checked = shown(2, "text/html")
    assert 'class="tl-claim tl-claim-unchecked"' in not_checked and ">Not checked<" in not_checked
    assert "the smoke profile does not check claims" in not_checked
    failed = shown(3, "text/html")
    assert "tl-claim-fails" in failed and ">Claim failed<" in failed
    assert not any("claim holds" in shown(cell, "text/plain") for cell in (2, 3))


def difference_low(notebook):
    """The interval's lower end, recomputed here from the same numbers the notebook used."""
    from tlcourse.metrics import paired_difference
    return paired_difference([0.9, 0.92, 0.91], [0.8, 0.83, 0.8]).low


def test_an_interval_is_shown_in_the_plain_line(capsys):
    expect("A beats B", 0.02, above=0.0, interval=(0.02, 0.09), profile=get_profile("cpu"))
    assert "claim holds: A beats B (measured 0.02 > 0; interval [0.02, 0.09])" in capsys.readouterr().out
    with pytest.raises(TypeError, match="interval must be a"):
        expect("A beats B", 0.02, above=0.0, interval=0.5, profile=get_profile("cpu"))


def test_the_claim_styles_ship_with_the_book():
    from pathlib import Path
    css = (Path(__file__).resolve().parents[1] / "_static" / "claims.css").read_text()
    for name in ("tl-claim-holds", "tl-claim-fails", "tl-claim-unchecked"):
        assert f".{name}" in css
