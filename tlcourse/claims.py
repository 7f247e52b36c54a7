"""Lessons as claims checked by code, right after the cell that measured them.

A chapter states a lesson ("fine-tuning beats feature extraction") and then calls :func:`expect`
with the measured number. In the ``cpu`` and ``gpu`` profiles a claim that does not hold shows a
warning box on the page and raises :class:`ClaimFailedError`, so ``jupyter-book build -W`` (and
``make test``) fails. In ``smoke`` the numbers mean nothing, so the claim is printed as not checked.
"""

from __future__ import annotations

import html
import math

from tlcourse.profiles import Profile

__all__ = [
    "ClaimFailedError",
    "expect",
]


class ClaimFailedError(AssertionError):
    """A lesson the chapter states did not hold in this run."""


def _show_warning_box(text: str) -> None:
    # A visible box in the rendered page (HTML), plain text in a terminal.
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:  # pragma: no cover - IPython ships with the book's requirements
        return
    if get_ipython() is None:
        return
    display(HTML(
        '<div class="admonition warning"><p class="admonition-title">Claim failed</p>'
        f"<p>{html.escape(text)}</p></div>"
    ))


def expect(claim: str, measured: float, *, profile: Profile, above: float | None = None,
           below: float | None = None) -> bool:
    """Check that ``measured`` lies strictly above ``above`` and/or strictly below ``below``.

    Args:
        claim: the lesson in words, e.g. ``"fine-tuning beats feature extraction"``.
        measured: the number that decides it, e.g. the lower end of a paired difference's interval.
        profile: claims are checked when ``profile.check_claims`` is True (``cpu``, ``gpu``).
        above: the claim holds only if ``measured > above``.
        below: the claim holds only if ``measured < below``.

    Returns:
        True when the claim was checked and holds; False when the profile does not check claims.

    Raises:
        ValueError: if neither bound is given, or ``measured`` or a bound is NaN.
        ClaimFailedError: in a checking profile, when the claim does not hold.

    Example:
        >>> from tlcourse.profiles import get_profile
        >>> expect("accuracy beats chance", 0.9, above=0.1, profile=get_profile("cpu"))
        claim holds: accuracy beats chance (measured 0.9 > 0.1)
        True
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
    description = f"{claim} (measured {measured:.4g} {' and '.join(bounds)})"
    if not profile.check_claims:
        print(f"claim not checked in the {profile.name} profile: {description}")
        return False
    if holds:
        print(f"claim holds: {description}")
        return True
    message = f"claim does not hold: {description}"
    _show_warning_box(message)
    raise ClaimFailedError(message)
