"""MediaPipe's face models as batched ONNX graphs: their ``.tflite`` weights read into PyTorch, exported.

MediaPipe runs its models one frame per call inside its own graphs; Triton can batch a model across
uploads only when it is an ONNX (or TensorRT) graph with a batch axis. ``read_tflite`` reads a
``.tflite`` file with the ``tflite`` flatbuffer bindings (sparse float16 weights densified),
``TfliteModule`` runs its operators with torch ops (NCHW inside, NHWC at the edges like TFLite), and
``export_face_detector`` / ``export_face_mesh`` write BlazeFace full range and the 478-point attention
mesh (its three MediaPipe custom ops as torch ops) with a dynamic batch axis.

The mesh's refinement (lips, eyes and irises into 478 points) is inside its graph (``RefinedMesh``);
the rest of MediaPipe's pre- and post-processing is redone in numpy in
``sync_defense.preprocessing.face_graphs``, which serving shares.

    python -m sync_defense.export.tflite_graphs --out build/onnx
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sync_defense.contract import FACE_DETECTOR, FACE_MESH, MAX_BATCH, face_graph_specs
from sync_defense.preprocessing.face_graphs import FULL_RANGE, MESH_TFLITE

from .onnx_export import export_graph


def mediapipe_model(relative: str) -> Path:
    """A file under the installed ``mediapipe/modules`` (found without importing mediapipe, a heavy import)."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("mediapipe is not installed")
    return Path(spec.submodule_search_locations[0]) / "modules" / relative


# ---------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    data: np.ndarray | None  # constants (weights) as dense float32/int arrays; None for activations


@dataclass(frozen=True)
class Op:
    kind: str  # the builtin operator's name: CONV_2D, ...; a custom op's own name
    inputs: tuple[int, ...]  # tensor indices; -1 for an absent optional input
    outputs: tuple[int, ...]
    options: Any  # the builtin op's flatbuffer options table (tflite.Conv2DOptions, ...) or None; a custom op's dict


@dataclass(frozen=True)
class Graph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def _enum_names(enum: type) -> dict[int, str]:
    return {value: name for name, value in vars(enum).items() if not name.startswith("_")}


def _numpy_dtype(tensor_type: int) -> np.dtype:
    import tflite

    name = _enum_names(tflite.TensorType)[tensor_type]
    return np.dtype({"FLOAT32": "float32", "FLOAT16": "float16", "BOOL": "bool"}.get(name, name.lower()))


def _index_vector(metadata: Any, which: str) -> np.ndarray:
    """A sparse dimension's ``array_segments`` or ``array_indices`` (a union of int32/uint16/uint8 vectors)."""
    import tflite

    kind = _enum_names(tflite.SparseIndexVector)[getattr(metadata, f"{which}Type")()]
    vector = getattr(tflite, kind)()
    table = getattr(metadata, which)()
    vector.Init(table.Bytes, table.Pos)
    return vector.ValuesAsNumpy().astype(np.int64)


def densify(values: np.ndarray, shape: tuple[int, ...], sparsity: Any) -> np.ndarray:
    """A sparse constant in TFLite's format (the ``_sparse`` models' weights) as a dense array.

    ``values`` hold the non-zeros in traversal order; each traversal level is dense (every index) or
    CSR (segments of the previous level's position into an index array), as in TFLite's
    ``FormatConverter``. Levels past the tensor's rank are the blocks of ``block_map``'s dimensions.
    The expansion walks level by level, which keeps the values' depth-first order.
    """
    order = sparsity.TraversalOrderAsNumpy().tolist()
    block_map = sparsity.BlockMapAsNumpy().tolist() if sparsity.BlockMapLength() else []
    rank = len(shape)
    positions, indices = np.zeros(1, np.int64), np.zeros((1, 0), np.int64)
    block_sizes = []
    for level in range(sparsity.DimMetadataLength()):
        metadata = sparsity.DimMetadata(level)
        if metadata.Format() == 0:  # DENSE
            size = metadata.DenseSize()
            if level >= rank:
                block_sizes.append(size)
            positions = (positions[:, None] * size + np.arange(size)).reshape(-1)
            level_index = np.tile(np.arange(size), len(indices))
            indices = np.repeat(indices, size, axis=0)
        else:  # SPARSE_CSR
            segments, array_indices = _index_vector(metadata, "ArraySegments"), _index_vector(metadata, "ArrayIndices")
            starts, counts = segments[positions], segments[positions + 1] - segments[positions]
            positions = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
            level_index = array_indices[positions]
            indices = np.repeat(indices, counts, axis=0)
        indices = np.concatenate([indices, level_index[:, None]], axis=1)
    original = np.zeros((len(indices), rank), np.int64)
    original[:, order[:rank]] = indices[:, :rank]
    for level in range(rank, len(order)):
        block = order[level] - rank
        original[:, block_map[block]] = original[:, block_map[block]] * block_sizes[block] + indices[:, level]
    dense = np.zeros(shape, values.dtype)
    dense[tuple(original.T)] = values[: len(original)]
    return dense


