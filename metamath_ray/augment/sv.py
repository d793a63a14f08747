"""SV (self-verification): state the answer, mask a number, ask for the unknown.

For one masked number (the same masks as FOBAR), the question's asking sentence plus the gold
answer are rewritten by the LLM into a statement ("How much did he pay?" + 110 ->
"He paid $110."), and the variant is assembled as
"<rest of the question> <statement> What is the value of unknown variable x?".

Flow: `rewrite_requests(seed)` gives (variant, prompt) pairs, the engine completes each prompt
(stop at `STOP`), and `parse_rewrite(seed, text, variant)` turns the completion into a `Variant`
whose `expected` is the masked value, or a `Rejection` when the rewrite is unusable:
  empty_rewrite        nothing usable came back
  still_asks_question  a question mark, a question word, or "The answer is" echoed back
                       (MetaMathQA's degenerate "... The answer is 10. What is X?" rows)
  answer_missing       the statement does not state the answer
  gives_unknown        the statement gives the masked value away ("x = 5", or 5 reappears)
  lost_unknown         the asking sentence held x and the statement dropped it
  too_long             far longer than the sentence it rewrites (the model rambled on)
  malformed            it does not read as a statement of its seed (subword soup, control
                       bytes, nothing shared with the seed; `text_quality.unreadable`)
"""

from __future__ import annotations

import re
from fractions import Fraction

from metamath_ray.augment import backward, numbers, text_quality
from metamath_ray.augment.base import Rejection, Variant
from metamath_ray.augment.protocol import Augmentation, settings_with_defaults

STOP = ["\n"]
SUFFIX = "What is the value of unknown variable {var}?"

_INSTRUCTIONS = {
    "gsm8k": "Rewrite the question as a statement that gives its answer. Keep the wording of the "
             "question where you can, keep any unknown such as x as it is, and write one sentence.",
    "math": "Rewrite the question as a statement that gives its answer. Keep the LaTeX of the "
            "question, keep any unknown such as X as it is, and write one sentence.",
}

# Own examples (not MetaMath's): typical asking sentences of each dataset and their statements.
_SHOTS = {
    "gsm8k": [
        ("How many stickers does Lena have left?", "14", "Lena has 14 stickers left."),
        ("How much did Omar spend on groceries in total?", "62", "Omar spent $62 on groceries in total."),
        ("If the bakery sells x muffins, how many cookies does it sell?", "45",
         "If the bakery sells x muffins, it sells 45 cookies."),
        ("How many minutes does it take Priya to walk to school?", "25",
         "It takes Priya 25 minutes to walk to school."),
        ("What percentage of the students passed the test?", "80", "80% of the students passed the test."),
        ("Calculate the total weight of the boxes in kilograms.", "120",
         "The total weight of the boxes is 120 kilograms."),
    ],
    "math": [
        ("What is the value of $a+b$?", "7", "The value of $a+b$ is 7."),
        ("Find the remainder when $7^{X}$ is divided by 5.", "4",
         "The remainder when $7^{X}$ is divided by 5 is 4."),
        ("What is the probability that both marbles are red?", "\\frac{3}{10}",
         "The probability that both marbles are red is $\\frac{3}{10}$."),
        ("Compute $\\dbinom{X}{2}$.", "28", "$\\dbinom{X}{2} = 28$."),
        ("Find the center of the circle with equation $x^2 - 6x + y^2 + 2y = X$.", "(3, -1)",
         "The center of the circle with equation $x^2 - 6x + y^2 + 2y = X$ is $(3, -1)$."),
        ("How many positive divisors does $X$ have?", "12", "$X$ has 12 positive divisors."),
    ],
}

_QUESTION_START = re.compile(
    r"^\W*(how|what|which|who|whom|whose|when|where|why|is|are|does|do|did|can|will|find|compute|"
    r"calculate|determine|evaluate|simplify|solve|express|give)\b", re.IGNORECASE)
_ANSWER_IS = re.compile(r"\b(the\s+)?answer\s+(is|was|=)", re.IGNORECASE)
# Trailing format instructions of MATH problems belong to no statement once the answer is given.
_INSTRUCTION = re.compile(r"^\(?\s*(express|give|round|enter|write|your answer|note)\b", re.IGNORECASE)


# --- splitting a question into body and asking sentence -----------------------------------

