"""Program of thought (PoT, as in MAmmoTH): the model writes a Python program that prints the answer.

A candidate program is accepted when it runs in the sandbox (`metamath_ray.sandbox`) and the last
line it prints is equivalent to the gold answer. Exemplars are GSM8K / MATH *training* problems with
programs written for this project. The training query carries a trigger sentence (POT_TRIGGER) so a
model trained on both styles knows when to answer with a program; the exported response is the
program in a ```python block followed by MetaMathQA's "The answer is: X" line.
"""

from __future__ import annotations

import re

from pydantic import Field

from metamath_ray.augment.base import ANSWER_PREFIX, Variant, Verdict
from metamath_ray.augment.protocol import Augmentation, AugSettings

PROMPT_VERSION = "pot-v1"
POT_TRIGGER = "Let's write a Python program to solve it."

GSM8K_EXEMPLARS = [
    (
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?",
        "april = 48\nmay = april // 2\nprint(april + may)",
    ),
    (
        "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
        "How much did she earn?",
        "from fractions import Fraction\n\nrate_per_minute = Fraction(12, 60)\nearned = rate_per_minute * 50\n"
        "print(earned)",
    ),
    (
        "James writes a 3-page letter to 2 different friends twice a week.  How many pages does he write a year?",
        "pages_per_letter = 3\nfriends = 2\ntimes_per_week = 2\nweeks_per_year = 52\n"
        "print(pages_per_letter * friends * times_per_week * weeks_per_year)",
    ),
]

MATH_EXEMPLARS = [
    (
        "If the ratio of $b$ to $a$ is 3, then what is the value of $a$ when $b=12-5a$?",
        "import sympy as sp\n\na = sp.symbols('a')\n# b = 3a and b = 12 - 5a\nsolution = sp.solve(sp.Eq(3 * a, 12 - 5 * a), a)\n"
        "print(solution[0])",
    ),
    (
        "How many positive two-digit integers are there in which each of the two digits is prime?",
        "primes = {2, 3, 5, 7}\ncount = sum(1 for n in range(10, 100) if n // 10 in primes and n % 10 in primes)\n"
        "print(count)",
    ),
    (
        "Factor the following expression: $145b^2 +29b$.",
        "import sympy as sp\n\nb = sp.symbols('b')\nprint(sp.latex(sp.factor(145 * b**2 + 29 * b)))",
    ),
]

INSTRUCTION = (
    "Solve each math problem by writing a Python program. The program may use math, fractions and "
    "sympy, must not read input, and must print only the final answer: exact values, not rounded, "
    "and symbolic expressions in LaTeX (sympy.latex)."
)

# The model starts the next exemplar after its program, or closes the code block.
STOP = ["\n\nQuestion:", "\nQuestion:"]
_FENCE_OPEN = "```python\n"


def _few_shot_prefix(dataset: str) -> str:
    exemplars = GSM8K_EXEMPLARS if dataset == "gsm8k" else MATH_EXEMPLARS
    blocks = [f"Question: {q}\nProgram:\n{_FENCE_OPEN}{p}\n```" for q, p in exemplars]
    return INSTRUCTION + "\n\n" + "\n\n".join(blocks) + "\n\n"


_PREFIXES = {ds: _few_shot_prefix(ds) for ds in ("gsm8k", "math")}


def solve_prompt(question: str, dataset: str) -> str:
    """Few-shot prompt ending inside an opened ```python block, so a base model writes code at once."""
    if dataset not in _PREFIXES:
        raise ValueError(f"unknown dataset {dataset!r}")
    return f"{_PREFIXES[dataset]}Question: {question.strip()}\nProgram:\n{_FENCE_OPEN}"


def training_query(question: str) -> str:
    return f"{question.strip()}\n{POT_TRIGGER}"


def variants(seed: dict) -> list[Variant]:
    return [
        Variant(
            seed_id=seed["seed_id"], dataset=seed["dataset"], aug="PoT", variant=0,
            query=training_query(seed["question"]), expected=seed["answer"],
            original_question=seed["question"],
        )
    ]


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*(?:\n|\Z)")