def _constant(model: Any, tensor: Any) -> np.ndarray | None:
    """A tensor's buffer as an array of its shape (densified if sparse), or None for an activation."""
    raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
    if isinstance(raw, int):  # no data: an activation
        return None
    values = raw.view(_numpy_dtype(tensor.Type()))
    shape = tuple(int(d) for d in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
    if tensor.Sparsity() is not None:
        return densify(values, shape, tensor.Sparsity())
    return values.reshape(shape)


def _options(op: Any) -> Any:
    import tflite

    kind = op.BuiltinOptionsType()
    if kind == 0:
        return None
    options = getattr(tflite, _enum_names(tflite.BuiltinOptions)[kind])()
    table = op.BuiltinOptions()
    options.Init(table.Bytes, table.Pos)
    return options


def _custom_options(op: Any) -> dict[str, Any]:
    """A custom op's attributes (a flexbuffer map; empty when it has none)."""
    from flatbuffers import flexbuffers

    return flexbuffers.Loads(op.CustomOptionsAsNumpy().tobytes()) if op.CustomOptionsLength() else {}


def _dequantize(tensor: Any, data: np.ndarray) -> np.ndarray:
    """float16 weights as float32; int8/uint8 weights through their (per-axis) scale and zero point."""
    if data.dtype.kind == "f":
        return data.astype(np.float32)
    q = tensor.Quantization()
    shape = [1] * data.ndim
    shape[q.QuantizedDimension() if q.ScaleLength() > 1 else 0] = -1
    scale, zero = q.ScaleAsNumpy().reshape(shape), q.ZeroPointAsNumpy().reshape(shape)
    return ((data.astype(np.float32) - zero) * scale).astype(np.float32)


def read_tflite(path: Path) -> Graph:
    """The first subgraph of a ``.tflite`` file, with DEQUANTIZE and DENSIFY of constants folded into
    float32 constants (the sparse float16 weights become dense float32 ones)."""
    import tflite

    model = tflite.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    subgraph = model.Subgraphs(0)
    builtin = _enum_names(tflite.BuiltinOperator)
    raw = [subgraph.Tensors(i) for i in range(subgraph.TensorsLength())]
    data = [_constant(model, t) for t in raw]
    ops = []
    for i in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = builtin[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        if kind == "CUSTOM":
            kind = code.CustomCode().decode()
        inputs, outputs = tuple(op.InputsAsNumpy().tolist()), tuple(op.OutputsAsNumpy().tolist())
        if kind in ("DEQUANTIZE", "DENSIFY") and data[inputs[0]] is not None:
            data[outputs[0]] = _dequantize(raw[inputs[0]], data[inputs[0]])
            continue
        ops.append(Op(kind, inputs, outputs, _custom_options(op) if code.CustomCode() else _options(op)))
    tensors = [Tensor(t.Name().decode(), tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else (), d)
               for t, d in zip(raw, data, strict=True)]
    return Graph(tensors, ops, tuple(subgraph.InputsAsNumpy().tolist()), tuple(subgraph.OutputsAsNumpy().tolist()))


# ------------------------------------------------------------------------------------------- converting

NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)
ACTIVATIONS: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {  # tflite.ActivationFunctionType
    0: lambda x: x,
    1: F.relu,
    2: lambda x: x.clamp(-1.0, 1.0),
    3: F.relu6,
    4: torch.tanh,
}


def _to_nchw_constant(value: np.ndarray, rank: int) -> torch.Tensor:
    """A constant operand of an op on 4-D activations, broadcastable against their NCHW layout."""
    if rank != 4:
        return torch.from_numpy(np.ascontiguousarray(value, np.float32))
    value = np.asarray(value, np.float32).reshape((1,) * (4 - np.ndim(value)) + np.shape(value))
    return torch.from_numpy(np.ascontiguousarray(value.transpose(NHWC_TO_NCHW)))


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's 'SAME' padding of one axis (the extra pixel goes after), which torch's
    ``padding='same'`` does not do for strides above 1."""
    total = max((-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _spatial_padding(options: Any, height: int, width: int, kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, ...]:
    """``F.pad``'s (left, right, top, bottom) for a convolution or pool with TFLite ``options``."""
    if options.Padding() == 1:  # VALID
        return (0, 0, 0, 0)
    top_bottom = same_padding(height, kernel[0], options.StrideH(), dilation[0])
    left_right = same_padding(width, kernel[1], options.StrideW(), dilation[1])
    return (*left_right, *top_bottom)


class Conv(nn.Module):
    """CONV_2D and DEPTHWISE_CONV_2D: explicit TF padding, a torch convolution, the fused activation."""

    def __init__(self, graph: Graph, op: Op) -> None:
        super().__init__()
        weight = graph.tensors[op.inputs[1]].data
        _, height, width, channels = graph.tensors[op.inputs[0]].shape
        depthwise = op.kind == "DEPTHWISE_CONV_2D"
        # TFLite: conv (out, kh, kw, in), depthwise (1, kh, kw, in * multiplier); torch: (out, in / groups, kh, kw)
        weight = weight.transpose(3, 0, 1, 2) if depthwise else weight.transpose(0, 3, 1, 2)
        options = op.options
        dilation = (options.DilationHFactor(), options.DilationWFactor())
        self.padding = _spatial_padding(options, height, width, weight.shape[2:], dilation)
        self.conv = nn.Conv2d(channels, weight.shape[0], weight.shape[2:], stride=(options.StrideH(), options.StrideW()),
                              dilation=dilation, groups=channels if depthwise else 1, bias=len(op.inputs) > 2 and op.inputs[2] >= 0)
        self.conv.weight.data = torch.from_numpy(np.ascontiguousarray(weight, np.float32))
        if self.conv.bias is not None:
            self.conv.bias.data = torch.from_numpy(graph.tensors[op.inputs[2]].data.astype(np.float32))
        self.activation = ACTIVATIONS[options.FusedActivationFunction()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(F.pad(x, self.padding) if any(self.padding) else x))


class MaxPool(nn.Module):
    def __init__(self, graph: Graph, op: Op) -> None:
        super().__init__()
        options = op.options
        _, height, width, _ = graph.tensors[op.inputs[0]].shape
        self.kernel = (options.FilterHeight(), options.FilterWidth())
        self.stride = (options.StrideH(), options.StrideW())
        self.padding = _spatial_padding(options, height, width, self.kernel)
        self.activation = ACTIVATIONS[options.FusedActivationFunction()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.padding, value=float("-inf")) if any(self.padding) else x
        return self.activation(F.max_pool2d(x, self.kernel, self.stride))


class Binary(nn.Module):
    """ADD, SUB, MUL of two activations or of an activation and a constant, with the fused activation."""

    OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"ADD": torch.add, "SUB": torch.sub, "MUL": torch.mul}

    def __init__(self, graph: Graph, op: Op) -> None:
        super().__init__()
        self.op = self.OPS[op.kind]
        rank = len(graph.tensors[op.outputs[0]].shape)
        constants = [graph.tensors[i].data for i in op.inputs]
        self.constant_side = next((side for side, c in enumerate(constants) if c is not None), None)
        if self.constant_side is not None:
            self.register_buffer("constant", _to_nchw_constant(constants[self.constant_side], rank))
        self.activation = ACTIVATIONS[op.options.FusedActivationFunction()] if op.options is not None else ACTIVATIONS[0]

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.constant_side is not None:
            xs = (xs[0], self.constant) if self.constant_side == 1 else (self.constant, xs[0])
        return self.activation(self.op(*xs))


