"""Lessons as claims checked by code, right after the cell that measured them.

A chapter states a lesson ("fine-tuning beats feature extraction") and then calls :func:`expect`
with the measured number. In the rendered page a claim that holds shows a small "checked" box with
the lesson and the measured value. In the ``cpu`` and ``gpu`` profiles a claim that does not hold
shows a warning box and raises :class:`ClaimFailedError`, so ``jupyter-book build -W`` (and
``make test``) fails. In ``smoke`` the numbers mean nothing, so the claim is shown as not checked.
Outside IPython each claim prints one plain line.
"""

from __future__ import annotations

import html
import math

from tlcourse.profiles import Profile

__all__ = [
    "ClaimFailedError",
    "expect",
]

# (CSS class, box title) for each outcome; the styles are in _static/claims.css.
_BOXES = {
    "holds": ("tl-claim tl-claim-holds", "Checked"),
    "fails": ("admonition warning tl-claim tl-claim-fails", "Claim failed"),
    "unchecked": ("tl-claim tl-claim-unchecked", "Not checked"),
}


class ClaimFailedError(AssertionError):
    """A lesson the chapter states did not hold in this run."""


def _show(outcome: str, claim: str, detail: str, line: str) -> None:
    # A styled box in the rendered page (HTML, with the plain line as its text form); a printed line
    # in a terminal or a test.
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython ships with the book's requirements
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(line)
        return
    css_class, title = _BOXES[outcome]
    box = (f'<div class="{css_class}"><p class="admonition-title tl-claim-title">{title}</p>'
           f'<p><span class="tl-claim-lesson">{html.escape(claim)}</span> '
           f'<span class="tl-claim-measured">{html.escape(detail)}</span></p></div>')
    display({"text/html": box, "text/plain": line}, raw=True)


def _interval_text(interval) -> str:
    # A PairedDifference (mean, low, high, confidence) or a (low, high) pair.
    if interval is None:
        return ""
    if hasattr(interval, "low") and hasattr(interval, "high"):
        low, high = float(interval.low), float(interval.high)
        confidence = getattr(interval, "confidence", None)
        mean = getattr(interval, "mean", None)
        text = f"[{low:.4g}, {high:.4g}]"
        if confidence is not None:
            text = f"{confidence:.0%} interval {text}"
        if mean is not None:
            text = f"mean {float(mean):.4g}, {text}"
        return text
    try:
        low, high = (float(value) for value in interval)
    except (TypeError, ValueError):
        raise TypeError(f"interval must be a (low, high) pair or have .low and .high, got {interval!r}") from None
    return f"interval [{low:.4g}, {high:.4g}]"


def expect(claim: str, measured: float, *, profile: Profile, above: float | None = None,
           below: float | None = None, interval=None) -> bool:
    """Check that ``measured`` lies strictly above ``above`` and/or strictly below ``below``.

    ``interval`` (a ``PairedDifference`` or ``(low, high)``) is shown beside the value. Returns True when
    checked and holding, False when ``profile.check_claims`` is off; raises :class:`ClaimFailedError` otherwise.
    """
    if above is None and below is None:
        raise ValueError("expect needs a bound: pass above=..., below=... or both")
    values = {"measured": measured, "above": above, "below": below}
    for name, value in values.items():
        if value is not None and (not isinstance(value, (int, float)) or math.isnan(float(value))):
            raise ValueError(f"{name} must be a real number, got {value!r}")
    measured = float(measured)
    bounds = []
    holds = True
    if above is not None:
        bounds.append(f"> {above:.4g}")
        holds = holds and measured > above
    if below is not None:
        bounds.append(f"< {below:.4g}")
        holds = holds and measured < below
    detail = f"measured {measured:.4g} {' and '.join(bounds)}"
    shown_interval = _interval_text(interval)
    if shown_interval:
        detail = f"{detail}; {shown_interval}"
    description = f"{claim} ({detail})"
    if not profile.check_claims:
        _show("unchecked", claim, f"({detail}; the {profile.name} profile does not check claims)",
              f"claim not checked in the {profile.name} profile: {description}")
        return False
    if holds:
        _show("holds", claim, f"({detail})", f"claim holds: {description}")
        return True
    message = f"claim does not hold: {description}"
    _show("fails", claim, f"({detail})", message)
    raise ClaimFailedError(message)
