"""The model library on disk: import in place or by copy, delete, split models, the starter entry."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from app.core.data_home import DataHome
from app.core.errors import (
    DamagedGGUFError,
    ModelAlreadyInLibraryError,
    ModelInUseError,
    NotAGGUFError,
    OperationCancelledError,
    StarterModelRemovalError,
)
from app.library.store import STARTER_SOURCE, ModelLibrary
from tests.support.gguf_files import LLAMA_SHAPES, write_header_only_llama, write_small_gguf


@pytest.fixture
def library(data_home: DataHome) -> ModelLibrary:
    return ModelLibrary(data_home.library_db, data_home.models_dir)


def test_starter_is_registered_in_place_once(library: ModelLibrary, starter_path: Path) -> None:
    first = library.ensure_starter()
    again = library.ensure_starter()
    assert first is not None and again == first
    assert first.source == STARTER_SOURCE and not first.owned
    assert first.path == starter_path.resolve()  # referenced, not copied
    assert (first.architecture, first.file_type, first.parameters) == ("llama", "Q4_1", 134_515_008)
    assert library.models() == [first]


def test_import_in_place_references_the_file(
    library: ModelLibrary, tmp_path: Path, data_home: DataHome
) -> None:
    source = write_small_gguf(tmp_path / "small.gguf")
    model = library.import_model(source)
    assert model.path == source.resolve() and not model.owned
    assert model.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert model.size_bytes == source.stat().st_size
    assert list(data_home.models_dir.iterdir()) == []
    with pytest.raises(ModelAlreadyInLibraryError):
        library.import_model(source)


def test_import_by_copy_then_delete_frees_the_space(
    library: ModelLibrary, tmp_path: Path, data_home: DataHome
) -> None:
    source = write_small_gguf(tmp_path / "small.gguf")
    seen: list[tuple[int, int]] = []
    model = library.import_model(source, copy=True, progress=lambda done, total: seen.append((done, total)))
    assert model.owned and model.path.parent == data_home.models_dir
    assert model.path.read_bytes() == source.read_bytes()
    assert model.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert seen[-1] == (source.stat().st_size, source.stat().st_size)
    assert library.owned_size() == source.stat().st_size

    second = library.import_model(source, copy=True)  # a second copy gets its own name
    assert second.path.name == "small-copy2.gguf"

    freed = library.remove(model.id)
    assert freed == source.stat().st_size
    assert not model.path.exists() and source.exists()
    assert [m.id for m in library.models()] == [second.id]


def test_removing_an_in_place_model_keeps_the_file_unless_asked(
    library: ModelLibrary, tmp_path: Path
) -> None:
    keep = library.import_model(write_small_gguf(tmp_path / "keep.gguf"))
    assert library.remove(keep.id) == 0
    assert keep.path.exists()
    gone = library.import_model(keep.path)
    assert library.remove(gone.id, delete_files=True) == gone.size_bytes
    assert not gone.path.exists()


def test_cancelled_copy_leaves_nothing(library: ModelLibrary, tmp_path: Path, data_home: DataHome) -> None:
    source = write_small_gguf(tmp_path / "small.gguf")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(OperationCancelledError):
        library.import_model(source, copy=True, cancel=cancel)
    assert list(data_home.models_dir.iterdir()) == []
    assert library.models() == []


def test_damaged_files_are_refused_before_anything_is_copied(
    library: ModelLibrary, tmp_path: Path, data_home: DataHome
) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(write_small_gguf(tmp_path / "ok.gguf").read_bytes()[:-64])
    with pytest.raises(DamagedGGUFError, match=r"bad.gguf"):
        library.import_model(bad, copy=True)
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(NotAGGUFError):
        library.import_model(text)
    assert library.models() == [] and list(data_home.models_dir.iterdir()) == []


def test_delete_is_refused_while_loaded_and_for_the_starter(library: ModelLibrary, tmp_path: Path) -> None:
    model = library.import_model(write_small_gguf(tmp_path / "small.gguf"), copy=True)
    library.usage.acquire(model.path)
    with pytest.raises(ModelInUseError, match="open chat"):
        library.remove(model.id)
    assert model.path.exists() and library.get(model.id) is not None
    library.usage.release(model.path)
    library.remove(model.id)
    starter = library.ensure_starter()
    assert starter is not None
    with pytest.raises(StarterModelRemovalError):
        library.remove(starter.id)


def test_header_facts_are_stored_and_hashing_can_wait(library: ModelLibrary, tmp_path: Path) -> None:
    big = write_header_only_llama(tmp_path / "l2.gguf", LLAMA_SHAPES["Llama-2-7B"], name="Llama 2 7B shape")
    model = library.import_model(big, hash_in_place=False)  # 13 GB: not read now
    assert (model.name, model.parameters, model.context_length) == ("Llama 2 7B shape", 6_738_415_616, 4096)
    assert model.file_type == "F16" and model.sha256 is None

    small = library.import_model(write_small_gguf(tmp_path / "small.gguf"), hash_in_place=False)
    digest = library.compute_sha256(small.id)
    assert digest == hashlib.sha256(small.path.read_bytes()).hexdigest()
    assert library.get(small.id).sha256 == digest  # type: ignore[union-attr]


def test_a_walking_skeleton_library_is_migrated(data_home: DataHome, starter_path: Path) -> None:
    import sqlite3

    old = sqlite3.connect(data_home.library_db)
    old.executescript(
        "CREATE TABLE models (id INTEGER PRIMARY KEY, name TEXT NOT NULL, path TEXT NOT NULL UNIQUE,"
        " source TEXT NOT NULL, size_bytes INTEGER NOT NULL, license TEXT, added_at REAL NOT NULL);"
    )
    old.execute("INSERT INTO models VALUES (1, 'starter', ?, 'starter', 1, NULL, 0)", (str(starter_path),))
    old.commit()
    old.close()
    library = ModelLibrary(data_home.library_db, data_home.models_dir)
    starter = library.ensure_starter()
    assert starter is not None and starter.parameters == 134_515_008
    assert len(library.models()) == 1
