"""Few-shot prompts for solving backward questions (FOBAR and SV) for the unknown x.

A forward prompt shows the teacher how to answer a question; a backward question gives the answer
and asks for a number of the question, so MetaMath solved FOBAR and SV questions with their own
examples whose solutions end "The value of x is N.". These are ours: each is a GSM8K / MATH
*training* row with one of its numbers masked (the same masks `fobar` and `sv` make), the equation
its solution sets up, and a chain of thought that solves it. Every solution ends with
"The value of x is N." and MetaMathQA's "The answer is: N" line, exactly the response an accepted
candidate is exported as (`cot.judge` keeps the "The value of x is N." line and appends the answer
line), so the teacher sees the format it must produce. `tests/unit/test_backward_prompts.py`
re-solves every equation, checks the arithmetic and that each question is a backward question of
its source row.

GSM8K questions are solved with GSM8K examples and MATH ones with MATH examples; the few-shot
prefix is fixed per (form, dataset), so vLLM's prefix cache serves it once.
"""

from __future__ import annotations

from dataclasses import dataclass

PROMPT_VERSION = "backward-v1"
FORMS = ("fobar", "sv")


@dataclass(frozen=True)
class BackwardExample:
    """One worked backward question and where it comes from."""

    source: str  # the training row: "gsm8k/train.jsonl#<0-based line>" or MATH's unique_id
    original_question: str  # that row's question, verbatim
    original_answer: str  # its gold answer
    question: str  # the backward question (FOBAR or SV form) with one number masked
    x: str  # the masked number: the value the solution must find
    equation: str  # what the solution solves, in sympy syntax with the unknown written `x`
    solution: str  # the chain of thought, ending "The value of x is N.\nThe answer is: N"


_FOBAR_TAIL = "If we know the answer to the above question is {answer}, what is the value of unknown variable {var}?"

GSM8K_FOBAR = [
    BackwardExample(
        source="gsm8k/train.jsonl#5438",
        original_question="Elena has 8 lilies and 5 tulips in her garden. Each lily has 6 petals. Each tulip has 3 "
                          "petals. How many flower petals are in Elena’s garden?",
        original_answer="63",
        question="Elena has 8 lilies and 5 tulips in her garden. Each lily has x petals. Each tulip has 3 petals. "
                 "How many flower petals are in Elena’s garden?\n" + _FOBAR_TAIL.format(answer="63", var="x"),
        x="6",
        equation="8*x + 5*3 = 63",
        solution="The 8 lilies have x petals each, so together they have 8x petals.\n"
                 "The 5 tulips have 3 petals each, so together they have 5 * 3 = 15 petals.\n"
                 "The garden has 8x + 15 petals in all.\n"
                 "We know the garden has 63 petals, so 8x + 15 = 63.\n"
                 "Subtracting 15 from both sides gives 8x = 63 - 15 = 48.\n"
                 "Dividing both sides by 8 gives x = 48 / 8 = 6.\n"
                 "The value of x is 6.\n"
                 "The answer is: 6",
    ),
    BackwardExample(
        source="gsm8k/train.jsonl#218",
        original_question="Ravi has some coins. He has 2 more quarters than nickels and 4 more dimes than quarters. "
                          "If he has 6 nickels, how much money does he have?",
        original_answer="350",
        question="Ravi has some coins. He has 2 more quarters than nickels and 4 more dimes than quarters. "
                 "If he has x nickels, how much money does he have?\n" + _FOBAR_TAIL.format(answer="350", var="x"),
        x="6",
        equation="5*x + 25*(x + 2) + 10*(x + 2 + 4) = 350",
        solution="Ravi has x nickels, x + 2 quarters and (x + 2) + 4 = x + 6 dimes.\n"
                 "Counted in cents, the nickels are worth 5x, the quarters 25(x + 2) = 25x + 50 "
                 "and the dimes 10(x + 6) = 10x + 60.\n"
                 "Altogether he has 5x + 25x + 50 + 10x + 60 = 40x + 110 cents.\n"
                 "We know he has 350 cents, so 40x + 110 = 350.\n"
                 "Subtracting 110 from both sides gives 40x = 350 - 110 = 240.\n"
                 "Dividing both sides by 40 gives x = 240 / 40 = 6.\n"
                 "The value of x is 6.\n"
                 "The answer is: 6",
    ),
    BackwardExample(
        source="gsm8k/train.jsonl#3926",
        original_question="Fred had 212 sheets of paper. He received another 307 sheets of paper from Jane and gave "
                          "Charles 156 sheets of paper. How many sheets of paper does Fred have left?",
        original_answer="363",
        question="Fred had 212 sheets of paper. He received another x sheets of paper from Jane and gave Charles "
                 "156 sheets of paper. How many sheets of paper does Fred have left?\n"
                 + _FOBAR_TAIL.format(answer="363", var="x"),
        x="307",
        equation="212 + x - 156 = 363",
        solution="Fred starts with 212 sheets, receives x sheets and gives away 156 sheets.\n"
                 "He is left with 212 + x - 156 = x + 56 sheets.\n"
                 "We know he has 363 sheets left, so x + 56 = 363.\n"
                 "Subtracting 56 from both sides gives x = 363 - 56 = 307.\n"
                 "The value of x is 307.\n"
                 "The answer is: 307",
    ),
    BackwardExample(
        source="gsm8k/train.jsonl#2214",
        original_question="Matt did his homework for 150 minutes. He spent 30% of that time on math and 40% on "
                          "science. He spent the remaining time on other subjects. How much time did Matt spend on "
                          "homework in other subjects?",
        original_answer="45",
        question="Matt did his homework for x minutes. He spent 30% of that time on math and 40% on science. "
                 "He spent the remaining time on other subjects. How much time did Matt spend on homework in "
                 "other subjects?\n" + _FOBAR_TAIL.format(answer="45", var="x"),
        x="150",
        equation="x*(100 - 30 - 40)/100 = 45",
        solution="Math and science take 30% + 40% = 70% of his time, so other subjects take "
                 "100% - 70% = 30% of it.\n"
                 "He worked for x minutes, so other subjects took 0.3x minutes.\n"
                 "We know other subjects took 45 minutes, so 0.3x = 45.\n"
                 "Dividing both sides by 0.3 gives x = 45 / 0.3 = 150.\n"
                 "The value of x is 150.\n"
                 "The answer is: 150",
    ),
]

