"""The one small protocol every augmentation implements; the augment stage knows nothing else.

An augmentation turns a seed into question variants with a known expected answer, either directly
(`variants`: AnsAug, FOBAR, PoT) or through an LLM rewrite (`rewrite_requests` + `parse_rewrite`:
Rephrasing, SV). Every variant is then solved by sampled responses (`solve_prompt`, stopped at
`solve_stop`) and each response is checked by `judge`. Budgets come from its `settings` class,
which becomes the config section `aug.<name>`. Pure text logic: no Ray, engines or torch.

Adding an augmentation is one module defining a subclass plus one line in `augment/registry.py`.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, create_model

from metamath_ray.augment import cot
from metamath_ray.augment.base import Rejection, Variant, Verdict


class AugSettings(BaseModel):
    """Budget of one augmentation (`aug.<name>` in the augment config)."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(4, ge=1, description="accepted chains of thought wanted per question variant")
    max_attempts: int = Field(
        8, ge=1, description="chains of thought sampled per variant at most (adaptive mode keeps sampling "
        "until k accepted or this is spent)"
    )
    max_variants: int | None = Field(
        None, ge=1, description="question variants per seed at most (FOBAR masks, SV masks, rephrasings)"
    )
    rewrites: int = Field(1, ge=1, description="Rephrasing/SV: LLM rewrites requested per variant")


def settings_with_defaults(name: str, doc: str, base: type[AugSettings] = AugSettings, **defaults: Any) -> type[AugSettings]:
    """A settings class that changes only defaults: descriptions and bounds stay those of `base`."""
    fields = {}
    for key, value in defaults.items():
        info = copy.copy(base.model_fields[key])
        info.default = value
        fields[key] = (base.model_fields[key].annotation, info)
    return create_model(name, __base__=base, __doc__=doc, **fields)


class Augmentation:
    """Defaults: no rewrite step, chain-of-thought solving and judging (cot)."""

    name: ClassVar[str]
    settings: ClassVar[type[AugSettings]] = AugSettings
    default: ClassVar[bool] = True  # part of `augmentations` when the config does not list them
    needs_rewrite: ClassVar[bool] = False  # variants come from an LLM rewrite pass
    # Variants of one seed are different questions however alike they read (FOBAR/SV mask different
    # numbers), so dedup never drops one as a copy of its sibling.
    distinct_siblings: ClassVar[bool] = False
    prompt_version: ClassVar[str] = cot.PROMPT_VERSION  # of the solve prompt, recorded on every row
    solve_stop: ClassVar[tuple[str, ...]] = tuple(cot.STOP)
    rewrite_stop: ClassVar[tuple[str, ...]] = ()
    # Responses are chains of thought whose arithmetic claims (`5 * 4 = 20`) can be recomputed
    # (verify.steps); False where a response is something else, e.g. a program.
    checks_steps: ClassVar[bool] = True

    # -- variants -------------------------------------------------------------------------------
    def variants(self, seed: dict) -> list[Variant]:
        """Variants built without the LLM (empty for rewrite augmentations)."""
        return []

    def rewrite_requests(self, seed: dict, settings: AugSettings) -> list[tuple[int, str]]:
        """(variant index, prompt) asking the LLM for rewrites of one seed."""
        return []

    def parse_rewrite(self, seed: dict, text: str, variant: int) -> Variant | Rejection:
        raise NotImplementedError(f"{self.name} has no rewrite step")

    # -- solving --------------------------------------------------------------------------------
    def solve_prompt(self, variant: Variant) -> str:
        return cot.solve_prompt(variant.query, variant.dataset)

    def judge(self, response: str, expected: str, dataset: str, settings: AugSettings) -> Verdict:
        return cot.judge(response, expected, dataset)

    def check_steps(self, verdict: Verdict) -> Verdict:
        """An accepted verdict whose response states a wrong arithmetic step becomes a `wrong_step`
        rejection: its final answer is right, but training on it teaches the wrong step."""
        if not (verdict.accepted and self.checks_steps):
            return verdict
        from metamath_ray.answers.steps import first_wrong_step

        wrong = first_wrong_step(verdict.response)
        if wrong is None:
            return verdict
        return Verdict(False, verdict.predicted, "wrong_step", verdict.response, wrong.describe())

    def judge_concurrency(self, settings: AugSettings) -> int | None:
        """Judging tasks that may run at once (None: as many as Ray schedules)."""
        return None


def cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    """A rewrite's completion up to the first stop string that is not at its very start."""
    for stop in stops:
        if stop and stop in text and text.index(stop) > 0:
            text = text[: text.index(stop)]
    return text
