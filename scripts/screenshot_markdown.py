"""Render the chat window with a Markdown reply (a second version of it) in the light and dark themes.

Usage: python scripts/screenshot_markdown.py [OUT_DIR]   (offscreen; writes chat-markdown-{light,dark}.png)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from qt_wait import wait_until

from app.chat.store import ChatStore
from app.context import AppContext
from app.core.data_home import DataHome
from ui.common.theme import apply_theme
from ui.gui import create_application, open_chat_window
from ui.services import AppServices

MODEL = "SmolLM2 135M Instruct"
REPLY = """### Counting words

Here is a small **Python** function that counts words, and how it behaves:

```python
from collections import Counter

def top_words(text: str, n: int = 3) -> list[tuple[str, int]]:
    \"\"\"The n most common words, lowercased.\"\"\"
    words = text.lower().split()
    return Counter(words).most_common(n)  # ties keep first-seen order
```

- It splits on *whitespace*, so punctuation stays attached.
- `Counter.most_common` sorts by count.
  1. Ties keep insertion order.

| input | result |
|---|---|
| `"a b a"` | `[("a", 2), ("b", 1)]` |
| `""` | `[]` |

> Tip: use `re.findall(r"\\w+", text)` for real text. See [the docs](https://docs.python.org/3/library/collections.html).
"""


def main() -> int:
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots").resolve()
    with tempfile.TemporaryDirectory() as home_dir:
        os.environ["LLAMA_DESK_HOME"] = home_dir
        app = create_application()
        theme = apply_theme(app)
        context = AppContext.open(DataHome.resolve())
        store = ChatStore(context.home.chats_db)
        chat = store.create_conversation("Counting words in Python")
        store.add_message(chat.id, "user", "How do I find the most common words in a text with Python?")
        first = store.add_message(chat.id, "assistant", "Use collections.Counter on the words.", model=MODEL)
        store.rewind_to_parent_of(first.id)  # regenerated: the short answer stays as version 1 of 2
        store.add_message(chat.id, "assistant", REPLY, model=MODEL)
        store.close()
        window = open_chat_window(AppServices(context), None)
        window.resize(1100, 900)
        window.show()
        window.select_conversation(chat.id)
        wait_until(lambda: window.model_info is not None)
        for scheme, name in ((Qt.ColorScheme.Light, "light"), (Qt.ColorScheme.Dark, "dark")):
            theme.apply_scheme(scheme)
            view = window.message_view
            QTest.mouseMove(view.viewport(), view.visualRect(window.message_model.index(1)).center())
            wait_until(lambda: False, timeout_s=0.3)  # let the palette change and the hover repaint
            window.grab().save(str(out_dir / f"chat-markdown-{name}.png"))
        window.shutdown()
        context.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
