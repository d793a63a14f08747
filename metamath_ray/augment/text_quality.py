"""Does a rewrite (or a chain of thought) read as text? The one check Rephrasing, SV and the
chain-of-thought judge share.

A random or broken model's rewrite is subword soup ("rowhe perimeter 13ook will disindraw"): it
passes every check about numbers and answers, then becomes an exported question. A rewrite reads
as text when it is printable, holds no number glued into a word, most of its words are words
(the ~10,000 words of GSM8K and MATH, see `answers.wellformed`, or words of its own seed), and
it shares content with the seed it rewrites. Otherwise the augmentation refuses it as
`Rejection("malformed", why)`, recorded as `rewrite_malformed`.

`unreadable_reasoning` is the looser form for a chain of thought: it introduces new words and
numbers and the judge does not see its question, so only characters and the share of words count
(`cot.judge` refuses the rest as `malformed_response`).

Pure and bounded: one regex scan of a text whose length the callers have already capped.
"""

from __future__ import annotations

import re

from metamath_ray.answers.wellformed import has_unprintable, name_like as _name_like, scan_tokens

# Share of a rewrite's words that must be words; real rewrites (tests/unit/test_text_quality.py)
# score 0.9-1.0 and a random model's soup 0.3-0.6.
MIN_KNOWN_SHARE = 0.8
# The same for a chain of thought, which the judge sees without its question (so names count as
# words): GSM8K/MATH test solutions score >= 0.6 but for 2 of 6,319; 64 tokens of soup 0.41 (median).
MIN_REASONING_KNOWN_SHARE = 0.6
MIN_REASONING_WORDS = 5  # "Ruins:220(.40)=88" is a real GSM8K solution with one word
# Share of its content words a rewrite must take from its seed: a paraphrase keeps the names and
# nouns (real ones keep 0.4-1.0), soup picks words from everywhere.
MIN_SEED_SHARE = 0.3
# Below this many content words and numbers the seed share says nothing: "The value of $X$ is 5." has one,
# which its seed may lack. (A text without words, "$\binom{X}{2} = 28$.", is judged on its characters.)
MIN_CONTENT_TO_JUDGE = 3

_WORD = re.compile(r"[A-Za-z]{2,}")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ASY = re.compile(r"\[asy\].*?\[/asy\]", re.S)
_ASKING_WORD = re.compile(
    r"\b(what|how|which|who|whom|whose|when|where|why|find|compute|calculate|determine|evaluate|"
    r"simplify|solve|express|factor|give|write|list|enter|round|convert|rationalize|expand|"
    r"estimate|show|prove|identify|count)\b", re.IGNORECASE)
# Words that carry no content: sharing them with the seed shows nothing.
_FUNCTION_WORDS = frozenset(
    "the a an of to in on at by for with and or but if then than that this these those is are was "
    "were be been being has have had do does did will would can could should may might must it its "
    "he she they we you i his her their our your him them us me what which who whom whose how when "
    "where why there here as so not no all each every any some many much more most less few from "
    "into out up down over after before about per one two three".split()
)


def seed_words(text: str) -> frozenset[str]:
    """The lower-cased words of a seed question (names, rare nouns count as words in a rewrite)."""
    return frozenset(w.lower() for w in _WORD.findall(text))


def _content(words: list[str]) -> list[str]:
    return [w for w in (x.lower() for x in words) if w not in _FUNCTION_WORDS]


def unreadable(rewrite: str, seed_question: str) -> str | None:
    """Why `rewrite` does not read as a rewrite of `seed_question`, or None when it does."""
    if has_unprintable(rewrite):
        return "control or non-printable characters"
    own = seed_words(seed_question)
    scan = scan_tokens(_ASY.sub(" ", rewrite), own)  # a figure's code is checked by lost_figure
    glued = [t for t in scan.glued if t not in seed_question]
    if glued:
        return f"number inside a word: {' '.join(glued[:3])}"
    if len(scan.known) < MIN_KNOWN_SHARE * scan.words:
        return f"{len(scan.unknown)} of {scan.words} words are not words: {' '.join(scan.unknown[:5])}"
    # content: the words and numbers that say what the problem is about (MATH's are in formulas)
    content = _content(scan.known) + _NUMBER.findall(rewrite)
    own_numbers = set(_NUMBER.findall(seed_question))
    shared = [w for w in content if w in own or w in own_numbers]
    if len(content) >= MIN_CONTENT_TO_JUDGE and len(shared) < MIN_SEED_SHARE * len(content):
        return f"shares {len(shared)} of {len(content)} content words and numbers with its seed"
    return None


def unreadable_question(rewrite: str, seed_question: str) -> str | None:
    """`unreadable`, for a rewrite that must still be a question (Rephrasing): when the seed asks
    something (a "?" or an asking word), the rewrite must ask too."""
    why = unreadable(rewrite, seed_question)
    if why is None and _asks(seed_question) and not _asks(rewrite):
        return "asks nothing: no question mark and no asking word"
    return why


def _asks(text: str) -> bool:
    return "?" in text or bool(_ASKING_WORD.search(text))


def unreadable_reasoning(text: str) -> str | None:
    """Why a chain of thought is not text (control bytes, mostly non-words), or None."""
    if has_unprintable(text):
        return "control or non-printable characters"
    scan = scan_tokens(_ASY.sub(" ", text))
    unknown = [w for w in scan.unknown if not _name_like(w)]
    words = len(scan.known) + len(unknown)
    if words >= MIN_REASONING_WORDS and len(scan.known) < MIN_REASONING_KNOWN_SHARE * words:
        return f"{len(unknown)} of {words} words are not words: {' '.join(unknown[:5])}"
    return None
