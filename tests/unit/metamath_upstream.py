"""MetaMath's scoring code, verbatim, as the oracle for `metamath_ray.evaluate.metamath_compat`.

Copied from github.com/meta-math/MetaMath @ fe667b14f9a4c51bde9809adafb82b6b5d255800
(eval_gsm8k.py, eval_math.py, util.py), Copyright the MetaMath authors, Apache License 2.0
(http://www.apache.org/licenses/LICENSE-2.0). Only the scoring functions are kept; bodies are
unchanged except where marked "ADAPTED" (module wiring: `util.` prefix, the vllm import).

eval_gsm8k.py's `from fraction import Fraction` is the PyPI package "fraction" 2.2.0 (the latest
release since 2022-05-21, so what `pip install fraction` from MetaMath's requirements.txt gave in
2023): github.com/bradley101/fraction @ 35e8a20843d9c7d8d20db1023eeadf2f4231bbbc,
fraction/Fraction.py, Copyright (c) 2018 Shantanu Banerjee, MIT License. The methods MetaMath's
call reaches are copied verbatim below (the others are omitted).

Tests call `gsm8k_verdict` / `math_verdict`: True, False, or CRASH where the script itself raises.
"""
# ruff: noqa
import re
from math import floor
from re import match

CRASH = "crash"

# ---------------------------------------------------------------- fraction 2.2.0 (MIT), verbatim
REAL_NUM_REGEX = "^[+-]?(?:\d+\.?\d*|\d*\.\d+)$"


class Fraction:
    def __init__(self, numerator=0, denominator=1):
        def handleparams(param):
            p = None
            if isinstance(param, Fraction):
                p = param
            elif isinstance(param, int):
                p = Fraction(param)
            elif isinstance(param, str):
                p = Fraction._getfractionfromstr(param)
            elif isinstance(param, float):
                p = Fraction.fromdecimal(param)
            else:
                raise FractionException("{} is not compatible"
                                        "as a numerator or denominator"
                                        .format(param))
            return p

        x, y = None, None
        if isinstance(numerator, int):
            self.numerator = numerator
        else:
            x = handleparams(numerator)
        if isinstance(denominator, int):
            if denominator == 0:
                raise FractionException("Denominator cannot be 0")
            self.denominator = denominator
        else:
            y = handleparams(denominator)

        z = None
        if x is not None and y is not None:
            z = x / y
        elif y is not None:
            z = Fraction.reciprocal(y) * numerator
        elif x is not None:
            z = x / denominator

        if z is not None:
            self.numerator, self.denominator = z.numerator, z.denominator
        self.is_normal = False

    @staticmethod
    def _getfractionfromstr(num: str):
        f = None
        num = num.strip()
        slashcount = num.count('/')
        if slashcount > 1:
            raise FractionException("Invalid fraction")
        elif slashcount == 1:
            x, y = num.split('/')
            if [bool(match(REAL_NUM_REGEX, x1))
                    for x1 in [x, y]] == [True, True]:
                f = Fraction(x, y)
            else:
                raise FractionException(
                    "Numerator or Denominator is not a number")
        else:
            if bool(match(REAL_NUM_REGEX, num)):
                f = Fraction(float(num))
            else:
                raise FractionException("Invalid number")
        return f

    def _gcd(self, num1, num2):
        if num2 == 0:
            return num1
        return self._gcd(num2, num1 % num2)

    @staticmethod
    def reciprocal(fraction):
        return Fraction(fraction.denominator, fraction.numerator)

    @staticmethod
    def fromdecimal(num, rec=None):
        _snum = str(float(num))
        if rec is not None:
            if not isinstance(rec, str):
                raise FractionException('Recurring part should be a string')
            elif '.' in rec:
                raise FractionException(
                    'Recurring part should not contain decimal places')
            elif not str.isdigit(rec):
                raise FractionException(
                    "Recurring part should only be a number")
            elif rec not in _snum:
                raise FractionException(
                    'Recurring part not present in the number')
            elif not _snum.endswith(rec):
                raise FractionException(
                    "Number should end with the recurring part")

            _pow_tp = _snum.rfind(rec) - _snum.find('.') - 1
            _nummbpowtp = int(num * (10 ** _pow_tp))
            _nummbpowtpreclen = _nummbpowtp * (10 ** (len(rec))) + int(rec)
            return Fraction(_nummbpowtpreclen - _nummbpowtp,
                            10 ** (len(rec) + _pow_tp) - (10 ** _pow_tp))
        else:
            dec_places = len(_snum[_snum.find('.') + 1:])
            return Fraction(int(round(num * (10 ** dec_places))),
                            10 ** dec_places)

    def __mul__(self, other_fraction):
        a_n, a_d, b_n, b_d = self.numerator, self.denominator, \
            other_fraction.numerator, other_fraction.denominator
        denom_lcm = a_d * b_d
        new_numerator = a_n * b_n
        reduced_frac_gcd = self._gcd(new_numerator, denom_lcm)
        return Fraction(int(new_numerator / reduced_frac_gcd),
                        int(denom_lcm / reduced_frac_gcd))

    def __div__(self, other_fraction):
        return self.__mul__(Fraction.reciprocal(other_fraction))

    def __truediv__(self, other_fraction):
        return self.__div__(other_fraction)


