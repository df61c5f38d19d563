"""Convert a CTranslate2 (faster-whisper) Whisper model folder into a whisper.cpp ggml file.

Only numpy is needed. The folder holds model.bin, config.json and the vocabulary
(vocabulary.txt, vocabulary.json or tokenizer.json). Every hyper-parameter is read from
the variables' shapes, so any Whisper size converts, not only tiny.en.

model.bin (CTranslate2 binary version 4-6, little-endian):
    u32 version, str spec name, u32 revision, u32 n_variables,
    per variable: str name, u8 rank, u32 dims[rank], u8 dtype, u32 n_bytes, data,
    u32 n_aliases, then (str alias, str target) pairs.
    str = u16 length including a trailing NUL, the UTF-8 bytes, the NUL.

ggml (whisper.cpp): i32 magic, 11 i32 hparams, mel filters, vocabulary, then tensors
named as in openai-whisper's state dict, each: i32 n_dims, i32 name length, i32 type,
dims innermost first, name, data.
"""

from __future__ import annotations

import dataclasses
import json
import mmap
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from ..errors import ConversionError

PathLike = Union[str, "os.PathLike[str]"]

GGML_MAGIC = 0x67676D6C  # "ggml"
FTYPE_F16 = 1  # big matrices in f16, the rest in f32
_CT2_DTYPES = {0: "<f4", 1: "i1", 2: "<i2", 3: "<i4", 4: "<f2", 5: "<u2"}  # 5: bfloat16 bits
_BF16 = 5
# ggml type id -> (elements per block, bytes per block); enough to skip a tensor's data.
_GGML_TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 30: (1, 2),
}
_VOCAB_FILES = ("vocabulary.txt", "vocabulary.json", "tokenizer.json")
_EOT = "<|endoftext|>"


@dataclass(frozen=True)
class GgmlInfo:
    n_vocab: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int
    n_mels: int
    ftype: int  # as stored in the header: 0 f32, 1 f16, quantised types beyond
    n_tensors: int


# --- public API -------------------------------------------------------------------------


def is_ct2_whisper(path: PathLike) -> bool:
    """True if `path` is a folder whose model.bin is a CTranslate2 Whisper model."""
    try:
        with open(Path(path) / "model.bin", "rb") as f:
            head = f.read(4 + 2 + 256)
        version, name_len = struct.unpack_from("<IH", head)
        name = head[6 : 6 + name_len].rstrip(b"\0")
        return version >= 2 and name == b"WhisperSpec"
    except (OSError, struct.error):
        return False


def convert(
    ct2_dir: PathLike,
    out_path: PathLike,
    progress: Optional[Callable[[int, int], None]] = None,
) -> GgmlInfo:
    """Write `ct2_dir`'s Whisper model to `out_path` as a whisper.cpp ggml file (f16).

    The file appears atomically (temporary file + os.replace); `progress(done, total)` is
    called after each tensor.
    """
    ct2_dir, out_path = Path(ct2_dir), Path(out_path)
    if not (ct2_dir / "model.bin").is_file():
        raise ConversionError(f"{ct2_dir}: no model.bin, not a CTranslate2 model folder")
    model = _Ct2Model(ct2_dir / "model.bin")
    if model.spec != "WhisperSpec":
        raise ConversionError(f"{model.path}: a CTranslate2 {model.spec}, not a Whisper model")
    info = _hparams(model)
    tokens = _load_tokens(ct2_dir, info.n_vocab)
    plan = _tensor_plan(info.n_audio_layer, info.n_text_layer)
    info = dataclasses.replace(info, n_tensors=len(plan))

    def write(f: BinaryIO) -> None:
        _write_header(f, info, tokens)
        for done, (name, source, part) in enumerate(plan, 1):
            _write_tensor(f, name, _take_part(model, source, part))
            if progress:
                progress(done, len(plan))

    _write_atomically(out_path, write)
    return info


