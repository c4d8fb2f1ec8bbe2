"""Light and dark themes: a Fusion palette that follows the OS colour scheme, and the chat's own colours.

Widgets take their colours from the application palette; the message delegate, which paints
bubbles, code blocks and captions itself, takes them from `chat_colors(palette)`, so both follow
a switch of the OS scheme while the app runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

log = logging.getLogger("ui")

_Role = QPalette.ColorRole
_Group = QPalette.ColorGroup

# role -> (light, dark)
_PALETTE: dict[QPalette.ColorRole, tuple[str, str]] = {
    _Role.Window: ("#f3f4f6", "#202226"),
    _Role.WindowText: ("#1f2328", "#e6e8eb"),
    _Role.Base: ("#ffffff", "#17191c"),
    _Role.AlternateBase: ("#f6f8fa", "#1f2125"),
    _Role.Text: ("#1f2328", "#e6e8eb"),
    _Role.Button: ("#f3f4f6", "#2b2e33"),
    _Role.ButtonText: ("#1f2328", "#e6e8eb"),
    _Role.BrightText: ("#d1242f", "#ff7b72"),
    _Role.Highlight: ("#2f6fde", "#3d7be0"),
    _Role.HighlightedText: ("#ffffff", "#ffffff"),
    _Role.Link: ("#0969da", "#6cb6ff"),
    _Role.LinkVisited: ("#8250df", "#b392f0"),
    _Role.PlaceholderText: ("#6e7781", "#8b939c"),
    _Role.ToolTipBase: ("#ffffff", "#2b2e33"),
    _Role.ToolTipText: ("#1f2328", "#e6e8eb"),
    _Role.Light: ("#ffffff", "#3a3e45"),
    _Role.Midlight: ("#e4e7eb", "#32353b"),
    _Role.Mid: ("#c4c9cf", "#2a2d32"),
    _Role.Dark: ("#a0a7b0", "#111214"),
    _Role.Shadow: ("#6e7781", "#000000"),
}
_DISABLED_TEXT = ("#8c959f", "#6b7178")


def palette_for(dark: bool) -> QPalette:
    """The app's palette, light or dark (used with the Fusion style, which honours every role)."""
    palette = QPalette()
    for role, colors in _PALETTE.items():
        palette.setColor(role, QColor(colors[dark]))
    for role in (_Role.Text, _Role.WindowText, _Role.ButtonText, _Role.PlaceholderText):
        palette.setColor(_Group.Disabled, role, QColor(_DISABLED_TEXT[dark]))
    return palette


def is_dark(palette: QPalette) -> bool:
    return palette.color(_Group.Active, _Role.Base).lightness() < 128


@dataclass(frozen=True)
class ChatColors:
    """What the message delegate paints with; readable on both palettes."""

    dark: bool
    text: QColor
    caption: QColor
    warning: QColor  # a caption of a reply that was cut short; error text anywhere
    success: QColor  # "fits", "verified" and the like
    marker: QColor  # the "beyond the context window" divider
    user_bubble: QColor
    reply_bubble: QColor
    code_background: QColor
    code_header: QColor
    code_border: QColor
    inline_code_background: QColor
    quote_bar: QColor
    table_border: QColor
    button_hover: QColor
    link: QColor
    highlight: QColor


def chat_colors(palette: QPalette) -> ChatColors:
    """From the palette's active colours, whatever its current group (an item's option may differ)."""
    dark = is_dark(palette)

    def role(which: QPalette.ColorRole) -> QColor:
        return palette.color(_Group.Active, which)

    def pick(light: str, dark_color: str) -> QColor:
        return QColor(dark_color if dark else light)

    return ChatColors(
        dark=dark,
        text=role(_Role.Text),
        caption=role(_Role.PlaceholderText),
        warning=pick("#b42318", "#ff8a80"),
        success=pick("#1e7b34", "#6cc070"),
        marker=pick("#a15c00", "#e3a34a"),
        user_bubble=pick("#dbe8fc", "#274b78"),
        reply_bubble=pick("#f0f2f5", "#26292e"),
        code_background=pick("#fbfcfd", "#15171a"),
        code_header=pick("#e8ebef", "#202328"),
        code_border=pick("#d5dae0", "#363a41"),
        inline_code_background=pick("#e1e5ea", "#363a42"),
        quote_bar=pick("#c2c8d0", "#4d535c"),
        table_border=pick("#c9cfd6", "#454a52"),
        button_hover=pick("#dde2e8", "#3a3e46"),
        link=role(_Role.Link),
        highlight=role(_Role.Highlight),
    )


class ThemeController(QObject):
    """Applies the Fusion style and the palette matching the OS scheme, and follows it when it changes."""

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self._app = app
        fusion = QStyleFactory.create("Fusion")
        if fusion is not None:
            app.setStyle(fusion)
        hints = QGuiApplication.styleHints()
        hints.colorSchemeChanged.connect(self._on_color_scheme_changed)
        self.apply_scheme(hints.colorScheme())

    @property
    def dark(self) -> bool:
        return is_dark(self._app.palette())

    def apply_scheme(self, scheme: Qt.ColorScheme) -> None:
        """Dark for the OS's dark scheme; light for light or unknown (Linux desktops without a portal)."""
        dark = scheme == Qt.ColorScheme.Dark
        self._app.setPalette(palette_for(dark))
        log.debug("theme: %s", "dark" if dark else "light")

    @Slot(Qt.ColorScheme)
    def _on_color_scheme_changed(self, scheme: Qt.ColorScheme) -> None:
        self.apply_scheme(scheme)


def apply_theme(app: QApplication) -> ThemeController:
    """Theme `app` now and on every OS scheme change (the controller lives as long as the app)."""
    existing = app.findChild(ThemeController)
    return existing if existing is not None else ThemeController(app)
