"""llama.cpp's own decoding speed, the yardstick the app's engine is measured against."""

from __future__ import annotations

import time
from pathlib import Path


def raw_decode_tok_s(
    model_path: Path,
    prompt_tokens: list[int],
    n_decode: int,
    *,
    n_ctx: int,
    threads: int,
    n_gpu_layers: int = 0,
) -> float:
    """Tokens/s of llama-cpp-python's low-level loop: llama_decode and a greedy C sampler, nothing else.

    The prompt and the first token are not timed (the engine's tokens/s leaves out time to first token).
    """
    import llama_cpp

    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = n_gpu_layers
    model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), mparams)
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx, cparams.n_batch, cparams.n_ubatch = n_ctx, 512, 512
    cparams.n_threads = cparams.n_threads_batch = threads
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    sampler = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    llama_cpp.llama_sampler_chain_add(sampler, llama_cpp.llama_sampler_init_greedy())
    prompt = (llama_cpp.llama_token * len(prompt_tokens))(*prompt_tokens)
    llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(prompt, len(prompt_tokens)))
    one = (llama_cpp.llama_token * 1)()
    one[0] = llama_cpp.llama_sampler_sample(sampler, ctx, -1)
    llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(one, 1))  # first token: not timed
    started = time.perf_counter()
    for _ in range(n_decode - 1):
        one[0] = llama_cpp.llama_sampler_sample(sampler, ctx, -1)
        llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(one, 1))
    llama_cpp.llama_synchronize(ctx)
    elapsed = time.perf_counter() - started
    llama_cpp.llama_sampler_free(sampler)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return (n_decode - 1) / elapsed
