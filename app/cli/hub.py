"""`llama-desk models pull`, `llama-desk token` and `llama-desk license`: getting models from the Hub."""

from __future__ import annotations

import argparse
import getpass
import sys

from app.cli.progress import conversion_progress, end_line, show_progress
from app.context import AppContext
from app.convert.pipeline import DEFAULT_QUANT, OUTPUT_TYPES
from app.core.data_home import DataHome
from app.core.errors import LicenseNotAcceptedError, UsageError
from app.core.units import format_bytes
from app.downloads.downloader import DownloadControl, Downloader, DownloadPaused, DownloadProgress
from app.downloads.hub import HubClient, RepoListing, choose_file
from app.downloads.licenses import NEEDS_ACCEPTANCE
from app.downloads.secrets import TokenStore

EXIT_PAUSED = 130


def add_hub_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    models_commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    pull = models_commands.add_parser("pull", help="download a GGUF from Hugging Face into the library")
    pull.add_argument(
        "repo", metavar="REPO", help="a Hugging Face repo id, like bartowski/Llama-3.2-1B-Instruct-GGUF"
    )
    which = pull.add_mutually_exclusive_group()
    which.add_argument("--file", help="the exact file name in the repo")
    which.add_argument("--quant", help="the quantization, like Q4_K_M (the default) or Q8_0")
    pull.add_argument("--revision", help="a branch, tag or commit (default: main)")
    pull.add_argument(
        "--convert",
        action="store_true",
        help="the repo holds the original safetensors (like meta-llama/Llama-3.2-1B-Instruct): download and"
        " convert them to a GGUF (--quant: the output type, default Q4_K_M)",
    )
    pull.add_argument(
        "--keep-original", action="store_true", help="with --convert: keep the downloaded checkpoint"
    )
    pull.add_argument(
        "--accept-license", action="store_true", help="accept the model's license without asking"
    )
    pull.set_defaults(handler=_cmd_pull)

    token = commands.add_parser("token", help="the Hugging Face access token, kept in the OS keyring")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    token_set = token_sub.add_parser("set", help="store a token (read from the terminal, or stdin)")
    token_set.set_defaults(handler=_cmd_token_set)
    token_sub.add_parser("clear", help="forget the token").set_defaults(handler=_cmd_token_clear)
    check = token_sub.add_parser("check", help="can this token download from REPO?")
    check.add_argument("repo", metavar="REPO")
    check.set_defaults(handler=_cmd_token_check)

    license_cmd = commands.add_parser("license", help="show a model license")
    license_cmd.add_argument("license_id", metavar="ID", choices=sorted(NEEDS_ACCEPTANCE))
    license_cmd.set_defaults(handler=_cmd_license_show)


def _cmd_pull(args: argparse.Namespace) -> int:
    context = AppContext.open(DataHome.resolve())
    hub = HubClient(TokenStore().get())
    if args.convert and args.file:
        raise UsageError("--convert takes the whole checkpoint; --file picks one GGUF. Use one of them.")
    if args.convert and args.quant and args.quant.upper() not in OUTPUT_TYPES:
        raise UsageError(f"--quant {args.quant}: choose one of {', '.join(OUTPUT_TYPES)}.")
    if args.convert:
        listing = hub.list_checkpoint_files(args.repo, args.revision)
    else:
        listing = hub.list_gguf_files(args.repo, args.revision)
        remote = choose_file(listing, args.file, args.quant)
    accept_license(context, listing.license, args.accept_license)
    if args.convert:
        return _pull_and_convert(
            context, hub, listing, (args.quant or DEFAULT_QUANT).upper(), args.keep_original
        )
    existing = context.library.find_by_sha256(remote.sha256) if remote.sha256 else None
    if existing is not None:
        print(f"{remote.filename} is already in the library as #{existing.id}: {existing.name}.")
        return 0
    if listing.gated:
        hub.require_access(args.repo)
    print(f"Downloading {remote.filename} ({format_bytes(remote.size)}) from {args.repo}…", file=sys.stderr)
    control = DownloadControl()
    downloader = Downloader(context.library, hub, context.home.models_dir)
    try:
        model = downloader.download(
            remote, control=control, progress=_download_progress, license_id=listing.license
        )
    except KeyboardInterrupt:
        print("\nPaused: run the same command again to resume where it stopped.", file=sys.stderr)
        return EXIT_PAUSED
    except DownloadPaused as paused:
        print(f"\n{paused}", file=sys.stderr)
        return EXIT_PAUSED
    finally:
        end_line()
    digest = model.sha256[:12] if model.sha256 else "?"
    print(f"Verified (sha256 {digest}…) and added as #{model.id}: {model.name}")
    return 0


