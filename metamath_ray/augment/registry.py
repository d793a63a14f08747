"""The registered augmentations, in the order they are planned, deduplicated and exported.

The one list of augmentations: configs, the augment stage, finalize and the report read it here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, create_model

from metamath_ray.augment import ansaug, fobar, pot, rephrase, sv
from metamath_ray.augment.protocol import Augmentation, AugSettings

REGISTRY: dict[str, Augmentation] = {
    a.name: a for a in (ansaug.AUGMENTATION, rephrase.AUGMENTATION, fobar.AUGMENTATION, sv.AUGMENTATION, pot.AUGMENTATION)
}
AUGMENTATIONS: tuple[str, ...] = tuple(REGISTRY)
# What runs when `augmentations` is not set: MetaMath's four. PoT (programs in the sandbox) is opt-in.
DEFAULT_AUGMENTATIONS: tuple[str, ...] = tuple(name for name, a in REGISTRY.items() if a.default)


def augmentation(name: str) -> Augmentation:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown augmentation {name!r}; expected one of {', '.join(REGISTRY)}") from None


class _Budgets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def __getitem__(self, name: str) -> AugSettings:
        return getattr(self, name)


# `aug:` in the augment config: one section per registered augmentation, each with its own defaults
# (so `aug.FOBAR.k=3` keeps the rest).
AugBudgets: type[_Budgets] = create_model(
    "AugBudgets", __base__=_Budgets, __doc__="Per-augmentation budgets.",
    **{name: (a.settings, Field(default_factory=a.settings, description=f"{name} budget")) for name, a in REGISTRY.items()},
)
