"""Assertions shared by the per-topic exercise tests: a check tells the reference, each mistake and a stub apart."""

from coursekit.checks import compare, evaluate, make_cases, run_answer


def assert_reference_passes_and_each_mistake_gets_its_own_message(exercise, seed) -> None:
    """The reference passes on the cases of ``seed``; every listed mistake fails with its own message."""
    cases = make_cases(exercise, seed)
    assert compare(exercise, cases, run_answer(exercise.reference, cases)).passed
    for mistake in exercise.mistakes:
        result = compare(exercise, cases, run_answer(mistake.answer, cases))
        assert not result.passed and mistake.message in result.message, (mistake.message, result.message)


def assert_stub_fails_as_not_implemented(name: str) -> None:
    """A body that raises ``NotImplementedError`` is reported as not implemented yet by ``checks.evaluate``."""
    def stub(*args):
        raise NotImplementedError
    assert "not implemented yet" in evaluate(name, stub).message
