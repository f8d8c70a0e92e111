"""fp16 for TensorRT: rewrite the fp32 ONNX reverse pass into an explicitly mixed-precision graph.

TensorRT 11 removed the "weakly typed" builder flags (BuilderFlag.FP16 and the precision
constraints); precision must now be written into the network itself, as typed tensors and Cast
nodes, and the network built *strongly typed* (which TensorRT 10 supports too). NVIDIA's
ModelOpt AutoCast does that generically; this module does it with a rule made for this model,
in ~150 lines on the `onnx` package, so the `gpu` extra needs nothing from a private index.

The rule (RECIPE, part of the engine cache key):
- every convolution runs in fp16 (weights and bias stored as fp16, activations cast to fp16):
  that is where >95 % of the FLOPs are;
- shape/layout ops, ReLU/LeakyReLU, concatenation and + - * / stay in fp16 when all their
  non-constant inputs are already fp16 (the encoder's dense blocks and residuals, the subnets'
  hidden layers), and run in fp32 otherwise;
- everything else runs in fp32: transcendental functions (exp, tanh, pow), and every op that
  touches the flow's state, which starts at the fp32 latents and never goes through fp16; so
  the invertible part (affine injectors, couplings, 1x1 convolutions applied to the state, the
  priors' mu/sigma application) and the final decode to linear radiance keep fp32 accuracy.
Inputs and outputs stay float32, so the engine's I/O contract does not change.

`simulate_fp16` builds the same plan but keeps fp32 types and rounds every value the real
fp16 graph would store in fp16 (weights and the outputs of fp16 ops) through Cast round trips:
onnxruntime on a CPU then predicts the fp16 engine's accuracy without a GPU (fp16 tensor-core
convolutions accumulate in fp32, so storage rounding is the dominant error).
"""
from __future__ import annotations

RECIPE = "fp16-conv-follow-v1"

CONV_OPS = {"Conv", "ConvTranspose"}
#: op -> indices of its float *data* inputs (None: all of them). Other float inputs (Resize's
#: roi/scales) keep their type.
FOLLOW_OPS = {
    "Relu": (0,), "LeakyRelu": (0,), "Concat": None, "Resize": (0,), "DepthToSpace": (0,),
    "SpaceToDepth": (0,), "Transpose": (0,), "Reshape": (0,), "Slice": (0,), "Split": (0,),
    "Identity": (0,), "Squeeze": (0,), "Unsqueeze": (0,), "MaxPool": (0,), "AveragePool": (0,),
    "Pad": (0,), "Add": None, "Sub": None, "Mul": None, "Div": None, "Neg": (0,),
}
FLOAT, FLOAT16 = 1, 10


def _onnx():
    try:
        import onnx
    except ImportError:
        from ..errors import InputError

        raise InputError("tensorrt --precision fp16 needs the 'onnx' package (pip install 'hdrcnf[gpu]')") from None
    return onnx


