"""A generated dataset with known faults for the audit: mislabelled train images and val images copied into train."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# One colour and one shape per class: what a random-weights backbone tells apart (it sees colour, not objects).
CLASS_STYLES = (
    ((220, 40, 40), "disc"),
    ((40, 180, 60), "square"),
    ((50, 70, 220), "triangle"),
    ((230, 200, 40), "bars"),
)

HTML_NAME = "<script>alert(1)</script>.jpg"


@dataclass
class Planted:
    """Where the dataset is and which faults it holds, as paths relative to its root."""

    root: Path
    moved: dict[str, str] = field(default_factory=dict)  # new path -> the class it really belongs to
    copies: dict[str, str] = field(default_factory=dict)  # train copy -> the val image it copies
    resized: set[str] = field(default_factory=set)  # the copies that were re-encoded at another size


def draw_image(style: int, rng: np.random.Generator, size: tuple[int, int] = (256, 192)) -> Image.Image:
    """A smooth grey-ish background between two random shades, with the class's shape at a random place and scale."""
    width, height = size
    start, end = (rng.integers(40, 220) + rng.integers(-20, 21, 3) for _ in range(2))
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width]
    ramp = np.cos(angle) * xs / width + np.sin(angle) * ys / height
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) or 1)
    pixels = start + ramp[..., None] * (end - start) + rng.normal(0, 4, (height, width, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    colour, shape = CLASS_STYLES[style]
    colour = tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in colour)
    side = int(rng.uniform(0.5, 0.9) * min(size))
    x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
    if shape == "disc":
        draw.ellipse((x, y, x + side, y + side), fill=colour)
    elif shape == "square":
        draw.rectangle((x, y, x + side, y + side), fill=colour)
    elif shape == "triangle":
        draw.polygon([(x, y + side), (x + side, y + side), (x + side // 2, y)], fill=colour)
    else:
        for bar in range(x, x + side, 8):
            draw.rectangle((bar, y, bar + 3, y + side), fill=colour)
    return image


def make_planted_dataset(
    root: Path,
    classes: int = 4,
    train_per_class: int = 30,
    val_per_class: int = 8,
    moved_fraction: float = 0.05,
    exact_copies: int = 2,
    resized_copies: int = 2,
    seed: int = 0,
    html_name: bool = False,
) -> Planted:
    """root/{train,val}/class_<k>/ with moved_fraction of train filed under a wrong class and val images copied
    into train: `exact_copies` byte for byte, `resized_copies` re-encoded as JPEG at 4/3 of their size.

    html_name: one more exact copy, named `<script>alert(1)</script>.jpg` (a folder `<script>alert(1)<` holding
    `script>.jpg`, as a file name cannot hold a slash), for the report's escaping."""
    rng = np.random.default_rng(seed)
    if root.exists():
        shutil.rmtree(root)
    names = [f"class_{k}" for k in range(classes)]
    planted = Planted(root)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for k, name in enumerate(names):
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                draw_image(k, rng).save(folder / f"{split}_{k}_{index:03d}.jpg", quality=90)
    train = sorted((root / "train").rglob("*.jpg"))
    for path in rng.choice(train, int(round(moved_fraction * len(train))), replace=False):
        true = path.parent.name
        wrong = names[(names.index(true) + int(rng.integers(1, classes))) % classes]
        target = root / "train" / wrong / path.name
        path.rename(target)
        planted.moved[target.relative_to(root).as_posix()] = true
    val = sorted((root / "val").rglob("*.jpg"))
    for number, path in enumerate(rng.choice(val, exact_copies + resized_copies, replace=False)):
        target = root / "train" / path.parent.name / f"copy_{path.name}"
        if number < exact_copies:
            shutil.copyfile(path, target)
        else:
            image = Image.open(path)
            image.resize((image.width * 4 // 3, image.height * 4 // 3)).save(target, quality=85)
            planted.resized.add(target.relative_to(root).as_posix())
        planted.copies[target.relative_to(root).as_posix()] = path.relative_to(root).as_posix()
    if html_name:
        original = val[0]
        target = root / "train" / original.parent.name / HTML_NAME
        target.parent.mkdir()
        shutil.copyfile(original, target)
        planted.copies[target.relative_to(root).as_posix()] = original.relative_to(root).as_posix()
    return planted
