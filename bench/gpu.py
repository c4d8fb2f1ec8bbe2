"""GPU decode benchmark: the app's engine against llama.cpp's own decode loop, on a Llama-3-8B-shaped model.

    python -m bench.gpu make-model VOCAB_GGUF OUT.gguf [--layers 32 --dim 4096 --ffn 14336]
    python -m bench.gpu run MODEL.gguf [--tokens 256] [--peak-gbs 4800] [--json out.json]

`make-model` writes a GGUF with Llama 3's real tokenizer (copied from llama.cpp's vocab-only
`models/ggml-vocab-llama-bpe.gguf`, which also carries Llama-3-8B's hyperparameters) and zero F16
weights (a sparse file: no disk), then quantizes it to Q4_K_M with llama.cpp's own quantizer.
Decode speed depends on the shapes and the quantization, not on the values. See bench/gpu.md.

`run` decodes `--tokens` tokens after a short prompt, all layers offloaded (the engine's planner
decides; the raw loop asks for every layer), runs alternating, and reports tokens/s, the engine's
ratio to the raw loop, and the share of the GPU's peak memory bandwidth reached (each decoded token
reads every weight once, except the embedding table, of which it reads one row).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import gguf
import numpy as np

from bench.raw_llama import raw_decode_tok_s

PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."
N_CTX = 2048
Q4_K_M = 15  # enum llama_ftype: LLAMA_FTYPE_MOSTLY_Q4_K_M


def make_model(vocab_path: Path, out: Path, layers: int, dim: int, ffn: int) -> None:
    import llama_cpp

    reader = gguf.GGUFReader(vocab_path)
    heads, kv_heads = 32, 8
    writer = gguf.GGUFWriter(out.with_suffix(".f16.gguf"), arch="llama")
    overrides = {
        "llama.block_count": layers,
        "llama.embedding_length": dim,
        "llama.feed_forward_length": ffn,
        "llama.rope.dimension_count": dim // heads,
    }
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        value_type = field.types[0]
        value = overrides.get(key, field.contents())
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, value, value_type, sub_type)
    n_vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    kv_dim = dim // heads * kv_heads
    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (n_vocab, dim)}
    for i in range(layers):
        shapes |= {
            f"blk.{i}.attn_norm.weight": (dim,),
            f"blk.{i}.attn_q.weight": (dim, dim),
            f"blk.{i}.attn_k.weight": (kv_dim, dim),
            f"blk.{i}.attn_v.weight": (kv_dim, dim),
            f"blk.{i}.attn_output.weight": (dim, dim),
            f"blk.{i}.ffn_norm.weight": (dim,),
            f"blk.{i}.ffn_gate.weight": (ffn, dim),
            f"blk.{i}.ffn_up.weight": (ffn, dim),
            f"blk.{i}.ffn_down.weight": (dim, ffn),
        }
    shapes |= {"output_norm.weight": (dim,), "output.weight": (n_vocab, dim)}
    total = 0
    for name, shape in shapes.items():
        # Norm vectors stay F32, as llama.cpp's converter writes them (its CPU kernels need that).
        dtype, kind = (np.float32, "F32") if len(shape) == 1 else (np.float16, "F16")
        n_bytes = np.dtype(dtype).itemsize * int(np.prod(shape))
        writer.add_tensor_info(name, shape, np.dtype(dtype), n_bytes, gguf.GGMLQuantizationType[kind])
        total += -(-n_bytes // 32) * 32
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    f16 = out.with_suffix(".f16.gguf")
    os.truncate(f16, -(-f16.stat().st_size // 32) * 32 + total)  # zero weights as a sparse hole
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = Q4_K_M
    params.nthread = os.cpu_count() or 1
    started = time.perf_counter()
    if llama_cpp.llama_model_quantize(str(f16).encode(), str(out).encode(), params) != 0:
        raise SystemExit("llama.cpp could not quantize the model")
    f16.unlink()
    print(f"{out}: {out.stat().st_size / 2**30:.2f} GiB Q4_K_M in {time.perf_counter() - started:.0f} s")


def engine_decode(model_path: Path, n_decode: int) -> tuple[float, str, int]:
    """The app's engine: tokens/s after the first token, where the layers ran, and the prompt length."""
    from app.engine.generation import ChatTurn, GenerationParams
    from app.engine.session import ModelSession

    with ModelSession(model_path, n_ctx=N_CTX) as session:
        # A zero-weight model never stops by itself; ignore_eos is not needed, max_tokens bounds it.
        params = GenerationParams(temperature=0.0, max_tokens=n_decode, seed=1)
        turns = [ChatTurn("user", PROMPT)]
        result = session.generate(turns, params)
        return result.stats.tokens_per_s, session.info.offload, result.stats.prompt_tokens


def bytes_per_token(model_path: Path) -> int:
    """Weights one decoded token reads: every tensor but the embedding table (one row of it)."""
    reader = gguf.GGUFReader(model_path)
    return sum(int(t.n_bytes) for t in reader.tensors if t.name != "token_embd.weight")


def run(model_path: Path, n_decode: int, runs: int, peak_gbs: float | None) -> dict[str, object]:
    from app.engine.backends import detect_backend
    from app.engine.session import default_thread_count

    backend = detect_backend()
    print(f"backend: {backend.describe()}")
    engine, raw, where, prompt_tokens = [], [], "", 0
    for _ in range(runs):
        tok_s, where, prompt_tokens = engine_decode(model_path, n_decode)
        engine.append(tok_s)
        raw.append(
            raw_decode_tok_s(
                model_path,
                list(range(1000, 1000 + prompt_tokens)),
                n_decode,
                n_ctx=N_CTX,
                threads=default_thread_count(),  # as the engine does
                n_gpu_layers=999,
            )
        )
        print(f"engine {engine[-1]:.1f} tok/s, raw llama_decode {raw[-1]:.1f} tok/s ({where})")
    engine_med, raw_med = statistics.median(engine), statistics.median(raw)
    per_token = bytes_per_token(model_path)
    figures: dict[str, object] = {
        "model": str(model_path),
        "backend": backend.describe(),
        "offload": where,
        "decode_tokens": n_decode,
        "engine_tok_s": round(engine_med, 2),
        "raw_tok_s": round(raw_med, 2),
        "ratio": round(engine_med / raw_med, 3),
        "bytes_per_token": per_token,
    }
    if peak_gbs:
        figures["bandwidth_fraction"] = round(engine_med * per_token / (peak_gbs * 1e9), 3)
    print(json.dumps(figures, indent=2))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make-model", help="write a Llama-3-8B-shaped Q4_K_M GGUF")
    make.add_argument("vocab", type=Path, help="llama.cpp's models/ggml-vocab-llama-bpe.gguf")
    make.add_argument("out", type=Path)
    make.add_argument("--layers", type=int, default=32)
    make.add_argument("--dim", type=int, default=4096)
    make.add_argument("--ffn", type=int, default=14336)
    bench = commands.add_parser("run", help="engine vs raw llama_decode on the GPU")
    bench.add_argument("model", type=Path)
    bench.add_argument("--tokens", type=int, default=256)
    bench.add_argument("--runs", type=int, default=3)
    bench.add_argument("--peak-gbs", type=float, help="GPU peak memory bandwidth, GB/s (H100 SXM 3350)")
    bench.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.command == "make-model":
        make_model(args.vocab, args.out, args.layers, args.dim, args.ffn)
        return 0
    figures = run(args.model, args.tokens, args.runs, args.peak_gbs)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
