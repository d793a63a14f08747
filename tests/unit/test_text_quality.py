"""augment.text_quality: a rewrite must read as text (issue 16 item 0), for Rephrasing and SV alike.

Good rewrites are written by hand in the register of GSM8K / MATH rephrasings; the gibberish is
what the random `tiny` model (byte-level BPE trained on the bundled seeds) writes.
"""

import json
import os
from pathlib import Path

import pytest

from metamath_ray.augment import rephrase, sv
from metamath_ray.augment.base import Rejection, Variant
from metamath_ray.augment.text_quality import unreadable, unreadable_question, unreadable_reasoning

DATA = Path(os.environ.get("METAMATH_SHARED_DATA", "/work/shared/data"))

NATALIA = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
           "How many clips did Natalia sell altogether in April and May?")
WENG = "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?"
JULIE = ("Julie is reading a 120-page book. Yesterday, she was able to read 12 pages and today, she read twice as "
         "many pages as yesterday. If she wants to read half of the remaining pages tomorrow, how many pages "
         "should she read?")
FRACTIONS = ("If $\\displaystyle\\frac{m}{n} = 15$, $\\displaystyle\\frac{p}{n} = 3$, and $\\displaystyle "
             "\\frac{p}{q} = \\frac{1}{10}$, then what is $\\displaystyle\\frac{m}{q}$?")
PARTIAL = ("Find $A$ and $B$ such that\n\\[\\frac{3x+5}{x^2-x-42}=\\frac{A}{x-7}+\\frac{B}{x+6}.\\]"
           "Write your answer in the form $(A,B)$.")
BALLS = "How many ways are there to put 5 balls in 2 boxes if the balls are not distinguishable but the boxes are?"

GOOD_REPHRASINGS = [
    (NATALIA, "In April Natalia sold clips to 48 friends, and in May she sold half as many. "
              "What is the total number of clips she sold over the two months?"),
    (NATALIA, "Natalia sold 48 clips in April and half that number in May; how many clips did she sell in all?"),
    (WENG, "Weng is paid $12 per hour to babysit. If she babysat for 50 minutes yesterday, how much money did she make?"),
    (JULIE, "Julie has a book of 120 pages. She read 12 pages yesterday and twice that many today. "
            "Tomorrow she plans to read half of the pages that are left. How many pages will she read tomorrow?"),
    (FRACTIONS, "Given $\\frac{m}{n} = 15$, $\\frac{p}{n} = 3$ and $\\frac{p}{q} = \\frac{1}{10}$, "
                "find the value of $\\frac{m}{q}$."),
    (PARTIAL, "Determine the constants $A$ and $B$ for which "
              "\\[\\frac{3x+5}{x^2-x-42}=\\frac{A}{x-7}+\\frac{B}{x+6}.\\] Give the answer as $(A,B)$."),
    (BALLS, "In how many ways can 5 indistinguishable balls be placed into 2 distinguishable boxes?"),
]

GOOD_STATEMENTS = [
    (WENG, "She earned $10."),
    (NATALIA, "Natalia sold 72 clips altogether in April and May."),
    (JULIE, "She should read 42 pages."),
    (FRACTIONS, "The value of $\\displaystyle\\frac{m}{q}$ is $\\frac{1}{2}$."),
    (BALLS, "There are 6 ways to put the balls in the boxes."),
    (PARTIAL, "$(A,B) = (2,1)$."),
]

# Completions of the random `tiny` model (its rewrite pass on these seeds) and of the same
# tokenizer sampled uniformly: subword soup with numbers glued into pieces, control bytes.
GIBBERISH = [
    "row13 disindraw whe perimeter 100 ook will",
    "than discountip find only 227ru there",
    "musalig havealignng S can $\\ 25",
    "ause}$.11 birds betweenMarateipRo",
    "ThereamravelHerow he bluebirds /",
    "24ab itemsrger decisringPreIt cards",
    "Thool springwoJ s swallIf000 were227 divtermediateen pri 8ly 0 basil column",
    "of` perimeter227 butter13/\ufffdeterauseook 17label digitangesirds",
    "\ufffdit\x00\x05 pairs\x03Bifravel con ofulg| brotherod",
    "bandows shrad toithansach",
    "ur makesial formbertcomainokuntuteur",
    "cook pairs least then total eaten gravel spends basil played",
]


