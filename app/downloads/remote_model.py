"""What a model on the Hub is and needs, from its GGUF header read over HTTP Range requests.

A few megabytes instead of gigabytes: the header (metadata, vocabulary, tensor infos)
sits at the start of the file. Llama 3's vocabulary makes it ~8 MB, so the prefix
grows until the header fits.
"""

from __future__ import annotations

from pathlib import Path

from app.core.errors import DamagedGGUFError
from app.downloads.hub import HubClient, RemoteFile
from app.gguf.header import NeedMoreBytes, read_header_prefix
from app.gguf.report import ModelReport, report_from_headers

FIRST_FETCH_BYTES = 2 << 20
MAX_HEADER_BYTES = 64 << 20


def inspect_remote(hub: HubClient, remote: RemoteFile) -> ModelReport:
    """The report `inspect_model` would give for `remote`, without downloading it."""
    name = Path(f"{remote.repo_id}/{remote.filename}")
    prefix = b""
    wanted = min(FIRST_FETCH_BYTES, remote.size)
    while True:
        if wanted > len(prefix):
            prefix += hub.read_range(remote, len(prefix), wanted - len(prefix))
        try:
            header = read_header_prefix(name, prefix, remote.size)
        except NeedMoreBytes as more:
            if more.needed > MAX_HEADER_BYTES:
                raise DamagedGGUFError(
                    name, f"its header claims more than {MAX_HEADER_BYTES >> 20} MB"
                ) from None
            wanted = min(max(more.needed, 2 * len(prefix)), remote.size)
            continue
        return report_from_headers([name], [header])
