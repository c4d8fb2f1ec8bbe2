"""The app's long-lived state, built once at start-up and passed to whoever needs it (no singletons)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.core.data_home import DataHome
from app.core.settings import Settings
from app.downloads.jobs import DownloadJobs
from app.downloads.licenses import LicenseBook
from app.downloads.secrets import TokenStore
from app.library.store import LibraryModel, ModelLibrary


@dataclass
class AppContext:
    home: DataHome
    settings: Settings
    library: ModelLibrary
    jobs: DownloadJobs
    licenses: LicenseBook
    tokens: TokenStore
    #: Values of settings.json that were unusable and replaced by their defaults, to tell the user.
    settings_problems: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, home: DataHome) -> AppContext:
        home.ensure()
        library = ModelLibrary(home.library_db, home.models_dir)
        library.ensure_starter()
        settings, problems = Settings.load_checked(home.settings_file)
        return cls(
            home,
            settings,
            library,
            DownloadJobs(home.library_db),
            LicenseBook(home.library_db),
            TokenStore(),
            problems,
        )

    def save_settings(self) -> None:
        self.settings.save(self.home.settings_file)

    def close(self) -> None:
        self.jobs.close()
        self.licenses.close()
        self.library.close()

    def default_model(self) -> LibraryModel | None:
        """The model new chats use: the one chosen in settings, else the starter, else any."""
        if self.settings.default_model_id is not None:
            chosen = self.library.get(self.settings.default_model_id)
            if chosen is not None:
                return chosen
        models = self.library.models()
        starters = [m for m in models if m.source == "starter"]
        return next(iter(starters or models), None)

    def library_name_of(self, path: Path) -> str | None:
        """The library's name for a model file, if the file is in the library."""
        resolved = path.expanduser().resolve()
        return next((m.name for m in self.library.models() if m.path == resolved), None)
