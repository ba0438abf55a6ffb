"""Op lists from an ONNX graph with static shapes: MatMul/Gemm/Conv as GEMMs (weights: linear,
activations x activations: attention-class batched GEMMs), Softmax and friends: vector unit."""

from __future__ import annotations

import math
import re
from pathlib import Path

from tpesim.errors import FileFormatError, WorkloadError

from .model import Gemm, VectorOp

__all__ = ["load_onnx", "ZERO_COST", "VECTOR_OPS"]

# Data movement and shape bookkeeping: no compute, no traffic modelled (docs/llm.md).
ZERO_COST = frozenset({
    "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Shape", "Constant", "Cast",
    "Slice", "Split", "Identity", "Flatten", "Expand", "ConstantOfShape", "Range", "Dropout",
    "Gather", "GatherElements", "Size", "Trilu", "Tile"})
# ONNX op -> vector kind (docs/llm.md has each kind's passes and inputs)
VECTOR_OPS = {
    "Softmax": "softmax", "LogSoftmax": "softmax", "Add": "add", "Sub": "add", "Mul": "mul",
    "Div": "mul", "Pow": "elementwise", "Sqrt": "elementwise", "Reciprocal": "elementwise",
    "Exp": "elementwise", "Neg": "elementwise", "Erf": "elementwise", "Tanh": "elementwise",
    "Sigmoid": "elementwise", "Relu": "relu", "Gelu": "gelu", "FastGelu": "gelu",
    "Where": "elementwise", "ReduceMean": "elementwise", "ReduceSum": "elementwise",
    "ReduceMax": "elementwise", "LayerNormalization": "layernorm",
    "SimplifiedLayerNormalization": "rmsnorm", "RMSNormalization": "rmsnorm",
    "Equal": "elementwise", "Less": "elementwise", "Greater": "elementwise", "Not": "elementwise",
    "Max": "elementwise", "Min": "elementwise", "Clip": "elementwise",
}
GEMM_OPS = ("MatMul", "Gemm", "Conv")
_LAYER = re.compile(r"(?:layers?|blocks?|\bh)[._/](\d+)")


def _layer(node_name: str) -> str:
    m = _LAYER.search(node_name)
    return f"layer{int(m.group(1))}" if m else "graph"


def load_onnx(path) -> tuple[str, list[tuple[str, list]]]:
    """(graph name, [(layer label, ops)]) of an ONNX file, in node order, ops grouped by the layer
    index found in node names (`layers.3`, `h.3`, ...; "graph" for the rest).

    Raises FileFormatError naming the file and the node or tensor for an unreadable file, a
    tensor without a static shape, or unsupported ops (all of them listed, by op type and node)."""
    import onnx

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 (protobuf raises several types for a bad file)
        raise FileFormatError(f"{path}: not a readable ONNX model ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'parse error'})") from None
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as e:  # noqa: BLE001
        raise FileFormatError(f"{path}: shape inference failed ({str(e).splitlines()[0]})") \
            from None
    g = model.graph
    shapes: dict[str, list] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else
                               (d.dim_param or None) for d in t.shape.dim]
    inits = {i.name for i in g.initializer}
    for i in g.initializer:
        shapes[i.name] = list(i.dims)
    for n in g.node:
        if n.op_type == "Constant":
            for o in n.output:
                inits.add(o)

    def shape(name: str, node) -> list[int]:
        s = shapes.get(name)
        if s is None or any(not isinstance(d, int) or d < 1 for d in s):
            raise FileFormatError(f"{path}: tensor {name!r} of node {node.name or node.op_type!r} "
                                  f"has no static shape ({s}); export with fixed shapes")
        return s

    unsupported = [f"{n.op_type} ({n.name or '?'})" for n in g.node
                   if n.op_type not in ZERO_COST and n.op_type not in VECTOR_OPS
                   and n.op_type not in GEMM_OPS]
    if unsupported:
        raise FileFormatError(f"{path}: unsupported ONNX ops: {', '.join(unsupported)}")
    layers: dict[str, list] = {}
    for idx, n in enumerate(g.node):
        name = n.name or f"{n.op_type}_{idx}"
        ops = layers.setdefault(_layer(name), [])
        if n.op_type in ZERO_COST:
            continue
        if n.op_type in VECTOR_OPS:
            out = shape(n.output[0], n)
            elems = math.prod(out)
            if n.op_type.startswith("Reduce"):
                elems = math.prod(shape(n.input[0], n))
            ops.append(VectorOp(name, VECTOR_OPS[n.op_type], elems))
            continue
        if n.op_type == "MatMul":
            a, b = shape(n.input[0], n), shape(n.input[1], n)
            if len(a) == 1 or len(b) == 1:
                raise FileFormatError(f"{path}: node {name!r}: MatMul of a vector is not "
                                      f"supported (shapes {a} and {b})")
            m, k = a[-2], a[-1]
            k2, nn = b[-2], b[-1]
            if k != k2:
                raise FileFormatError(f"{path}: node {name!r}: MatMul inner dims differ "
                                      f"({a} x {b})")
            if n.input[1] in inits and len(b) == 2:
                ops.append(Gemm(name, "linear", math.prod(a[:-1]), nn, k,
                                roles=(n.input[0], n.input[1], n.output[0])))
            else:
                batch = _broadcast(a[:-2], b[:-2], path, name)
                ops.append(Gemm(name, "attention", m, nn, k, math.prod(batch),
                                roles=(n.input[0], n.input[1], n.output[0])))
        elif n.op_type == "Gemm":
            attrs = {a.name: a for a in n.attribute}
            ta = attrs["transA"].i if "transA" in attrs else 0
            tb = attrs["transB"].i if "transB" in attrs else 0
            a, b = shape(n.input[0], n), shape(n.input[1], n)
            m, k = (a[1], a[0]) if ta else (a[0], a[1])
            nn = b[0] if tb else b[1]
            cls = "linear" if n.input[1] in inits else "attention"
            ops.append(Gemm(name, cls, m, nn, k, roles=(n.input[0], n.input[1], n.output[0])))
        elif n.op_type == "Conv":
            x, w, y = shape(n.input[0], n), shape(n.input[1], n), shape(n.output[0], n)
            attrs = {a.name: a for a in n.attribute}
            groups = attrs["group"].i if "group" in attrs else 1
            if len(x) != 4:
                raise FileFormatError(f"{path}: node {name!r}: only 2-D Conv (NCHW) is "
                                      f"supported, not input shape {x}")
            ops.append(Gemm(name, "linear", y[0] * y[2] * y[3], w[0] // groups,
                            w[1] * w[2] * w[3], groups,
                            roles=(n.input[0], n.input[1], n.output[0])))
    result = [(lab, ops) for lab, ops in layers.items() if ops]
    if not result:
        raise WorkloadError(f"{path}: the graph has no op with compute (MatMul, Gemm, Conv, "
                            f"Softmax, ...)")
    return g.name or path.stem, result


def _broadcast(a: list, b: list, path, name) -> list:
    n = max(len(a), len(b))
    a = [1] * (n - len(a)) + list(a)
    b = [1] * (n - len(b)) + list(b)
    out = []
    for x, y in zip(a, b):
        if x != y and 1 not in (x, y):
            raise FileFormatError(f"{path}: node {name!r}: MatMul batch dims {a} and {b} do not "
                                  f"broadcast")
        out.append(max(x, y))
    return out