def read_ggml_info(path: PathLike) -> GgmlInfo:
    """Parse a whisper.cpp ggml file's header and tensor table, skipping the tensor data.

    Raises ConversionError if the file is not ggml, is truncated or corrupt, or its tensors
    are not exactly the ones whisper.cpp's loader asks for.
    """
    path = Path(path)
    with _Reader(path) as r:
        hparams, names = _read_ggml_table(r)
    # whisper.cpp refuses a file with a missing or an unknown tensor.
    wanted = [name for name, _, _ in _tensor_plan(hparams[4], hparams[8])]
    if sorted(names) != sorted(wanted):
        missing, unknown = sorted(set(wanted) - set(names)), sorted(set(names) - set(wanted))
        causes = [f"unknown {unknown[0]}"] if unknown else []
        if missing:
            causes.insert(0, f"missing {missing[0]}" + (", truncated?" if not unknown else ""))
        raise ConversionError(
            f"{path}: {len(names)} tensors, whisper.cpp wants {len(wanted)} "
            f"({'; '.join(causes) or 'duplicate names'})"
        )
    return GgmlInfo(*hparams, n_tensors=len(names))


# --- reading ggml -------------------------------------------------------------------------


Hparams = Tuple[int, int, int, int, int, int, int, int, int, int, int]  # the ggml header's 11 i32, in order


def _read_ggml_table(r: _Reader) -> Tuple[Hparams, List[str]]:
    """The 11 hparams and the tensor names; the mel filters, vocabulary and data are skipped."""
    path = r.path
    if r.size < 4 or r.unpack("I")[0] != GGML_MAGIC:
        raise ConversionError(f"{path}: not a whisper.cpp ggml file (bad magic)")
    hparams: Hparams = r.unpack("11i")
    if min(hparams[:10]) <= 0 or max(hparams[4], hparams[8]) > 256:
        raise ConversionError(f"{path}: corrupt hyper-parameters {hparams}")
    n_mel, n_fft = r.unpack("2i")
    if not (0 < n_mel <= 1024 and 0 < n_fft <= 4096):
        raise ConversionError(f"{path}: corrupt mel filter header ({n_mel} x {n_fft})")
    r.skip(4 * n_mel * n_fft)
    (n_tokens,) = r.unpack("i")
    if not 0 <= n_tokens <= hparams[0]:
        raise ConversionError(f"{path}: corrupt vocabulary ({n_tokens} tokens of {hparams[0]})")
    for _ in range(n_tokens):
        (length,) = r.unpack("i")
        if not 0 <= length <= 1024:
            raise ConversionError(f"{path}: corrupt vocabulary (a token of {length} bytes)")
        r.skip(length)

    names = []
    while r.pos < r.size:
        names.append(_skip_tensor(r))
    return hparams, names


