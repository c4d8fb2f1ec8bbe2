"""The models Meta's signed links serve, and the files each one needs, remote and local.

Each release laid its files out differently on the CDN (docs: download-protocols.md §1):
Llama 2 keeps one tokenizer (and its own checklist) at the root, Llama 3 has a folder per
size and tuning, Llama 3.1 and later (llama-stack) a folder named like the Hugging Face repo.
Locally every model gets one folder with params.json, the shards, tokenizer.model and the
checklists, which is what the converter reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.core.errors import UnknownMetaModelError

CHECKLIST = "checklist.chk"
TOKENIZER = "tokenizer.model"
PARAMS = "params.json"
LLAMA2_TOKENIZER_CHECKLIST = "tokenizer_checklist.chk"


class MetaRelease(StrEnum):
    LLAMA2 = "Llama 2"
    LLAMA3 = "Llama 3"
    LLAMA3_1 = "Llama 3.1"
    LLAMA3_2 = "Llama 3.2"
    LLAMA3_3 = "Llama 3.3"


_CONTEXT = {
    MetaRelease.LLAMA2: 4096,
    MetaRelease.LLAMA3: 8192,
    MetaRelease.LLAMA3_1: 131072,
    MetaRelease.LLAMA3_2: 131072,
    MetaRelease.LLAMA3_3: 131072,
}
# Ids as the Hub's `license:` tags; app/downloads/licenses.py has texts for 3.1, 3.2 and 3.3 only.
_LICENSE = {
    MetaRelease.LLAMA2: "llama2",
    MetaRelease.LLAMA3: "llama3",
    MetaRelease.LLAMA3_1: "llama3.1",
    MetaRelease.LLAMA3_2: "llama3.2",
    MetaRelease.LLAMA3_3: "llama3.3",
}


@dataclass(frozen=True)
class MetaModel:
    name: str  # what the user picks and the local folder's name: "Llama-3.2-1B-Instruct"
    release: MetaRelease
    remote_dir: str  # the model's folder on the CDN: "llama-2-7b-chat", "8b_instruction_tuned"
    shards: int
    instruct: bool

    @property
    def context_length(self) -> int:
        return _CONTEXT[self.release]

    @property
    def license_id(self) -> str:
        return _LICENSE[self.release]

    @property
    def tokenizer_remote(self) -> str:
        """Llama 2 has one tokenizer for all sizes, at the root; later releases keep one per model."""
        if self.release is MetaRelease.LLAMA2:
            return TOKENIZER
        return f"{self.remote_dir}/{TOKENIZER}"

    @property
    def checklist_remote(self) -> str:
        return f"{self.remote_dir}/{CHECKLIST}"

    @property
    def shard_names(self) -> list[str]:
        return [f"consolidated.{i:02d}.pth" for i in range(self.shards)]


@dataclass(frozen=True)
class PlannedFile:
    remote_path: str  # under the link's `*`
    local_path: str  # relative to the model's local folder
    checklist: str  # local path of the checklist that lists this file's md5; "" for a checklist itself

    @property
    def is_checklist(self) -> bool:
        return not self.checklist


def _llama2(size: str, shards: int) -> list[MetaModel]:
    return [
        MetaModel(f"Llama-2-{size}", MetaRelease.LLAMA2, f"llama-2-{size}", shards, instruct=False),
        MetaModel(f"Llama-2-{size}-chat", MetaRelease.LLAMA2, f"llama-2-{size}-chat", shards, instruct=True),
    ]


def _llama3(size: str, shards: int) -> list[MetaModel]:
    name = f"Meta-Llama-3-{size.upper()}"
    return [
        MetaModel(name, MetaRelease.LLAMA3, f"{size}_pre_trained", shards, instruct=False),
        MetaModel(f"{name}-Instruct", MetaRelease.LLAMA3, f"{size}_instruction_tuned", shards, instruct=True),
    ]


def _stack(
    release: MetaRelease, size: str, shards: int, *, base: bool = True, suffix: str = ""
) -> list[MetaModel]:
    """llama-stack folders are the HF repo's last name part; 405B adds its model-parallel degree."""
    name = f"Llama-{release.value.split()[1]}-{size}"
    models = [MetaModel(f"{name}-Instruct", release, f"{name}-Instruct{suffix}", shards, instruct=True)]
    if base:
        models.insert(0, MetaModel(name, release, f"{name}{suffix}", shards, instruct=False))
    return models


CATALOG: tuple[MetaModel, ...] = (
    *_llama2("7b", 1),
    *_llama2("13b", 2),
    *_llama2("70b", 8),
    *_llama3("8b", 1),
    *_llama3("70b", 8),
    *_stack(MetaRelease.LLAMA3_1, "8B", 1),
    *_stack(MetaRelease.LLAMA3_1, "70B", 8),
    *_stack(MetaRelease.LLAMA3_1, "405B", 8, suffix="-MP8"),  # the bf16 checkpoint on 8 shards
    *_stack(MetaRelease.LLAMA3_2, "1B", 1),
    *_stack(MetaRelease.LLAMA3_2, "3B", 1),
    *_stack(MetaRelease.LLAMA3_3, "70B", 8, base=False),
)


def find_meta_model(name: str) -> MetaModel:
    """The catalogue entry for `name`, ignoring case; the error lists the names there are."""
    for model in CATALOG:
        if model.name.lower() == name.strip().lower():
            return model
    raise UnknownMetaModelError(name, [m.name for m in CATALOG])


def plan_files(model: MetaModel) -> list[PlannedFile]:
    """Every file to fetch for `model`, checklists first (the others are verified against them)."""
    plan = [PlannedFile(model.checklist_remote, CHECKLIST, "")]
    if model.release is MetaRelease.LLAMA2:
        plan.append(PlannedFile(LLAMA2_TOKENIZER_CHECKLIST, LLAMA2_TOKENIZER_CHECKLIST, ""))
        plan.append(PlannedFile(TOKENIZER, TOKENIZER, LLAMA2_TOKENIZER_CHECKLIST))
    else:
        plan.append(PlannedFile(model.tokenizer_remote, TOKENIZER, CHECKLIST))
    plan.append(PlannedFile(f"{model.remote_dir}/{PARAMS}", PARAMS, CHECKLIST))
    plan.extend(PlannedFile(f"{model.remote_dir}/{s}", s, CHECKLIST) for s in model.shard_names)
    return plan
