"""AnsAug: sample chains of thought for the original question; keep the correct ones."""

from __future__ import annotations

from metamath_ray.augment.base import Variant


def variants(seed: dict) -> list[Variant]:
    return [
        Variant(
            seed_id=seed["seed_id"], dataset=seed["dataset"], aug="AnsAug", variant=0,
            query=seed["question"], expected=seed["answer"], original_question=seed["question"],
        )
    ]