def _plan(model):
    """(modes: node index -> 'fp16'/'fp32'/'const', float tensor names, float constant names)."""
    onnx = _onnx()
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(model)
    g = inferred.graph
    elem = {}
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        elem[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        elem[init.name] = init.data_type
    consts = {init.name for init in g.initializer if init.data_type == FLOAT}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == FLOAT:
                    consts.add(n.output[0])
                    elem[n.output[0]] = FLOAT
    floats = {name for name, t in elem.items() if t == FLOAT}
    prec = {i.name: "fp32" for i in g.input if i.name in floats}
    modes = []
    for n in model.graph.node:
        if n.op_type == "Constant":
            modes.append("const")
            continue
        idx = _data_inputs(n)
        data = [n.input[i] for i in idx if n.input[i] in floats]
        if n.op_type in CONV_OPS:
            mode = "fp16"
        elif n.op_type in FOLLOW_OPS:
            live = [t for t in data if t not in consts]
            mode = "fp16" if live and all(prec.get(t) == "fp16" for t in live) else "fp32"
        else:
            mode = "fp32"
        modes.append(mode)
        for o in n.output:
            if o in floats:
                prec[o] = mode
    return modes, floats, consts, prec, onnx


def _data_inputs(node) -> tuple[int, ...]:
    if node.op_type in CONV_OPS:
        return tuple(range(len(node.input)))
    spec = FOLLOW_OPS.get(node.op_type, ())
    if spec is None:
        return tuple(range(len(node.input)))
    return tuple(i for i in spec if i < len(node.input))


def _const_value(model, name):
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output[0] == name:
            return numpy_helper.to_array(n.attribute[0].t)
    raise KeyError(name)


def to_mixed_fp16(model, simulate: bool = False):
    """A new ModelProto: `model` (fp32) rewritten per RECIPE. With `simulate`, types stay fp32
    and fp16 storage is emulated by rounding (see the module docstring)."""
    import copy

    import numpy as np

    modes, floats, consts, prec, onnx = _plan(model)
    from onnx import helper, numpy_helper

    out = copy.deepcopy(model)
    g = out.graph
    nodes = list(g.node)
    del g.node[:]
    new_inits = []
    half_const: dict[str, str] = {}
    casts: dict[tuple[str, int], str] = {}
    counter = [0]

    def fresh(base: str) -> str:
        counter[0] += 1
        return f"{base}__mp{counter[0]}"

    def const16(name: str) -> str:
        if name not in half_const:
            v = _const_value(model, name)
            if simulate:
                arr = v.astype(np.float16).astype(np.float32)
            else:
                arr = v.astype(np.float16)
            new = fresh(name)
            new_inits.append(numpy_helper.from_array(arr, new))
            half_const[name] = new
        return half_const[name]

    def cast(name: str, to: int, emit) -> str:
        key = (name, to)
        if key not in casts:
            new = fresh(name)
            if simulate:  # fp32 -> fp16 -> fp32: the value an fp16 tensor would hold
                mid = fresh(name)
                emit(helper.make_node("Cast", [name], [mid], to=FLOAT16, name=fresh("cast")))
                emit(helper.make_node("Cast", [mid], [new], to=FLOAT, name=fresh("cast")))
            else:
                emit(helper.make_node("Cast", [name], [new], to=to, name=fresh("cast")))
            casts[key] = new
        return casts[key]

    emitted = []
    emit = emitted.append
    for n, mode in zip(nodes, modes, strict=True):
        if mode == "const":
            emit(n)
            continue
        data = set(_data_inputs(n))
        for i, t in enumerate(n.input):
            if not t or t not in floats:
                continue
            if mode == "fp16" and i in data:
                if t in consts:
                    n.input[i] = const16(t)
                elif prec.get(t) == "fp32":
                    n.input[i] = cast(t, FLOAT16, emit)
            elif prec.get(t) == "fp16" and not simulate:
                n.input[i] = cast(t, FLOAT, emit)
        emit(n)
        if simulate and mode == "fp16":  # round the op's float outputs as fp16 storage would
            for j, o in enumerate(n.output):
                if o in floats:
                    raw = fresh(o)
                    n.output[j] = raw
                    mid = fresh(o)
                    emit(helper.make_node("Cast", [raw], [mid], to=FLOAT16, name=fresh("cast")))
                    emit(helper.make_node("Cast", [mid], [o], to=FLOAT, name=fresh("cast")))
    if not simulate:  # graph outputs must stay float32
        for o in g.output:
            if prec.get(o.name) == "fp16":
                raw = fresh(o.name)
                for n in emitted:
                    for lst in (n.input, n.output):
                        for k, t in enumerate(lst):
                            if t == o.name:
                                lst[k] = raw
                emitted.append(helper.make_node("Cast", [raw], [o.name], to=FLOAT, name=fresh("cast")))
    g.node.extend(emitted)
    g.initializer.extend(new_inits)
    del g.value_info[:]  # types changed: let consumers re-infer
    # initializers no longer used by anyone (their fp16 copies replaced them) are dropped
    used = {t for n in g.node for t in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    onnx.checker.check_model(out)
    return out


def fp16_summary(model) -> dict:
    """How many nodes of each op type the recipe puts in fp16 (for logs and tests)."""
    modes, *_ = _plan(model)
    out: dict[str, dict[str, int]] = {}
    for n, m in zip(model.graph.node, modes, strict=True):
        if m != "const":
            out.setdefault(n.op_type, {"fp16": 0, "fp32": 0})[m] += 1
    return out