def accept_license(context: AppContext, license_id: str | None, accepted_already: bool) -> None:
    """Ask for (or record, with --accept-license) acceptance of a license that needs it."""
    book = context.licenses
    pending = book.needs_acceptance(license_id)
    if pending is None:
        return
    if not accepted_already:
        if not sys.stdin.isatty():
            raise LicenseNotAcceptedError(pending.title, pending.id)
        print(pending.text())
        answer = input(f"\nDo you accept the {pending.title}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise LicenseNotAcceptedError(pending.title, pending.id)
    book.accept(pending)
    print(f"Accepted the {pending.title} (version {pending.version}).", file=sys.stderr)


def _pull_and_convert(
    context: AppContext, hub: HubClient, listing: RepoListing, quant: str, keep_original: bool
) -> int:
    from app.convert.fetch import checkpoint_folder, fetch_hub_checkpoint
    from app.convert.into_library import ConversionRequest, convert_into_library

    if listing.gated:
        hub.require_access(listing.repo_id)
    total = sum(f.size for f in listing.files)
    print(f"Downloading {listing.repo_id} ({format_bytes(total)}) to convert it…", file=sys.stderr)
    folder = checkpoint_folder(context.home.models_dir / ".checkpoints", listing)
    try:
        fetch_hub_checkpoint(
            Downloader(context.library, hub, context.home.models_dir),
            listing,
            folder,
            progress=lambda _name, p: _download_progress(p),
        )
    except KeyboardInterrupt:
        print("\nPaused: run the same command again to resume where it stopped.", file=sys.stderr)
        return EXIT_PAUSED
    finally:
        end_line()
    request = ConversionRequest(
        folder,
        quant,
        name=listing.repo_id.split("/")[-1],
        source="huggingface",
        origin=f"{listing.repo_id}@{listing.revision} (converted to {quant})",
        license_id=listing.license,
        remove_folder_after=not keep_original,
    )
    model = convert_into_library(context.library, request, progress=conversion_progress())
    end_line()
    print(f"Converted and added as #{model.id}: {model.name} ({format_bytes(model.size_bytes)})")
    return 0


def _cmd_token_set(_args: argparse.Namespace) -> int:
    token = getpass.getpass("Hugging Face token: ") if sys.stdin.isatty() else sys.stdin.readline()
    if not token.strip():
        raise UsageError("No token given; nothing was stored.")
    TokenStore().set(token)
    print("Token stored in the OS keyring.")
    return 0


def _cmd_token_clear(_args: argparse.Namespace) -> int:
    TokenStore().delete()
    print("Token removed from the OS keyring.")
    return 0


def _cmd_token_check(args: argparse.Namespace) -> int:
    HubClient(TokenStore().get()).require_access(args.repo)
    print(f"This token can download from {args.repo}.")
    return 0


def _cmd_license_show(args: argparse.Namespace) -> int:
    print(NEEDS_ACCEPTANCE[args.license_id].text())
    return 0


def _download_progress(p: DownloadProgress) -> None:
    eta = f", {p.eta_s:.0f} s left" if p.eta_s is not None else ""
    show_progress(p.done_bytes, p.total_bytes, f"{format_bytes(int(p.bytes_per_s))}/s{eta}")
