"""Checkpoint folder → quantized GGUF: read, convert (streaming), quantize, then one atomic rename.

Intermediates live next to the output as hidden `.partial` files; a failure or a cancel removes
them, so the output path either holds a complete model or nothing.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from app.convert.checkpoint import Checkpoint, Layout, open_checkpoint
from app.convert.quantize import DEFAULT_QUANT, QUANT_TYPES, estimated_size, quantize
from app.convert.to_gguf import FLOAT_TYPES, PlannedTensor, plan_tensors, write_gguf
from app.convert.vocab import Vocab, add_vocab, load_hf_tokenizer, load_meta_tokenizer
from app.core.errors import ConversionDiskSpaceError, OperationCancelledError, UnsupportedCheckpointError

log = logging.getLogger("convert")

#: Everything `convert_checkpoint` can produce, the default first.
OUTPUT_TYPES: tuple[str, ...] = (DEFAULT_QUANT, *(q for q in QUANT_TYPES if q != DEFAULT_QUANT), *FLOAT_TYPES)
_INSTRUCT_WORDS = ("instruct", "chat", "instruction_tuned")
_DISK_MARGIN = 1.05


class Stage(Enum):
    READ = "Reading the checkpoint"
    CONVERT = "Converting to GGUF"
    QUANTIZE = "Quantizing"
    DONE = "Done"


@dataclass(frozen=True)
class ConversionProgress:
    stage: Stage
    done: int  # bytes of this stage
    total: int

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


ProgressCallback = Callable[[ConversionProgress], None]


def convert_checkpoint(
    src_dir: Path,
    out_path: Path,
    quant: str = DEFAULT_QUANT,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    *,
    instruct: bool | None = None,
    name: str | None = None,
) -> Path:
    """Convert the checkpoint in `src_dir` to a GGUF at `out_path` of type `quant` (see OUTPUT_TYPES).

    `instruct` picks the end-of-turn token and chat template; None guesses it from the folder name.
    Raises `OperationCancelledError` when `cancel` is set; on any error nothing is left behind.
    """
    if quant not in OUTPUT_TYPES:
        raise ValueError(f"unknown output type {quant!r}; choose one of {', '.join(OUTPUT_TYPES)}")

    def report(stage: Stage, done: int, total: int) -> None:
        if progress is not None:
            progress(ConversionProgress(stage, done, total))

    report(Stage.READ, 0, 1)
    model_name = name or _model_name(src_dir)
    is_instruct = instruct if instruct is not None else any(w in model_name.lower() for w in _INSTRUCT_WORDS)
    with open_checkpoint(src_dir) as checkpoint:
        vocab = _load_vocab(checkpoint, instruct=is_instruct)
        planned = plan_tensors(checkpoint)
        if vocab.size != checkpoint.params.vocab_size:
            raise UnsupportedCheckpointError(
                src_dir,
                f"the tokenizer has {vocab.size} tokens, the embeddings {checkpoint.params.vocab_size} rows",
            )
        n_parameters = sum(math.prod(t.shape) for t in planned)
        float_type = quant if quant in FLOAT_TYPES else _lossless_type(planned)
        float_bytes = sum(math.prod(t.shape) * (4 if t.out_type(float_type) == "F32" else 2) for t in planned)
        needed = float_bytes + (estimated_size(quant, n_parameters) if quant in QUANT_TYPES else 0)
        _check_disk(out_path.parent, int(needed * _DISK_MARGIN))
        report(Stage.READ, 1, 1)
        if cancel is not None and cancel.is_set():
            raise OperationCancelledError("the conversion")

        final_tmp = out_path.with_name(f".{out_path.name}.partial")
        float_tmp = (
            out_path.with_name(f".{out_path.name}.{float_type.lower()}.partial")
            if quant in QUANT_TYPES
            else final_tmp
        )
        try:
            write_gguf(
                checkpoint,
                planned,
                lambda writer: add_vocab(writer, vocab),
                float_tmp,
                float_type,
                name=model_name,
                progress=lambda done, total: report(Stage.CONVERT, done, total),
                cancel=cancel,
            )
            checkpoint.close()  # the source is no longer needed: unmap it before quantizing
            if quant in QUANT_TYPES:
                quantize(
                    float_tmp,
                    final_tmp,
                    quant,
                    n_parameters=n_parameters,
                    progress=lambda done, total: report(Stage.QUANTIZE, done, total),
                    cancel=cancel,
                )
                float_tmp.unlink()
            os.replace(final_tmp, out_path)
        except BaseException:
            float_tmp.unlink(missing_ok=True)
            final_tmp.unlink(missing_ok=True)
            raise
    size = out_path.stat().st_size
    report(Stage.DONE, size, size)
    log.info("converted %s to %s (%s, %d parameters)", src_dir, out_path, quant, n_parameters)
    return out_path


def _model_name(src_dir: Path) -> str:
    """The folder's name: `Llama-3.2-1B-Instruct`, `llama-2-7b-chat`, `8b_instruction_tuned`."""
    folder = src_dir.resolve()
    return folder.parent.name if folder.name == "original" else folder.name


def _load_vocab(checkpoint: Checkpoint, *, instruct: bool) -> Vocab:
    if checkpoint.layout is Layout.META:
        # Llama 3.0 and 3.1+ ship the same rank file; only 3.1+ params.json asks for scaled RoPE.
        return load_meta_tokenizer(
            checkpoint.tokenizer, instruct=instruct, llama31=checkpoint.params.rope_scaling is not None
        )
    return load_hf_tokenizer(checkpoint.directory, instruct=instruct)


def _lossless_type(planned: list[PlannedTensor]) -> str:
    """The intermediate type that keeps the weights exactly: the embeddings' own (bf16 stays BF16)."""
    return planned[0].parts[0].dtype


def _check_disk(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ConversionDiskSpaceError(str(folder), needed, free)