GSM8K_SV = [
    BackwardExample(
        source="gsm8k/train.jsonl#7007",
        original_question="Jade is building a lego tower. She has 100 pieces. Each level has to be 7 pieces wide. "
                          "If she has 23 pieces left at the end, how many levels is her tower?",
        original_answer="11",
        question="Jade is building a lego tower. She has 100 pieces. Each level has to be x pieces wide. "
                 "If she has 23 pieces left at the end, her tower is 11 levels tall. "
                 "What is the value of unknown variable x?",
        x="7",
        equation="(100 - 23)/x = 11",
        solution="Jade has 100 pieces and 23 are left over, so the tower uses 100 - 23 = 77 pieces.\n"
                 "Each level uses x pieces, so the tower has 77 / x levels.\n"
                 "The tower is 11 levels tall, so 77 / x = 11.\n"
                 "Multiplying both sides by x gives 11x = 77, and dividing by 11 gives x = 77 / 11 = 7.\n"
                 "The value of x is 7.\n"
                 "The answer is: 7",
    ),
    BackwardExample(
        source="gsm8k/train.jsonl#3357",
        original_question="James buys 100 tennis balls and gives half of them away.  The other half he puts into "
                          "5 large containers.  How many tennis balls go in each container?",
        original_answer="10",
        question="James buys 100 tennis balls and gives half of them away.  The other half he puts into x large "
                 "containers. 10 tennis balls go in each container. What is the value of unknown variable x?",
        x="5",
        equation="(100/2)/x = 10",
        solution="James keeps half of the 100 tennis balls, which is 100 / 2 = 50 balls.\n"
                 "He shares these 50 balls among x containers, so each container gets 50 / x balls.\n"
                 "Each container gets 10 balls, so 50 / x = 10.\n"
                 "Multiplying both sides by x gives 10x = 50, so x = 50 / 10 = 5.\n"
                 "The value of x is 5.\n"
                 "The answer is: 5",
    ),
    BackwardExample(
        source="gsm8k/train.jsonl#2779",
        original_question="Olaf is playing a game with his dad. He scored three times more points than his dad, who "
                          "scored 7 points. How many points did they score in total?",
        original_answer="28",
        question="Olaf is playing a game with his dad. He scored three times more points than his dad, who scored "
                 "x points. They scored 28 points in total. What is the value of unknown variable x?",
        x="7",
        equation="3*x + x = 28",
        solution="His dad scored x points and Olaf scored three times as many, which is 3x points.\n"
                 "Together they scored x + 3x = 4x points.\n"
                 "They scored 28 points in total, so 4x = 28.\n"
                 "Dividing both sides by 4 gives x = 28 / 4 = 7.\n"
                 "The value of x is 7.\n"
                 "The answer is: 7",
    ),
    BackwardExample(
        source="gsm8k/train.jsonl#4409",
        original_question="A supermarket receives a delivery of 15 cases of tins of beans. Each case contains 24 "
                          "tins. If 5% of the tins are damaged and thrown away, how many tins of beans are left?",
        original_answer="342",
        question="A supermarket receives a delivery of 15 cases of tins of beans. Each case contains x tins. "
                 "If 5% of the tins are damaged and thrown away, 342 tins of beans are left. "
                 "What is the value of unknown variable x?",
        x="24",
        equation="15*x*(100 - 5)/100 = 342",
        solution="The 15 cases hold 15x tins.\n"
                 "When 5% are thrown away, 100% - 5% = 95% of them are left, which is 0.95 * 15x = 14.25x tins.\n"
                 "We know 342 tins are left, so 14.25x = 342.\n"
                 "Dividing both sides by 14.25 gives x = 342 / 14.25 = 24.\n"
                 "The value of x is 24.\n"
                 "The answer is: 24",
    ),
]

