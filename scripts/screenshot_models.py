"""Render the Model manager and a model's Details window to PNG (README screenshots).

Usage: python scripts/screenshot_models.py [OUT_DIR]   (offscreen; the library gets the starter model and a
Llama-3-8B-shaped file whose weights are a sparse hole, so no real 16 GB model is needed)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qt_wait import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from app.context import AppContext
from app.core.data_home import DataHome
from tests.support.gguf_files import LLAMA_SHAPES, write_header_only_llama
from ui.gui import create_application
from ui.services import AppServices


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots").resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as home_dir:
        os.environ["LLAMA_DESK_HOME"] = home_dir
        app = create_application()
        context = AppContext.open(DataHome.resolve())
        shaped = write_header_only_llama(
            Path(home_dir) / "Meta-Llama-3-8B-Instruct-F16.gguf",
            LLAMA_SHAPES["Llama-3-8B"],
            name="Llama 3 8B Instruct (shape only)",
        )
        context.library.import_model(shaped, hash_in_place=False)
        manager = AppServices(context).model_manager()
        manager.resize(1100, 360)
        manager.show()
        wait_until(lambda: all(manager.report(m.id) for m in context.library.models()))
        manager.select_model(2)
        app.processEvents()
        manager.grab().save(str(out / "models.png"))
        details = manager.show_details()
        assert details is not None
        details.context_spin.setValue(8192)
        app.processEvents()
        details.grab().save(str(out / "model-details.png"))
        manager.shutdown()
        context.close()
        del app
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
