"""FOBAR (forward-backward) questions: mask one number as x and give the forward answer.

"James buys 5 packs of beef ... How much did he pay?" with answer 110 becomes
"James buys x packs of beef ... How much did he pay?
If we know the answer to the above question is 110, what is the value of unknown variable x?"
and a chain of thought is accepted when its final value of x is equivalent to 5.

Every maskable number (see `numbers`) gives its own question. MATH problems use X, as in
MetaMathQA. A question that already uses the unknown's name as a symbol gives no question,
since "x" would then mean two things.
"""

from __future__ import annotations

from metamath_ray.augment import backward, numbers
from metamath_ray.augment.base import Variant
from metamath_ray.augment.protocol import Augmentation, settings_with_defaults

SUFFIX = "If we know the answer to the above question is {answer}, what is the value of unknown variable {var}?"


def _clean_answer(answer: str, dataset: str) -> str:
    answer = answer.strip()
    # GSM8K gold answers are plain numbers; "1,000" would read as two numbers in the sentence.
    return answer.replace(",", "") if dataset == "gsm8k" else answer


def _masks(question: str, dataset: str) -> list[tuple[numbers.NumberSpan, str]]:
    """(span, masked question) per maskable number; empty when x is already taken."""
    var = numbers.unknown_var(dataset)
    if numbers.has_free_variable(question, var):
        return []
    return [(span, numbers.mask(question, span, var)) for span in numbers.spans_for(question, dataset)]


def assemble(masked_question: str, answer: str, dataset: str) -> str:
    var = numbers.unknown_var(dataset)
    sentence = SUFFIX.format(answer=_clean_answer(answer, dataset), var=var)
    return f"{masked_question.rstrip()}\n{sentence}"


def backward_questions(question: str, answer: str, dataset: str) -> list[str]:
    """One backward question per maskable number of `question`, in reading order. (contract)"""
    if not question.strip() or not answer.strip():
        return []
    return [assemble(masked, answer, dataset) for _, masked in _masks(question, dataset)]


def variants(seed: dict) -> list[Variant]:
    """The FOBAR variants of a seed row; `variant` is the mask index, `expected` the masked value."""
    question, answer, dataset = seed["question"], str(seed["answer"]), seed["dataset"]
    if not question.strip() or not answer.strip():
        return []
    out = []
    for index, (span, masked) in enumerate(_masks(question, dataset)):
        out.append(Variant(
            seed_id=seed["seed_id"],
            dataset=dataset,
            aug="FOBAR",
            variant=index,
            query=assemble(masked, answer, dataset),
            expected=span.value,
            original_question=question,
            meta={"masked_span": [span.start, span.end], "masked_text": span.surface,
                  "unknown": numbers.unknown_var(dataset)},
        ))
    return out


FobarSettings = settings_with_defaults("FobarSettings", "FOBAR budget.", k=2, max_attempts=4, max_variants=3)


class Fobar(Augmentation):
    name = "FOBAR"
    settings = FobarSettings
    distinct_siblings = True
    prompt_version = backward.PROMPT_VERSION

    def variants(self, seed: dict) -> list[Variant]:
        return variants(seed)

    def solve_prompt(self, variant: Variant) -> str:
        """Backward examples of the seed's dataset: the teacher sees how x is solved for."""
        return backward.solve_prompt(variant.query, variant.dataset, "fobar")


AUGMENTATION = Fobar()
