"""`llama-desk models ...`: list, import, convert, remove and inspect the models in the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.cli.progress import conversion_progress, end_line, show_progress
from app.context import AppContext
from app.convert.pipeline import DEFAULT_QUANT, OUTPUT_TYPES
from app.core.data_home import DataHome
from app.core.starter import starter_model_path
from app.core.units import format_bytes, format_count
from app.engine.fit import estimate_memory, judge_fit
from app.engine.hardware import probe_hardware
from app.gguf.report import BREAKDOWN_KEYS, ModelReport, inspect_model
from app.library.store import LibraryModel

#: The MODEL argument that names the bundled starter model.
STARTER = "starter"

EXIT_NEEDS_CONFIRMATION = 2


def add_models_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add `models ...`; returns its sub-commands so other modules can add theirs (`pull`)."""
    models = commands.add_parser("models", help="list, import, pull, remove and inspect local models")
    sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    listing = sub.add_parser("list", help="every model in the library")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=_cmd_list)

    importing = sub.add_parser("import", help="add a .gguf that is already on disk")
    importing.add_argument("path", type=Path, metavar="PATH")
    importing.add_argument(
        "--copy", action="store_true", help="copy it into the library (default: use it in place)"
    )
    importing.add_argument("--name", help="the name to show (default: the model's own name)")
    importing.add_argument(
        "--skip-hash", action="store_true", help="do not read a file used in place to compute its sha256"
    )
    importing.set_defaults(handler=_cmd_import)

    removing = sub.add_parser("rm", help="remove a model from the library")
    removing.add_argument("model", metavar="ID", help="library id or name")
    removing.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    removing.add_argument(
        "--delete-file", action="store_true", help="also delete a file that was imported in place"
    )
    removing.set_defaults(handler=_cmd_rm)

    inspecting = sub.add_parser("inspect", help="what a model is and what it needs, from its header")
    inspecting.add_argument("model", metavar="PATH_OR_ID", help="a .gguf path, or a library id or name")
    inspecting.add_argument(
        "--ctx", type=int, help="context length for the memory estimate (default: trained)"
    )
    inspecting.add_argument("--json", action="store_true", help="print JSON, with every tensor")
    inspecting.add_argument("--tensors", action="store_true", help="list every tensor")
    inspecting.set_defaults(handler=_cmd_inspect)

    converting = sub.add_parser(
        "convert", help="turn an original Llama checkpoint folder (Meta .pth or HF safetensors) into a GGUF"
    )
    converting.add_argument("folder", type=Path, metavar="DIR")
    converting.add_argument(
        "--quant", default=DEFAULT_QUANT, choices=OUTPUT_TYPES, help=f"output type (default {DEFAULT_QUANT})"
    )
    converting.add_argument("--name", help="the name to show (default: the folder's name)")
    chat = converting.add_mutually_exclusive_group()
    chat.add_argument("--instruct", dest="instruct", action="store_true", default=None, help="a chat model")
    chat.add_argument("--base", dest="instruct", action="store_false", help="a base (pre-trained) model")
    converting.set_defaults(handler=_cmd_convert)
    return sub


def _open_context() -> AppContext:
    return AppContext.open(DataHome.resolve())


