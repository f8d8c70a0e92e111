"""A stand-in for the `tensorrt` module: the API surface engine/backends/tensorrt.py uses, with
"engines" that run the parsed ONNX bytes in onnxruntime and "device memory" in numpy buffers.

It lets the TensorRT backend's own logic (profile, cache, rebuild, slots, pipelined batches,
fp16 rewrite) run in every CPU test run; the real library is exercised by test_tensorrt_gpu.py
on a GPU. Not a model of TensorRT's numerics or timing."""
import pickle

import numpy as np
import onnxruntime as ort

__version__ = "10.99.0-fake"
REG = {}  # ptr -> numpy uint8 buffer (the fake "device" memory)

class _E:
    def __init__(self, **kw):
        for k, v in kw.items(): setattr(self, k, v)

class ILogger:
    Severity = _E(INTERNAL_ERROR=0, ERROR=1, WARNING=2, INFO=3, VERBOSE=4)
    def __init__(self): pass
class Logger(ILogger):
    def __init__(self, sev=None): pass
NetworkDefinitionCreationFlag = _E(STRONGLY_TYPED=5)
BuilderFlag = _E(TF32=7)
MemoryPoolType = _E(WORKSPACE=0)
TensorIOMode = _E(INPUT="in", OUTPUT="out")
DataType = _E(FLOAT="float")
BUILDS = []

class _Net:
    def __init__(self, flags): self.flags, self.onnx = flags, None
class OnnxParser:
    def __init__(self, net, logger): self.net = net; self.num_errors = 0
    def parse(self, data):
        self.net.onnx = bytes(data); return True
    def get_error(self, i): return "none"
class _Profile:
    def __init__(self): self.shapes = {}
    def set_shape(self, name, lo, opt, hi): self.shapes[name] = (tuple(lo), tuple(opt), tuple(hi))
class _TC:
    def __init__(self, data): self.data = data
    def serialize(self): return memoryview(b"timing-cache")
class _Config:
    def __init__(self): self.profiles = []; self.cleared = set(); self.tc = None
    def set_memory_pool_limit(self, pool, n): assert n > 0
    def clear_flag(self, f): self.cleared.add(f)
    def add_optimization_profile(self, p): self.profiles.append(p)
    def create_timing_cache(self, data): return _TC(bytes(data))
    def set_timing_cache(self, c, ignore): self.tc = c; return True
    def get_timing_cache(self): return self.tc
class Builder:
    def __init__(self, logger): pass
    def create_network(self, flags): return _Net(flags)
    def create_builder_config(self): return _Config()
    def create_optimization_profile(self): return _Profile()
    def build_serialized_network(self, net, cfg):
        assert net.flags & (1 << 5), "strongly typed expected"
        BUILDS.append((cfg, net))
        return memoryview(b"FAKEENGINE" + pickle.dumps((net.onnx, cfg.profiles[0].shapes)))
class Runtime:
    def __init__(self, logger): pass
    def deserialize_cuda_engine(self, data):
        data = bytes(data)
        if not data.startswith(b"FAKEENGINE"): return None
        onnx_bytes, shapes = pickle.loads(data[10:])
        return _Engine(onnx_bytes, shapes)
class _Engine:
    def __init__(self, onnx_bytes, shapes):
        so = ort.SessionOptions(); so.log_severity_level = 3
        self.sess = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
        self.ins = [i.name for i in self.sess.get_inputs()]; self.outs = [o.name for o in self.sess.get_outputs()]
        self.shapes = shapes; self.num_io_tensors = len(self.ins) + len(self.outs)
    def get_tensor_name(self, i): return (self.ins + self.outs)[i]
    def get_tensor_mode(self, n): return TensorIOMode.INPUT if n in self.ins else TensorIOMode.OUTPUT
    def get_tensor_dtype(self, n): return DataType.FLOAT
    def create_execution_context(self): return _Ctx(self)
class _Ctx:
    def __init__(self, eng): self.eng, self.shape, self.addr = eng, {}, {}
    def set_input_shape(self, n, s):
        lo, _, hi = self.eng.shapes[n]
        if not all(a <= b <= c for a, b, c in zip(lo, s, hi)): return False
        self.shape[n] = tuple(s); return True
    def set_tensor_address(self, n, p): self.addr[n] = p
    def get_tensor_shape(self, n): return self.shape[self.eng.ins[0]]
    def execute_async_v3(self, stream):
        feeds = {}
        for n in self.eng.ins:
            s = self.shape[n]; k = int(np.prod(s))
            feeds[n] = REG[self.addr[n]][:k * 4].view(np.float32).reshape(s).copy()
        y = self.eng.sess.run(None, feeds)[0]
        REG[self.addr[self.eng.outs[0]]][:y.nbytes] = y.reshape(-1).view(np.uint8)
        return True
