"""is_equivalent never raises, never hangs, and works off the main thread."""

import threading
import time

import pytest

from metamath_ray.answers import extract_answer, is_equivalent, normalize_answer, warm_up

ADVERSARIAL = [
    ("2^{2^{2^{2^{2^{100}}}}}", "1", "power tower"),
    ("10^{10^{10}}", "10^{10^{10}}+1", "huge power against a neighbour"),
    ("9^{9^{9}}", "9", "nested exponent"),
    ("10^{100000000}", "1", "huge exponent"),
    ("1000000!", "1", "huge factorial"),
    ("(10^{1000})!", "2", "factorial of a power"),
    ("{" * 5000 + "1" + "}" * 5000, "1", "deep braces"),
    ("\\frac{" * 300 + "1" + "}{2}" * 300, "1", "deep fractions"),
    ("1" * 1_000_000, "1", "a million digits"),
    ("x" * 1_000_000, "x", "a million letters"),
    ("(" * 100_000, ")", "unbalanced parentheses"),
    ("\\frac{1}{", "\\frac{1}{2}", "unclosed brace"),
    ("\\begin{pmatrix}1&2", "\\begin{pmatrix}1&2\\end{pmatrix}", "unclosed environment"),
    ("$$$$", "$", "only delimiters"),
    ("\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{2}}}}}}}}", "1.0027", "nested roots"),
    ("x^{x^{x^{x}}}", "x^{x^{x^{x}}}+0", "symbolic tower"),
    ("\\int_0^1 x dx", "\\frac{1}{2}", "integral"),
    ("\\sum_{k=1}^{10^{9}} k", "1", "huge sum"),
    (", " * 100_000, "1", "many separators"),
    ("\\boxed{" * 1000, "1", "unclosed boxes"),
    ("1e999999", "1", "huge scientific exponent"),
    ("\\", "\\\\", "lone backslashes"),
    ("\x00\x01\x02", "0", "control characters"),
]


@pytest.fixture(scope="module", autouse=True)
def _warm():
    warm_up()


@pytest.mark.parametrize("pred, gold", [pytest.param(p, g, id=w) for p, g, w in ADVERSARIAL])
def test_adversarial_input_returns_false_quickly(pred, gold):
    start = time.monotonic()
    assert is_equivalent(pred, gold) is False
    assert is_equivalent(gold, pred) is False
    # generous bound for a loaded 2-core machine; the budget per call is 0.9 s
    assert time.monotonic() - start < 6.0


@pytest.mark.parametrize("bad", [None, 5, 5.0, b"5", ["5"], {"a": 1}])
def test_non_string_inputs_are_not_equal_and_do_not_raise(bad):
    assert is_equivalent(bad, "5") is False
    assert is_equivalent("5", bad) is False
    assert extract_answer(bad) is None
    assert isinstance(normalize_answer(bad), str)


@pytest.mark.parametrize("pred, gold, expected", [
    ("5", "5.0", True),
    ("\\frac{1}{2}", "0.5", True),
    ("2\\sqrt{2}", "\\sqrt{8}", True),
    ("x^2+2x+1", "(x+1)^2", True),
    ("(1,2)", "[1,2]", False),
])
def test_works_from_worker_threads(pred, gold, expected):
    results = []

    def work():
        results.append(is_equivalent(pred, gold))

    # one thread at a time: the per-call budget is wall-clock time, and parallel sympy work
    # on a loaded 2-core runner could spend it (the answer would then be a safe False)
    for _ in range(3):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join(30)
    assert results == [expected] * 3


def test_numeric_pairs_from_many_threads_at_once():
    results = []
    threads = [threading.Thread(target=lambda: results.append(is_equivalent("1,000", "1000.0")))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [True] * 8


def test_numeric_pairs_take_the_fast_path():
    # counted, not timed: the symbolic module must not be asked about plain numbers
    import metamath_ray.answers.equivalence as equivalence

    calls = []
    original = equivalence.symbolic_equal
    equivalence.symbolic_equal = lambda *a: calls.append(a) or original(*a)
    try:
        for pred, gold in [("1,000", "1000"), ("\\frac{1}{2}", "0.5"), ("50%", "0.5"), ("2\\frac12", "2.5"),
                           ("\\$18", "18"), ("5\\text{ inches}", "5"), ("(1,2)", "(1,2.0)")]:
            assert is_equivalent(pred, gold)
    finally:
        equivalence.symbolic_equal = original
    assert calls == []
