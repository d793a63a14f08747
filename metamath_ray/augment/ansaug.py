"""AnsAug: sample chains of thought for the original question; keep the correct ones."""

from __future__ import annotations

from metamath_ray.augment.base import Variant
from metamath_ray.augment.protocol import Augmentation, settings_with_defaults

AnsAugSettings = settings_with_defaults("AnsAugSettings", "AnsAug budget.", k=4, max_attempts=8)


def variants(seed: dict) -> list[Variant]:
    return [
        Variant(
            seed_id=seed["seed_id"], dataset=seed["dataset"], aug="AnsAug", variant=0,
            query=seed["question"], expected=seed["answer"], original_question=seed["question"],
        )
    ]


class AnsAug(Augmentation):
    name = "AnsAug"
    settings = AnsAugSettings

    def variants(self, seed: dict) -> list[Variant]:
        return variants(seed)


AUGMENTATION = AnsAug()