def _skip_tensor(r: _Reader) -> str:
    n_dims, name_len, ttype = r.unpack("3i")
    if not (1 <= n_dims <= 4 and 0 < name_len <= 256 and ttype in _GGML_TYPES):
        raise ConversionError(
            f"{r.path}: corrupt tensor header at offset {r.pos - 12} (dims {n_dims}, type {ttype})"
        )
    dims = r.unpack(f"{n_dims}i")
    name = r.take(name_len).decode("utf-8", errors="replace")
    block, block_bytes = _GGML_TYPES[ttype]
    n = int(np.prod(dims, dtype=np.int64))
    if min(dims) <= 0 or dims[0] % block:
        raise ConversionError(f"{r.path}: tensor {name} has a bad shape {dims} for type {ttype}")
    r.skip(n // block * block_bytes)
    return name


# --- reading CTranslate2 -----------------------------------------------------------------


class _Reader:
    """Little-endian reads over a memory-mapped file (ggml or model.bin); reading past the
    end is a ConversionError naming the file."""

    def __init__(self, path: Path):
        self.path, self.pos = path, 0
        try:
            with open(path, "rb") as f:
                self.buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # mmap refuses empty files
            raise ConversionError(f"{path}: empty file") from None
        except OSError as e:
            raise ConversionError(f"{path}: cannot read ({e.strerror or e})") from e
        self.size = len(self.buf)

    def __enter__(self) -> "_Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.buf.close()

    def _advance(self, n: int) -> int:
        if n < 0 or self.pos + n > self.size:
            raise ConversionError(
                f"{self.path}: truncated or corrupt (needs {n} bytes at offset {self.pos}, "
                f"file has {self.size})"
            )
        self.pos += n
        return self.pos - n

    def take(self, n: int) -> bytes:
        start = self._advance(n)
        return self.buf[start : start + n]

    def array(self, n: int) -> np.ndarray:
        """n bytes as a read-only uint8 view of the mapping (no copy)."""
        return np.frombuffer(self.buf, np.uint8, n, self._advance(n))

    def skip(self, n: int) -> None:
        self._advance(n)

    def unpack(self, fmt: str) -> tuple:
        fmt = "<" + fmt
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def string(self) -> str:
        (n,) = self.unpack("H")
        return self.take(n).rstrip(b"\0").decode("utf-8", errors="replace")


class _Ct2Model:
    """model.bin's variables as zero-copy views of the mapped file, aliases resolved."""

    def __init__(self, path: Path):
        r = _Reader(path)
        version = r.unpack("I")[0]
        if not 4 <= version <= 6:
            raise ConversionError(f"{path}: unsupported CTranslate2 binary version {version}")
        self.path, self.spec = path, r.string()
        r.unpack("I")  # spec revision
        self.vars: Dict[str, np.ndarray] = {}
        self.bf16 = set()  # names whose uint16 values are bfloat16 bits, widened on use
        for _ in range(r.unpack("I")[0]):
            name = r.string()
            dims = r.unpack(f"{r.unpack('B')[0]}I")
            dtype_id, n_bytes = r.unpack("BI")
            if dtype_id not in _CT2_DTYPES:
                raise ConversionError(f"{path}: variable {name} has unknown dtype {dtype_id}")
            dtype = _CT2_DTYPES[dtype_id]
            raw = r.array(n_bytes)
            if raw.size != np.dtype(dtype).itemsize * int(np.prod(dims, dtype=np.int64)):
                raise ConversionError(f"{path}: variable {name} has {raw.size} bytes for {dims}")
            self.vars[name] = raw.view(dtype).reshape(dims)
            if dtype_id == _BF16:
                self.bf16.add(name)
        self.aliases: Dict[str, str] = {}
        for _ in range(r.unpack("I")[0]):  # e.g. the output projection tied to the embedding
            alias = r.string()
            self.aliases[alias] = r.string()

    def shape(self, name: str) -> tuple:
        return self.vars[self._resolve(name)].shape

    def scalar(self, name: str) -> Optional[int]:
        return int(self.vars[name]) if name in self.vars else None

    def weight(self, name: str) -> np.ndarray:
        """A float array; int8/int16 weights are divided by their `_scale` (per output row)."""
        name = self._resolve(name)
        value = self._raw(name)
        if name + "_scale" not in self.vars:
            if value.dtype.kind != "f":
                raise ConversionError(f"{self.path}: {name} is {value.dtype} without {name}_scale")
            return value
        scale = self._raw(name + "_scale").astype(np.float32)
        if scale.ndim == value.ndim - 1:  # one scale per output row, as CTranslate2 quantises
            scale = np.expand_dims(scale, 1)
        return value.astype(np.float32) / scale

    def _resolve(self, name: str) -> str:
        name = self.aliases.get(name, name)
        if name not in self.vars:
            raise ConversionError(f"{self.path}: variable {name} is missing")
        return name

    def _raw(self, name: str) -> np.ndarray:
        name = self._resolve(name)
        if name in self.bf16:  # bfloat16 is the top half of a float32
            return (self.vars[name].astype(np.uint32) << 16).view(np.float32)
        return self.vars[name]


def _hparams(model: _Ct2Model) -> GgmlInfo:
    """Every size from the variables' shapes (heads from the stored num_heads)."""
    shape = model.shape
    n_audio_state, n_mels, _ = shape("encoder/conv1/weight")
    n_audio_ctx = shape("encoder/position_encodings/encodings")[0]
    n_vocab, n_text_state = shape("decoder/embeddings/weight")
    n_text_ctx = shape("decoder/position_encodings/encodings")[0]
    return GgmlInfo(
        n_vocab=n_vocab,
        n_audio_ctx=n_audio_ctx,
        n_audio_state=n_audio_state,
        n_audio_head=_n_heads(model, "encoder", n_audio_state),
        n_audio_layer=_n_layers(model, "encoder"),
        n_text_ctx=n_text_ctx,
        n_text_state=n_text_state,
        n_text_head=_n_heads(model, "decoder", n_text_state),
        n_text_layer=_n_layers(model, "decoder"),
        n_mels=n_mels,
        ftype=FTYPE_F16,
        n_tensors=0,  # set once the tensor plan is known
    )


def _n_heads(model: _Ct2Model, side: str, n_state: int) -> int:
    # Whisper's heads are 64 wide in every size; num_heads is stored since CTranslate2 3.x.
    heads = model.scalar(f"{side}/num_heads") or n_state // 64
    if heads <= 0 or n_state % heads:
        raise ConversionError(f"{model.path}: {side} has {heads} heads for width {n_state}")
    return heads


def _n_layers(model: _Ct2Model, side: str) -> int:
    found = {int(m.group(1)) for n in model.vars if (m := re.match(rf"{side}/layer_(\d+)/", n))}
    if not found or found != set(range(len(found))):
        raise ConversionError(f"{model.path}: {side} layers {sorted(found)} are not 0..n-1")
    return len(found)


def _load_tokens(ct2_dir: Path, n_vocab: int) -> List[bytes]:
    """The ordinary tokens (those before <|endoftext|>) as raw bytes."""
    for name in _VOCAB_FILES:
        path = ct2_dir / name
        if path.is_file():
            break
    else:
        raise ConversionError(f"{ct2_dir}: no vocabulary ({', '.join(_VOCAB_FILES)})")
    try:
        text = path.read_text(encoding="utf-8")
        if name == "vocabulary.txt":
            tokens = text.split("\n")  # not splitlines(): only \n separates tokens
        elif name == "vocabulary.json":
            tokens = json.loads(text)
        else:
            data = json.loads(text)
            added = {t["content"]: t["id"] for t in data.get("added_tokens", [])}
            by_id = {**data["model"]["vocab"], **added}
            tokens = sorted(by_id, key=lambda token: by_id[token])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConversionError(f"{path}: unreadable vocabulary ({e})") from e
    if _EOT not in tokens or tokens.index(_EOT) >= n_vocab:
        raise ConversionError(f"{path}: no {_EOT} among the model's {n_vocab} tokens")
    decoder = {c: b for b, c in _bytes_to_unicode().items()}
    # Any character outside GPT-2's table (none in Whisper's vocabularies) is kept as UTF-8.
    return [
        b"".join(bytes([decoder[c]]) if c in decoder else c.encode() for c in token)
        for token in tokens[: tokens.index(_EOT)]
    ]


def _bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's reversible table mapping each byte to a printable character."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]  # printable as they are
    table = {b: chr(b) for b in keep}
    moved = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + i) for i, b in enumerate(moved)})
    return table


