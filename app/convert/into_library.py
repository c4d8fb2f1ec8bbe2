"""Convert a checkpoint folder straight into the model library (what the CLI and the GUI run)."""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from app.convert.pipeline import (
    DEFAULT_QUANT,
    ConversionProgress,
    ProgressCallback,
    Stage,
    convert_checkpoint,
)
from app.core.file_ops import sha256_files
from app.library.store import LibraryModel, ModelLibrary

log = logging.getLogger("convert")


@dataclass(frozen=True)
class ConversionRequest:
    folder: Path
    quant: str = DEFAULT_QUANT
    name: str | None = None  # default: the folder's name
    instruct: bool | None = None  # default: guessed from the name
    source: str = "converted"  # the library's "source" column: "converted", "huggingface", "meta"
    origin: str | None = None  # where the weights came from, for the Details dialog
    license_id: str | None = None
    remove_folder_after: bool = False  # a download made only to be converted

    @property
    def display_name(self) -> str:
        folder = self.folder.resolve()
        return self.name or (folder.parent.name if folder.name == "original" else folder.name)


def convert_into_library(
    library: ModelLibrary,
    request: ConversionRequest,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> LibraryModel:
    """Convert `request.folder` into a GGUF the library owns (deleting the model deletes the file).

    The file gets a free name in the library folder; its sha256 is recorded (progress stage DONE
    counts the hashing). On any failure or cancel the library and its folder are as before.
    """
    folder = request.folder.resolve()
    name = request.display_name
    library.models_dir.mkdir(parents=True, exist_ok=True)
    target = _free_path(library.models_dir, f"{name}-{request.quant}.gguf")
    convert_checkpoint(folder, target, request.quant, progress, cancel, instruct=request.instruct, name=name)
    try:
        [digest] = sha256_files(
            [target],
            (lambda done, total: progress(ConversionProgress(Stage.DONE, done, total))) if progress else None,
            cancel,
        )
        model = library.add_owned(
            target,
            source=request.source,
            origin=request.origin or f"converted from {folder}",
            sha256=digest,
            license_id=request.license_id,
        )
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    log.info("added %s to the library as #%d", target.name, model.id)
    if request.remove_folder_after:
        shutil.rmtree(folder, ignore_errors=True)
    return model


def _free_path(folder: Path, file_name: str) -> Path:
    stem = file_name.removesuffix(".gguf")
    for attempt in range(1, 1000):
        candidate = folder / (f"{stem}.gguf" if attempt == 1 else f"{stem}-{attempt}.gguf")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"no free file name in {folder} for {file_name}")