MATH_FOBAR = [
    BackwardExample(
        source="train/algebra/216.json",
        original_question="Let $a\\oplus b=3a+4b$ for all real numbers $a$ and $b$.  Find $3\\oplus 1$.",
        original_answer="13",
        question="Let $a\\oplus b=3a+4b$ for all real numbers $a$ and $b$.  Find $3\\oplus X$.\n"
                 + _FOBAR_TAIL.format(answer="13", var="X"),
        x="1",
        equation="3*3 + 4*x = 13",
        solution="By the definition, $3\\oplus X = 3 \\cdot 3 + 4X = 9 + 4X$.\n"
                 "We know this equals 13, so $9 + 4X = 13$.\n"
                 "Subtracting 9 from both sides gives $4X = 4$, so $X = 1$.\n"
                 "The value of X is 1.\n"
                 "The answer is: 1",
    ),
    BackwardExample(
        source="train/prealgebra/1964.json",
        original_question="The average age of the three Wilson children is 7 years. If the two younger children are "
                          "4 years old and 7 years old, how many years old is the oldest child?",
        original_answer="10",
        question="The average age of the three Wilson children is X years. If the two younger children are 4 years "
                 "old and 7 years old, how many years old is the oldest child?\n"
                 + _FOBAR_TAIL.format(answer="10", var="X"),
        x="7",
        equation="(4 + 7 + 10)/3 = x",
        solution="The average age of the three children is X, so their ages add up to $3X$ years.\n"
                 "The oldest child is 10 years old, so the three ages are 4, 7 and 10, and "
                 "$3X = 4 + 7 + 10 = 21$.\n"
                 "Dividing both sides by 3 gives $X = \\frac{21}{3} = 7$.\n"
                 "The value of X is 7.\n"
                 "The answer is: 7",
    ),
    BackwardExample(
        source="train/counting_and_probability/541.json",
        original_question="Compute $\\dbinom{9}{2}\\times \\dbinom{7}{2}$.",
        original_answer="756",
        question="Compute $\\dbinom{X}{2}\\times \\dbinom{7}{2}$.\n" + _FOBAR_TAIL.format(answer="756", var="X"),
        x="9",
        equation="x*(x - 1)/2 * (7*6/2) = 756",
        solution="First, $\\dbinom{7}{2} = \\frac{7 \\cdot 6}{2} = 21$.\n"
                 "So $\\dbinom{X}{2} \\times 21 = 756$, which gives $\\dbinom{X}{2} = \\frac{756}{21} = 36$.\n"
                 "Since $\\dbinom{X}{2} = \\frac{X(X-1)}{2}$, we need $X(X-1) = 72$, that is $X^2 - X - 72 = 0$.\n"
                 "This factors as $(X-9)(X+8) = 0$. $X$ counts the items we choose from, so it is not negative, "
                 "and $X = 9$.\n"
                 "The value of X is 9.\n"
                 "The answer is: 9",
    ),
]