@pytest.mark.parametrize("seed, rewrite", GOOD_REPHRASINGS)
def test_real_rephrasings_read_as_questions(seed, rewrite):
    assert unreadable_question(rewrite, seed) is None


@pytest.mark.parametrize("seed, statement", GOOD_STATEMENTS)
def test_real_statements_read_as_text(seed, statement):
    assert unreadable(statement, seed) is None


@pytest.mark.parametrize("text", GIBBERISH)
@pytest.mark.parametrize("seed", [NATALIA, WENG, FRACTIONS])
def test_random_model_gibberish_does_not(text, seed):
    assert unreadable(text, seed) is not None
    assert unreadable_question(text, seed) is not None


def test_a_statement_that_asks_nothing_is_not_a_rephrasing():
    assert unreadable_question("Natalia sold 48 clips in April and half as many in May.", NATALIA)
    assert unreadable_question("Compute $2+2$.", "$2+2$") is None  # the seed asks nothing either


def test_rewrite_unrelated_to_its_seed_is_refused():
    why = unreadable_question("How many pages of the book will Julie read tomorrow if she reads twice as many?", WENG)
    assert why and "content words" in why


def test_seed_words_and_its_figure_are_not_held_against_the_rewrite():
    seed = "Zorblax has 5 quibbits [asy]draw((0,0)--path3);[/asy] How many quibbits are left?"
    assert unreadable_question("How many quibbits does Zorblax have left? [asy]draw((0,0)--path3);[/asy]", seed) is None


def test_rephrasing_and_sv_refuse_gibberish_as_malformed():
    seed = {"seed_id": "gsm8k/train/0", "dataset": "gsm8k", "answer": "72", "question": NATALIA}
    out = rephrase.parse_rewrite(seed, " " + GIBBERISH[0], 0)
    assert isinstance(out, Rejection) and out.reason == "malformed", out
    assert isinstance(rephrase.parse_rewrite(seed, " " + GOOD_REPHRASINGS[0][1], 0), Variant)
    statement = sv.parse_rewrite(seed, " Natalia sold 72 clips altogether in April and May.", 0)
    assert isinstance(statement, Variant), statement
    soup = sv.parse_rewrite(seed, " ook disindraw 72 wheperimeter clipsbro whe", 0)
    assert isinstance(soup, Rejection) and soup.reason == "malformed", soup


SOUP_REASONING = [
    "ThereidThe gravelve nowcils disindraw termediate whe ook swallIf anut palind 100",
    "Thool springwoJ s swallIf000 were227 divtermediateen pri 8ly 0 basil column",
    "perimeter\ufffd\ufffd 100 ook",
]


@pytest.mark.parametrize("text", SOUP_REASONING)
def test_random_model_reasoning_is_not_text(text):
    assert unreadable_reasoning(text) is not None


@pytest.mark.skipif(not (DATA / "math" / "test.jsonl").exists(), reason="shared data not available")
def test_gold_solutions_read_as_reasoning():
    # held out (the word list comes from the training splits); 2 of 6,319 fall below the share:
    # "Ruins:220(.40)=88 Unmanned:88/2=44 castles" and one more terse GSM8K solution
    rows = [json.loads(line) for line in (DATA / "gsm8k" / "test.jsonl").open()]
    texts = [r["answer"].split("####")[0] for r in rows]
    texts += [json.loads(line)["solution"] for line in (DATA / "math" / "test.jsonl").open()]
    refused = [t[:60] for t in texts if unreadable_reasoning(t)]
    assert len(refused) <= 2, refused
