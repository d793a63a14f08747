"""Few-shot chain-of-thought prompts and the check of one chain of thought.

Every augmentation is solved with the prompt of the seed's own dataset (MetaMath solved GSM8K
backward questions with MATH prompts; we do not). Exemplars are GSM8K / MATH *training* problems
with solutions written for this project; each ends with MetaMathQA's "The answer is: X" line.
"""

from __future__ import annotations

import re

from metamath_ray.augment import text_quality
from metamath_ray.augment.base import ANSWER_PREFIX, Verdict

PROMPT_VERSION = "cot-v1"

GSM8K_EXEMPLARS = [
    (
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?",
        "In May she sold half of April's 48 clips, which is 48 / 2 = 24 clips.\n"
        "Over the two months she sold 48 + 24 = 72 clips.\n"
        "The answer is: 72",
    ),
    (
        "Betty is saving money for a new wallet which costs $100. Betty has only half of the money she needs. "
        "Her parents decided to give her $15 for that purpose, and her grandparents twice as much as her "
        "parents. How much more money does Betty need to buy the wallet?",
        "Betty already has half of $100, so she has 100 / 2 = $50.\n"
        "Her grandparents give twice what her parents give: 2 * 15 = $30.\n"
        "Together she now has 50 + 15 + 30 = $95.\n"
        "She is still short 100 - 95 = $5.\n"
        "The answer is: 5",
    ),
    (
        "James writes a 3-page letter to 2 different friends twice a week.  How many pages does he write a year?",
        "Each round of letters is 3 pages for each of 2 friends, so 3 * 2 = 6 pages.\n"
        "He does this twice a week, which makes 6 * 2 = 12 pages a week.\n"
        "A year has 52 weeks, so he writes 12 * 52 = 624 pages.\n"
        "The answer is: 624",
    ),
]

MATH_EXEMPLARS = [
    (
        "If the ratio of $b$ to $a$ is 3, then what is the value of $a$ when $b=12-5a$?",
        "The ratio tells us $b = 3a$. Substituting into $b = 12 - 5a$ gives $3a = 12 - 5a$, so $8a = 12$ "
        "and $a = \\frac{12}{8} = \\boxed{\\frac{3}{2}}$.\n"
        "The answer is: \\frac{3}{2}",
    ),
    (
        "How many positive two-digit integers are there in which each of the two digits is prime?",
        "The prime digits are 2, 3, 5 and 7, so each of the two positions has 4 choices. "
        "That gives $4 \\cdot 4 = \\boxed{16}$ integers.\n"
        "The answer is: 16",
    ),
    (
        "Factor the following expression: $145b^2 +29b$.",
        "Both terms share the factor $29b$, since $145b^2 = 29b \\cdot 5b$ and $29b = 29b \\cdot 1$. "
        "Factoring it out gives $\\boxed{29b(5b+1)}$.\n"
        "The answer is: 29b(5b+1)",
    ),
]

INSTRUCTION = (
    "Solve each math problem step by step. End every solution with a line of the form "
    '"The answer is: <final answer>".'
)

# Where a chain of thought for the current problem ends: the model starts the next exemplar.
STOP = ["\n\nQuestion:", "\nQuestion:"]


def _few_shot_prefix(dataset: str) -> str:
    exemplars = GSM8K_EXEMPLARS if dataset == "gsm8k" else MATH_EXEMPLARS
    blocks = [f"Question: {q}\nAnswer: {a}" for q, a in exemplars]
    return INSTRUCTION + "\n\n" + "\n\n".join(blocks) + "\n\n"


_PREFIXES = {ds: _few_shot_prefix(ds) for ds in ("gsm8k", "math")}


def solve_prompt(query: str, dataset: str) -> str:
    """The few-shot prompt; the prefix is identical for all questions of a dataset so vLLM's
    prefix cache serves it once."""
    if dataset not in _PREFIXES:
        raise ValueError(f"unknown dataset {dataset!r}")
    return f"{_PREFIXES[dataset]}Question: {query.strip()}\nAnswer:"


MAX_REJECTED_PREDICTION_CHARS = 200  # a malformed "answer" can be a whole response; keep its head

_ANSWER_LINE = re.compile(r"(?im)^\s*The answer is:?\s*(.*)$")
# A chain of thought must *state* its final answer; the verifier's last-number fallback is for
# evaluation, never for training data (a random model's gibberish often ends in a number).
_FINAL_MARKER = re.compile(
    r"The answer is|\\boxed|\\fbox|####|Final Answer|value of (?:the )?(?:unknown )?(?:variable )?[xX] is",
    re.IGNORECASE,
)


def clean_response(text: str) -> str:
    """Trim the model's text to the solution: stop at the first final-answer line."""
    text = text.strip()
    m = _ANSWER_LINE.search(text)
    if m:
        text = text[: m.end()].rstrip()
    return text


def judge(response: str, expected: str, dataset: str) -> Verdict:
    """Extract the final answer of one chain of thought and check it against `expected`.

    Accepted responses end with exactly one "The answer is: X" line (MetaMathQA's format), where X
    is the model's own answer string. Refused: empty_response, no_answer (none stated),
    malformed_answer (X is no answer form: soup, control bytes; answers.malformed_answer),
    wrong_answer, no_reasoning, malformed_response (the reasoning is not text:
    text_quality.unreadable_reasoning).
    """
    from metamath_ray.answers import extract_answer, is_equivalent, malformed_answer

    text = clean_response(response or "")
    if not text:
        return Verdict(False, None, "empty_response", text)
    predicted = extract_answer(text) if _FINAL_MARKER.search(text) else None
    if predicted is None or not predicted.strip():
        return Verdict(False, None, "no_answer", text)
    predicted = predicted.strip()
    # Before comparing: a random model's "#### row13 disindraw whe perimeter 100 ook" ends in the
    # gold number, and the comparison alone would read it as 100.
    if malformed_answer(predicted) is not None:
        return Verdict(False, predicted[:MAX_REJECTED_PREDICTION_CHARS], "malformed_answer", text)
    if not is_equivalent(predicted, expected):
        return Verdict(False, predicted, "wrong_answer", text)
    body = _ANSWER_LINE.sub("", text).rstrip()
    if not body:
        return Verdict(False, predicted, "no_reasoning", text)
    if text_quality.unreadable_reasoning(body) is not None:  # soup that happens to end in the gold
        return Verdict(False, predicted, "malformed_response", text)
    return Verdict(True, predicted, None, f"{body}\n{ANSWER_PREFIX}{predicted}")