class Pad(nn.Module):
    def __init__(self, graph: Graph, op: Op) -> None:
        super().__init__()
        pads = graph.tensors[op.inputs[1]].data.reshape(-1, 2)
        if len(pads) == 4:
            pads = pads[list(NHWC_TO_NCHW)]
        self.padding = tuple(int(p) for pair in pads[::-1] for p in pair)  # F.pad: last axis first
        self.value = float(graph.tensors[op.inputs[2]].data) if len(op.inputs) > 2 else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.padding, value=self.value)


class ResizeBilinear(nn.Module):
    def __init__(self, graph: Graph, op: Op) -> None:
        super().__init__()
        self.size = tuple(int(s) for s in graph.tensors[op.inputs[1]].data)
        self.align_corners = bool(op.options.AlignCorners())
        if not (self.align_corners or op.options.HalfPixelCenters()):
            raise NotImplementedError("RESIZE_BILINEAR without half-pixel centres or aligned corners (TF1's legacy mode)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=self.align_corners)


class DepthToSpace(nn.Module):
    """TF's depth-to-space reads channels as (row in block, column in block, channel): torch's
    ``pixel_shuffle`` reads them as (channel, row, column), so the channels are regrouped explicitly."""

    def __init__(self, graph: Graph, op: Op) -> None:
        super().__init__()
        self.block = op.options.BlockSize()
        _, self.height, self.width, self.channels = graph.tensors[op.outputs[0]].shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w = self.block, self.height // self.block, self.width // self.block
        x = x.reshape(-1, b, b, self.channels, h, w).permute(0, 3, 4, 1, 5, 2)
        return x.reshape(-1, self.channels, self.height, self.width)


class Reshape(nn.Module):
    """RESHAPE with the batch axis kept free: TFLite's element order is NHWC's, so 4-D tensors are
    turned to NHWC before and back to NCHW after."""

    def __init__(self, graph: Graph, op: Op) -> None:
        super().__init__()
        self.input_rank = len(graph.tensors[op.inputs[0]].shape)
        self.shape = graph.tensors[op.outputs[0]].shape[1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(NCHW_TO_NHWC) if self.input_rank == 4 else x
        x = x.reshape(-1, *self.shape)
        return x.permute(NHWC_TO_NCHW) if len(self.shape) == 3 else x


class Concatenation(nn.Module):
    def __init__(self, graph: Graph, op: Op) -> None:
        super().__init__()
        rank = len(graph.tensors[op.outputs[0]].shape)
        axis = op.options.Axis() % rank
        self.axis = NCHW_TO_NHWC.index(axis) if rank == 4 else axis
        self.activation = ACTIVATIONS[op.options.FusedActivationFunction()]

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.activation(torch.cat(xs, dim=self.axis))


class PRelu(nn.Module):
    """PRELU; a per-channel slope (TFLite's (1, 1, C)) goes through ``F.prelu``, which exports as one
    ONNX PRelu instead of a compare, a multiply and a select."""

    def __init__(self, graph: Graph, op: Op) -> None:
        super().__init__()
        alpha = graph.tensors[op.inputs[1]].data
        rank = len(graph.tensors[op.outputs[0]].shape)
        self.per_channel = rank == 4 and np.prod(alpha.shape[:-1]) == 1
        alpha = alpha.reshape(-1) if self.per_channel else alpha
        self.register_buffer("alpha", torch.from_numpy(np.ascontiguousarray(alpha, np.float32)) if self.per_channel
                             else _to_nchw_constant(alpha, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.prelu(x, self.alpha) if self.per_channel else torch.where(x >= 0, x, x * self.alpha)


class Elementwise(nn.Module):
    FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "RELU": F.relu, "RELU6": F.relu6, "LOGISTIC": torch.sigmoid, "TANH": torch.tanh,
    }

    def __init__(self, graph: Graph, op: Op) -> None:
        super().__init__()
        self.kind = op.kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.FUNCTIONS[self.kind](x)


class StridedSlice(nn.Module):
    """STRIDED_SLICE with constant bounds (begin/end masks honoured); the batch axis is never cut."""

    def __init__(self, graph: Graph, op: Op) -> None:
        super().__init__()
        begin, end, strides = (graph.tensors[i].data.tolist() for i in op.inputs[1:4])
        options = op.options
        if options.EllipsisMask() or options.NewAxisMask() or options.ShrinkAxisMask():
            raise NotImplementedError("STRIDED_SLICE with ellipsis, new-axis or shrink masks")
        bounds = [slice(None if options.BeginMask() >> a & 1 else b, None if options.EndMask() >> a & 1 else e, s)
                  for a, (b, e, s) in enumerate(zip(begin, end, strides, strict=True))]
        bounds[0] = slice(None)
        self.bounds = tuple(bounds[a] for a in NHWC_TO_NCHW) if len(bounds) == 4 else tuple(bounds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[self.bounds]


def _affine(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 2-D part of MediaPipe's (b, 4, 4) transforms: the linear (b, 2, 2) and the shift (b, 2)."""
    return matrix[:, :2, :2], matrix[:, :2, 3]


class Landmarks2TransformMatrix(nn.Module):
    """MediaPipe's custom op (v2): from the coarse mesh, the transform of an ``output`` square onto a
    region (the lips, an eye) of the input. The region is the bounding box of the ``subset_idxs``
    landmarks taken level (rotated by the angle of the ``left``-``right`` landmark line, less
    ``target_rotation_radians``), scaled by ``scale_x``/``scale_y``. Written with that line's cosine
    and sine instead of atan2 so that ONNX and TensorRT get only elementwise ops."""

    def __init__(self, graph: Graph, op: Op) -> None:
        super().__init__()
        o = op.options
        self.register_buffer("subset", torch.tensor(sorted(set(o["subset_idxs"])), dtype=torch.long))
        self.left, self.right = o["left_rotation_idx"], o["right_rotation_idx"]
        self.target = (float(np.cos(o["target_rotation_radians"])), float(np.sin(o["target_rotation_radians"])))
        self.scale = (o["scale_x"] / o["output_width"], o["scale_y"] / o["output_height"])
        self.half = (o["output_width"] / 2, o["output_height"] / 2)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        line = points[:, self.right, :2] - points[:, self.left, :2]
        unit = line / line.norm(dim=1, keepdim=True).clamp_min(1e-12)
        # rotation r = target - angle(line): cos r and sin r by the angle-difference identities
        cos = self.target[0] * unit[:, 0] + self.target[1] * unit[:, 1]
        sin = self.target[1] * unit[:, 0] - self.target[0] * unit[:, 1]
        x, y = points[:, self.subset, 0], points[:, self.subset, 1]
        level_x, level_y = cos[:, None] * x - sin[:, None] * y, sin[:, None] * x + cos[:, None] * y
        low_x, high_x, low_y, high_y = level_x.amin(1), level_x.amax(1), level_y.amin(1), level_y.amax(1)
        mid_x, mid_y = (low_x + high_x) / 2, (low_y + high_y) / 2
        centre_x, centre_y = cos * mid_x + sin * mid_y, cos * mid_y - sin * mid_x  # rotated back by -r
        sx, sy = self.scale[0] * (high_x - low_x), self.scale[1] * (high_y - low_y)
        a, b, c, d = cos * sx, sin * sy, -sin * sx, cos * sy  # rotation by -r, then the scale
        zero, one = torch.zeros_like(cos), torch.ones_like(cos)
        rows = [
            [a, b, zero, centre_x - a * self.half[0] - b * self.half[1]],
            [c, d, zero, centre_y - c * self.half[0] - d * self.half[1]],
            [zero, zero, one, zero],
            [zero, zero, zero, one],
        ]
        return torch.stack([torch.stack(row, dim=1) for row in rows], dim=1)


class TransformTensorBilinear(nn.Module):
    """MediaPipe's custom op (v2): an ``output_height`` x ``output_width`` crop of a feature map through
    a (b, 4, 4) transform of pixel centres, bilinear; a sample whose point falls outside the map is 0
    as a whole. ``grid_sample`` (ONNX GridSample, TensorRT's grid-sample layer) with aligned corners
    samples at exactly those pixel coordinates; the mask zeroes what it would blend with the border."""

    def __init__(self, graph: Graph, op: Op) -> None:
        super().__init__()
        _, height, width, _ = graph.tensors[op.inputs[0]].shape
        self.out = (op.options["output_height"], op.options["output_width"])
        ys, xs = torch.meshgrid(torch.arange(self.out[0]) + 0.5, torch.arange(self.out[1]) + 0.5, indexing="ij")
        self.register_buffer("centres", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1).float())
        self.register_buffer("limit", torch.tensor([width - 1.0, height - 1.0]))

    def forward(self, features: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        linear, shift = _affine(matrix)
        points = torch.einsum("pj,bij->bpi", self.centres, linear) + shift[:, None] - 0.5  # (b, p, 2) x, y in pixels
        inside = ((points >= 0) & (points <= self.limit)).all(dim=2)
        grid = (points / self.limit * 2 - 1).reshape(-1, *self.out, 2)
        sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return sampled * inside.reshape(-1, 1, *self.out).to(sampled.dtype)


class TransformLandmarks(nn.Module):
    """MediaPipe's custom op (v2): (b, n, 2 or 3) landmarks through a (b, 4, 4) transform (x and y only)."""

    def __init__(self, graph: Graph, op: Op) -> None:
        super().__init__()

    def forward(self, points: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        linear, shift = _affine(matrix)
        xy = torch.einsum("bnj,bij->bni", points[..., :2], linear) + shift[:, None]
        return torch.cat([xy, points[..., 2:]], dim=2)


LAYERS: dict[str, Callable[[Graph, Op], nn.Module]] = {
    "CONV_2D": Conv, "DEPTHWISE_CONV_2D": Conv, "MAX_POOL_2D": MaxPool, "ADD": Binary, "SUB": Binary, "MUL": Binary,
    "PAD": Pad, "RESIZE_BILINEAR": ResizeBilinear, "DEPTH_TO_SPACE": DepthToSpace, "RESHAPE": Reshape,
    "CONCATENATION": Concatenation, "PRELU": PRelu, "STRIDED_SLICE": StridedSlice,
    **{kind: Elementwise for kind in Elementwise.FUNCTIONS},
    # MediaPipe's custom ops of the attention face mesh
    "Landmarks2TransformMatrix": Landmarks2TransformMatrix, "TransformTensorBilinear": TransformTensorBilinear,
    "TransformLandmarks": TransformLandmarks,
}


class TfliteModule(nn.Module):
    """A TFLite graph of standard ops as torch ops, with a free batch axis: NHWC in and out like
    TFLite, NCHW between (4-D activations), weights as float32."""

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        unsupported = sorted({op.kind for op in graph.ops} - set(LAYERS))
        if len(graph.inputs) != 1:
            raise NotImplementedError("only single-input TFLite graphs are converted (both face models have one)")
        if unsupported:
            raise NotImplementedError(f"TFLite ops without a torch equivalent here: {', '.join(unsupported)}")
        self.layers = nn.ModuleList(LAYERS[op.kind](graph, op) for op in graph.ops)
        self.wiring = [(tuple(i for i in op.inputs if i >= 0 and graph.tensors[i].data is None), op.outputs[0]) for op in graph.ops]
        self.inputs, self.outputs = graph.inputs, graph.outputs

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values = {self.inputs[0]: image.permute(NHWC_TO_NCHW)}
        for layer, (sources, target) in zip(self.layers, self.wiring, strict=True):
            values[target] = layer(*(values[i] for i in sources))
        return tuple(values[i].permute(NCHW_TO_NHWC) if values[i].dim() == 4 else values[i] for i in self.outputs)


def tflite_module(path: Path) -> TfliteModule:
    return TfliteModule(read_tflite(path)).eval()


# ---------------------------------------------------------------------------------------- the mesh's refinement


MESH_RAW_OUTPUTS = ("mesh", "lips", "left_eye", "right_eye", "left_iris", "right_iris", "face_flag")  # TFLite's, in order


def refinement_indices(graph: Graph) -> list[list[int]]:
    """The mesh points that the lips, left-eye and right-eye outputs replace, in the outputs' order: the
    ``subset_idxs`` of the model's own Landmarks2TransformMatrix ops (they crop the same regions)."""
    return [op.options["subset_idxs"] for op in graph.ops if op.kind == "Landmarks2TransformMatrix"]


class RefinedMesh(nn.Module):
    """The attention mesh with TensorsToFaceLandmarksWithAttention inside the graph: the 468-point mesh
    with its lips and eyes replaced by their refined points, then the two irises, as ``(b, 478, 2)``
    model pixels, and the face flag ``(b, 1)``. Serving then needs no ``.tflite`` file to refine."""

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self.raw = TfliteModule(graph)
        refinements = refinement_indices(graph)
        source = list(range(468))  # each mesh point's row in [mesh | lips | left eye | right eye]
        offset = 468
        for indices in refinements:
            for j, point in enumerate(indices):
                source[point] = offset + j
            offset += len(indices)
        self.register_buffer("source", torch.tensor(source), persistent=False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mesh, lips, left_eye, right_eye, left_iris, right_iris, flag = self.raw(image)
        batch = image.shape[0]
        rows = torch.cat([mesh.reshape(batch, -1, 3)[..., :2], *(o.reshape(batch, -1, 2) for o in (lips, left_eye, right_eye))], dim=1)
        irises = torch.cat([left_iris.reshape(batch, -1, 2), right_iris.reshape(batch, -1, 2)], dim=1)
        return torch.cat([rows.index_select(1, self.source), irises], dim=1), flag.reshape(batch, 1)


TFLITE_FILES = {FACE_DETECTOR: FULL_RANGE.tflite, FACE_MESH: MESH_TFLITE}  # each face graph's file under mediapipe/modules


def face_module(name: str, tflite_dir: Path | None = None) -> nn.Module:
    """The face graph ``name`` as the PyTorch module it is exported from: the raw BlazeFace, or the attention mesh
    with its refinement (``RefinedMesh``), read from the mediapipe wheel's ``.tflite`` file or its copy in ``tflite_dir``."""
    relative = TFLITE_FILES[name]
    path = tflite_dir / Path(relative).name if tflite_dir else mediapipe_model(relative)
    return RefinedMesh(read_tflite(path)).eval() if name == FACE_MESH else tflite_module(path)


def export_face_mesh(out: Path, max_batch: int = MAX_BATCH) -> Path:
    """``out/face_mesh.onnx``: the attention mesh with MediaPipe's custom ops as torch ops and its
    refinement inside (``RefinedMesh``), ``image`` (batch, 192, 192, 3) in [0, 1] -> ``landmarks``
    (batch, 478, 2) in model pixels, ``face_flag`` (batch, 1)."""
    path = out / f"{FACE_MESH}.onnx"
    export_graph(face_module(FACE_MESH), face_graph_specs()[FACE_MESH], path, max_batch)
    return path


def export_face_detector(out: Path, max_batch: int = MAX_BATCH) -> Path:
    """``out/face_detector.onnx``: the raw BlazeFace full-range model, ``image`` (batch, 192, 192, 3) in
    [-1, 1] -> ``raw_boxes`` (batch, 2304, 16), ``raw_scores`` (batch, 2304, 1)."""
    path = out / f"{FACE_DETECTOR}.onnx"
    export_graph(face_module(FACE_DETECTOR), face_graph_specs()[FACE_DETECTOR], path, max_batch)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/onnx"))
    args = parser.parse_args()
    print(export_face_detector(args.out))
    print(export_face_mesh(args.out))


if __name__ == "__main__":
    main()
