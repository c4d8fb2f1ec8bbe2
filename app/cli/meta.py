"""`llama-desk models pull-meta`: a model from Meta's emailed download link, converted to a GGUF."""

from __future__ import annotations

import argparse
import sys

from app.cli.hub import EXIT_PAUSED, accept_license
from app.cli.progress import conversion_progress, end_line, show_progress
from app.context import AppContext
from app.convert.into_library import ConversionRequest, convert_into_library
from app.convert.pipeline import DEFAULT_QUANT, OUTPUT_TYPES
from app.core.data_home import DataHome
from app.core.units import format_bytes
from app.downloads.downloader import DownloadPaused
from app.downloads.meta.download import MetaDownloader, MetaProgress
from app.downloads.meta.link import allowed_hosts, parse_meta_link
from app.downloads.meta.models import CATALOG, find_meta_model


def add_meta_commands(models_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pull = models_commands.add_parser(
        "pull-meta",
        help="download a model with the link from Meta's email, verify it and convert it to a GGUF",
    )
    pull.add_argument("--url", required=True, help="the link from the email (quote it: it contains &)")
    pull.add_argument(
        "--model", required=True, metavar="NAME", help=f"one of: {', '.join(m.name for m in CATALOG)}"
    )
    pull.add_argument("--quant", default=DEFAULT_QUANT, type=str.upper, choices=OUTPUT_TYPES)
    pull.add_argument("--keep-original", action="store_true", help="keep the downloaded checkpoint")
    pull.add_argument(
        "--allow-unlisted",
        action="store_true",
        help="accept files the link's checklist.chk does not list (they cannot be verified)",
    )
    pull.add_argument(
        "--accept-license", action="store_true", help="accept the model's license without asking"
    )
    pull.set_defaults(handler=_cmd_pull_meta)


def _cmd_pull_meta(args: argparse.Namespace) -> int:
    link = parse_meta_link(args.url, allow_hosts=allowed_hosts())
    model = find_meta_model(args.model)
    context = AppContext.open(DataHome.resolve())
    try:
        accept_license(context, model.license_id, args.accept_license)
        expiry = link.describe_expiry()
        print(f"Downloading {model.name} from Meta (the link {expiry})…", file=sys.stderr)
        try:
            result = MetaDownloader(context.home.models_dir / ".meta").download(
                link, model, progress=_meta_progress, allow_unlisted=args.allow_unlisted
            )
        except (KeyboardInterrupt, DownloadPaused):
            print(
                "\nPaused: run the same command again (with a fresh link if this one expires).",
                file=sys.stderr,
            )
            return EXIT_PAUSED
        finally:
            end_line()
        if result.unverified:
            print(
                f"Not verified (--allow-unlisted): {', '.join(result.unverified)}. "
                f"The other {len(result.files) - len(result.unverified)} files match Meta's checksums.",
                file=sys.stderr,
            )
        else:
            print(f"All {len(result.files)} files match Meta's checksums.", file=sys.stderr)
        print(f"Converting to {args.quant}…", file=sys.stderr)
        request = ConversionRequest(
            result.folder,
            args.quant,
            name=model.name,
            instruct=model.instruct,
            source="meta",
            origin=f"Meta download: {model.name}",
            license_id=model.license_id,
            remove_folder_after=not args.keep_original,
        )
        converted = convert_into_library(context.library, request, progress=conversion_progress())
        end_line()
    finally:
        context.close()
    print(f"Converted and added as #{converted.id}: {converted.name} ({format_bytes(converted.size_bytes)})")
    return 0


def _meta_progress(p: MetaProgress) -> None:
    show_progress(p.done_bytes, p.total_bytes, f"{format_bytes(int(p.bytes_per_s))}/s  {p.file}")
