"""What a caller writes to classify one image with an exported file and nothing of headstart (`export --example`)."""

from __future__ import annotations

from headstart.heads.export.metadata import ExportError

_DECODE = """\
pre = meta["preprocessing"]
side = pre["resize"] if isinstance(pre["resize"], int) else min(pre["resize"])
image = Image.open(sys.argv[2])
if image.format == "JPEG":  # as headstart decodes: a large JPEG at reduced scale
    image.draft("RGB", (2 * side, 2 * side))
image = ImageOps.exif_transpose(image)
if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit samples: their high byte, as predict scales them
    high = image.convert("I").tobytes("raw", "I")[1 if sys.byteorder == "little" else 2 :: 4]
    image = Image.frombytes("L", image.size, high)
if image.mode == "P" and "transparency" in image.info:  # a palette with transparency, as predict reads it
    image = image.convert("RGBA")
image = image.convert("RGB")
"""

# torchvision's Resize and CenterCrop on a PIL image, in Pillow alone.
_RESIZE_CROP = """\
width, height = image.size
if isinstance(pre["resize"], int):  # the shorter side to `side`, the aspect ratio kept
    size = (side, int(side * height / width)) if width <= height else (int(side * width / height), side)
else:
    size = (pre["resize"][1], pre["resize"][0])
bicubic = pre["interpolation"].startswith("bicubic")
image = image.resize(size, Image.Resampling.BICUBIC if bicubic else Image.Resampling.BILINEAR)
if pre["crop"]:  # the centre crop x crop
    left, top = round((image.width - pre["crop"]) / 2), round((image.height - pre["crop"]) / 2)
    image = image.crop((left, top, left + pre["crop"], top + pre["crop"]))
"""

# {class: probability}, and for a multi-label head the predicted label set.
_PRINT = """\
scores = dict(zip(meta["classes"], probabilities.tolist()))
print(scores)
if meta.get("task") == "multi-label":  # independent sigmoids: the labels at or above their thresholds
    print([name for name, cut in zip(meta["classes"], meta["thresholds"]) if scores[name] >= cut])
"""

_TORCHSCRIPT = f"""\
import json, sys
import torch
from PIL import Image, ImageOps

extra = {{"headstart.json": ""}}
model = torch.jit.load(sys.argv[1], _extra_files=extra)
meta = json.loads(extra["headstart.json"])
{_DECODE}{_RESIZE_CROP}pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
pixels = pixels.view(image.height, image.width, 3).permute(2, 0, 1)
probabilities = model(pixels.unsqueeze(0) / 255.0)[0]
{_PRINT}"""

_ONNX = f"""\
import json, sys
import numpy as np
import onnxruntime
from PIL import Image, ImageOps

session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = json.loads(session.get_modelmeta().custom_metadata_map["headstart"])
{_DECODE}{_RESIZE_CROP}images = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)[None] / 255
probabilities = session.run(None, {{"images": images}})[0][0]
{_PRINT}"""

_TORCHVISION = f"""\
import json, sys
import torch
from PIL import Image, ImageOps
from torchvision import models, transforms

meta = json.load(open(sys.argv[1] + ".json"))
model = models.get_model(meta["backbone"], num_classes=len(meta["classes"]))
model.load_state_dict(torch.load(sys.argv[1], weights_only=True))
model.eval()
{_DECODE}mode = transforms.InterpolationMode
interpolation = mode.BICUBIC if pre["interpolation"].startswith("bicubic") else mode.BILINEAR
size = pre["resize"] if isinstance(pre["resize"], int) else tuple(pre["resize"])
steps = [transforms.Resize(size, interpolation=interpolation)]
steps += [transforms.CenterCrop(pre["crop"])] if pre["crop"] else []
steps += [transforms.ToTensor(), transforms.Normalize(pre["mean"], pre["std"])]
with torch.inference_mode():
    logits = model(transforms.Compose(steps)(image).unsqueeze(0))[0]
probabilities = logits.sigmoid() if meta.get("task") == "multi-label" else logits.softmax(dim=0)
{_PRINT}"""

_EXAMPLES = {"torchscript": _TORCHSCRIPT, "onnx": _ONNX, "torchvision": _TORCHVISION}


def caller_example(export_format: str) -> str:
    """A Python script: `python classify.py EXPORTED_FILE IMAGE` prints {class: probability}, and for a multi-label
    head the predicted label set."""
    if export_format not in _EXAMPLES:
        raise ExportError(f"unknown export format {export_format!r} (use one of {', '.join(_EXAMPLES)})")
    return _EXAMPLES[export_format]
