"""extract --runtime: what runs the folded fp32 network, torch (the default) or an onnxruntime CPU session.

onnxruntime runs the folded network exported as `export --format onnx` exports a model (torch.onnx's exporter,
opset 18, dynamic batch), rebuilt in memory at every run that has images to compute (no file is written: a cached
export would be one more file to name, key and distrust, for a build measured at seconds against extracts of
minutes; docs/backbones.md). The session runs as many intra-op threads as torch. Before any feature is kept, its
features of the first batch are compared with torch's folded fp32 forward on the same batch: more than TOLERANCE
apart (over the features' scale) and the run stops. Where the check passed, rows of either runtime are the same
features within TOLERANCE, as the folded and the eager network's are, so the incremental cache reuses them across
runtimes; the features file's `forward` attribute records the runtime of the run that wrote it.
"""

from __future__ import annotations

import warnings
from importlib import import_module, metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

TORCH, ONNXRUNTIME = RUNTIMES = ("torch", "onnxruntime")
TOLERANCE = 1e-4  # max |difference| over max(1, the features' largest magnitude), as tests/test_backbones.py measures
OPSET = 18  # as heads/export/to_onnx.py exports
_EXTRA = ("onnx", "onnxscript", "onnxruntime")  # the `.[export]` extra: torch.onnx's exporter needs the first two


def check_runtime(runtime: str, precision: str, compile: bool, engine: str) -> None:
    """Refuse a runtime that is unknown, not installed, or asked for with options it cannot honour, in one line."""
    if runtime == TORCH:
        return
    if runtime != ONNXRUNTIME:
        raise ValueError(f"unknown runtime {runtime!r} (use one of {', '.join(RUNTIMES)})")
    for option, refused, why in (
        ("--precision bf16", precision == "bf16", "onnxruntime has no bf16 CPU convolution: use --runtime torch"),
        ("--compile", compile, "torch.compile is torch's: use one or the other"),
        ("--engine ray", engine != "local", "its actors run torch: use --engine local"),
    ):
        if refused:
            raise ValueError(f"--runtime onnxruntime cannot run with {option}: {why}")
    for module in _EXTRA:
        try:
            import_module(module)
        except ImportError:
            raise ValueError(
                f"--runtime onnxruntime needs onnx, onnxscript and onnxruntime ({module} is missing): "
                "pip install -e '.[export]'"
            ) from None


def check_device(runtime: str, device: torch.device) -> None:
    """onnxruntime's session here is its CPU one."""
    if runtime == ONNXRUNTIME and device.type != "cpu":
        raise ValueError(f"--runtime onnxruntime runs on the CPU, not {device.type}: add --device cpu")


def forward_description(runtime: str, folded: str) -> str:
    """What the features file's `forward` attribute records for a run of runtime over the folded network."""
    return folded if runtime == TORCH else f"{folded}, onnxruntime {metadata.version('onnxruntime')} CPU"


def distance(features: torch.Tensor, reference: torch.Tensor) -> float:
    """max |difference| over max(1, the reference's largest magnitude): random-init ResNets' features reach 1e4."""
    return float((features - reference).abs().max()) / max(1.0, float(reference.abs().max()))


def onnx_bytes(model: nn.Module, example: torch.Tensor) -> bytes:
    """model exported through torch.export with a dynamic batch dimension, as a serialised ONNX model."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals, nothing for the user
        program = torch.onnx.export(
            model,
            (example,),
            input_names=["images"],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    if program is None:  # dynamo=True returns the program; only the old exporter returns None
        raise ValueError("torch.onnx.export returned no ONNX program: extract with --runtime torch")
    return program.model_proto.SerializeToString()


class OnnxForward:
    """The folded network run by an onnxruntime CPU session, built and checked against torch on the first batch."""

    def __init__(self, model: nn.Module, threads: int | None = None):
        self._model, self._threads = model, threads  # None: torch's, read in the thread that runs the network
        self._session: Any = None  # an onnxruntime.InferenceSession once the first batch came

    def _build(self, batch: torch.Tensor) -> None:
        import onnxruntime
        import torch

        from headstart.features.compiled import first_line

        example = torch.zeros(2, *batch.shape[1:])  # two rows: torch.export would fix a batch of one
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = self._threads or torch.get_num_threads(), 1
        try:
            self._session = onnxruntime.InferenceSession(
                onnx_bytes(self._model, example), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # noqa: BLE001  the exporter and onnxruntime fail in many ways, at length
            raise ValueError(
                f"cannot run this network in onnxruntime ({first_line(str(error)) or type(error).__name__}): "
                "extract with --runtime torch"
            ) from None
        with torch.inference_mode():
            reference = self._model(batch.contiguous(memory_format=torch.channels_last)).float()
        apart = distance(self._run(batch), reference)
        if not apart <= TOLERANCE:  # a nan is refused too
            raise ValueError(
                f"onnxruntime's features of the first batch are {apart:.1e} from torch's (over {TOLERANCE:g}): "
                "extract with --runtime torch"
            )

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.from_numpy(self._session.run(None, {"images": batch.contiguous().numpy()})[0])

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """The features of a float32 CPU batch (N, 3, H, W), float32 (N, width)."""
        if self._session is None:
            self._build(batch)
        return self._run(batch)
