"""A stand-in for the few ``tensorrt`` names hhrnet-rt calls, so the code around TensorRT runs on the CPU.

It follows NVIDIA's documented Python API (10.12+ / 11) for exactly the calls the project makes and
records what was asked of it (flags cleared, bytes deserialized), so tests can check the requests.
Behaviour switches are class attributes set per test (e.g. ``FakeRuntime.engine = None`` for a file
TensorRT cannot read). Install it with ``monkeypatch.setitem(sys.modules, "tensorrt", make_fake())``.
"""

from __future__ import annotations

import enum
import types


class BuilderFlag(enum.Enum):
    TF32 = 0
    REFIT = 1


class TensorIOMode(enum.Enum):
    INPUT = 0
    OUTPUT = 1


class NetworkDefinitionCreationFlag(enum.IntEnum):
    STRONGLY_TYPED = 1


class MemoryPoolType(enum.Enum):
    WORKSPACE = 0


class ProfilingVerbosity(enum.Enum):
    LAYER_NAMES_ONLY = 0
    NONE = 1
    DETAILED = 2


class LayerInformationFormat(enum.Enum):
    ONELINE = 0
    JSON = 1


class Logger:
    WARNING = 2

    def __init__(self, severity: int = 2) -> None:
        self.severity = severity


class FakeNetwork:
    num_inputs = 0
    num_outputs = 0


class FakeParser:
    def __init__(self, network, logger) -> None:
        self.num_errors = 0

    def parse_from_file(self, path: str) -> bool:
        return True


class FakeTimingCache:
    def __init__(self, data: bytes = b"") -> None:
        self.data = bytes(data)

    def serialize(self) -> bytes:
        return b"cache"


class FakeConfig:
    """Switches: ``refused`` (cache contents set_timing_cache refuses), ``no_cache`` (create returns None)."""

    refused: set[bytes] = set()
    no_cache = False

    def __init__(self) -> None:
        self.flags = {BuilderFlag.TF32}  # TensorRT's default: TF32 allowed
        self.cleared: list = []

    def set_memory_pool_limit(self, pool, size) -> None:
        self.workspace = size

    def clear_flag(self, flag) -> None:
        self.cleared.append(flag)
        self.flags.discard(flag)

    def set_flag(self, flag) -> None:
        self.flags.add(flag)

    def get_flag(self, flag) -> bool:
        return flag in self.flags

    def add_optimization_profile(self, profile) -> int:
        return 0

    def create_timing_cache(self, data: bytes) -> FakeTimingCache | None:
        return None if FakeConfig.no_cache else FakeTimingCache(data)

    def set_timing_cache(self, cache, ignore_mismatch: bool) -> bool:
        self.timing_cache = cache
        return cache.data not in FakeConfig.refused

    def get_timing_cache(self) -> FakeTimingCache:
        return FakeTimingCache()


class FakeProfile:
    def set_shape(self, name, lo, opt, hi) -> None:
        self.shapes = (name, lo, opt, hi)


class Builder:
    last_config: FakeConfig | None = None

    def __init__(self, logger) -> None:
        pass

    def create_network(self, flags: int) -> FakeNetwork:
        return FakeNetwork()

    def create_builder_config(self) -> FakeConfig:
        Builder.last_config = FakeConfig()
        return Builder.last_config

    def create_optimization_profile(self) -> FakeProfile:
        return FakeProfile()

    def build_serialized_network(self, network, config) -> bytes:
        return b"serialized engine"


class FakeInspector:
    """``get_engine_information`` answers ``info`` (an engine inspector JSON a test writes) for the JSON
    format and records the formats asked for."""

    info = '{"Layers": [], "Bindings": []}'
    asked: list = []

    def get_engine_information(self, fmt) -> str:
        FakeInspector.asked.append(fmt)
        return FakeInspector.info


class FakeEngine:
    """An engine with no I/O tensors whose context can be refused (``context = None``)."""

    num_io_tensors = 0
    context: object | None = object()

    def create_execution_context(self):
        return FakeEngine.context

    def create_engine_inspector(self) -> FakeInspector:
        return FakeInspector()


class Runtime:
    """``deserialize_cuda_engine`` returns ``engine`` (``None``: a file TensorRT rejects) or raises ``error``."""

    engine: object | None = FakeEngine()
    error: Exception | None = None
    seen: list[bytes] = []

    def __init__(self, logger) -> None:
        pass

    def deserialize_cuda_engine(self, data: bytes):
        Runtime.seen.append(bytes(data))
        if Runtime.error is not None:
            raise Runtime.error
        return Runtime.engine


def make_fake(version: str = "10.12.0") -> types.ModuleType:
    """A fresh fake ``tensorrt`` module (switches reset to "everything works")."""
    Runtime.engine, Runtime.error, Runtime.seen = FakeEngine(), None, []
    FakeEngine.context = object()
    Builder.last_config = None
    FakeConfig.refused, FakeConfig.no_cache = set(), False
    FakeInspector.info, FakeInspector.asked = '{"Layers": [], "Bindings": []}', []
    module = types.ModuleType("tensorrt")
    module.__version__ = version
    for obj in (
        BuilderFlag,
        TensorIOMode,
        NetworkDefinitionCreationFlag,
        MemoryPoolType,
        ProfilingVerbosity,
        LayerInformationFormat,
        Logger,
        Builder,
        Runtime,
    ):
        setattr(module, obj.__name__, obj)
    module.OnnxParser = FakeParser
    return module
