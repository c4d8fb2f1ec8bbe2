"""Fetch an original checkpoint (a Hugging Face safetensors repo) into a folder the converter reads.

Meta's signed links have their own downloader (app/downloads/meta/download.py); this is the Hub side, on the
same resumable, sha256-verified transfer as GGUF downloads (app/downloads/downloader.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from app.core.safe_names import child_path, safe_basename
from app.downloads.downloader import DownloadControl, Downloader, DownloadProgress
from app.downloads.hub import RepoListing

log = logging.getLogger("convert")


def _per_file(
    progress: Callable[[str, DownloadProgress], None] | None, name: str
) -> Callable[[DownloadProgress], None] | None:
    if progress is None:
        return None
    return lambda p: progress(name, p)


def checkpoint_folder(root: Path, listing: RepoListing) -> Path:
    """Where `listing`'s files go: one folder per repo and commit, so a resume finds them."""
    return root / safe_basename(f"{listing.repo_id.replace('/', '--')}@{listing.revision[:12]}")


def fetch_hub_checkpoint(
    downloader: Downloader,
    listing: RepoListing,
    folder: Path,
    *,
    control: DownloadControl | None = None,
    progress: Callable[[str, DownloadProgress], None] | None = None,
) -> Path:
    """Download every file of `listing` into `folder` (files already there are kept); returns `folder`.

    Each file is verified against the Hub's sha256 when it has one (the weights always do) and only
    then takes its name in `folder`, so a file there is complete. `progress(file name, progress)`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for remote in sorted(listing.files, key=lambda f: f.size):
        target = child_path(folder, remote.filename)  # listings hold plain names; checked again here
        if target.exists() and target.stat().st_size == remote.size:
            continue
        partial, _digest = downloader.fetch(
            remote, control=control, progress=_per_file(progress, remote.filename)
        )
        os.replace(partial, target)
        log.info("fetched %s/%s", listing.repo_id, remote.filename)
    return folder