class FractionException(Exception):
    def __init__(self, *args: object) -> None:
        super().__init__(*args)


# ---------------------------------------------------------------- eval_gsm8k.py L10-50, verbatim
def is_number(s):
    try:
        float(s)
        return True
    except ValueError:
        pass
    try:
        import unicodedata
        unicodedata.numeric(s)
        return True
    except (TypeError, ValueError):
        pass
    return False

def extract_answer_number(completion):
    text = completion.split('The answer is: ')
    if len(text) > 1:
        extract_ans = text[-1].strip()
        match = re.search(r'[\-+]?\d*[\.,/]?\d+', extract_ans)
        if match:
            if '/' in match.group():
                denominator = match.group().split('/')[1]
                numerator = match.group().split('/')[0]
                if is_number(denominator) == True and is_number(numerator) == True:
                    if denominator == '0':
                        return round(float(numerator.replace(',', '')))
                    else:
                        frac = Fraction(match.group().replace(',', ''))
                        num_numerator = frac.numerator
                        num_denominator = frac.denominator
                        return round(float(num_numerator / num_denominator))
                else:
                    return None
            else:
                if float(match.group().replace(',', '')) == float('inf'):
                    return None
                return round(float(match.group().replace(',', '')))
        else:
            return None
    else:
        return None


# ---------------------------------------------------------------- util.py L10-35, L95-244, verbatim
def last_boxed_only_string(string):
    idx = string.rfind("\\boxed")
    if idx < 0:
        idx = string.rfind("\\fbox")
        if idx < 0:
            return None

    i = idx
    right_brace_idx = None
    num_left_braces_open = 0
    while i < len(string):
        if string[i] == "{":
            num_left_braces_open += 1
        if string[i] == "}":
            num_left_braces_open -= 1
            if num_left_braces_open == 0:
                right_brace_idx = i
                break
        i += 1
    
    if right_brace_idx == None:
        retval = None
    else:
        retval = string[idx:right_brace_idx + 1]
    
    return retval

def fix_fracs(string):
    substrs = string.split("\\frac")
    new_str = substrs[0]
    if len(substrs) > 1:
        substrs = substrs[1:]
        for substr in substrs:
            new_str += "\\frac"
            if substr[0] == "{":
                new_str += substr
            else:
                try:
                    assert len(substr) >= 2
                except AssertionError:
                    return string
                a = substr[0]
                b = substr[1]
                if b != "{":
                    if len(substr) > 2:
                        post_substr = substr[2:]
                        new_str += "{" + a + "}{" + b + "}" + post_substr
                    else:
                        new_str += "{" + a + "}{" + b + "}"
                else:
                    if len(substr) > 2:
                        post_substr = substr[2:]
                        new_str += "{" + a + "}" + b + post_substr
                    else:
                        new_str += "{" + a + "}" + b
    string = new_str
    return string

def fix_a_slash_b(string):
    if len(string.split("/")) != 2:
        return string
    a = string.split("/")[0]
    b = string.split("/")[1]
    try:
        a = int(a)
        b = int(b)
        assert string == "{}/{}".format(a, b)
        new_string = "\\frac{" + str(a) + "}{" + str(b) + "}"
        return new_string
    except AssertionError:
        return string

def remove_right_units(string):
    # "\\text{ " only ever occurs (at least in the val set) when describing units
    if "\\text{ " in string:
        splits = string.split("\\text{ ")
        assert len(splits) == 2
        return splits[0]
    else:
        return string

def fix_sqrt(string):
    if "\\sqrt" not in string:
        return string
    splits = string.split("\\sqrt")
    new_string = splits[0]
    for split in splits[1:]:
        if split[0] != "{":
            a = split[0]
            new_substr = "\\sqrt{" + a + "}" + split[1:]
        else:
            new_substr = "\\sqrt" + split
        new_string += new_substr
    return new_string


