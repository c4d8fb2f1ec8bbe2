"""Download throughput: the app's verified download against a plain streaming copy of the same bytes.

Both fetch the same file from the same local server over the same loopback socket; the app
also hashes every byte (sha256), writes it, verifies it and registers the model. Runs
alternate so machine noise hits both alike; the table shows medians.

    python -m bench.download [--size-mb 256] [--runs 3] [--link-mib-s N] [--json out.json]

Without --link-mib-s the server sends as fast as loopback allows, so on a small machine the
server, the client and sha256 compete for the same cores; --link-mib-s paces the server like
a real connection of that speed (both paths get the same pacing).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.support.fake_hub import FakeFile, FakeHub, FakeRepo  # the same local Hub the tests use

REPO, FILE = "bench/Bench-GGUF", "bench-Q4_K_M.gguf"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--link-mib-s", type=float, help="pace the server like a link of this speed")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    hub = FakeHub().start()
    os.environ["HF_ENDPOINT"] = hub.url  # before huggingface_hub is imported
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    import httpx2

    from app.downloads.downloader import Downloader
    from app.downloads.hub import HubClient, choose_file
    from app.library.store import ModelLibrary
    from tests.support.gguf_files import write_small_gguf

    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        head = write_small_gguf(root / "head.gguf").read_bytes()
        data = head + os.urandom(args.size_mb * (1 << 20) - len(head))
        hub.add_repo(FakeRepo(REPO, {FILE: FakeFile(data)}))
        if args.link_mib_s:
            hub.faults.chunk_delay_s = (64 / 1024) / args.link_mib_s  # the server sends 64 KiB pieces
        hub_client = HubClient()
        remote = choose_file(hub_client.list_gguf_files(REPO), FILE)
        url = hub_client.file_url(remote)

        def plain_copy() -> float:
            out = root / "plain.bin"
            started = time.perf_counter()
            with httpx2.Client() as client, client.stream("GET", url) as response, out.open("wb") as f:
                for chunk in response.iter_bytes():
                    f.write(chunk)
            elapsed = time.perf_counter() - started
            out.unlink()
            return elapsed

        def app_download(run: int) -> float:
            library = ModelLibrary(root / f"lib{run}.sqlite3", root / f"models{run}")
            started = time.perf_counter()
            model = Downloader(library, hub_client, root / f"models{run}").download(remote)
            elapsed = time.perf_counter() - started
            model.path.unlink()
            library.close()
            return elapsed

        plain, app = [], []
        for run in range(args.runs):
            plain.append(plain_copy())
            app.append(app_download(run))
        started = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        hash_s = time.perf_counter() - started
    hub.stop()

    size_mb = len(data) / (1 << 20)
    plain_mbs = size_mb / statistics.median(plain)
    app_mbs = size_mb / statistics.median(app)
    figures = {
        "size_mib": round(size_mb, 1),
        "link_mib_per_s": args.link_mib_s,
        "runs": args.runs,
        "plain_copy_mib_per_s": round(plain_mbs, 1),
        "app_download_mib_per_s": round(app_mbs, 1),
        "ratio": round(app_mbs / plain_mbs, 3),
        "sha256_alone_mib_per_s": round(size_mb / hash_s, 1),
        "sha256_share_of_app_time": round(hash_s / statistics.median(app), 3),
    }
    link = f"paced at {args.link_mib_s:g} MiB/s" if args.link_mib_s else "unpaced loopback"
    print(f"{size_mb:.0f} MiB over a {link}, median of {args.runs} alternating runs")
    print(f"{'path':<34} {'MiB/s':>8}")
    print(f"{'plain streaming copy':<34} {plain_mbs:>8.1f}")
    print(f"{'app: download + sha256 + verify':<34} {app_mbs:>8.1f}")
    print(f"ratio app / plain: {figures['ratio']:.3f} (target >= 0.9)")
    print(
        f"sha256 alone: {figures['sha256_alone_mib_per_s']:.0f} MiB/s; hashing as bytes arrive takes "
        f"{100 * figures['sha256_share_of_app_time']:.0f} % of the app's download time (no second read)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
