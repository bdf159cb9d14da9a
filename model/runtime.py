"""What turns a normalised image batch into logits: ONNX Runtime on the exported graph, or eager torch.

    graph, info = export_onnx(net, size=256)     # at registration: torch's exporter, fp32, dynamic batch
    scorer = OnnxScorer(graph, threads=1)         # what serves; TorchScorer(net) for versions without an export
    scorer.logits(x)                              # (N, 3, H, W) float32 -> (N,) float32 logits

The scorer is the one place a forward pass happens: training's calibration, `aidetect evaluate`, the CI
gate and the service all call it through DetectorBundle.logits, so what was measured is what serves.
ONNX Runtime runs EfficientNet-lite0 2.5-7x faster than eager torch on this CPU (bench/onnx_runtime.py)
with logits equal to 1e-6.
"""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import torch

log = logging.getLogger(__name__)

OPSET = 17  # supported by every onnxruntime since 1.15; nothing in EfficientNet-lite needs a newer op
ONNX_FILE = "detector.onnx"
INPUT, OUTPUT = "image", "logit"
RUNTIMES = ("auto", "onnx", "torch")  # auto: the export when the version has one, else torch


class TorchScorer:
    """Eager torch: the training network itself. Threads are torch's process-wide setting."""

    runtime = "torch"
    precision = "fp32"

    def __init__(self, net: torch.nn.Module, threads: int = 0):
        from model.detectors.efficientnet import logits

        self.net, self._logits = net.eval(), logits
        if threads:
            torch.set_num_threads(threads)

    @torch.inference_mode()
    def logits(self, x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.asarray(x, dtype=np.float32)).contiguous(memory_format=torch.channels_last)
        return self._logits(self.net, t).float().numpy().reshape(-1)


class OnnxScorer:
    """ONNX Runtime on the CPU. `threads` is the intra-op pool of this session: the service gives each
    worker process the share of cores that service.workers.inference_layout computes (0 = all cores)."""

    runtime = "onnxruntime"

    def __init__(self, graph: bytes | str, threads: int = 0, precision: str = "fp32", spin: bool = True):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        if not spin:  # idle pool threads sleep instead of spinning: for a session that shares its cores
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.inter_op_num_threads = 1  # one chain of operators: a second pool would only contend for the cores
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # warnings about unused initialisers are noise on every start
        self.session = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.precision = precision

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run(None, {self.input: x})[0].reshape(-1)


def export_onnx(net: torch.nn.Module, size: int, opset: int = OPSET) -> tuple[bytes, dict]:
    """The fp32 ONNX graph of `net` for (N, 3, size, size) input, and what to record about it.

    TorchScript-based export (dynamo=False): it runs offline with torch alone, where the dynamo exporter
    needs onnxscript, and it takes a few seconds for EfficientNet-lite0."""
    import onnxruntime

    was_training = net.training
    net.eval()
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the deprecation notice of the TorchScript exporter, on every export
            torch.onnx.export(
                net,
                (torch.zeros(1, 3, size, size),),
                buf,
                input_names=[INPUT],
                output_names=[OUTPUT],
                opset_version=opset,
                dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
                dynamo=False,
            )
    finally:
        net.train(was_training)
    info = {
        "file": ONNX_FILE,
        "runtime": "onnxruntime",
        "runtime_version": onnxruntime.__version__,
        "opset": opset,
        "precision": "fp32",
        "exporter": f"torch.onnx (TorchScript) {torch.__version__.split('+')[0]}",
        "input": [INPUT, "batch", 3, size, size],
    }
    return buf.getvalue(), info


def quantize_int8(graph: bytes, calibration: list[np.ndarray]) -> bytes:
    """Static int8 quantisation (QDQ, per-channel weights) with activation ranges measured on
    `calibration`, a list of normalised (N, 3, H, W) float32 batches of training images."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(calibration)

        def get_next(self):
            b = next(self.batches, None)
            return None if b is None else {INPUT: np.ascontiguousarray(b, dtype=np.float32)}

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(graph)
        quant_pre_process(str(src), str(pre))  # shape inference + folding, as onnxruntime recommends
        quantize_static(
            str(pre),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,  # depthwise filters differ in range by orders of magnitude
        )
        return out.read_bytes()