def strip_string(string):
    # linebreaks
    string = string.replace("\n", "")

    # remove inverse spaces
    string = string.replace("\\!", "")

    # replace \\ with \
    string = string.replace("\\\\", "\\")

    # replace tfrac and dfrac with frac
    string = string.replace("tfrac", "frac")
    string = string.replace("dfrac", "frac")

    # remove \left and \right
    string = string.replace("\\left", "")
    string = string.replace("\\right", "")

    # Remove circ (degrees)
    string = string.replace("^{\\circ}", "")
    string = string.replace("^\\circ", "")

    # remove dollar signs
    string = string.replace("\\$", "")

    # remove units (on the right)
    string = remove_right_units(string)

    # remove percentage
    string = string.replace("\\%", "")
    string = string.replace("\%", "")  # noqa: W605

    # " 0." equivalent to " ." and "{0." equivalent to "{." Alternatively, add "0" if "." is the start of the string
    string = string.replace(" .", " 0.")
    string = string.replace("{.", "{0.")
    # if empty, return empty string
    if len(string) == 0:
        return string
    if string[0] == ".":
        string = "0" + string

    # to consider: get rid of e.g. "k = " or "q = " at beginning
    if len(string.split("=")) == 2:
        if len(string.split("=")[0]) <= 2:
            string = string.split("=")[1]

    # fix sqrt3 --> sqrt{3}
    string = fix_sqrt(string)

    # remove spaces
    string = string.replace(" ", "")

    # \frac1b or \frac12 --> \frac{1}{b} and \frac{1}{2}, etc. Even works with \frac1{72} (but not \frac{72}1). Also does a/b --> \\frac{a}{b}
    string = fix_fracs(string)

    # manually change 0.5 --> \frac{1}{2}
    if string == "0.5":
        string = "\\frac{1}{2}"

    # NOTE: X/Y changed to \frac{X}{Y} in dataset, but in simple cases fix in case the model output is X/Y
    string = fix_a_slash_b(string)

    return string


def is_equiv(str1, str2, verbose=False):
    if str1 is None and str2 is None:
        print("WARNING: Both None")
        return True
    if str1 is None or str2 is None:
        return False

    try:
        ss1 = strip_string(str1)
        ss2 = strip_string(str2)
        #pdb.set_trace()
        if verbose:
            print(ss1, ss2)
        return ss1 == ss2
    except Exception:
        return str1 == str2


# ---------------------------------------------------------------- eval_math.py L12-40, verbatim
class util:  # ADAPTED: eval_math.py does `import util`
    is_equiv = staticmethod(is_equiv)
    last_boxed_only_string = staticmethod(last_boxed_only_string)


invalid_outputs = []
def remove_boxed(s):
    left = "\\boxed{"
    try:
        assert s[:len(left)] == left
        assert s[-1] == "}"
        return s[len(left):-1]
    except:
        return None

def process_results(doc, completion, answer):
    split_ans = completion.split('The answer is: ')
    if len(split_ans) > 1:
        ans = split_ans[-1]
        extract_ans_temp = ans.split('.\n')[0]
        extract_ans_temp = extract_ans_temp.strip()
        if len(extract_ans_temp)>0 and extract_ans_temp[-1] == '.':
            extract_ans = extract_ans_temp[0:-1]
        else:
            extract_ans = extract_ans_temp
        extract_ans = extract_ans.strip()
        if util.is_equiv(extract_ans, answer):
            return True
        else:
            return False
    else:
        temp = {'question': doc, 'output': completion, 'answer': answer}
        # ADAPTED: invalid_outputs.append(temp) dropped so a long fuzz run does not grow a list
        return False


# ---------------------------------------------------------------- the scripts' per-response verdicts
def gsm8k_verdict(completion, prompt_answer):
    """eval_gsm8k.py L110-115: True/False, or CRASH where extract_answer_number raises."""
    try:
        y_pred = extract_answer_number(completion)
    except Exception:
        return CRASH
    if y_pred != None:
        return float(y_pred) == float(prompt_answer)
    return False


def math_gold(solution):
    """eval_math.py L67-68."""
    return remove_boxed(util.last_boxed_only_string(solution))


def math_verdict(completion, answer):
    """eval_math.py L95: process_results (never raises per response)."""
    try:
        return process_results("", completion, answer)
    except Exception:
        return CRASH
