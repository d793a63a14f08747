"""Rephrasing: the LLM rewrites a question in other words; the answer must not change.

`rewrite_prompt(seed)` is a few-shot prompt that ends where the model writes the rephrased
question (stop at `STOP`). `parse_rewrite(seed, text, variant)` turns the completion into a
`Variant` (expected = the seed's gold answer, checked later by fresh chains of thought on the
rephrased question, symbolically for MATH) or a `Rejection`:
  empty_rewrite    nothing usable came back
  copied_question  the original question again, up to case, spacing and punctuation
  answer_leaked    the rewrite states the gold answer, which the question did not
  too_long         far longer than the question (the model went on to solve it)
  lost_figure      a MATH problem's [asy] figure was dropped
  malformed        it does not read as a question of its seed (subword soup, control bytes,
                   nothing shared with the seed; `text_quality.unreadable`)
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from metamath_ray.augment import numbers, text_quality
from metamath_ray.augment.base import Rejection, Variant
from metamath_ray.augment.protocol import Augmentation, settings_with_defaults

STOP = ["\nQuestion:", "\nRephrased:", "\n\n\n"]

_INSTRUCTION = (
    "Rephrase each math question in your own words. Keep every number, every condition and "
    "what is asked, so the rephrased question has exactly the same answer. Do not solve it."
)

# Own examples (not MetaMath's), in the register of each dataset.
_SHOTS = {
    "gsm8k": [
        ("Mia picks 24 apples and gives a third of them to her brother. She then eats 2. "
         "How many apples does she have left?",
         "After picking 24 apples, Mia gives one third of them to her brother and eats 2 herself. "
         "How many apples remain with Mia?"),
        ("A train ticket costs $15 and a bus ticket costs $4 less. Sam buys 3 train tickets and "
         "2 bus tickets. How much does he spend?",
         "Sam purchases 3 train tickets at $15 each and 2 bus tickets that are each $4 cheaper than "
         "a train ticket. What is the total amount he spends?"),
        ("Leo reads 12 pages every day. How many days will it take him to finish a 180-page book?",
         "If Leo reads 12 pages per day, how many days does he need to read a book of 180 pages?"),
    ],
    "math": [
        ("What is the sum of all positive divisors of $36$?",
         "Find the sum of the positive divisors of $36$."),
        ("If $3x + 7 = 22$, what is the value of $x^2$?",
         "Given that $3x + 7 = 22$, compute $x^2$."),
        ("A fair 6-sided die is rolled twice. What is the probability that the sum of the two rolls "
         "is 8? Express your answer as a common fraction.",
         "Two rolls of a fair six-sided die are made. Find the probability, as a common fraction, "
         "that the two numbers rolled add up to 8."),
    ],
}

_LABEL = re.compile(r"^\s*(rephrased( question)?|rephrase the above question|question)\s*:\s*", re.IGNORECASE)
_ANSWER_PHRASE = re.compile(r"\bthe answer is\b|\banswer\s*:", re.IGNORECASE)


def rewrite_prompt(seed: dict) -> str:
    shots = "\n\n".join(f"Question: {q}\nRephrased: {r}" for q, r in _SHOTS[seed["dataset"]])
    return f"{_INSTRUCTION}\n\n{shots}\n\nQuestion: {seed['question'].strip()}\nRephrased:"


def clean_rewrite(text: str) -> str:
    """The rephrased question alone: cut at the first stop string, drop labels and quotes."""
    for stop in STOP:
        cut = text.find(stop)
        if cut >= 0:
            text = text[:cut]
    text = _LABEL.sub("", text.strip())
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return text.strip()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+|\\[a-z]+", text.lower())


def _is_copy(rewrite: str, question: str) -> bool:
    a, b = _words(rewrite), _words(question)
    return a == b or SequenceMatcher(None, a, b, autojunk=False).ratio() >= 0.95


def _mentions(text: str, answer: str, dataset: str) -> bool:
    if re.fullmatch(r"-?[\d,]*\.?\d+(/\d+)?", answer.strip()):
        return answer.replace(",", "") in numbers.numbers_in(text)
    if dataset == "math":
        def key(s):
            return re.sub(r"\s+|\$|\\left|\\right", "", s).replace("\\dfrac", "\\frac")
        return bool(key(answer)) and key(answer) in key(text)
    return False


def check_rewrite(rewrite: str, seed: dict) -> Rejection | None:
    question, answer, dataset = seed["question"], str(seed["answer"]).strip(), seed["dataset"]
    if not rewrite or not _words(rewrite):
        return Rejection("empty_rewrite")
    if len(rewrite) > 2 * len(question) + 200:
        return Rejection("too_long", f"{len(rewrite)} chars for a {len(question)}-char question")
    if _is_copy(rewrite, question):
        return Rejection("copied_question")
    unreadable = text_quality.unreadable_question(rewrite, question)
    if unreadable is not None:
        return Rejection("malformed", unreadable)
    if _ANSWER_PHRASE.search(rewrite) or (
            _mentions(rewrite, answer, dataset) and not _mentions(question, answer, dataset)):
        return Rejection("answer_leaked", rewrite[:200])
    if "[asy]" in question and "[asy]" not in rewrite:
        return Rejection("lost_figure")
    return None


def parse_rewrite(seed: dict, text: str, variant: int) -> Variant | Rejection:
    """Rephrasing number `variant` of the seed, or why it was refused before any solving."""
    rewrite = clean_rewrite(text or "")
    rejection = check_rewrite(rewrite, seed)
    if rejection is not None:
        return rejection
    return Variant(
        seed_id=seed["seed_id"],
        dataset=seed["dataset"],
        aug="Rephrasing",
        variant=variant,
        query=rewrite,
        expected=str(seed["answer"]).strip(),
        original_question=seed["question"],
    )


RephrasingSettings = settings_with_defaults("RephrasingSettings", "Rephrasing budget.", k=2, max_attempts=4, rewrites=2)


class Rephrasing(Augmentation):
    name = "Rephrasing"
    settings = RephrasingSettings
    needs_rewrite = True
    rewrite_stop = tuple(STOP)

    def rewrite_requests(self, seed: dict, settings) -> list[tuple[int, str]]:
        prompt = rewrite_prompt(seed)  # the same prompt, sampled `rewrites` times (distinct seeds)
        return [(variant, prompt) for variant in range(settings.rewrites)]

    def parse_rewrite(self, seed: dict, text: str, variant: int) -> Variant | Rejection:
        return parse_rewrite(seed, text, variant)


AUGMENTATION = Rephrasing()