def _sentence_ends(text: str, latex: bool) -> list[int]:
    """Indices just after each sentence end, ignoring periods inside math and [asy] figures.

    In GSM8K text "$" is a currency sign, not a math delimiter, hence `latex`.
    """
    ends, in_math, in_display, i = [], False, 0, 0
    while i < len(text):
        if text.startswith("[asy]", i):
            close = text.find("[/asy]", i)
            i = len(text) if close < 0 else close + len("[/asy]")
            ends.append(i)  # a figure ends a "sentence" of its own
            continue
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            if text[i + 1] in "[(":
                in_display += 1
            elif text[i + 1] in "])":
                in_display = max(0, in_display - 1)
            i += 2
            continue
        if ch == "$" and latex:
            in_math = not in_math
            i += 1
            continue
        if ch in ".?!" and not in_math and not in_display:
            j = i + 1
            while j < len(text) and text[j] in "\"'”)":
                j += 1
            if j == len(text) or text[j].isspace():
                ends.append(j)
        i += 1
    # "... $x > 1.$  Compute": a period closing an inline formula also ends a sentence.
    if latex:
        for m in re.finditer(r"[.?!]\$(?=\s|$)", text):
            ends.append(m.end())
    return sorted(set(e for e in ends if 0 < e <= len(text)))


def split_question(text: str, dataset: str) -> tuple[str, str]:
    """(body, asking sentence). Trailing answer-format instructions are dropped."""
    text = text.strip()
    bounds = [0] + _sentence_ends(text, latex=dataset == "math")
    if bounds[-1] != len(text):
        bounds.append(len(text))
    sentences = [text[a:b] for a, b in zip(bounds, bounds[1:]) if text[a:b].strip()]
    keep_after: list[str] = []
    while sentences:
        last = sentences[-1].strip()
        if last.startswith("[asy]"):
            keep_after.insert(0, sentences.pop())  # a figure after the question stays in the body
        elif _INSTRUCTION.match(last) and len(sentences) > 1:
            sentences.pop()
        else:
            break
    if not sentences:
        return text, ""
    ask = sentences.pop().strip()
    body = ("".join(sentences) + "".join(keep_after)).strip()
    return body, ask


# --- requests -----------------------------------------------------------------------------

def _masked_parts(seed: dict) -> list[tuple[numbers.NumberSpan, str, str]]:
    """(span, body, asking sentence) per mask of the seed question, FOBAR's mask order."""
    question, dataset = seed["question"], seed["dataset"]
    var = numbers.unknown_var(dataset)
    if not question.strip() or numbers.has_free_variable(question, var):
        return []
    out = []
    for span in numbers.spans_for(question, dataset):
        body, ask = split_question(numbers.mask(question, span, var), dataset)
        if ask:
            out.append((span, body, ask))
    return out


def _answer(seed: dict) -> str:
    answer = str(seed["answer"]).strip()
    return answer.replace(",", "") if seed["dataset"] == "gsm8k" else answer


def prompt(ask: str, answer: str, dataset: str) -> str:
    shots = "\n\n".join(f"Question: {q} Answer: {a}\nStatement: {s}" for q, a, s in _SHOTS[dataset])
    return f"{_INSTRUCTIONS[dataset]}\n\n{shots}\n\nQuestion: {ask} Answer: {answer}\nStatement:"


def rewrite_requests(seed: dict) -> list[tuple[int, str]]:
    """(variant index, prompt) for each maskable number; the index matches `parse_rewrite`."""
    if not str(seed.get("answer", "")).strip():
        return []
    answer = _answer(seed)
    return [(i, prompt(ask, answer, seed["dataset"])) for i, (_, _, ask) in enumerate(_masked_parts(seed))]


# --- parsing and checks -------------------------------------------------------------------

def _clean(text: str) -> str:
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            line = re.sub(r"^(statement|result|answer)\s*:\s*", "", line, flags=re.IGNORECASE)
            return line.strip().strip('"“”').strip()
    return ""


def _as_fraction(number: str) -> Fraction | None:
    try:
        return Fraction(number)
    except (ValueError, ZeroDivisionError):
        return None


def _contains_number(text: str, value: str) -> bool:
    target = _as_fraction(value.replace(",", ""))
    if target is None:
        return False
    found = [_as_fraction(n) for n in numbers.numbers_in(text)]
    words = {w.lower() for w in re.findall(r"[A-Za-z]+", text)}
    return target in found or any(numbers.NUMBER_WORDS.get(w) == value for w in words)


