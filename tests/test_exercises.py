import pytest

from ptm_lib.exercises import check, close_to


def test_unanswered_checks_the_solution(capsys):
    check("t", ..., close_to(3.0), solution=3.0)
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="expected about 3"):  # a wrong reference is caught too
        check("t", ..., close_to(3.0), solution=4.0)
    with pytest.raises(ValueError, match="no reference solution"):
        check("t", ..., close_to(3.0))


def test_right_and_wrong_answers(capsys):
    check("t", 3.0000001, close_to(3.0, 1e-3))
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"\[t\] not quite: expected about 3, got 5"):
        check("t", 5, close_to(3.0))