MATH_SV = [
    BackwardExample(
        source="train/prealgebra/1038.json",
        original_question="The number of white balls and red balls in a jar is in the ratio of $3:2$. If there are "
                          "9 white balls, how many red balls are there?",
        original_answer="6",
        question="The number of white balls and red balls in a jar is in the ratio of $3:2$. If there are X white "
                 "balls, there are 6 red balls. What is the value of unknown variable X?",
        x="9",
        equation="x*2/3 = 6",
        solution="The ratio of white balls to red balls is $3:2$, so there are $\\frac{2}{3}$ as many red balls "
                 "as white balls.\n"
                 "With X white balls there are $\\frac{2}{3}X$ red balls, and there are 6, so $\\frac{2}{3}X = 6$.\n"
                 "Multiplying both sides by $\\frac{3}{2}$ gives $X = 6 \\cdot \\frac{3}{2} = 9$.\n"
                 "The value of X is 9.\n"
                 "The answer is: 9",
    ),
    BackwardExample(
        source="train/algebra/1385.json",
        original_question="The operation $\\odot$ is defined as $a \\odot b = a + \\frac{3a}{2b}$. What is the value "
                          "of $8 \\odot 6$?",
        original_answer="10",
        question="The operation $\\odot$ is defined as $a \\odot b = a + \\frac{3a}{2b}$. The value of "
                 "$8 \\odot X$ is 10. What is the value of unknown variable X?",
        x="6",
        equation="8 + 3*8/(2*x) = 10",
        solution="By the definition, $8 \\odot X = 8 + \\frac{3 \\cdot 8}{2X} = 8 + \\frac{12}{X}$.\n"
                 "We know this equals 10, so $8 + \\frac{12}{X} = 10$, which gives $\\frac{12}{X} = 2$.\n"
                 "Multiplying both sides by $X$ gives $2X = 12$, so $X = 6$.\n"
                 "The value of X is 6.\n"
                 "The answer is: 6",
    ),
    BackwardExample(
        source="train/counting_and_probability/255.json",
        original_question="Our club has 20 members, 10 boys and 10 girls.  In how many ways can we choose a "
                          "president and a vice-president if they must be of different gender?",
        original_answer="200",
        question="Our club has 20 members, X boys and 10 girls. We can choose a president and a vice-president of "
                 "different gender in 200 ways. What is the value of unknown variable X?",
        x="10",
        equation="x*10 + 10*x = 200",
        solution="If the president is a boy and the vice-president a girl, there are $X \\cdot 10 = 10X$ choices; "
                 "if the president is a girl and the vice-president a boy, there are another $10X$.\n"
                 "In total there are $10X + 10X = 20X$ ways.\n"
                 "We know there are 200 ways, so $20X = 200$ and $X = \\frac{200}{20} = 10$.\n"
                 "The value of X is 10.\n"
                 "The answer is: 10",
    ),
]

EXAMPLES: dict[tuple[str, str], list[BackwardExample]] = {
    ("fobar", "gsm8k"): GSM8K_FOBAR,
    ("sv", "gsm8k"): GSM8K_SV,
    ("fobar", "math"): MATH_FOBAR,
    ("sv", "math"): MATH_SV,
}

_INSTRUCTIONS = {
    "fobar": "Each question below hides one of its numbers as the unknown variable {var} and then gives the answer "
             "to the question. Work backward step by step to find {var}.",
    "sv": "Each question below states its result and hides one of the numbers it starts from as the unknown "
          "variable {var}. Solve for {var} step by step.",
}
_FORMAT = 'End every solution with "The value of {var} is <number>." and then a line "The answer is: <number>".'


def _few_shot_prefix(form: str, dataset: str) -> str:
    var = "x" if dataset == "gsm8k" else "X"
    header = _INSTRUCTIONS[form].format(var=var) + " " + _FORMAT.format(var=var)
    blocks = [f"Question: {e.question}\nAnswer: {e.solution}" for e in EXAMPLES[(form, dataset)]]
    return header + "\n\n" + "\n\n".join(blocks) + "\n\n"


_PREFIXES = {key: _few_shot_prefix(*key) for key in EXAMPLES}


def solve_prompt(query: str, dataset: str, form: str) -> str:
    """The backward few-shot prompt of `form` (fobar | sv) for a question of `dataset`; the layout is
    the forward prompt's (`cot.solve_prompt`), so the same stop strings end a solution."""
    if (form, dataset) not in _PREFIXES:
        raise ValueError(f"no backward prompt for form {form!r} and dataset {dataset!r}")
    return f"{_PREFIXES[(form, dataset)]}Question: {query.strip()}\nAnswer:"
