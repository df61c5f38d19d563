"""A streaming TensorFlow Lite model with quantised input and output, called through the
TFLite C API that pymicro-wakeword ships (libtensorflowlite_c): the part of pymicro-wakeword
the wake detector runs every 30 ms, with its buffers bound once.

pymicro-wakeword keeps these handles in undocumented attributes of MicroWakeWord (`lib`,
`interpreter`, `input_tensor`, ...), so this is its binding, vendored, rather than read from
there: the TFLite C API is TensorFlow's stable interface, and pymicro-wakeword's public API
gives the library's and the model's paths.

Adapted from pymicro-wakeword 2.5.0 (https://github.com/OHF-Voice/pymicro-wakeword, Michael
Hansen), `pymicro_wakeword/wakeword.py` (TfLiteWakeWord: the C signatures) and
`pymicro_wakeword/microwakeword.py` (MicroWakeWord._load_model, process_streaming_prob: loading,
quantisation parameters, tensor types, invoking). Licensed under the Apache License 2.0
(LICENSE.pymicro-wakeword next to this file; https://www.apache.org/licenses/LICENSE-2.0).
Changed here: only the calls a streaming detector needs; errchecks on every status and
handle; the model is loaded once and reset() makes a new interpreter from it; input and output
buffers are bound once instead of allocated for every invocation.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from ctypes import Structure, c_char_p, c_float, c_int, c_int32, c_size_t, c_void_p
from pathlib import Path
from typing import Any, Callable

import numpy as np


class TFLiteError(RuntimeError):
    """A TFLite C call failed: names the call (and the model)."""


class QuantizationParams(Structure):
    _fields_ = [("scale", c_float), ("zero_point", c_int32)]


# TfLiteType -> numpy dtype, for the quantised tensors the microWakeWord models have
DTYPES = {3: np.uint8, 9: np.int8}  # kTfLiteUInt8, kTfLiteInt8


# errchecks: ctypes calls them with (result, function, the call's arguments)
def _not_null(result: Any, func: Any, args: tuple) -> Any:
    if not result:
        raise TFLiteError(f"{func.__name__} returned NULL")
    return result


def _ok(result: int, func: Any, args: tuple) -> int:
    if result != 0:  # kTfLiteOk
        raise TFLiteError(f"{func.__name__} failed (status {result})")
    return result


_SIGNATURES: dict[str, tuple[Any, list[Any], Callable | None]] = {
    "TfLiteModelCreateFromFile": (c_void_p, [c_char_p], _not_null),
    "TfLiteModelDelete": (None, [c_void_p], None),
    "TfLiteInterpreterCreate": (c_void_p, [c_void_p, c_void_p], _not_null),
    "TfLiteInterpreterDelete": (None, [c_void_p], None),
    "TfLiteInterpreterAllocateTensors": (c_int, [c_void_p], _ok),
    "TfLiteInterpreterInvoke": (c_int, [c_void_p], _ok),
    "TfLiteInterpreterGetInputTensor": (c_void_p, [c_void_p, c_int32], _not_null),
    "TfLiteInterpreterGetOutputTensor": (c_void_p, [c_void_p, c_int32], _not_null),
    "TfLiteTensorNumDims": (c_int32, [c_void_p], None),
    "TfLiteTensorDim": (c_int32, [c_void_p, c_int32], None),
    "TfLiteTensorType": (c_int, [c_void_p], None),
    "TfLiteTensorByteSize": (c_size_t, [c_void_p], None),
    "TfLiteTensorQuantizationParams": (QuantizationParams, [c_void_p], None),
    "TfLiteTensorCopyFromBuffer": (c_int, [c_void_p, c_void_p, c_size_t], _ok),
    "TfLiteTensorCopyToBuffer": (c_int, [c_void_p, c_void_p, c_size_t], _ok),
}

_libraries: dict[Path, ctypes.CDLL] = {}
_libraries_lock = threading.Lock()


def load_library(path: str | os.PathLike) -> ctypes.CDLL:
    """libtensorflowlite_c, typed; one CDLL per file. (A CDLL of our own: pymicro-wakeword's
    handle to the same library keeps its own function types.)"""
    path = Path(path).resolve()
    with _libraries_lock:
        if path not in _libraries:
            # RTLD_GLOBAL as pymicro-wakeword loads it: the same library, loaded the same way
            lib = ctypes.CDLL(str(path)) if sys.platform == "win32" else ctypes.CDLL(str(path), mode=os.RTLD_GLOBAL)
            for name, (restype, argtypes, errcheck) in _SIGNATURES.items():
                function = getattr(lib, name)
                function.restype, function.argtypes = restype, argtypes
                if errcheck is not None:
                    function.errcheck = errcheck
            _libraries[path] = lib
        return _libraries[path]


class StreamingModel:
    """One .tflite model whose interpreter keeps state between invocations (a streaming model)
    and whose input and output are quantised integers. bind() the arrays once, then each
    invoke() copies the input in, runs the model and copies the output out."""

    def __init__(self, model_path: str | os.PathLike, library_path: str | os.PathLike):
        self.path = Path(model_path)
        self._lib = load_library(library_path)
        self._interpreter: int | None = None
        self._model: int | None = None
        self._model = self._lib.TfLiteModelCreateFromFile(str(self.path.resolve()).encode())
        self._inputs: np.ndarray | None = None
        self._outputs: np.ndarray | None = None
        self.reset()
        inp, out = self._input, self._output
        self.input_shape = tuple(self._lib.TfLiteTensorDim(inp, i) for i in range(self._lib.TfLiteTensorNumDims(inp)))
        self.input_nbytes = int(self._lib.TfLiteTensorByteSize(inp))
        self.output_nbytes = int(self._lib.TfLiteTensorByteSize(out))
        in_q = self._lib.TfLiteTensorQuantizationParams(inp)
        out_q = self._lib.TfLiteTensorQuantizationParams(out)
        # real = (q - zero_point) * scale
        self.input_scale, self.input_zero_point = float(in_q.scale), int(in_q.zero_point)
        self.output_scale, self.output_zero_point = float(out_q.scale), int(out_q.zero_point)
        types = self._lib.TfLiteTensorType(inp), self._lib.TfLiteTensorType(out)
        if not all(t in DTYPES for t in types):
            self.close()
            raise TFLiteError(f"{self.path.name}: tensor types {types}; only int8 (9) and uint8 (3) are supported")
        self.input_dtype, self.output_dtype = (np.dtype(DTYPES[t]) for t in types)

    def reset(self) -> None:
        """Forget the streaming state: a new interpreter on the loaded model (the state lives in
        the interpreter's resource variables, which the C API cannot clear; about 0.4 ms)."""
        if self._model is None:
            raise TFLiteError(f"{self.path.name}: the model is closed")
        self._delete_interpreter()
        self._interpreter = self._lib.TfLiteInterpreterCreate(self._model, None)
        self._lib.TfLiteInterpreterAllocateTensors(self._interpreter)
        self._input = self._lib.TfLiteInterpreterGetInputTensor(self._interpreter, 0)
        self._output = self._lib.TfLiteInterpreterGetOutputTensor(self._interpreter, 0)

    def bind(self, inputs: np.ndarray, outputs: np.ndarray) -> None:
        """The arrays invoke() reads from and writes to, kept here so their memory stays valid."""
        if inputs.dtype != self.input_dtype or inputs.nbytes != self.input_nbytes or not inputs.flags.c_contiguous:
            raise ValueError(f"input must be {self.input_nbytes} contiguous bytes of {self.input_dtype}")
        if outputs.dtype != self.output_dtype or outputs.nbytes != self.output_nbytes \
                or not outputs.flags.c_contiguous:
            raise ValueError(f"output must be {self.output_nbytes} contiguous bytes of {self.output_dtype}")
        self._inputs, self._outputs = inputs, outputs
        self._in_ptr, self._out_ptr = inputs.ctypes.data, outputs.ctypes.data

    def invoke(self) -> None:
        """Run the model once on the bound input; its output lands in the bound output."""
        if self._inputs is None or self._interpreter is None:
            raise TFLiteError(f"{self.path.name}: bind() buffers to an open model before invoke()")
        lib = self._lib
        lib.TfLiteTensorCopyFromBuffer(self._input, self._in_ptr, self.input_nbytes)
        lib.TfLiteInterpreterInvoke(self._interpreter)
        lib.TfLiteTensorCopyToBuffer(self._output, self._out_ptr, self.output_nbytes)

    def close(self) -> None:
        self._delete_interpreter()
        model, self._model = self._model, None
        if model:
            self._lib.TfLiteModelDelete(model)

    def _delete_interpreter(self) -> None:
        interpreter, self._interpreter = self._interpreter, None
        if interpreter:
            self._lib.TfLiteInterpreterDelete(interpreter)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- interpreter shutdown
            pass