def _cmd_list(args: argparse.Namespace) -> int:
    context = _open_context()
    models = context.library.models()
    if args.json:
        print(json.dumps([_model_json(m) for m in models], indent=2))
        return 0
    rows = [("ID", "NAME", "ARCH", "PARAMS", "QUANT", "SIZE", "CONTEXT", "SOURCE")]
    for m in models:
        rows.append(
            (
                str(m.id),
                m.name,
                m.architecture or "?",
                format_count(m.parameters or 0),
                m.file_type or "?",
                format_bytes(m.size_bytes),
                f"{m.context_length:,}" if m.context_length else "?",
                m.source + ("" if m.owned else " (in place)"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(
        f"\n{len(models)} model(s), {format_bytes(context.library.total_size())} "
        f"({format_bytes(context.library.owned_size())} in {context.home.models_dir})"
    )
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    context = _open_context()
    model = context.library.import_model(
        args.path,
        copy=args.copy,
        name=args.name,
        hash_in_place=not args.skip_hash,
        progress=show_progress,
    )
    end_line()
    where = f"copied to {model.path}" if model.owned else f"used in place at {model.path}"
    print(f"Imported {model.name} as #{model.id} ({format_bytes(model.size_bytes)}, {where}).")
    return 0


def _cmd_rm(args: argparse.Namespace) -> int:
    context = _open_context()
    model = context.library.find(args.model)
    deletes_file = model.owned or args.delete_file
    action = "delete" if deletes_file else "remove from the library (the file stays)"
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                f"llama-desk: error: pass --yes to {action} {model.name} (no terminal to ask)",
                file=sys.stderr,
            )
            return EXIT_NEEDS_CONFIRMATION
        answer = input(f"{action.capitalize()} {model.name} ({format_bytes(model.size_bytes)})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing removed.")
            return 0
    freed = context.library.remove(model.id, delete_files=args.delete_file)
    print(
        f"Removed {model.name}"
        + (f"; freed {format_bytes(freed)}." if freed else "; its file stays where it is.")
    )
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    report = inspect_model(resolve_model(args.model))
    estimate = estimate_memory(report, args.ctx)
    verdict = judge_fit(report, estimate, probe_hardware())
    if args.json:
        print(json.dumps(_report_json(report, estimate.n_ctx, verdict), indent=2))
        return 0
    print(f"{report.name or report.paths[0].name}")
    print(f"  file           {', '.join(str(p) for p in report.paths)}")
    print(f"  architecture   {report.architecture}")
    print(f"  parameters     {report.parameters:,} ({format_count(report.parameters)})")
    print(f"  file type      {report.file_type}")
    print(f"  context        {report.context_length:,}" if report.context_length else "  context        ?")
    print(f"  size           {format_bytes(report.file_size)}")
    print("parameters by part")
    for key in BREAKDOWN_KEYS:
        if report.breakdown[key]:
            print(f"  {key:<20} {report.breakdown[key]:>16,}")
    print(f"  {'total':<20} {report.parameters:>16,}")
    print(f"memory at {estimate.n_ctx:,} tokens of context")
    print(f"  weights        {format_bytes(estimate.weights_bytes)}")
    print(f"  KV cache       {format_bytes(estimate.kv_cache_bytes)}")
    print(f"  compute        {format_bytes(estimate.compute_bytes)} (estimate)")
    print(f"  total          {format_bytes(estimate.total_bytes)}")
    print(f"  {verdict.explanation}")
    if verdict.gpu_layers:
        print(f"  suggested GPU layers: {verdict.gpu_layers} of {verdict.n_layers}")
    if args.tensors:
        print("tensors")
        for t in report.tensors:
            shape = " x ".join(str(d) for d in t.shape)
            print(f"  {t.name:<32} | size {shape:<16} | type {t.type_name:<6} | {format_bytes(t.n_bytes)}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from app.convert.into_library import ConversionRequest, convert_into_library

    context = _open_context()
    try:
        model = convert_into_library(
            context.library,
            ConversionRequest(args.folder, args.quant, name=args.name, instruct=args.instruct),
            progress=conversion_progress(),
        )
    finally:
        end_line()
        context.close()
    size = format_bytes(model.size_bytes)
    print(f"Converted {args.folder} into the library as #{model.id} {model.name} ({size}).")
    return 0


def resolve_model(ref: str) -> Path:
    """What a MODEL argument names: `starter`, a .gguf path, or a library model's id or name."""
    if ref == STARTER:
        return starter_model_path()
    path = Path(ref).expanduser()
    if path.exists() or ref.lower().endswith(".gguf"):
        return path
    context = _open_context()
    try:
        return context.library.find(ref).path
    finally:
        context.close()


def _model_json(m: LibraryModel) -> dict[str, Any]:
    return {
        "id": m.id,
        "name": m.name,
        "path": str(m.path),
        "paths": [str(p) for p in m.paths],
        "source": m.source,
        "owned": m.owned,
        "size_bytes": m.size_bytes,
        "architecture": m.architecture,
        "parameters": m.parameters,
        "file_type": m.file_type,
        "context_length": m.context_length,
        "license": m.license,
        "sha256": m.sha256,
        "added_at": m.added_at,
    }


def _report_json(report: ModelReport, n_ctx: int, verdict: Any) -> dict[str, Any]:
    estimate = verdict.estimate
    return {
        "name": report.name,
        "paths": [str(p) for p in report.paths],
        "architecture": report.architecture,
        "parameters": report.parameters,
        "file_type": report.file_type,
        "context_length": report.context_length,
        "file_size": report.file_size,
        "breakdown": report.breakdown,
        "tensors": [
            {"name": t.name, "shape": list(t.shape), "type": t.type_name, "bytes": t.n_bytes}
            for t in report.tensors
        ],
        "memory": {
            "n_ctx": n_ctx,
            "weights_bytes": estimate.weights_bytes,
            "kv_cache_bytes": estimate.kv_cache_bytes,
            "compute_bytes": estimate.compute_bytes,
            "total_bytes": estimate.total_bytes,
        },
        "fit": {
            "verdict": str(verdict.fit),
            "gpu_layers": verdict.gpu_layers,
            "explanation": verdict.explanation,
        },
    }
