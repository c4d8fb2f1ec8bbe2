"""Render the chat window with a real conversation on the starter model and save it as a PNG.

Usage: python scripts/screenshot_chat.py [OUT.png]   (runs offscreen; README's screenshot comes from here)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qt_wait import wait_until

from app.context import AppContext
from app.core.data_home import DataHome
from app.engine.generation import GenerationParams
from ui.gui import create_application, open_chat_window
from ui.services import AppServices

PROMPTS = ("Hi! Who are you?", "Write a haiku about a llama on a desk.")


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots/chat.png").resolve()
    with tempfile.TemporaryDirectory() as home_dir:
        os.environ["LLAMA_DESK_HOME"] = home_dir
        app = create_application()
        context = AppContext.open(DataHome.resolve())
        window = open_chat_window(AppServices(context), None)
        window.generation_params = GenerationParams(temperature=0.0, max_tokens=120)
        window.resize(1180, 640)
        window.show()
        wait_until(lambda: window.generation_params is not None and window.model_info is not None)
        for prompt in PROMPTS:
            window._input.setPlainText(prompt)
            window.send_message()
            wait_until(lambda: not window.is_generating)
        app.processEvents()
        out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(out))
        window.shutdown()
        context.close()
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
