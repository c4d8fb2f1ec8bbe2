"""The curated list of Llama models to download (resources/catalog.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from app.core.resources import RESOURCES_DIR

CATALOG_PATH = RESOURCES_DIR / "catalog.json"

#: Typical bits per weight of llama.cpp's quantizations, for size estimates before the Hub is asked.
BITS_PER_WEIGHT = {
    "IQ3_M": 3.7,
    "Q3_K_M": 3.9,
    "Q4_K_M": 4.85,
    "Q5_K_M": 5.7,
    "Q6_K": 6.6,
    "Q8_0": 8.5,
    "F16": 16.0,
}


@dataclass(frozen=True)
class CatalogModel:
    id: str
    name: str
    repo: str
    license: str
    parameters: int
    context_length: int
    quants: tuple[str, ...]
    summary: str

    def estimated_size(self, quant: str) -> int:
        """About how many bytes the `quant` file has (the Hub's listing gives the exact size)."""
        return int(self.parameters * BITS_PER_WEIGHT.get(quant, 8.0) / 8)


def load_catalog(path: Path = CATALOG_PATH) -> list[CatalogModel]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        CatalogModel(
            id=m["id"],
            name=m["name"],
            repo=m["repo"],
            license=m["license"],
            parameters=int(m["parameters"]),
            context_length=int(m["context_length"]),
            quants=tuple(m["quants"]),
            summary=m.get("summary", ""),
        )
        for m in data["models"]
    ]
