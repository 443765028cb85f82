"""What features were computed with, the weights' identity and the preprocessing: recorded and compared on use.

Plain Python, so the features file's schema module (store.py) needs no torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

IMAGENET = "imagenet"
RANDOM = "none"
RANDOM_INIT_SEED = 0
INTERPOLATION = "bilinear, antialias"
BICUBIC = "bicubic, antialias"
INTERPOLATIONS = (INTERPOLATION, BICUBIC)  # what features/images.py's resize can do
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class RecordError(ValueError):
    """A weights or preprocessing record that this headstart cannot rebuild; the message says what it holds."""


@dataclass(frozen=True)
class WeightsIdentity:
    """What the features were computed with: recorded in the features file and the head, compared on use."""

    kind: str  # "torchvision", "timm", "file" or "none"
    name: str  # torchvision's weights name, timm's hub repository (or URL), the file path, or random init
    sha256: str  # of the weights file; empty for random init

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> WeightsIdentity:
        return cls(str(data["kind"]), str(data["name"]), str(data["sha256"]))

    def same_weights(self, other: WeightsIdentity) -> bool:
        """Same parameters, wherever the file lives."""
        return self.kind == other.kind if self.kind == RANDOM else self.sha256 == other.sha256

    def spec(self) -> str:
        """The --weights value that rebuilds these weights."""
        return {"torchvision": IMAGENET, "timm": IMAGENET, RANDOM: RANDOM}.get(self.kind, self.name)

    def describe(self) -> str:
        if self.kind == RANDOM:
            return f"random init (seed {RANDOM_INIT_SEED}), NOT pretrained"
        return f"{self.name} (sha256 {self.sha256[:12]}…)"


@dataclass(frozen=True)
class Preprocessing:
    """How images become tensors; recorded in every features file and head so a mismatch is caught."""

    name: str
    resize: int | tuple[int, int]
    crop: int | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = INTERPOLATION

    @property
    def draft_size(self) -> int:
        """The smallest side the resize step needs: JPEGs larger than twice this decode at reduced scale."""
        return min(self.resize) if isinstance(self.resize, tuple) else self.resize

    def describe(self) -> dict:
        """The record written to the features file and the head; from_description rebuilds it."""
        return {
            "name": self.name,
            "resize": list(self.resize) if isinstance(self.resize, tuple) else self.resize,
            "crop": self.crop,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_description(cls, record: dict) -> Preprocessing:
        """Rebuild a preprocessing from its record; a named one (PREPROCESSINGS) must match its name, any other must
        be one this headstart can run (a backbone's own); else a RecordError."""
        try:
            resize = record["resize"]
            rebuilt = cls(
                str(record["name"]),
                tuple(int(side) for side in resize) if isinstance(resize, list) else int(resize),  # type: ignore[arg-type]
                None if record["crop"] is None else int(record["crop"]),
                tuple(float(value) for value in record["mean"]),  # type: ignore[arg-type]  # length checked below
                tuple(float(value) for value in record["std"]),  # type: ignore[arg-type]
                str(record["interpolation"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise RecordError(f"a damaged preprocessing record ({error}): {record}") from None
        known = PREPROCESSINGS.get(rebuilt.name, rebuilt)
        runnable = len(rebuilt.mean) == len(rebuilt.std) == 3 and rebuilt.interpolation in INTERPOLATIONS
        if rebuilt != known or not runnable or (isinstance(rebuilt.resize, tuple) and len(rebuilt.resize) != 2):
            raise RecordError(f"a preprocessing this headstart does not know: {record}")
        return rebuilt


PREPROCESSINGS = {
    # ResNet18_Weights.IMAGENET1K_V1.transforms(): the statistics the weights were trained with.
    "imagenet": Preprocessing("imagenet", 256, 224, IMAGENET_MEAN, IMAGENET_STD),
    # The tutorial notebook's Resize((224, 224)) + Normalize(0.5, 0.5), kept for reproducing its numbers.
    "notebook": Preprocessing("notebook", (224, 224), None, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
