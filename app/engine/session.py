"""Chat with a GGUF model through llama.cpp's C API.

We drive llama.cpp directly (llama-cpp-python's low-level bindings) instead of the
high-level `Llama` class: sampling runs in llama.cpp's C sampler chain, the only
per-token Python work is turning one token into text, a cancel request is seen
before the next token, and the KV cache of the prompt prefix shared with the
previous reply is kept, so a follow-up turn only evaluates the new tokens.

A `ModelSession` belongs to one thread at a time; the GUI runs it on a worker thread.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import llama_cpp

from app.core.errors import EngineBusyError, GenerationError, ModelLoadError, PromptTooLongError
from app.engine.backends import CpuReason, OffloadPlan, gpu_failure_plan
from app.engine.fit import plan_file_offload
from app.engine.generation import ChatTurn, GenerationParams, GenerationResult, GenerationStats, StopReason
from app.engine.templates import ChatTemplate, choose_template
from app.engine.weights import SharedWeights, WeightsKey
from app.gguf.report import ModelReport, inspect_model

log = logging.getLogger("engine")
_llama_log = logging.getLogger("llama.cpp")

_GGML_LOG_LEVELS = {3: logging.WARNING, 4: logging.ERROR}  # ggml_log_level: 1 debug, 2 info, 3 warn, 4 error
_PIECE_BUFFER = 64
_BATCH = 512
_DECODE_ABORTED = 2  # llama_decode's return value when the abort callback stopped it
_NO_ABORT = llama_cpp.ggml_abort_callback()  # a NULL function pointer: no callback


@llama_cpp.llama_log_callback
def _route_llama_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    """Send llama.cpp's chatter to our log file instead of the terminal."""
    _llama_log.log(_GGML_LOG_LEVELS.get(level, logging.DEBUG), "%s", text.decode("utf-8", "replace").rstrip())


llama_cpp.llama_log_set(_route_llama_log, ctypes.c_void_p(0))


def default_thread_count() -> int:
    """Physical cores: llama.cpp's decode is memory-bound and hyper-threads slow it down."""
    import psutil  # imported here: only needed when loading a model

    return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    name: str
    n_ctx: int  # context the session was created with
    n_ctx_train: int  # longest context the model was trained for
    template_name: str
    template_is_fallback: bool
    backend: str
    n_threads: int
    gpu_layers: int = 0  # repeating layers offloaded to the GPU (0: all on the CPU)
    n_layers: int = 0
    #: Where the layers run and, when on the CPU, why ("running on the CPU because ...").
    offload: str = ""
    cpu_reason: CpuReason | None = None
    template_reason: str = ""  # why this fallback template, when the file has none


def _load_model(path: Path, plan: OffloadPlan) -> tuple[ctypes.c_void_p, OffloadPlan]:
    """llama.cpp's model for `path` as `plan` says; on the CPU when the GPU load fails (said in the plan)."""
    model_params = llama_cpp.llama_model_default_params()
    model_params.n_gpu_layers = plan.n_gpu_layers
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), model_params)
    if not model and plan.n_gpu_layers != 0:
        # Out of VRAM or a driver error: say so and run on the CPU rather than not at all.
        log.warning("loading %s onto the GPU failed; retrying on the CPU", path)
        plan = gpu_failure_plan(plan)
        model_params.n_gpu_layers = 0
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), model_params)
    if not model:
        raise ModelLoadError(path, "the file is damaged or uses an architecture this llama.cpp does not know")
    return model, plan


