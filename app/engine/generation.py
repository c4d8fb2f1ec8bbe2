"""Plain data exchanged with the engine: what to generate, and what happened."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class StopReason(StrEnum):
    END_OF_TURN = "end_of_turn"  # the model ended its reply
    MAX_TOKENS = "max_tokens"  # the reply reached the requested length
    CONTEXT_FULL = "context_full"  # the context window has no room left
    CANCELLED = "cancelled"  # the user pressed Stop


@dataclass(frozen=True)
class ChatTurn:
    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None  # None: a new random seed each reply
    # The chat's context window in tokens; None: the app's setting. Changing it re-creates the
    # llama.cpp context (the worker does that before the reply), so it is per chat, not per reply.
    context_length: int | None = None


@dataclass(frozen=True)
class GenerationStats:
    prompt_tokens: int
    reused_prompt_tokens: int  # prompt tokens whose KV cache was kept from the previous reply
    completion_tokens: int
    ttft_s: float  # from the request to the first token of the reply
    total_s: float
    stop_reason: StopReason

    @property
    def tokens_per_s(self) -> float:
        """Decode speed after the first token (prompt processing is in `ttft_s`)."""
        decode_s = self.total_s - self.ttft_s
        if self.completion_tokens <= 1 or decode_s <= 0:
            return 0.0
        return (self.completion_tokens - 1) / decode_s

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop_reason"] = str(self.stop_reason)
        data["tokens_per_s"] = round(self.tokens_per_s, 3)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationStats:
        return cls(
            prompt_tokens=int(data["prompt_tokens"]),
            reused_prompt_tokens=int(data.get("reused_prompt_tokens", 0)),
            completion_tokens=int(data["completion_tokens"]),
            ttft_s=float(data["ttft_s"]),
            total_s=float(data["total_s"]),
            stop_reason=StopReason(data["stop_reason"]),
        )


@dataclass(frozen=True)
class GenerationResult:
    text: str
    stats: GenerationStats