# --- the tensor plan ----------------------------------------------------------------------

# (ggml name, CTranslate2 variable, part): part (index, parts) picks one of the equal row
# blocks of a fused matrix, None takes the whole variable.
_Part = Optional[Tuple[int, int]]
_Entry = Tuple[str, str, _Part]


def _tensor_plan(n_audio_layer: int, n_text_layer: int) -> List[_Entry]:
    """Every tensor whisper.cpp's loader asks for, with where it comes from."""
    plan: List[_Entry] = []
    for i in (1, 2):
        plan += _linear(f"encoder.conv{i}", f"encoder/conv{i}")
    plan.append(("encoder.positional_embedding", "encoder/position_encodings/encodings", None))
    for i in range(n_audio_layer):
        dst, src = f"encoder.blocks.{i}", f"encoder/layer_{i}"
        plan += _norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        plan += _self_attention(f"{dst}.attn", f"{src}/self_attention")
        plan += _mlp(dst, f"{src}/ffn")
    plan += _norm("encoder.ln_post", "encoder/layer_norm")

    plan.append(("decoder.positional_embedding", "decoder/position_encodings/encodings", None))
    # The output projection is tied to the token embedding (a CT2 alias): written once.
    plan.append(("decoder.token_embedding.weight", "decoder/embeddings/weight", None))
    for i in range(n_text_layer):
        dst, src = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        plan += _norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        plan += _self_attention(f"{dst}.attn", f"{src}/self_attention")
        plan += _norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        plan += _cross_attention(f"{dst}.cross_attn", f"{src}/attention")
        plan += _mlp(dst, f"{src}/ffn")
    plan += _norm("decoder.ln", "decoder/layer_norm")
    return plan


def _linear(dst: str, src: str, part: _Part = None, bias: bool = True) -> List[_Entry]:
    out = [(f"{dst}.weight", f"{src}/weight", part)]
    return out + [(f"{dst}.bias", f"{src}/bias", part)] if bias else out


def _norm(dst: str, src: str) -> List[_Entry]:
    return [(f"{dst}.weight", f"{src}/gamma", None), (f"{dst}.bias", f"{src}/beta", None)]


