"""The math chapter's sizes for its L2-SP run. Its formulas are written out in ``book/math.md``'s own cells."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MathSettings:
    """Sizes of the math chapter's L2-SP versus plain-L2 run (``alpha``: both penalties; SGD with momentum 0.9)."""

    batch_size: int
    num_train: int
    num_eval: int
    num_seeds: int
    num_epochs: int
    max_steps_per_epoch: int | None
    image_size: int
    alpha: float = 0.1
    learning_rate: float = 0.01


# alpha: eta * alpha * T / (1 - momentum) of order 1 over the cpu run's T = 64 steps (see the chapter)
SETTINGS: dict[str, MathSettings] = {
    "smoke": MathSettings(batch_size=8, num_train=64, num_eval=32, num_seeds=2, num_epochs=1,
                          max_steps_per_epoch=2, image_size=32),
    "cpu": MathSettings(batch_size=32, num_train=1000, num_eval=500, num_seeds=3, num_epochs=2,
                        max_steps_per_epoch=None, image_size=32),
    "gpu": MathSettings(batch_size=128, num_train=1000, num_eval=500, num_seeds=3, num_epochs=3,
                        max_steps_per_epoch=None, image_size=224),
}
