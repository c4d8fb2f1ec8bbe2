"""Hub queries (listings, search, remote headers, access checks) off the GUI thread."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from app.downloads.hub import HubClient, RemoteFile
from app.downloads.remote_model import inspect_remote
from app.downloads.secrets import TokenStore
from ui.common.workers import reports_failure


class HubWorker(QObject):
    """Signals:
    listing_ready(RepoListing), search_ready(str, list[str]), remote_report_ready(RemoteFile, ModelReport),
    access_checked(str, HubAccess), hub_failed(str): results of the slots of the same names.
    """

    listing_ready = Signal(object)
    search_ready = Signal(str, object)
    remote_report_ready = Signal(object, object)
    access_checked = Signal(str, object)
    hub_failed = Signal(str)

    def __init__(self, tokens: TokenStore) -> None:
        super().__init__()
        self._tokens = tokens

    def _client(self) -> HubClient:
        return HubClient(self._tokens.get())  # the token is read when needed, never kept in a widget

    @Slot(str)
    @reports_failure("hub_failed", "asking Hugging Face for the files")
    def list_repo(self, repo_id: str) -> None:
        self.listing_ready.emit(self._client().list_gguf_files(repo_id))

    @Slot(str)
    @reports_failure("hub_failed", "searching Hugging Face")
    def search(self, query: str) -> None:
        self.search_ready.emit(query, self._client().search_gguf(query))

    @Slot(object)
    @reports_failure("hub_failed", "reading the model's header")
    def inspect(self, remote: RemoteFile) -> None:
        self.remote_report_ready.emit(remote, inspect_remote(self._client(), remote))

    @Slot(str)
    @reports_failure("hub_failed", "checking access")
    def check_access(self, repo_id: str) -> None:
        self.access_checked.emit(repo_id, self._client().check_access(repo_id))