class ModelSession:
    """A loaded model with one context. Not thread-safe: one generation at a time."""

    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int | None = None,
        report: ModelReport | None = None,
        weights: SharedWeights | None = None,
    ) -> None:
        """Load `path` (slow: call off the GUI thread). `n_ctx` is capped at the model's trained length.

        `name` is what the user calls the model (its library name); the GGUF's own name is the fallback.
        `n_gpu_layers`: None offloads as many layers as fit in free VRAM, 0 runs on the CPU only.
        `report`: the file's header, if the caller has read it already (it is read once per load).
        `weights`: the application's registry, so sessions on the same file share one copy of its weights.
        """
        # Our bounded, fuzzed parser sees a damaged or hostile header before llama.cpp does; a caller
        # that has read it already (to check memory) passes its report so it is read once.
        report = report or inspect_model(path)
        threads = n_threads or default_thread_count()
        plan = plan_file_offload(report, n_ctx, n_gpu_layers)
        started = time.perf_counter()
        self._weights = weights
        self._weights_key = WeightsKey(path.resolve(), plan.n_gpu_layers)
        self._model: ctypes.c_void_p | None
        if weights is None:
            self._model, plan = _load_model(path, plan)
        else:
            self._model, plan = weights.acquire(self._weights_key, lambda: _load_model(path, plan))
        self._path = path
        self._threads = threads
        n_ctx_train = llama_cpp.llama_model_n_ctx_train(self._model)
        self._n_ctx_train = n_ctx_train
        self._ctx: ctypes.c_void_p | None = None
        try:
            self._create_context(n_ctx)
        except BaseException:
            self._free_model()
            raise
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self._bos = llama_cpp.llama_vocab_bos(self._vocab)
        self._pieces: dict[int, bytes] = {}  # token -> its text bytes, filled as tokens are generated
        self._busy = threading.Lock()
        self.template = self._choose_template()
        self.info = ModelInfo(
            path=path,
            name=name or self._meta("general.name") or path.stem,
            n_ctx=self._n_ctx,
            n_ctx_train=n_ctx_train,
            template_name=self.template.name,
            template_is_fallback=self.template.is_fallback,
            backend=plan.backend if plan.n_gpu_layers else "CPU",
            n_threads=threads,
            gpu_layers=plan.layers_on_gpu if plan.n_gpu_layers >= 0 else plan.n_layers,
            n_layers=plan.n_layers,
            offload=plan.explanation,
            cpu_reason=plan.cpu_reason,
            template_reason=self.template.reason,
        )
        log.info(
            "loaded %s in %.2f s (n_ctx=%d, threads=%d, template: %s; %s)",
            path,
            time.perf_counter() - started,
            self._n_ctx,
            threads,
            self.template.name,
            plan.explanation,
        )
        if self.template.is_fallback:
            log.warning(
                "%s has no chat template; using llama.cpp's %s template (%s): %s",
                path.name,
                self.template.source,
                self.template.name,
                self.template.reason,
            )

    def _create_context(self, n_ctx: int) -> None:
        """A fresh context (empty cache) of `n_ctx` tokens, capped at the model's trained length."""
        ctx_params = llama_cpp.llama_context_default_params()
        ctx_params.n_ctx = min(n_ctx, self._n_ctx_train) if self._n_ctx_train > 0 else n_ctx
        ctx_params.n_batch = _BATCH
        ctx_params.n_ubatch = _BATCH
        ctx_params.n_threads = self._threads
        ctx_params.n_threads_batch = self._threads
        ctx = llama_cpp.llama_init_from_model(self._model, ctx_params)
        if not ctx:
            raise ModelLoadError(self._path, f"not enough memory for a context of {ctx_params.n_ctx} tokens")
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
        self._ctx = ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._n_ctx = llama_cpp.llama_n_ctx(ctx)
        self._kv_tokens: list[int] = []  # tokens whose keys/values are in the cache, in order

    def set_context_length(self, n_ctx: int) -> None:
        """Re-create the context with room for `n_ctx` tokens (capped at the trained length).

        The cache starts empty; on failure (not enough memory) the old context stays usable.
        """
        wanted = min(n_ctx, self._n_ctx_train) if self._n_ctx_train > 0 else n_ctx
        if wanted == self._n_ctx:
            return
        with self._exclusive():
            self._create_context(n_ctx)
        self.info = dataclasses.replace(self.info, n_ctx=self._n_ctx)
        log.info("context of %s is now %d tokens", self.info.name, self._n_ctx)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        if not self._busy.acquire(blocking=False):
            raise EngineBusyError("this model session is generating")
        try:
            yield
        finally:
            self._busy.release()

    def close(self) -> None:
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        self._free_model()

    def _free_model(self) -> None:
        if self._model:
            if self._weights is not None:
                self._weights.release(self._weights_key)
            else:
                llama_cpp.llama_model_free(self._model)
            self._model = None

    def __enter__(self) -> ModelSession:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- text <-> tokens -------------------------------------------------------------------------

    def format_prompt(self, turns: Sequence[ChatTurn]) -> str:
        return self.template.render(turns)

    def count_prompt_tokens(self, turns: Sequence[ChatTurn]) -> int:
        """How many tokens `turns` take as a prompt (for fitting a chat into the context)."""
        return len(self.tokenize(self.format_prompt(turns)))

    def tokenize(self, text: str) -> list[int]:
        """Prompt tokens of `text`, with the BOS token the model expects exactly once at the start."""
        tokens = self._tokenize(text, parse_special=True)
        if self._add_bos and (not tokens or tokens[0] != self._bos):
            tokens.insert(0, self._bos)
        return tokens

    def _tokenize(self, text: str, *, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 1
        buffer = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buffer, capacity, False, parse_special)
        if n < 0:  # more tokens than bytes: impossible today, but llama.cpp's contract allows it
            capacity = -n
            buffer = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buffer, capacity, False, parse_special)
        return list(buffer[:n])

    def token_bytes(self, token: int, *, special: bool = False) -> bytes:
        buffer = ctypes.create_string_buffer(_PIECE_BUFFER)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, _PIECE_BUFFER, 0, special)
        if n < 0:
            buffer = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, -n, 0, special)
        return buffer.raw[:n]

    # -- generation ------------------------------------------------------------------------------

    def generate(
        self,
        turns: Sequence[ChatTurn],
        params: GenerationParams,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        on_prompt_progress: Callable[[int, int], None] | None = None,
    ) -> GenerationResult:
        """Reply to `turns`, calling `on_text` with each new piece of text as it is decoded.

        `on_prompt_progress(done, total)` follows the reading of the prompt tokens not already
        in the cache (a long chat read from scratch takes a while on a CPU). Setting `cancel`
        ends the reply before the next token, and stops prompt reading within a few
        milliseconds. Raises `PromptTooLongError` when the conversation does not fit.
        """
        if not self._busy.acquire(blocking=False):
            raise EngineBusyError("this model session is already generating")
        try:
            return self._generate(turns, params, on_text, cancel or threading.Event(), on_prompt_progress)
        finally:
            self._busy.release()

    def _generate(
        self,
        turns: Sequence[ChatTurn],
        params: GenerationParams,
        on_text: Callable[[str], None] | None,
        cancel: threading.Event,
        on_prompt_progress: Callable[[int, int], None] | None,
    ) -> GenerationResult:
        started = time.perf_counter()
        prompt = self.tokenize(self.format_prompt(turns))
        if len(prompt) >= self._n_ctx:
            raise PromptTooLongError(len(prompt), self._n_ctx)
        reused = self._evaluate_prompt(prompt, cancel, on_prompt_progress)
        if reused < 0:
            return GenerationResult("", _stats(prompt, 0, 0, started, None, StopReason.CANCELLED))

        sampler = _build_sampler(params)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pieces: list[str] = []
        first_token_at: float | None = None
        n_generated = 0
        token_array = (llama_cpp.llama_token * 1)()
        try:
            while True:
                if cancel.is_set():
                    reason = StopReason.CANCELLED
                    break
                if n_generated >= params.max_tokens:
                    reason = StopReason.MAX_TOKENS
                    break
                if len(self._kv_tokens) >= self._n_ctx:
                    reason = StopReason.CONTEXT_FULL
                    break
                token = llama_cpp.llama_sampler_sample(sampler, self._ctx, -1)
                if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    reason = StopReason.END_OF_TURN
                    break
                n_generated += 1
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                piece = self._pieces.get(token)
                if piece is None:
                    piece = self._pieces[token] = self.token_bytes(token)
                text = decoder.decode(piece)
                if text:
                    pieces.append(text)
                    if on_text is not None:
                        on_text(text)
                token_array[0] = token
                self._decode(token_array, [token])
        finally:
            llama_cpp.llama_sampler_free(sampler)
        tail = decoder.decode(b"", final=True)
        if tail:
            pieces.append(tail)
            if on_text is not None:
                on_text(tail)
        stats = _stats(prompt, reused, n_generated, started, first_token_at, reason)
        return GenerationResult("".join(pieces), stats)

    def _evaluate_prompt(
        self,
        prompt: list[int],
        cancel: threading.Event,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Bring the KV cache to `prompt`, reusing the prefix it already holds.

        Returns the number of reused tokens, or -1 if cancelled (the cache then holds
        a valid prefix of the prompt, reusable by the next request).
        """
        keep = 0
        for cached, wanted in zip(self._kv_tokens, prompt, strict=False):
            if cached != wanted:
                break
            keep += 1
        keep = min(keep, len(prompt) - 1)  # the last prompt token must be evaluated to get logits
        if not llama_cpp.llama_memory_seq_rm(self._memory, 0, keep, -1):
            llama_cpp.llama_memory_clear(self._memory, True)
            keep = 0
        del self._kv_tokens[keep:]
        total = len(prompt) - keep
        # llama.cpp asks this between the graph's operations, so Stop interrupts a long batch. Only
        # while reading the prompt: per token it would cost a Python call per operation.
        abort = llama_cpp.ggml_abort_callback(lambda _data: cancel.is_set())
        llama_cpp.llama_set_abort_callback(self._ctx, abort, None)
        try:
            for start in range(keep, len(prompt), _BATCH):
                if cancel.is_set():
                    return -1
                chunk = prompt[start : start + _BATCH]
                if not self._decode((llama_cpp.llama_token * len(chunk))(*chunk), chunk):
                    return -1
                if on_progress is not None:
                    on_progress(start + len(chunk) - keep, total)
        finally:
            llama_cpp.llama_set_abort_callback(self._ctx, _NO_ABORT, None)
        return keep

    def _decode(self, array: ctypes.Array[ctypes.c_int32], tokens: list[int]) -> bool:
        """Evaluate `tokens` into the cache; False when the abort callback stopped it."""
        rc = llama_cpp.llama_decode(self._ctx, llama_cpp.llama_batch_get_one(array, len(tokens)))
        if rc == _DECODE_ABORTED:
            # Keep what is known good: the tokens before this batch.
            llama_cpp.llama_memory_seq_rm(self._memory, 0, len(self._kv_tokens), -1)
            return False
        if rc != 0:
            # The cache may now hold part of the batch: forget it rather than guess.
            llama_cpp.llama_memory_clear(self._memory, True)
            self._kv_tokens.clear()
            raise GenerationError(
                f"llama.cpp failed to evaluate the conversation (llama_decode returned {rc})"
            )
        self._kv_tokens.extend(tokens)
        return True

    # -- saved state -----------------------------------------------------------------------------

    @property
    def cached_tokens(self) -> list[int]:
        """The tokens whose keys and values the cache holds, in order."""
        return list(self._kv_tokens)

    def save_state(self, path: Path) -> int:
        """Write the cache and its tokens to `path` so this chat can resume later without re-reading
        it. Returns the bytes written (0: nothing to save or llama.cpp could not write).
        """
        if not self._kv_tokens:
            return 0
        tokens = (llama_cpp.llama_token * len(self._kv_tokens))(*self._kv_tokens)
        return int(llama_cpp.llama_state_seq_save_file(self._ctx, str(path).encode(), 0, tokens, len(tokens)))

    def load_state(self, path: Path) -> int:
        """Replace the cache with one saved by `save_state`; returns how many tokens it holds.

        An unreadable or incompatible file leaves an empty cache (0): the next reply reads the chat.
        """
        tokens = (llama_cpp.llama_token * self._n_ctx)()
        count = ctypes.c_size_t(0)
        read = llama_cpp.llama_state_seq_load_file(
            self._ctx, str(path).encode(), 0, tokens, self._n_ctx, ctypes.byref(count)
        )
        if not read:
            llama_cpp.llama_memory_clear(self._memory, True)
            self._kv_tokens = []
            return 0
        self._kv_tokens = list(tokens[: count.value])
        return len(self._kv_tokens)

    # -- metadata --------------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        buffer = ctypes.create_string_buffer(512)
        n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buffer, len(buffer))
        return buffer.value.decode("utf-8", "replace") if n >= 0 else None

    def _choose_template(self) -> ChatTemplate:
        raw = llama_cpp.llama_model_chat_template(self._model, None)
        model_template = raw.decode("utf-8", "replace") if raw else None
        eos = llama_cpp.llama_vocab_eos(self._vocab)
        return choose_template(
            model_template,
            self._is_special_token,
            bos_token=self.token_bytes(self._bos, special=True).decode("utf-8", "replace")
            if self._bos >= 0
            else "",
            eos_token=self.token_bytes(eos, special=True).decode("utf-8", "replace") if eos >= 0 else "",
        )

    def _is_special_token(self, text: str) -> bool:
        """True if the vocabulary has `text` as one special token (not just as plain text)."""
        return (
            len(self._tokenize(text, parse_special=True))
            == 1
            < len(self._tokenize(text, parse_special=False))
        )


def _build_sampler(params: GenerationParams) -> ctypes.c_void_p:
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = llama_cpp.llama_sampler_chain_add
    if params.repeat_penalty != 1.0:
        add(chain, llama_cpp.llama_sampler_init_penalties(64, params.repeat_penalty, 0.0, 0.0))
    if params.temperature <= 0:
        add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    if params.top_k > 0:
        add(chain, llama_cpp.llama_sampler_init_top_k(params.top_k))
    if params.top_p < 1.0:
        add(chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
    if params.min_p > 0:
        add(chain, llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
    add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
    seed = params.seed if params.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED
    add(chain, llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))
    return chain


def _stats(
    prompt: list[int],
    reused: int,
    generated: int,
    started: float,
    first_token_at: float | None,
    reason: StopReason,
) -> GenerationStats:
    now = time.perf_counter()
    return GenerationStats(
        prompt_tokens=len(prompt),
        reused_prompt_tokens=max(reused, 0),
        completion_tokens=generated,
        ttft_s=(first_token_at or now) - started,
        total_s=now - started,
        stop_reason=reason,
    )
