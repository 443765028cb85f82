"""The stable split rule of a folder without train/: its record (stored in features.h5) and the draw per image.

An image's draw is u = int(sha256(f"{seed}:{content sha256}")[:16], 16) / 2**64, uniform in [0, 1). It goes to
test when u < test_fraction, to val when u < test_fraction + val_fraction, and to train otherwise. The draw depends
only on the image's content and the seed, so adding images never moves an image already there, identical images
always share a split, and every class is split in the same proportions in expectation. A class whose every image
draws val or test keeps its highest-drawing image in train, so that every class can be learned.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

RULE_NAME = "sha256-seed-v1"
DEFAULT_VAL_FRACTION = 0.2
UNSPLIT = "unsplit"  # a source's name for entries whose split is drawn once their content hash is known


class SplitRuleError(ValueError):
    """Fractions that cannot split a folder; the message names the option and the fix."""


@dataclass(frozen=True, kw_only=True)
class SplitRule:
    """How a folder without train/ was split: the rule's name, the fractions and the seed (plain values)."""

    val_fraction: float = DEFAULT_VAL_FRACTION
    test_fraction: float = 0.0
    seed: int = 0
    rule: str = RULE_NAME

    def __post_init__(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise SplitRuleError(f"--{name.replace('_', '-')} {value} is outside [0, 1): give a fraction")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise SplitRuleError(
                f"--val-fraction {self.val_fraction} plus --test-fraction {self.test_fraction} leave no train "
                "images: make their sum less than 1"
            )

    def draw(self, sha256: str) -> float:
        """The image's uniform number in [0, 1), from its content hash and the seed alone."""
        digest = hashlib.sha256(f"{self.seed}:{sha256}".encode("ascii")).hexdigest()
        return int(digest[:16], 16) / 2**64

    def split_of(self, sha256: str) -> str:
        """train, val or test for an image of this content."""
        u = self.draw(sha256)
        if u < self.test_fraction:
            return "test"
        return "val" if u < self.test_fraction + self.val_fraction else "train"

    def describe(self) -> str:
        """One line for extract and info."""
        return (
            f"split by content ({self.rule}): val {self.val_fraction:g}, test {self.test_fraction:g}, seed {self.seed}"
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SplitRule:
        """From the stored record; a missing or malformed value raises KeyError, TypeError or ValueError."""
        if values.get("rule") != RULE_NAME:
            raise ValueError(f"unknown split rule {values.get('rule')!r}")
        return cls(
            val_fraction=float(values["val_fraction"]),
            test_fraction=float(values["test_fraction"]),
            seed=int(values["seed"]),
        )