def _latex_key(s: str) -> str:
    s = re.sub(r"\\(left|right|!|,|;|:)", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("$", "")
    return re.sub(r"\s+", "", s).rstrip(".")


def _equivalent(pred: str, gold: str) -> bool:
    from metamath_ray.answers import is_equivalent  # lazy: the answers package is a sibling concern

    return is_equivalent(pred, gold)


def states_answer(statement: str, answer: str, dataset: str) -> bool:
    """Whether the statement gives `answer` (numerically for numbers, by LaTeX form otherwise)."""
    if _contains_number(statement, answer):
        return True
    if dataset == "gsm8k":
        return False
    key = _latex_key(answer)
    if key and key in _latex_key(statement):
        return True
    # "... is $\frac{3}{10}$", "$\binom{8}{2} = 28$": compare each formula and right-hand side.
    pieces = re.findall(r"\$([^$]+)\$", statement)
    pieces += [p.split("=")[-1] for p in pieces if "=" in p]
    pieces += re.findall(r"\bis\s+([^$\s][^\s]*?)\.?$", statement)
    return any(_equivalent(p.strip(), answer) for p in pieces if p.strip())


def _without_answer(statement: str, answer: str) -> str:
    """The statement with the answer's own text removed ("$\\frac{3}{8}$" holds a 3 and an 8)."""
    key = _latex_key(answer)
    statement = re.sub(r"\$([^$]+)\$", lambda m: " " if _latex_key(m.group(1)) == key else m.group(0), statement)
    return re.sub(rf"(?<![\w.]){re.escape(answer)}(?!\.?\d)", " ", statement) if answer else statement


def _gives_unknown(statement: str, ask: str, span: numbers.NumberSpan, answer: str, var: str) -> bool:
    value = re.escape(span.value)
    if re.search(rf"(?<![A-Za-z]){var}\s*(=|is|equals)\s*\$?{value}(?![\d.])", statement):
        return True
    # The masked number reappearing in the statement, other than inside the ask or the answer.
    rest = _without_answer(statement, answer)
    return _contains_number(rest, span.value) and not _contains_number(ask, span.value)


def check_statement(statement: str, ask: str, answer: str, span: numbers.NumberSpan,
                    dataset: str, question: str = "") -> Rejection | None:
    """Why the statement cannot replace `ask`, or None. `question`: the whole seed question, whose
    words (names, nouns) a good statement reuses; the asking sentence alone when not given."""
    var = numbers.unknown_var(dataset)
    if not statement:
        return Rejection("empty_rewrite")
    if "?" in statement or _QUESTION_START.match(statement) or _ANSWER_IS.search(statement):
        return Rejection("still_asks_question", statement[:200])
    if len(statement) > 3 * len(ask) + len(answer) + 80:
        return Rejection("too_long", f"{len(statement)} chars for a {len(ask)}-char question")
    unreadable = text_quality.unreadable(statement, question or ask)
    if unreadable is not None:
        return Rejection("malformed", unreadable)
    if not states_answer(statement, answer, dataset):
        return Rejection("answer_missing", statement[:200])
    if numbers.has_free_variable(ask, var) and not numbers.has_free_variable(statement, var):
        return Rejection("lost_unknown", statement[:200])
    if _gives_unknown(statement, ask, span, answer, var):
        return Rejection("gives_unknown", statement[:200])
    return None


def assemble(body: str, statement: str, dataset: str) -> str:
    tail = SUFFIX.format(var=numbers.unknown_var(dataset))
    return " ".join(part for part in (body.strip(), statement.strip(), tail) if part)


def parse_rewrite(seed: dict, text: str, variant: int) -> Variant | Rejection:
    """The SV variant for mask `variant` from the model's statement, or why it was refused."""
    parts = _masked_parts(seed)
    if not 0 <= variant < len(parts):
        return Rejection("unknown_variant", f"variant {variant} of {len(parts)}")
    span, body, ask = parts[variant]
    answer = _answer(seed)
    statement = _clean(text or "")
    if statement and statement[-1] not in ".!$":
        statement += "."
    rejection = check_statement(statement, ask, answer, span, seed["dataset"], seed["question"])
    if rejection is not None:
        return rejection
    return Variant(
        seed_id=seed["seed_id"],
        dataset=seed["dataset"],
        aug="SV",
        variant=variant,
        query=assemble(body, statement, seed["dataset"]),
        expected=span.value,
        original_question=seed["question"],
        meta={"masked_span": [span.start, span.end], "masked_text": span.surface,
              "statement": statement, "asked": ask},
    )


SVSettings = settings_with_defaults("SVSettings", "SV budget.", k=2, max_attempts=4, max_variants=3)


class SelfVerification(Augmentation):
    name = "SV"
    settings = SVSettings
    distinct_siblings = True
    needs_rewrite = True
    rewrite_stop = tuple(STOP)
    prompt_version = backward.PROMPT_VERSION

    def solve_prompt(self, variant: Variant) -> str:
        """Backward examples in SV's own form (the answer stated, then "What is the value of ... x?")."""
        return backward.solve_prompt(variant.query, variant.dataset, "sv")

    def rewrite_requests(self, seed: dict, settings) -> list[tuple[int, str]]:
        return rewrite_requests(seed)

    def parse_rewrite(self, seed: dict, text: str, variant: int) -> Variant | Rejection:
        return parse_rewrite(seed, text, variant)


AUGMENTATION = SelfVerification()
