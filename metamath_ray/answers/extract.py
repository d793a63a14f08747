"""Final-answer extraction from model responses and dataset solutions.

Order of precedence in `extract_answer` (the first that matches wins; each takes its last
occurrence in the text):
1. MetaMath's own "The answer is: X" / "The answer is X" (what fine-tuned models emit);
2. Minerva's "Final Answer: The final answer is X. I hope it is correct.";
3. the last `\\boxed{}` / `\\fbox{}` (nested braces, `\\boxed 5`);
4. GSM8K's `#### N`;
5. "The value of (unknown variable) x is N" (FOBAR / SV responses);
6. the last number in the text, a fallback for short answers only (see `_last_number`).
"""

from __future__ import annotations

import re

from .latex import boxed_contents

MAX_RESPONSE_CHARS = 200_000  # longer inputs are cut to their tail: the answer is at the end

_ANSWER_IS = re.compile(r"[Tt]he (?:final )?answer is\s*:?\s*", re.S)
_MINERVA = re.compile(r"Final Answer:\s*The final answer is\s*(.*?)\.?\s*I hope it is correct", re.S)
_GSM8K = re.compile(r"####\s*(.+)")
_VALUE_OF = re.compile(
    r"[Tt]he value of (?:the )?(?:unknown )?(?:variable )?\$?\\?[A-Za-z](?:_\{?\w+\}?)?\$? is\s*:?\s*"
)
_HOPE_MARK = "I hope it is correct"
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def extract_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` or `\\fbox{...}` in text (nested braces, `\\boxed 5`)."""
    if not isinstance(text, str):
        return None
    found = boxed_contents(text[-MAX_RESPONSE_CHARS:])
    return found[-1].strip() if found else None


def extract_gsm8k_gold(solution: str) -> str | None:
    """The GSM8K gold: the text after the last `####`, thousands commas removed."""
    if not isinstance(solution, str):
        return None
    matches = _GSM8K.findall(solution)
    if not matches:
        return None
    answer = matches[-1].strip().replace(",", "")
    return answer or None


def clean_extracted(answer: str) -> str:
    """Trim what surrounds an answer in prose: `$`, markdown bold, a trailing period."""
    s = answer.strip().replace("**", "").strip()
    hope = s.find(_HOPE_MARK)  # = _HOPE.sub("", s), without its quadratic backtracking on long blanks
    if hope >= 0:
        s = s[:hope].rstrip()
        s = s[:-1] if s.endswith(".") else s
    for _ in range(3):
        s = s.rstrip(" .。!;:")
        if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
            s = s.strip("$").strip()
        elif s.startswith(("\\(", "\\[")) and s.endswith(("\\)", "\\]")):
            s = s[2:-2].strip()
        if s.startswith(("\\boxed", "\\fbox")):
            boxed = boxed_contents(s)
            if boxed:
                s = boxed[0].strip()
    return s


def _after_last(pattern: re.Pattern, text: str) -> str | None:
    last = None
    for m in pattern.finditer(text):
        last = m
    if last is None:
        return None
    tail = text[last.end() :]
    line = tail.split("\n\n", 1)[0].strip()
    if "\n" in line and not line.lstrip().startswith(("\\[", "$$", "\\begin")):
        line = line.split("\n", 1)[0]
    return line or None


def _last_number(text: str) -> str | None:
    # Only for short texts: in a long chain of thought the last number is often not the answer.
    if len(text) > 400:
        return None
    nums = _NUMBER.findall(text)
    return nums[-1].rstrip(",") if nums else None


def _last_start(pattern: re.Pattern, text: str) -> int:
    last = -1
    for m in pattern.finditer(text):
        last = m.start()
    return last


_BOX_START = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_CALCULATOR = re.compile(r"<<[^<>]*>>")


def extract_answer(text: str) -> str | None:
    """The final answer of a response (see the module docstring); None if none.

    When several markers occur, the one that comes last in the text wins, so "The answer
    is 8" inside a chain of thought does not shadow a later `#### 9`; at equal footing the
    module docstring's order holds.
    """
    if not isinstance(text, str) or not text.strip():
        return None
    text = _CALCULATOR.sub("", text[-MAX_RESPONSE_CHARS:])
    # Minerva's lazy match scans to the end from every "Final Answer:" that has no "I hope it is
    # correct" after it (quadratic on hostile text): search only up to the last one.
    hope = text.rfind(_HOPE_MARK)
    minerva_text = text[: hope + len(_HOPE_MARK)] if hope >= 0 else ""
    markers = [
        (_last_start(_ANSWER_IS, text), 4, "answer_is"),
        (_last_start(_MINERVA, minerva_text), 3, "minerva"),
        (_last_start(_BOX_START, text), 2, "boxed"),
        (_last_start(_GSM8K, text), 1, "gsm8k"),
    ]
    position, _, kind = max(markers)
    if position >= 0:
        if kind == "answer_is":
            found = _after_last(_ANSWER_IS, text)
        elif kind == "minerva":
            found = _MINERVA.findall(minerva_text)[-1]
        elif kind == "boxed":
            return extract_boxed(text)
        else:
            found = extract_gsm8k_gold(text)
        if found and clean_extracted(found):
            return clean_extracted(found)
    value = _after_last(_VALUE_OF, text)
    if value:
        return clean_extracted(value) or None
    return _last_number(text)