def extract_code(response: str) -> str | None:
    """The program in a response. Two shapes: the prompt opened the ```python block, so the response
    is code up to the first closing fence; or the response opens its own block (```python ... ```),
    as chat models do. The first fence is an opener when it names a language or starts the text."""
    text = (response or "").replace("\r\n", "\n")
    fence = _FENCE.search(text)
    if fence is None:
        code = text
    elif fence.group(1) or not text[: fence.start()].strip():
        rest = text[fence.end():]
        code = rest.split("```", 1)[0]  # an unclosed block (max_tokens) keeps what was written
    else:
        code = text[: fence.start()]
    code = code.strip("\n")
    return code if code.strip() else None


def printed_answer(stdout: str) -> str | None:
    """The answer a program printed: its last non-empty line, minus a "The answer is" prefix."""
    from metamath_ray.sandbox import last_line

    line = last_line(stdout)
    if line is None:
        return None
    line = re.sub(r"^(?:the )?(?:final )?answer(?: is)?\s*[:=]?\s*", "", line, flags=re.IGNORECASE).strip()
    return line.rstrip(".") or None


def exported_response(code: str, answer: str) -> str:
    return f"{_FENCE_OPEN}{code.rstrip()}\n```\n{ANSWER_PREFIX}{answer}"


def judge(response: str, expected: str, dataset: str, limits=None) -> Verdict:
    """Run the program of one response in the sandbox and check what it printed against `expected`.

    Reject reasons: empty_response, no_program, sandbox_<reason> (timeout, cpu, memory, nproc,
    forbidden, error, output_limit), no_output, wrong_answer.
    """
    from metamath_ray.answers import is_equivalent
    from metamath_ray.sandbox import run_python

    if not (response or "").strip():
        return Verdict(False, None, "empty_response", "")
    code = extract_code(response)
    if code is None:
        return Verdict(False, None, "no_program", response.strip())
    shown = f"{_FENCE_OPEN}{code}\n```"
    result = run_python(code, limits)
    if not result.ok:
        return Verdict(False, None, f"sandbox_{result.reason}", shown)
    predicted = printed_answer(result.stdout)
    if predicted is None:
        return Verdict(False, None, "no_output", shown)
    if len(predicted) > 200 or not is_equivalent(predicted, expected):
        return Verdict(False, predicted[:200], "wrong_answer", shown)
    return Verdict(True, predicted, None, exported_response(code, predicted))


class PoTSettings(AugSettings):
    """Program of thought: programs per question, and the sandbox that runs each of them."""

    k: int = Field(2, ge=1, description="accepted programs wanted per question")
    max_attempts: int = Field(4, ge=1, description="programs sampled per question at most")
    sandbox_wall_s: float = Field(10.0, gt=0, description="wall clock per program (after interpreter start-up)")
    sandbox_cpu_s: int = Field(5, ge=1, description="CPU seconds per program")
    sandbox_memory_mb: int = Field(1024, ge=256, description="address space per program")
    sandbox_concurrency: int = Field(2, ge=1, description="Ray tasks running programs at once")

    def limits(self):
        from metamath_ray.sandbox import SandboxLimits

        return SandboxLimits(wall_s=self.sandbox_wall_s, cpu_s=self.sandbox_cpu_s, memory_mb=self.sandbox_memory_mb)


class ProgramOfThought(Augmentation):
    """Opt-in: its programs run in the sandbox (child processes), never on the driver."""

    name = "PoT"
    settings = PoTSettings
    default = False
    prompt_version = PROMPT_VERSION
    solve_stop = tuple(STOP)
    checks_steps = False  # a response is a program: `x = 5 * 4` assigns, it claims nothing

    def variants(self, seed: dict) -> list[Variant]:
        return variants(seed)

    def solve_prompt(self, variant: Variant) -> str:
        # the query carries the training trigger; the prompt asks for the code itself
        return solve_prompt(variant.original_question, variant.dataset)

    def judge(self, response: str, expected: str, dataset: str, settings: PoTSettings) -> Verdict:
        return judge(response, expected, dataset, settings.limits())

    def judge_concurrency(self, settings: PoTSettings) -> int | None:
        return settings.sandbox_concurrency  # each judged program is a sandbox child process


AUGMENTATION = ProgramOfThought()
