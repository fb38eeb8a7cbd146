"""Everything the chat says to a person when it does not do what was asked: one place, so that every text can
be read, and tested, together.

A `Problem` has two faces. Its ``text`` is for the person in front of the
page: what happened and what to do, in words that name no field, type or
part of the server. Its ``code`` is for programs: version 2's ``error``
events carry it, so a client decides what to do (retry, ask for a new name,
stop) without reading the text, which may be reworded. The seed's clients
get the text alone, as they always did (and its one text from the original
demo, ``chat not found.``, unchanged).

Codes, and whether the same request may succeed later:

=================  ==========================================================  =========
code               meaning                                                     try again
=================  ==========================================================  =========
bad-request        the app sent something malformed: a bug in the app          no
too-long           the message is longer than the server takes                 no
not-in-chat        a request that needs a chat, before joining one             no
not-found          no chat at that key (never was, or ended)                   no
rate-limited       too many messages, too fast                                 yes
unavailable        the server could not store or read it just now              yes
locked             the chat takes no one new                                   no
banned             this user was removed for good                              no
ended              the chat was ended                                          no
not-allowed        this user may not do that                                   no
no-such-message    the message named is not in the chat (or was deleted)       no
no-such-user       the member named is not in the chat                         no
name-taken         a signed-in member of the chat has that name                no
bad-name           the name or title cannot be used                            no
sign-in-needed     the server takes only signed-in users                       no
sign-in-refused    the sign-in given was not accepted                          no
=================  ==========================================================  =========
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Problem:
    """What the chat says instead of doing what was asked: ``code`` for programs, ``text`` for the person.

    ``seed_text``: what the seed's protocol says instead, where the original demo had its own text.
    """

    code: str
    text: str
    seed_text: str | None = None

    def format(self, **values: Any) -> Problem:
        """This problem with the ``{placeholders}`` of its text filled in."""
        return replace(self, text=self.text.format(**values))

    def __str__(self) -> str:
        return self.text


RETRYABLE = frozenset({"rate-limited", "unavailable"})
"""The codes whose request may succeed if sent again later, unchanged."""

_RELOAD = "Reload the page, or update the app."


def _malformed(what: str) -> Problem:
    return Problem("bad-request", f"The app sent {what}. {_RELOAD}")


# Requests the server cannot read: a bug in the app, never something its user did.
NOT_JSON = _malformed("something that is not a chat request (not valid JSON)")
TOO_DEEP = _malformed("a request nested more than {depth} levels deep")
NOT_AN_OBJECT = _malformed("a request that is not a JSON object")
NO_TYPE = _malformed("a request that does not say what it is")
UNKNOWN_REQUEST = _malformed("a request of a kind this chat does not know")
BINARY = _malformed("binary data; this chat takes text only")
BAD_VERSION = _malformed("a protocol version this server does not speak (it speaks {versions})")
BAD_JOIN_KEY = _malformed("a chat link whose key is not text")
MESSAGE_NOT_TEXT = _malformed("a message that is not text")
BAD_TALK_ID = _malformed("a message whose id is not 1 to {limit} printable characters")
BAD_REJOIN = _malformed("a malformed code to rejoin the chat with")
BAD_RESUME_POINT = _malformed("a malformed point to resume the chat from")
BAD_SIGN_IN_FORM = _malformed("a sign-in that is not text of 1 to {limit} characters")
BAD_BEFORE = _malformed("a request for older messages from a point that is not in any chat")
BAD_LIMIT = _malformed("a request for a number of older messages that is not 1 or more")
NO_TITLE = _malformed("a change of the chat's title without a title")
TITLE_NOT_TEXT = _malformed("a chat title that is not text")
BAD_LOCK = _malformed("a lock request that says neither lock nor unlock")
BAD_BAN = _malformed("a removal that does not say whether it bans")
BAD_ROLE = _malformed("a role other than moderator or member")
BAD_MESSAGE_NUMBER = _malformed("a request naming a message by a number no message has")
BAD_MEMBER_NUMBER = _malformed("a request naming a member by a number no member has")
NAME_NOT_TEXT = _malformed("a name that is not text")
ALREADY_IN_CHAT = _malformed("a second request to join a chat on one connection")

# What the person sent or asked for, that cannot be taken as it is.
TOO_LONG = Problem("too-long", "Your message is longer than {limit} characters. Shorten it, or send it in parts.")
NOT_UNICODE = Problem("bad-request", "Your message holds characters that are not valid text. Remove them and send it "
                                     "again.")
NOT_IN_CHAT = Problem("not-in-chat", "You are not in a chat yet. Join one first, then try again.")
NAME_LENGTH = Problem("bad-name", "A name must be 1 to {limit} characters long. Choose another name.")
NAME_CONTROL = Problem("bad-name", "A name must be one line of visible characters. Choose another name.")
NAME_FROM_SIGN_IN = Problem("not-allowed", "Your name comes from your sign-in and cannot be changed here. Change it "
                                           "on the site that signed you in.")
TAKEN = Problem("name-taken", "That name belongs to a signed-in member of this chat. Choose another name.")
TITLE_LENGTH = Problem("bad-name", "A chat title must be 1 to {limit} characters long. Shorten it and try again.")
TITLE_CONTROL = Problem("bad-name", "A chat title must be one line of visible characters. Change it and try again.")

# Which chat, and whether this person may be in it.
NOT_FOUND = Problem(
    "not-found", "There is no chat at this link: it was ended, or the link is incomplete. Check the link, or start "
                 "a new chat.",
    seed_text="chat not found.",
)
LOCKED = Problem("locked", "This chat is locked: only people who were in it can come back. Ask its owner to unlock "
                           "it.")
BANNED = Problem("banned", "You were removed from this chat and cannot come back. Ask its owner if this is a "
                           "mistake.")
ENDED = Problem("ended", "This chat was ended by its owner. Start a new chat to go on talking.")
SIGN_IN_NEEDED = Problem("sign-in-needed", "This chat needs you to sign in. Open it from your school's site, which "
                                           "signs you in.")
SIGN_IN_REFUSED = Problem("sign-in-refused", "Your sign-in was not accepted. Open the chat again from the site that "
                                             "signed you in; if this keeps happening, tell whoever runs that site.")
SIGN_IN_EXPIRED = Problem("sign-in-refused", "Your sign-in has expired. Open the chat again from the site that "
                                             "signed you in.")
SIGN_IN_EARLY = Problem("sign-in-refused", "Your sign-in is not valid yet: a clock is wrong, here or on the site "
                                           "that signed you in. Wait a minute, then open the chat again from that "
                                           "site.")
NO_CREATE = Problem("not-allowed", "Your sign-in does not allow starting a chat. Ask your teacher for a link to one.")
NOT_THIS_ROOM = Problem("not-allowed", "Your sign-in does not allow joining this chat. Check the link, or open the "
                                       "chat from your school's site.")

# The server could not do it now: the same request may succeed later.
RATE_LIMITED = Problem("rate-limited", "You are sending messages too fast. Wait a moment, then send again.")
TALK_NOT_SAVED = Problem("unavailable", "Your message was not sent: the server could not save it just now. Send it "
                                        "again in a moment.")
JOIN_NOT_SAVED = Problem("unavailable", "You could not join the chat: the server could not save your place just now. "
                                        "Try again in a moment.")
OPEN_NOT_READ = Problem("unavailable", "The chat could not be opened: the server could not read it just now. Try "
                                       "again in a moment.")
NO_FREE_KEY = Problem("unavailable", "A new chat could not be made just now. Try again in a moment.")
NAME_NOT_SAVED = Problem("unavailable", "Your name was not changed: the server could not save it just now. Try "
                                        "again in a moment.")
HISTORY_NOT_READ = Problem("unavailable", "Older messages could not be read just now. Try again in a moment.")
CHANGE_NOT_SAVED = Problem("unavailable", "That was not done: the server could not save it just now. Try again in a "
                                          "moment.")
CLOSING = Problem("unavailable", "This connection is closing. Connect again, then try again.")

# The rules of a room (`chatcore.control.rules`): who may change what.
NO_SUCH_MESSAGE = Problem("no-such-message", "That message is not in this chat any more. Nothing was changed.")
MESSAGE_DELETED = Problem("no-such-message", "That message was deleted. Nothing was changed.")
EDIT_OWN_ONLY = Problem("not-allowed", "You can only edit your own messages. Ask its author to edit this one.")
DELETE_OWN_ONLY = Problem("not-allowed", "You can only delete your own messages. Ask a moderator to delete this "
                                         "one.")
STAFF_ONLY = Problem("not-allowed", "Only the chat's owner and moderators can {doing}. Ask one of them.")
OWNER_ONLY = Problem("not-allowed", "Only the chat's owner can {doing}. Ask the owner.")
NO_SUCH_USER = Problem("no-such-user", "There is no such member in this chat. Nothing was changed.")
OWNER_ROLE = Problem("not-allowed", "The owner's role cannot change. Nothing was changed.")
BANNED_ROLE = Problem("not-allowed", "That member was removed from this chat for good, so their role cannot change. "
                                     "Nothing was changed.")
REMOVE_SELF = Problem("not-allowed", "You cannot remove yourself. To go, leave the chat.")
REMOVE_OWNER = Problem("not-allowed", "The owner cannot be removed from their own chat. Nothing was changed.")
