"""Render the Download tab, the license dialog and the Downloads panel to PNG (README screenshots).

Usage: python scripts/screenshot_downloads.py [OUT_DIR]   (offscreen, against the tests' local fake Hub:
the listed file is a Llama-3.2-1B-shaped header, the download a small test file paused part-way)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.fake_hub import FakeFile, FakeHub, FakeRepo

HUB = FakeHub().start()
os.environ["HF_ENDPOINT"] = HUB.url  # before huggingface_hub is imported
os.environ["HF_HUB_DISABLE_XET"] = "1"

from qt_wait import wait_until  # noqa: E402

from app.context import AppContext  # noqa: E402
from app.core.data_home import DataHome  # noqa: E402
from app.downloads.licenses import NEEDS_ACCEPTANCE  # noqa: E402
from app.gguf.header import read_header  # noqa: E402
from tests.support.gguf_files import LLAMA_SHAPES, write_header_only_llama, write_small_gguf  # noqa: E402
from ui.downloads.license_dialog import LicenseDialog  # noqa: E402
from ui.gui import create_application  # noqa: E402
from ui.services import AppServices  # noqa: E402

REPO = "bartowski/Llama-3.2-1B-Instruct-GGUF"
LLAMA_3_2_1B = LLAMA_SHAPES["Llama-3.2-1B"]


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots").resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as home_dir:
        os.environ["LLAMA_DESK_HOME"] = home_dir
        os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
        os.environ["XDG_DATA_HOME"] = home_dir + "-keyring"
        shaped = write_header_only_llama(
            Path(home_dir) / "shape.gguf", LLAMA_3_2_1B, name="Llama 3.2 1B Instruct", with_vocabulary=True
        )
        with shaped.open("rb") as f:
            head = f.read(read_header(shaped).data_offset + 4096)
        small = write_small_gguf(Path(home_dir) / "small.gguf").read_bytes()
        HUB.add_repo(
            FakeRepo(
                REPO,
                {
                    "Llama-3.2-1B-Instruct-f16.gguf": FakeFile(head, advertised_size=shaped.stat().st_size),
                    "Llama-3.2-1B-Instruct-Q4_K_M.gguf": FakeFile(small + b"\0" * ((24 << 20) - len(small))),
                },
                license="llama3.2",
            )
        )
        app = create_application()
        context = AppContext.open(DataHome.resolve())
        manager = AppServices(context).model_manager()
        manager.resize(1100, 460)
        manager.show()
        manager.tabs.setCurrentWidget(manager.catalog_panel)
        panel = manager.catalog_panel
        panel.repo_list.setCurrentRow(0)
        wait_until(lambda: panel.files_table.rowCount() == 2)
        panel.files_table.selectRow(1)
        wait_until(lambda: "parameters" in panel.details_label.text())
        app.processEvents()
        manager.grab().save(str(out / "download.png"))

        dialog = LicenseDialog(NEEDS_ACCEPTANCE["llama3.2"], "Llama 3.2 1B Instruct (F16)", manager)
        dialog.resize(720, 520)
        dialog.show()
        app.processEvents()
        dialog.grab().save(str(out / "license.png"))
        dialog.close()

        context.licenses.accept(NEEDS_ACCEPTANCE["llama3.2"])
        HUB.faults.chunk_delay_s = 0.01
        panel.files_table.selectRow(0)
        remote = panel.selected_file()
        assert remote is not None and remote.filename.endswith("Q4_K_M.gguf")
        job_id = manager.request_download(remote, "llama3.2", "Llama 3.2 1B Instruct (Q4_K_M)")
        assert job_id is not None
        row = manager.downloads_panel.row(job_id)
        wait_until(lambda: row.progress.value() > 350)
        manager.download_worker.pause(job_id)
        wait_until(lambda: row.pause_resume.text() == "Resume")
        app.processEvents()
        manager.grab().save(str(out / "downloads.png"))
        manager.shutdown()
        context.close()
    HUB.stop()
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
