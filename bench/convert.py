"""Checkpoint conversion: throughput and peak memory against the number of layers.

Writes Meta-layout checkpoints (bf16, two shards, dim 1024) of several layer counts, converts
each in a fresh child process, which samples its own RSS while converting (the quantizing
grandchild's `ru_maxrss` is reported apart). The converter streams one block of rows at a time,
so peak RSS should stay flat as layers are added.

    python -m bench.convert [--layers 4 8 16] [--quant F16 Q4_K_M] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

DIM, FFN, HEADS = 1024, 2816, 16


def write_checkpoint(folder: Path, n_layers: int) -> int:
    """A Meta Llama 2-style checkpoint of random bf16 weights; returns its size in bytes."""
    from tests.support.convert_checkpoints import write_pth
    from tests.support.convert_tokenizers import write_spm_tokenizer

    folder.mkdir(parents=True)
    write_spm_tokenizer(folder / "tokenizer.model")
    from app.convert.vocab import load_meta_tokenizer

    vocab = load_meta_tokenizer(folder / "tokenizer.model", instruct=False).size
    rng = np.random.default_rng(0)
    # One random bf16 block reused for every matrix: generating hundreds of MB of normals is not the point.
    pool = (rng.standard_normal(DIM * FFN, dtype=np.float32) * 0.03).view(np.uint32) & 0xFFFF0000
    pool_f32 = pool.view(np.float32)

    def matrix(rows: int, cols: int) -> np.ndarray:
        return pool_f32[: rows * cols].reshape(rows, cols)

    weights = {"tok_embeddings.weight": matrix(vocab, DIM)}
    for i in range(n_layers):
        weights |= {
            f"layers.{i}.attention.wq.weight": matrix(DIM, DIM),
            f"layers.{i}.attention.wk.weight": matrix(DIM, DIM),
            f"layers.{i}.attention.wv.weight": matrix(DIM, DIM),
            f"layers.{i}.attention.wo.weight": matrix(DIM, DIM),
            f"layers.{i}.feed_forward.w1.weight": matrix(FFN, DIM),
            f"layers.{i}.feed_forward.w2.weight": matrix(DIM, FFN),
            f"layers.{i}.feed_forward.w3.weight": matrix(FFN, DIM),
            f"layers.{i}.attention_norm.weight": np.ones(DIM, np.float32),
            f"layers.{i}.ffn_norm.weight": np.ones(DIM, np.float32),
        }
    weights |= {"norm.weight": np.ones(DIM, np.float32), "output.weight": matrix(vocab, DIM)}
    model = folder / "llama-2-bench"
    model.mkdir()
    params = {"dim": DIM, "multiple_of": 256, "n_heads": HEADS, "n_layers": n_layers, "norm_eps": 1e-5}
    (model / "params.json").write_text(json.dumps(params | {"vocab_size": -1}))
    for shard in range(2):
        parts = {}
        for name, w in weights.items():
            leaf = name.split(".")[-2]
            if w.ndim == 1:
                parts[name] = w
            else:
                axis = 1 if leaf in ("tok_embeddings", "wo", "w2") else 0
                parts[name] = np.split(w, 2, axis=axis)[shard]
        write_pth(model / f"consolidated.{shard:02d}.pth", parts)
    return sum(p.stat().st_size for p in model.iterdir())


def convert_once(src: Path, out: Path, quant: str) -> None:
    """Child process: convert while a thread samples this process's RSS; print the figures as JSON."""
    import psutil

    from app.convert.pipeline import ConversionProgress, Stage, convert_checkpoint

    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    converting = threading.Event()
    converting.set()

    def sample() -> None:
        nonlocal peak
        while converting.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    stage_started: dict[Stage, float] = {}
    started = time.perf_counter()

    def on_progress(p: ConversionProgress) -> None:
        stage_started.setdefault(p.stage, time.perf_counter() - started)

    sampler.start()
    convert_checkpoint(src, out, quant, on_progress)
    converting.clear()
    sampler.join()
    done = stage_started[Stage.DONE]
    quantize_at = stage_started.get(Stage.QUANTIZE, done)
    print(
        json.dumps(
            {
                "seconds": done,
                "convert_seconds": quantize_at - stage_started[Stage.CONVERT],
                "quantize_seconds": done - quantize_at,
                "rss_before_mib": baseline / 2**20,
                "peak_rss_mib": peak / 2**20,
                "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "quantizer_max_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "output_bytes": out.stat().st_size,
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--quant", nargs="+", default=["F16", "Q4_K_M"])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--one", nargs=3, metavar=("SRC", "OUT", "QUANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        convert_once(Path(args.one[0]), Path(args.one[1]), args.one[2])
        return 0

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as work:
        root = Path(work)
        for n_layers in args.layers:
            size = write_checkpoint(root / f"ckpt{n_layers}", n_layers)
            src = root / f"ckpt{n_layers}" / "llama-2-bench"
            for quant in args.quant:
                out = root / f"out-{n_layers}-{quant}.gguf"
                run = subprocess.run(
                    [sys.executable, "-m", "bench.convert", "--one", str(src), str(out), quant],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                figures = json.loads(run.stdout.strip().splitlines()[-1])
                out.unlink()
                row = {"layers": n_layers, "checkpoint_mb": size / 1e6, "quant": quant, **figures}
                row["convert_mb_s"] = size / 1e6 / figures["convert_seconds"]
                rows.append(row)
                quantize = ""
                if figures["quantize_seconds"]:
                    quantize = f"quantize {figures['quantize_seconds']:5.1f} s"
                    quantize += f" (its peak {figures['quantizer_max_rss_mib']:.0f} MiB)"
                print(
                    f"{n_layers:3d} layers {size / 1e6:5.0f} MB -> {quant:7s} {figures['seconds']:5.1f} s  "
                    f"convert {row['convert_mb_s']:4.0f} MB/s  RSS {figures['rss_before_mib']:3.0f} -> peak "
                    f"{figures['peak_rss_mib']:3.0f} MiB  {quantize}",
                    flush=True,
                )
            for path in (root / f"ckpt{n_layers}").rglob("*"):
                if path.is_file():
                    path.unlink()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
