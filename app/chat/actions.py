"""Which actions a message offers, and when: the one place the hover buttons, the context menu and the
keyboard shortcuts of the chat view ask."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.chat.store import ChatMessage, MessageStatus


class MessageAction(StrEnum):
    """What a user can ask of one message from its hover buttons or context menu."""

    COPY = "copy"
    EDIT = "edit"  # user messages: edit and resend as a new branch
    REGENERATE = "regenerate"  # replies: a new reply as a new branch
    DELETE = "delete"
    PREVIOUS_BRANCH = "previous-branch"
    NEXT_BRANCH = "next-branch"


BRANCH_ACTIONS = (MessageAction.PREVIOUS_BRANCH, MessageAction.NEXT_BRANCH)


@dataclass(frozen=True)
class ActionState:
    action: MessageAction
    enabled: bool


def needs_idle(action: MessageAction) -> bool:
    """Every action but Copy changes the chat, so it waits until no reply is being written."""
    return action is not MessageAction.COPY


def message_actions(
    message: ChatMessage, *, versions: tuple[int, int] | None = None, generating: bool = False
) -> list[ActionState]:
    """The actions `message` offers, in the order they are shown, each enabled or not.

    `versions`: its position among its alternatives and how many there are (None: it has none).
    A reply still streaming can only be copied.
    """
    if message.role == "assistant" and message.status is MessageStatus.STREAMING:
        return [ActionState(MessageAction.COPY, True)]
    if message.role == "user":
        kinds = [MessageAction.EDIT, MessageAction.COPY, MessageAction.DELETE]
    else:
        kinds = [MessageAction.COPY, MessageAction.REGENERATE, MessageAction.DELETE]
    states = [ActionState(a, not (generating and needs_idle(a))) for a in kinds]
    if versions is not None:
        position, count = versions
        states[:0] = [
            ActionState(MessageAction.PREVIOUS_BRANCH, not generating and position > 1),
            ActionState(MessageAction.NEXT_BRANCH, not generating and position < count),
        ]
    return states