def _mlp(dst: str, src: str) -> List[_Entry]:
    return (
        _norm(f"{dst}.mlp_ln", f"{src}/layer_norm")
        + _linear(f"{dst}.mlp.0", f"{src}/linear_0")
        + _linear(f"{dst}.mlp.2", f"{src}/linear_1")
    )


def _self_attention(dst: str, src: str) -> List[_Entry]:
    # q, k, v fused along the rows of linear_0. Whisper's key has no bias; CT2 fills that
    # slice with zeros, which we drop.
    fused = f"{src}/linear_0"
    return (
        _linear(f"{dst}.query", fused, (0, 3))
        + _linear(f"{dst}.key", fused, (1, 3), bias=False)
        + _linear(f"{dst}.value", fused, (2, 3))
        + _linear(f"{dst}.out", f"{src}/linear_1")
    )


def _cross_attention(dst: str, src: str) -> List[_Entry]:
    # The query reads the decoder (linear_0); k and v read the encoder, fused in linear_1.
    fused = f"{src}/linear_1"
    return (
        _linear(f"{dst}.query", f"{src}/linear_0")
        + _linear(f"{dst}.key", fused, (0, 2), bias=False)
        + _linear(f"{dst}.value", fused, (1, 2))
        + _linear(f"{dst}.out", f"{src}/linear_2")
    )


def _take_part(model: _Ct2Model, source: str, part: _Part) -> np.ndarray:
    value = model.weight(source)
    if part is None:
        return value
    index, parts = part
    rows = value.shape[0] // parts
    if rows * parts != value.shape[0]:
        raise ConversionError(f"{model.path}: {source}'s {len(value)} rows do not split in {parts}")
    return value[index * rows : (index + 1) * rows]


# --- writing ggml ---------------------------------------------------------------------------


def _write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """A reader never sees a half-written model: write beside it, then rename over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise ConversionError(f"{path}: cannot write ({e.strerror or e})") from e
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_header(f: BinaryIO, info: GgmlInfo, tokens: List[bytes]) -> None:
    f.write(struct.pack("<12i", GGML_MAGIC, *dataclasses.astuple(info)[:11]))
    filters = _mel_filters(info.n_mels)
    f.write(struct.pack("<2i", *filters.shape))
    f.write(filters.astype("<f4").tobytes())
    f.write(struct.pack("<i", len(tokens)))
    for token in tokens:
        f.write(struct.pack("<i", len(token)) + token)


def _write_tensor(f: BinaryIO, name: str, value: np.ndarray) -> None:
    # whisper.cpp checks byte sizes against the types it expects: conv weights and big
    # matrices f16; conv biases as (n, 1), positional embeddings and 1-D tensors f32.
    conv_bias = re.fullmatch(r"encoder\.conv\d\.bias", name) is not None
    if conv_bias:
        value = value.reshape(-1, 1)
    f32 = conv_bias or value.ndim == 1 or name.endswith("positional_embedding")
    value = np.ascontiguousarray(value, dtype="<f4" if f32 else "<f2")
    encoded = name.encode()
    f.write(struct.pack("<3i", value.ndim, len(encoded), 0 if f32 else 1))
    f.write(struct.pack(f"<{value.ndim}i", *reversed(value.shape)))  # innermost dim first
    f.write(encoded)
    f.write(value.data)


def _mel_filters(n_mels: int = 80, sample_rate: int = 16000, n_fft: int = 400) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels) (Slaney scale and area normalisation), in numpy.

    whisper.cpp computes its log-mel input with the filters stored in the file.
    """
    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mels = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2)
    mel_freqs = _mel_to_hz(mels)
    widths = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= 2.0 / (mel_freqs[2:] - mel_freqs[:-2])[:, None]  # constant energy per band
    return weights.astype(np.float32)


# Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_F_SP, _MIN_LOG_HZ, _LOGSTEP = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP


def _hz_to_mel(hz: float) -> float:
    if hz < _MIN_LOG_HZ:
        return hz / _F_SP
    return _MIN_LOG_MEL + float(np.log(hz / _MIN_LOG_HZ)) / _LOGSTEP


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    linear = _F_SP * mels
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels - _MIN_LOG_MEL))
    return np.where(mels >= _MIN_LOG_MEL, log, linear)
