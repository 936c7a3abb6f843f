"""Auto-checked exercises.

An exercise cell sets ``answer = ...`` (Ellipsis means "not attempted yet") and calls

    check("00.2 parameter count", answer, test, solution=reference_value)

`test(value)` raises AssertionError with a hint when a value is wrong. If the learner has not
answered yet, `check` runs the test on the reference `solution` instead (so a headless run still
proves the checker works) and prints a nudge; a wrong answer raises with the hint.
"""
from __future__ import annotations


def check(name: str, answer, test, *, solution=None) -> None:
    """Check `answer` with `test`; raises AssertionError with a hint when it fails. See the module docstring."""
    if answer is Ellipsis:
        if solution is None:
            raise ValueError(f"exercise {name!r}: no answer and no reference solution to check")
        test(solution)
        print(f"[{name}] not answered yet: replace `...` with your answer and re-run the cell "
              "(the reference solution passes this check).")
        return
    try:
        test(answer)
    except AssertionError as e:
        raise AssertionError(f"[{name}] not quite: {e}") from None
    print(f"[{name}] correct!")


def close_to(expected: float, tol: float = 1e-6):
    """A test that passes when the answer is within `tol` of `expected`."""
    def test(value):
        assert abs(float(value) - expected) <= tol, f"expected about {expected:g}, got {value!r}"
    return test
