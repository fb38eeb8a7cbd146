// Browser client for the chat server, speaking protocol version 2 (docs/protocol.md, "Version 2").
//
// Kept from the first version of this page: the socket goes to the page's own
// host (since the page's port takes WebSocket upgrades: its own origin, at the
// path config.js names, so a proxy on 443 needs nothing else; on the port
// config.js names instead if it names one: --public-ws-port); everything from the
// network is rendered as text, never parsed as markup; Bulma is served by our
// own server; a copyable join link, message times in the reader's zone,
// auto-scroll, no empty messages, reconnection with backoff and jitter to the
// same room.
//
// Version 2 adds: a name (asked once, kept in localStorage, changeable), who
// is online, join/leave/rename notices, the same user across reloads and
// reconnects (a token per room in localStorage), talks with ids shown as
// pending until the server echoes them (refused ones can be retried, ones
// typed offline are sent once back in the room), talks placed and
// deduplicated by offset, older talks fetched on demand, unread counts in the
// tab title, and multi-line messages.
//
// Rooms a teacher controls: the room's title and a "Locked" badge in the
// header; each role in the online list; a menu on every stored message to
// edit (in place) or delete one's own, and for staff (owner, moderators) to
// delete anyone's; for staff, a panel to set the title, lock the room, make
// moderators (the owner), remove or ban members and end the chat (the owner,
// after a confirmation). A page removed (close 4403), whose chat was ended
// (4410), whose init is refused (a locked room, a ban) or whose link names no
// chat says so and stays away.
//
// Signing in (docs/sign-in.md): the
// embedding site hands the page a sign-in token (a JWT), as a URL fragment
// "#auth=<token>" (taken off the address bar at once) or by postMessage from
// the parent window ({"type": "chat-auth", "token": ...}, only from the origins
// listed in <body data-auth-origins>). The token is kept in memory only, never
// stored, and sent as "auth" in every init. A signed-in user is not asked for a
// name (it is the token's) and its name, like every member's the server marks
// "verified", shows a mark. A refused sign-in is said plainly and the page
// stays away until the site sends another token.
//
// Behaviour people expect of a chat: a counter near the server's length limit (the init reply's
// "maxPayloadChars", counted in code points as the server counts) and no sending above it; refusals that
// cannot succeed again offer no Retry; a page in no room offers a new chat. "Ada is typing…" (the "typing"
// event, sent at most every 2 s while typing, shown 5 s). While reconnecting, the online list is greyed as out
// of date. Opt-in desktop notifications of others' messages while the tab is hidden, and a mention of my name
// ("@" and my whole name) highlighted.
// Plain ES2018 (Unicode property escapes in regular expressions), no build step, no dependencies.
(function () {
  "use strict";

  var DEFAULT_WS_PATH = "/ws";
  var RECONNECT_FIRST_DELAY_MS = 500;
  var RECONNECT_MAX_DELAY_MS = 10000;
  var REPLAY_WAIT_MS = 3000; // longest wait for the end of a replay before sending the outbox anyway
  var HISTORY_PAGE = 50;
  var HISTORY_MAX = 200;
  var HISTORY_RETRY_MS = 3000; // a refused history request that may succeed later is asked again after this
  var NAME_MAX_CHARS = 32;
  var TITLE_MAX_CHARS = 64;
  var NEAR_TOP_PX = 40;
  var NEAR_BOTTOM_PX = 40;
  var INPUT_MAX_HEIGHT_PX = 160;
  var GROUP_MS = 5 * 60 * 1000; // a sender's next message within this time of its last one joins its group
  var BASE_TITLE = document.title || "Chat";
  var NAME_KEY = "chat.name";
  var TOKEN_KEY_PREFIX = "chat.token:"; // + the room's joinKey
  var CLOSE_REMOVED = 4403;
  var CLOSE_ENDED = 4410;
  var SIGNED_IN_KEY_PREFIX = "chat.signedIn:"; // + joinKey: "1" once a signed-in init succeeded (no token kept)
  var AUTH_WAIT_MS = 2000; // embedded with sign-in origins: how long to wait for the parent's token before asking a name
  var MODERATION = ["edit", "delete", "room", "lock", "remove", "role", "end"]; // requests answered by broadcasts
  var RETRYABLE = ["rate-limited", "unavailable"]; // refusals the same request may get past later (docs/protocol.md)
  var TYPING_EVERY_MS = 2500; // at most one "typing" sent per this long (the server drops one within 2 s of the last,
  // so a margin for the network's jitter: every one sent is told, and TYPING_SHOWN_MS covers the gaps)
  var TYPING_SHOWN_MS = 5000; // "Ada is typing…" for this long after Ada's last "typing"
  var NOTIFY_KEY = "chat.notify"; // "1": the user switched desktop notifications on
  var NOTIFICATION_MAX_CHARS = 200;

  var body = document.body;
  var wrapper = document.getElementById("message-wrapper");
  var olderLine = document.getElementById("older");
  var olderButton = document.getElementById("load-older");
  var nameSpan = document.getElementById("name-span");
  var myNameButton = document.getElementById("my-name");
  var presence = document.getElementById("presence");
  var membersList = document.getElementById("members");
  var memberCount = document.getElementById("member-count");
  var statusLine = document.getElementById("status");
  var form = document.getElementById("form");
  var input = document.getElementById("message-input");
  var nameModal = document.getElementById("name-modal");
  var nameForm = document.getElementById("name-form");
  var nameInput = document.getElementById("name-input");
  var nameError = document.getElementById("name-error");
  var nameCancel = document.getElementById("name-cancel");
  var sendButton = document.getElementById("send-button");
  var roomTitle = document.getElementById("room-title");
  var lockedBadge = document.getElementById("locked-badge");
  var controls = document.getElementById("room-controls");
  var titleForm = document.getElementById("title-form");
  var titleInput = document.getElementById("title-input");
  var titleClear = document.getElementById("title-clear");
  var titleError = document.getElementById("title-error");
  var lockButton = document.getElementById("lock-button");
  var lockHint = document.getElementById("lock-hint");
  var staffList = document.getElementById("room-members");
  var controlsError = document.getElementById("controls-error");
  var endControl = document.getElementById("end-control");
  var endButton = document.getElementById("end-button");
  var endModal = document.getElementById("end-modal");
  var endConfirm = document.getElementById("end-confirm");
  var endCancel = document.getElementById("end-cancel");
  var newMessagesButton = document.getElementById("new-messages");
  var presenceNote = document.getElementById("presence-note");
  var typingLine = document.getElementById("typing");
  var charCounter = document.getElementById("char-count");
  var startOver = document.getElementById("start-over");
  var newChatButton = document.getElementById("new-chat");
  var notifySwitch = document.getElementById("notify-switch");
  var notifyProblem = document.getElementById("notify-problem");

  // ---- state -------------------------------------------------------------

  var memoryStore = {}; // stands in for localStorage when the browser refuses it

  var socket = null; // the socket in use; events of older sockets are ignored
  var joinKey = new URLSearchParams(window.location.search).get("join") || null;
  var startedRoom = joinKey === null; // this page opened a new room (rather than joining one)
  var started = false; // connect() was called once
  var joined = false; // true once the first init succeeded
  var awaitingInit = false; // an init was sent on the current socket and not answered yet
  var inRoom = false; // the current socket is in the room
  var replayDone = false; // the replay following the current socket's init reply is over
  var replayEnd = 0; // the room's offset in the init reply: the replay ends with it
  var replayTimer = null;
  var firstReplay = true; // the page's first replay: its talks are not "unread"
  var reconnectDelay = RECONNECT_FIRST_DELAY_MS;
  var stopped = null; // {state, text}: removed, the chat ended, the init refused, no such chat: the page stays away
  var authToken = takeFragmentToken(); // the sign-in token (JWT): in memory only
  var authOrigins = (body.dataset.authOrigins || "").split(/\s+/).filter(function (origin) {
    return origin !== "" && origin !== "*" && origin !== "null";
  });
  var authSent = false; // the init awaiting its reply carried a sign-in token
  var signedIn = false; // my user is signed in (this init carried a token, or the server says verified): its name is the token's
  var rejoining = false; // the socket is being closed to join again at once (a new sign-in token)
  var verified = new Set(); // userIds the server marked "verified"

  var myName = validName(load(NAME_KEY)) === null ? load(NAME_KEY).trim() : null;
  var myUserId = null; // a string, as shown in #name-span
  var myUserIds = new Set(); // every user id this page had in this room: its talks are "mine"
  var members = new Map(); // userId (string) -> name (string or null), in the server's order
  var rolesSpoken = false; // the server gives roles (its init reply had "role")
  var myRole = "member";
  var roles = new Map(); // userId -> "owner" | "moderator" | "member", kept after a leave (joined events have none)
  var room = { title: null, locked: false };

  var shown = new Map(); // offset -> element of every talk shown
  var talks = new Map(); // offset -> {userId, name, payload, time, edited, deleted} of every talk shown
  var openMenu = null; // {offset, button, menu} of the message menu that is open
  var seenKeys = new Set(); // keys of talks without an offset (a server without version 2)
  var lowestOffset = null;
  var highestOffset = null;
  var olderAvailable = false; // the log has talks before lowestOffset that the page has not fetched
  var gaps = []; // {low, high}: offsets strictly between them are missing (after a long disconnection)
  var historyInFlight = null; // {before, gap} of the one history request awaiting its reply

  var outbox = []; // my talks not yet echoed: {id, payload, element, state: "queued"|"sent"|"failed"}
  var idPrefix = randomId();
  var idCounter = 0;
  var unread = 0;
  var newBelow = 0; // messages of others that came below while the reader was further up
  var atBottom = true; // the list was scrolled to its bottom when last looked at (a resize keeps it there)
  var changing = 0; // keepingView calls under way (a history reply's holds one per talk)
  var requests = []; // my moderation requests not answered yet, in order: {type, offset, refused(text)}
  var refusal = null; // the refusal of a request the status line shows
  var maxPayloadChars = null; // the longest talk the server takes (its init reply says), in code points
  var typingSentAt = -Infinity; // when this page last sent "typing" (Date.now())
  var typers = new Map(); // userId -> the timer that ends its "is typing…"

  // ---- storage: localStorage, or memory when the browser refuses it -------

  function load(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (err) {
      return Object.prototype.hasOwnProperty.call(memoryStore, key) ? memoryStore[key] : null;
    }
  }

  function save(key, value) {
    try {
      window.localStorage.setItem(key, value);
    } catch (err) {
      memoryStore[key] = value;
    }
  }

  function forget(key) {
    try {
      window.localStorage.removeItem(key);
    } catch (err) {
      delete memoryStore[key];
    }
  }

  function tokenKey(key) {
    return TOKEN_KEY_PREFIX + key;
  }

  // ---- sign-in: a token from the embedding site ----------------------------

  // The token of a "#auth=<JWT>" fragment, taken off the address bar at once (the join query stays), or null.
  function takeFragmentToken() {
    var hash = window.location.hash;
    if (!hash || hash.length < 2) {
      return null;
    }
    var params = new URLSearchParams(hash.slice(1));
    if (!params.has("auth")) {
      return null;
    }
    var token = params.get("auth").trim();
    params.delete("auth");
    var rest = params.toString();
    window.history.replaceState(null, "", window.location.pathname + window.location.search + (rest ? "#" + rest : ""));
    return token !== "" ? token : null;
  }

  // A token from the parent window: the page joins (again) with it, on a new socket (a socket joins once).
  function useToken(token) {
    authToken = token;
    if (!started) {
      nameModal.classList.remove("is-active");
      start();
      return;
    }
    if (stopped !== null && stopped.state !== "refused") {
      return; // removed or ended: a sign-in does not bring the room back
    }
    if (stopped !== null) {
      stopped = null;
      var onButton = document.activeElement === newChatButton;
      input.disabled = false;
      startOver.hidden = true;
      showComposer();
      if (onButton) {
        input.focus(); // (the button the keyboard was on is gone)
      }
    }
    if (socket !== null) {
      rejoining = true;
      socket.close(1000, "signing in");
    }
    // (no socket: a reconnection is scheduled, and its init carries the token)
  }

  window.addEventListener("message", function (message) {
    if (window.parent === window || message.source !== window.parent || authOrigins.indexOf(message.origin) < 0) {
      return;
    }
    var data = message.data;
    if (data && data.type === "chat-auth" && typeof data.token === "string" && data.token.trim() !== "") {
      useToken(data.token.trim());
    }
  });

  // ---- configuration -----------------------------------------------------

  // The socket's URL: the page's own origin (wss when the page came over https) at config.wsPath, or,
  // when config.js names a port (--public-ws-port), that port on the page's host.
  function socketUrl() {
    var config = window.CHAT_CONFIG || {};
    var scheme = window.location.protocol === "https:" ? "wss" : "ws";
    var port = Number(config.wsPort);
    if (Number.isInteger(port) && port > 0 && port < 65536) {
      // hostname keeps the brackets of an IPv6 literal, e.g. "[::1]".
      return scheme + "://" + (window.location.hostname || "localhost") + ":" + port + "/";
    }
    var path = typeof config.wsPath === "string" && config.wsPath.charAt(0) === "/" ? config.wsPath : DEFAULT_WS_PATH;
    return scheme + "://" + (window.location.host || "localhost") + path;
  }

  function joinLink(key) {
    return window.location.origin + window.location.pathname + "?join=" + encodeURIComponent(key);
  }

  function randomId() {
    var bytes = new Uint8Array(6);
    if (window.crypto && window.crypto.getRandomValues) {
      window.crypto.getRandomValues(bytes);
    } else {
      for (var i = 0; i < bytes.length; i++) {
        bytes[i] = Math.floor(Math.random() * 256);
      }
    }
    return Array.from(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  function nextTalkId() {
    idCounter += 1;
    return idPrefix + "-" + idCounter;
  }

  // ---- names -------------------------------------------------------------

  // Why a name cannot be used (the server's rules), or null when it can.
  function validName(raw) {
    if (typeof raw !== "string") {
      return "enter a name";
    }
    var name = raw.trim();
    var length = Array.from(name).length; // code points, as the server counts them
    if (length < 1) {
      return "enter a name";
    }
    if (length > NAME_MAX_CHARS) {
      return "at most " + NAME_MAX_CHARS + " characters";
    }
    if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) {
      return "no control characters";
    }
    return null;
  }

  // Why a room title cannot be used (the server's rules), or null when it can.
  function validTitle(raw) {
    var title = raw.trim();
    var length = Array.from(title).length;
    if (length < 1) {
      return "enter a title (or Clear to remove it)";
    }
    if (length > TITLE_MAX_CHARS) {
      return "at most " + TITLE_MAX_CHARS + " characters";
    }
    if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(title)) {
      return "no control characters or line breaks";
    }
    return null;
  }

  function displayName(userId, name) {
    return typeof name === "string" && name !== "" ? name : "user " + asText(userId);
  }

  function isVerified(userId) {
    return verified.has(userId) || (signedIn && userId === myUserId);
  }

  function showMyName(name) {
    myNameButton.textContent = displayName(myUserId, name);
    myNameButton.hidden = false;
    if (myUserId !== null && isVerified(myUserId)) {
      myNameButton.dataset.verified = "yes"; // the mark is drawn by the style sheet: the text stays the name
      myNameButton.title = signedIn ? "Signed in: your name comes from your sign-in" : "Signed in";
    } else {
      delete myNameButton.dataset.verified;
      myNameButton.title = "Change your name";
    }
  }

  function askName(canCancel, problem) {
    nameInput.value = myName || "";
    nameError.textContent = problem || "";
    nameCancel.hidden = !canCancel;
    nameModal.classList.add("is-active");
    nameModal.dataset.cancellable = canCancel ? "yes" : "no";
    nameInput.focus();
    nameInput.select();
  }

  function closeNameModal() {
    nameModal.classList.remove("is-active");
    nameError.textContent = "";
    input.focus();
  }

  nameForm.addEventListener("submit", function (submit) {
    submit.preventDefault();
    var problem = validName(nameInput.value);
    if (problem) {
      nameError.textContent = problem;
      nameInput.focus();
      return;
    }
    var name = nameInput.value.trim();
    var changed = name !== myName;
    myName = name;
    save(NAME_KEY, name);
    closeNameModal();
    if (!started) {
      start();
      return;
    }
    showMyName(name);
    if (awaitingInit && socket && socket.readyState === WebSocket.OPEN) {
      sendInit(socket); // the server refused the last init (its name, say): a corrected one
    } else if (changed && inRoom) {
      send({ type: "name", name: name });
    }
    // Offline, the next init carries the new name.
  });

  nameCancel.addEventListener("click", function () {
    if (started) {
      closeNameModal();
    }
  });

  nameModal.addEventListener("keydown", function (key) {
    if (key.key === "Escape" && started && nameModal.dataset.cancellable === "yes") {
      closeNameModal();
    }
  });

  myNameButton.addEventListener("click", function () {
    if (!signedIn) {
      askName(true, ""); // (a signed-in name is the token's: the server refuses another)
    }
  });

  // ---- rendering: text nodes only ----------------------------------------

  function asText(value) {
    if (typeof value === "string") {
      return value;
    }
    return value === undefined || value === null ? "" : JSON.stringify(value);
  }

  function isOffset(value) {
    return Number.isInteger(value) && value > 0;
  }

  function isScrolledToBottom() {
    return wrapper.scrollHeight - wrapper.scrollTop - wrapper.clientHeight < NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    wrapper.scrollTop = wrapper.scrollHeight;
  }

  // Runs change(), which adds or removes lines, keeping the reader's view: the
  // bottom when it was there (or when forced), else the line at the top.
  function keepingView(change, forceBottom) {
    var stick = forceBottom || isScrolledToBottom();
    var anchor = null;
    var anchorTop = 0;
    if (!stick) {
      var children = wrapper.children;
      for (var i = 0; i < children.length; i++) {
        var child = children[i];
        // Not the "load older" line: it stays on top, and what it loads goes below it.
        if (child !== olderLine && !isSeparator(child) && child.offsetTop + child.offsetHeight > wrapper.scrollTop) {
          anchor = child;
          anchorTop = child.offsetTop - wrapper.scrollTop;
          break;
        }
      }
    }
    var result;
    changing += 1;
    try {
      result = change();
    } finally {
      changing -= 1;
    }
    if (changing === 0) {
      arrange(); // (once, after a whole history page)
    }
    if (stick) {
      scrollToBottom();
    } else if (anchor && anchor.parentNode === wrapper) {
      wrapper.scrollTop = anchor.offsetTop - anchorTop;
    }
    return result;
  }

  function line(className, parts) {
    var p = document.createElement("p");
    p.className = className;
    parts.forEach(function (part) {
      if (part !== null) {
        p.appendChild(typeof part === "string" ? document.createTextNode(part) : part);
      }
    });
    return p;
  }

  function span(className, text) {
    var element = document.createElement("span");
    element.className = className;
    element.textContent = text;
    return element;
  }

  // A message's text: text nodes, and a link for each http:// or https:// URL in it. Nothing else becomes a
  // link (javascript:, data:, look-alike letters stay text); a link's href is what URL() parsed, its text the
  // message's own characters, and it opens in a new tab that cannot reach this one.
  // With mentions (another's message), each mention of my name is highlighted: see appendText.
  var URL_IN_TEXT = /\bhttps?:\/\/[^\s<>"'`]+/gi;

  function messageText(payload, mentions) {
    var element = document.createElement("span");
    element.className = "text";
    var text = String(payload);
    var done = 0;
    var name = mentions ? myCurrentName() : null;
    URL_IN_TEXT.lastIndex = 0;
    var match;
    while ((match = URL_IN_TEXT.exec(text)) !== null) {
      var raw = urlWithoutTrailer(match[0]);
      var url = linkable(raw);
      if (url === null) {
        continue;
      }
      appendText(element, text.slice(done, match.index), name);
      var a = document.createElement("a");
      a.href = url;
      a.textContent = raw;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      element.appendChild(a);
      done = match.index + raw.length;
      URL_IN_TEXT.lastIndex = done;
    }
    appendText(element, text.slice(done), name);
    return element;
  }

  // Text nodes; with a name, each mention of it ("@" and the whole name, in any case, not inside a word: "@Ada"
  // and "@ada," are, "@Adam" and "bob@ada" are not; a name may have spaces) in a <mark class="mention">.
  var WORD_CHAR = /[\p{L}\p{M}\p{N}_]/u;

  function appendText(element, text, name) {
    if (!name) {
      element.appendChild(document.createTextNode(text));
      return;
    }
    var mention = new RegExp("@" + name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "giu");
    var done = 0;
    var match;
    while ((match = mention.exec(text)) !== null) {
      var end = match.index + match[0].length;
      var before = Array.from(text.slice(0, match.index)).pop();
      var after = text.codePointAt(end);
      if ((before !== undefined && WORD_CHAR.test(before)) ||
          (after !== undefined && WORD_CHAR.test(String.fromCodePoint(after)))) {
        mention.lastIndex = match.index + 1;
        continue;
      }
      element.appendChild(document.createTextNode(text.slice(done, match.index)));
      var mark = document.createElement("mark");
      mark.className = "mention";
      mark.textContent = match[0];
      element.appendChild(mark);
      done = end;
    }
    element.appendChild(document.createTextNode(text.slice(done)));
  }

  // My name as the others see it (the server's), for mentions; null before I have one.
  function myCurrentName() {
    var name = myUserId !== null && members.has(myUserId) ? members.get(myUserId) : myName;
    return typeof name === "string" && name.trim() !== "" ? name.trim() : null;
  }

  // Marks a message line that mentions me (its text has a mention).
  function markMention(element) {
    element.classList.toggle("mentions-me", element.querySelector(".text mark.mention") !== null);
    return element;
  }

  // Punctuation that ends a sentence is not part of the URL before it; a closing bracket is, if it closes one
  // the URL opened (https://en.wikipedia.org/wiki/Set_(mathematics)).
  function urlWithoutTrailer(raw) {
    for (;;) {
      var last = raw.charAt(raw.length - 1);
      var opening = { ")": "(", "]": "[", "}": "{" }[last];
      if (".,;:!?*".indexOf(last) >= 0) {
        raw = raw.slice(0, -1);
      } else if (opening && raw.split(opening).length < raw.split(last).length) {
        raw = raw.slice(0, -1);
      } else {
        return raw;
      }
    }
  }

  function linkable(raw) {
    var url;
    try {
      url = new URL(raw);
    } catch (error) {
      return null;
    }
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "" ? url.href : null;
  }

  function isOutgoing(element) {
    return element.classList.contains("pending");
  }

  function positionOf(element) {
    var pos = element.dataset ? Number(element.dataset.pos) : NaN;
    return isNaN(pos) ? -Infinity : pos;
  }

  // Places a line among the others by its position: the talk's offset, or
  // for a notice the offset it came after (+ 0.5). Lines of my unsent
  // talks stay at the end.
  function place(element, pos) {
    element.dataset.pos = String(pos);
    var after = wrapper.lastElementChild;
    while (after && (isOutgoing(after) || isSeparator(after) || positionOf(after) > pos)) {
      after = after.previousElementSibling;
    }
    wrapper.insertBefore(element, after ? after.nextSibling : wrapper.firstChild);
  }

  function noticePosition() {
    return Math.max(highestOffset || 0, inRoom ? replayEnd : 0) + 0.5;
  }

  function addNotice(className, parts) {
    var element = line(className, parts);
    keepingView(function () { place(element, noticePosition()); }, false);
    return element;
  }

  function showStatus(text, isProblem) {
    statusLine.textContent = text;
    statusLine.classList.toggle("is-danger", Boolean(isProblem));
  }

  function showError(text) {
    return addNotice("error has-text-danger", [text]);
  }

  function setState(state) {
    body.dataset.state = state;
  }

  function timeElement(seconds) {
    if (typeof seconds !== "number") {
      return null;
    }
    var date = new Date(seconds * 1000);
    if (isNaN(date.getTime())) {
      return null;
    }
    var element = document.createElement("time");
    element.dateTime = date.toISOString();
    element.title = date.toLocaleString();
    element.textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    return element;
  }

  function copyButton(text) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "button is-small is-light copy-link";
    button.textContent = "Copy";
    button.addEventListener("click", function () {
      copyText(text).then(
        function () { button.textContent = "Copied"; },
        function () { button.textContent = "Copy failed"; }
      );
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    });
    return button;
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http from another machine is not a secure context: no Clipboard API.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var copied = document.execCommand("copy");
    document.body.removeChild(area);
    return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function messageLine(className, senderText, payload, seconds, mentions) {
    return markMention(line(className, [
      metaLine(span("sender", senderText), timeElement(seconds)),
      messageText(payload, mentions),
    ]));
  }

  // A message's first line: its sender's name and its time (either may be null).
  function metaLine(sender, time) {
    var element = document.createElement("span");
    element.className = "meta";
    if (sender !== null) {
      element.appendChild(sender);
    }
    if (sender !== null && time !== null) {
      element.appendChild(document.createTextNode(" "));
    }
    if (time !== null) {
      element.appendChild(time);
    }
    return element;
  }

  // ---- groups and days: a sender's messages in a row, under one name; a line at each new day --------

  function isSeparator(element) {
    return element.classList.contains("day-separator");
  }

  // When a message line was written, in ms: its time; my unsent ones are now; null if it has none.
  function lineTime(element) {
    var time = element.querySelector(".meta time");
    var ms = time !== null ? Date.parse(time.dateTime) : NaN;
    if (!isNaN(ms)) {
      return ms;
    }
    return isOutgoing(element) ? Date.now() : null;
  }

  function dayOf(ms) {
    var date = new Date(ms);
    return date.getFullYear() + "-" + (date.getMonth() + 1) + "-" + date.getDate(); // the reader's own day
  }

  function dayLabel(ms) {
    var now = new Date();
    var day = dayOf(ms);
    if (day === dayOf(now.getTime())) {
      return "Today";
    }
    if (day === dayOf(new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1, 12).getTime())) {
      return "Yesterday";
    }
    var date = new Date(ms);
    var options = { weekday: "long", month: "long", day: "numeric" };
    if (date.getFullYear() !== now.getFullYear()) {
      options.year = "numeric";
    }
    return date.toLocaleDateString([], options);
  }

  function sameSender(a, b) {
    var mine = a.classList.contains("mine");
    return mine === b.classList.contains("mine") && (mine || a.dataset.userId === b.dataset.userId);
  }

  // The separator of the day ms falls in, just before element: the one there, or a new one.
  function separatorBefore(element, ms) {
    var day = dayOf(ms);
    var before = element.previousElementSibling;
    var separator = before !== null && isSeparator(before) && before.dataset.day === day ? before : null;
    if (separator === null) {
      separator = document.createElement("h2");
      separator.className = "day-separator";
      separator.dataset.day = day;
      wrapper.insertBefore(separator, element);
    }
    var label = dayLabel(ms);
    if (separator.textContent !== label) {
      separator.textContent = label;
    }
    return separator;
  }

  // Marks each message line that continues its sender's group ("continued": no name of its own), and puts a
  // day separator before the first message of each day. Runs after every change of the list (keepingView).
  function arrange() {
    var keep = new Set();
    var day = null;
    var before = null; // the message line just before, and its time
    var beforeMs = null;
    Array.prototype.forEach.call(wrapper.children, function (child) {
      if (isSeparator(child)) {
        return;
      }
      if (!child.classList.contains("message")) {
        before = null; // a notice between two messages ends the group
        return;
      }
      var ms = lineTime(child);
      if (ms !== null && dayOf(ms) !== day) {
        day = dayOf(ms);
        keep.add(separatorBefore(child, ms));
        before = null; // a new day, a new group
      }
      var continued = before !== null && ms !== null && beforeMs !== null && sameSender(before, child) &&
        !before.classList.contains("deleted") && Math.abs(ms - beforeMs) <= GROUP_MS;
      if (child.classList.contains("continued") !== continued) {
        child.classList.toggle("continued", continued);
      }
      before = child;
      beforeMs = ms;
    });
    Array.prototype.forEach.call(wrapper.querySelectorAll(".day-separator"), function (separator) {
      if (!keep.has(separator)) {
        separator.remove();
      }
    });
  }

  // "Today" becomes "Yesterday" at midnight.
  function arrangeAtMidnight() {
    var now = new Date();
    var midnight = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1, 0, 0, 1);
    setTimeout(function () {
      keepingView(function () {}, false);
      arrangeAtMidnight();
    }, midnight.getTime() - now.getTime());
  }

  arrangeAtMidnight();

  // ---- the "new messages" button: messages came below while the reader is further up ----------------

  function showNewBelow() {
    if (isScrolledToBottom()) {
      newBelow = 0;
    }
    newMessagesButton.hidden = newBelow === 0;
    newMessagesButton.firstElementChild.textContent = newBelow === 1 ? "1 new message" : newBelow + " new messages";
  }

  newMessagesButton.addEventListener("click", function (event) {
    scrollToBottom();
    newBelow = 0;
    showNewBelow();
    if (event.detail === 0) { // (by the keyboard: the button is gone, the keyboard goes on where one writes;
      (input.disabled ? wrapper : input).focus(); // a tap leaves the focus, not to open a phone's keyboard)
    }
  });

  wrapper.addEventListener("scroll", function () {
    atBottom = isScrolledToBottom();
    if (newBelow > 0) {
      showNewBelow();
    }
  });

  // The list's height changes (the window, a phone's keyboard, the composer's lines): the bottom stays in view.
  if (window.ResizeObserver) {
    new ResizeObserver(function () {
      if (atBottom && !isScrolledToBottom()) {
        scrollToBottom();
      }
    }).observe(wrapper);
  }

  // The visual viewport (what is not under a phone's on-screen keyboard) is the page's height; the style
  // sheet's 100dvh otherwise. Zoomed in, the layout viewport's height stays.
  function fitViewport() {
    var viewport = window.visualViewport;
    var root = document.documentElement;
    if (viewport.scale > 1.01) {
      delete root.dataset.viewport;
    } else {
      root.style.setProperty("--viewport-height", viewport.height + "px");
      root.dataset.viewport = "visual";
    }
    if (window.scrollY !== 0 && viewport.scale <= 1.01) {
      window.scrollTo(0, 0); // (a browser may scroll the page up under its keyboard)
    }
  }

  if (window.visualViewport) {
    fitViewport();
    window.visualViewport.addEventListener("resize", fitViewport);
  }

  // ---- unread count in the title ------------------------------------------

  function showUnread() {
    var base = room.title !== null ? room.title + " \u2013 " + BASE_TITLE : BASE_TITLE;
    document.title = unread > 0 ? "(" + unread + ") " + base : base;
  }

  function seen() {
    return document.visibilityState !== "hidden" && isScrolledToBottom();
  }

  function clearUnreadIfSeen() {
    if (unread > 0 && seen()) {
      unread = 0;
      showUnread();
    }
  }

  document.addEventListener("visibilitychange", clearUnreadIfSeen);
  window.addEventListener("focus", clearUnreadIfSeen);

  // ---- desktop notifications: opt-in, of others' messages while the tab is hidden --------

  var BLOCKED = "Notifications are blocked for this site: to have them, allow them in the browser's site settings.";

  function canNotify() {
    return typeof window.Notification === "function";
  }

  // The switch shows whether notifications come: on only when chosen and the browser allows them.
  function showNotifySwitch() {
    if (!canNotify()) {
      notifySwitch.closest(".notify-line").hidden = true; // (no Notification API: nothing to offer)
      return;
    }
    var permission = window.Notification.permission;
    notifySwitch.checked = load(NOTIFY_KEY) === "1" && permission === "granted";
    if (load(NOTIFY_KEY) === "1" && permission === "denied") {
      notifyProblem.textContent = BLOCKED;
    }
  }

  function notifyChosen(on, problem) {
    save(NOTIFY_KEY, on ? "1" : "0");
    notifyProblem.textContent = problem || "";
    showNotifySwitch();
  }

  // Switched on: the browser is asked for permission now (only now, as the user asked); denied, it stays off.
  notifySwitch.addEventListener("change", function () {
    if (!notifySwitch.checked) {
      notifyChosen(false, "");
      return;
    }
    var permission = window.Notification.permission;
    if (permission === "granted") {
      notifyChosen(true, "");
      return;
    }
    if (permission === "denied") {
      notifyChosen(false, BLOCKED);
      return;
    }
    var answered = function (result) {
      if (result === "granted") {
        notifyChosen(true, "");
      } else {
        notifyChosen(false, result === "denied" ? BLOCKED : "Notifications were not allowed, so they stay off.");
      }
    };
    var asked = window.Notification.requestPermission(answered); // (older browsers: a callback, no promise)
    if (asked && typeof asked.then === "function") {
      asked.then(answered, function () { answered("default"); });
    }
  });

  // A checkbox toggles with Space; a switch takes Enter too.
  notifySwitch.addEventListener("keydown", function (key) {
    if (key.key === "Enter") {
      key.preventDefault();
      notifySwitch.click();
    }
  });

  // Another's new message, while the tab is hidden: a notification (title: who, body: the text); clicking it
  // shows the chat.
  function notify(sender, text) {
    if (!notifySwitch.checked || document.visibilityState !== "hidden" || !canNotify() ||
        window.Notification.permission !== "granted") {
      return;
    }
    var chars = Array.from(text);
    var body = chars.length > NOTIFICATION_MAX_CHARS
      ? chars.slice(0, NOTIFICATION_MAX_CHARS).join("") + "\u2026"
      : text;
    try {
      var notification = new window.Notification(sender, { body: body });
      notification.onclick = function () {
        window.focus();
        notification.close();
      };
    } catch (error) {
      // (Chrome on Android has the API but takes notifications only from a service worker)
    }
  }

  showNotifySwitch();

  // ---- members -------------------------------------------------------------

  function renderMembers() {
    membersList.textContent = "";
    members.forEach(function (name, userId) {
      var li = document.createElement("li");
      li.className = "member tag is-rounded";
      li.dataset.userId = userId;
      var role = roleOf(userId);
      if (role !== "member") {
        li.dataset.role = role; // shown by the style sheet, beside the name: the list's text stays the names
      }
      if (isVerified(userId)) {
        li.dataset.verified = "yes";
        li.title = "Signed in";
      }
      var label = document.createElement("span"); // one child: the tag is a flex box
      label.appendChild(span("member-name", displayName(userId, name)));
      if (userId === myUserId) {
        li.classList.add("me", "is-info", "is-light");
        label.appendChild(span("you", " (you)"));
      }
      li.appendChild(label);
      membersList.appendChild(li);
    });
    memberCount.textContent = String(members.size);
    presence.hidden = false;
    renderControls();
  }

  function membersFrom(list) {
    var result = new Map();
    if (Array.isArray(list)) {
      list.forEach(function (member) {
        if (member && member.userId !== undefined && member.userId !== null) {
          result.set(asText(member.userId), typeof member.name === "string" ? member.name : null);
          markVerified(asText(member.userId), member.verified);
          if (isRole(member.role)) {
            roles.set(asText(member.userId), member.role);
          }
        }
      });
    }
    return result;
  }

  function markVerified(userId, flag) {
    if (flag === true) {
      verified.add(userId);
    } else {
      verified.delete(userId);
    }
  }

  function memberName(userId) {
    var id = asText(userId);
    return id === myUserId ? "you" : displayName(id, members.has(id) ? members.get(id) : null);
  }

  // ---- roles: owner, moderators ("staff") and members ---------------------

  function isRole(value) {
    return value === "owner" || value === "moderator" || value === "member";
  }

  function roleOf(userId) {
    if (!rolesSpoken) {
      return "member";
    }
    if (roles.has(userId)) {
      return roles.get(userId);
    }
    return userId === "1" ? "owner" : "member"; // the room's first user owns it
  }

  function isStaff() {
    return stopped === null && (myRole === "owner" || myRole === "moderator");
  }

  // Whether I may remove this member (and, the owner, change its role).
  function canManage(userId) {
    var role = roleOf(userId);
    if (myUserIds.has(userId) || role === "owner" || !isStaff()) {
      return false;
    }
    return myRole === "owner" || role !== "moderator";
  }

  // ---- the staff's controls ------------------------------------------------

  function actionButton(className, text, label, action) {
    var button = document.createElement("button");
    button.type = "button";
    button.className = "button is-small " + className;
    button.textContent = text;
    button.setAttribute("aria-label", label);
    button.addEventListener("click", action);
    return button;
  }

  function renderControls() {
    var staff = isStaff();
    controls.hidden = !staff;
    endControl.hidden = !staff || myRole !== "owner";
    if (endControl.hidden) {
      closeEndModal(false);
    }
    lockButton.textContent = room.locked ? "Unlock the chat" : "Lock the chat";
    lockHint.textContent = room.locked
      ? "No one new can join; members can come back."
      : "Anyone with the link can join.";
    if (document.activeElement !== titleInput) {
      titleInput.value = room.title !== null ? room.title : "";
    }
    staffList.textContent = "";
    if (!staff) {
      return;
    }
    members.forEach(function (name, userId) {
      var role = roleOf(userId);
      var li = document.createElement("li");
      li.className = "room-member";
      li.dataset.userId = userId;
      var who = displayName(userId, name);
      li.appendChild(span("member-name", myUserIds.has(userId) ? who + " (you)" : who));
      if (role !== "member") {
        li.appendChild(span("tag is-rounded role-tag role-" + role, role));
      }
      if (canManage(userId)) {
        var actions = document.createElement("span");
        actions.className = "buttons are-small member-actions";
        if (myRole === "owner") {
          var promote = role !== "moderator";
          var text = promote ? "Make moderator" : "Make member";
          actions.appendChild(actionButton("is-light role-button", text, text + ": " + who, function () {
            request({ type: "role", userId: Number(userId), role: promote ? "moderator" : "member" },
              showControlsError);
          }));
        }
        actions.appendChild(actionButton("is-light remove-button", "Remove", "Remove: " + who, function () {
          request({ type: "remove", userId: Number(userId) }, showControlsError);
        }));
        actions.appendChild(actionButton("is-danger is-light ban-button", "Remove and ban", "Remove and ban: " + who,
          function () {
            request({ type: "remove", userId: Number(userId), ban: true }, showControlsError);
          }));
        li.appendChild(actions);
      }
      staffList.appendChild(li);
    });
  }

  function showControlsError(text) {
    controlsError.textContent = text;
  }

  function showTitleError(text) {
    titleError.textContent = text;
  }

  titleForm.addEventListener("submit", function (submit) {
    submit.preventDefault();
    var problem = validTitle(titleInput.value);
    if (problem) {
      showTitleError(problem);
      titleInput.focus();
      return;
    }
    request({ type: "room", title: titleInput.value.trim() }, showTitleError);
  });

  titleClear.addEventListener("click", function () {
    request({ type: "room", title: null }, showTitleError);
  });

  lockButton.addEventListener("click", function () {
    request({ type: "lock", locked: !room.locked }, showControlsError);
  });

  // Ending the chat erases it for everyone: a dialog asks first.
  function closeEndModal(focusBack) {
    if (!endModal.classList.contains("is-active")) {
      return;
    }
    endModal.classList.remove("is-active");
    if (focusBack && !endButton.hidden) {
      endButton.focus();
    }
  }

  endButton.addEventListener("click", function () {
    endModal.classList.add("is-active");
    endCancel.focus();
  });

  endConfirm.addEventListener("click", function () {
    closeEndModal(false);
    request({ type: "end" }, showControlsError);
  });

  endCancel.addEventListener("click", function () {
    closeEndModal(true);
  });

  endModal.querySelector(".modal-background").addEventListener("click", function () {
    closeEndModal(true);
  });

  endModal.addEventListener("keydown", function (key) {
    if (key.key === "Escape") {
      closeEndModal(true);
    } else if (key.key === "Tab") {
      // Focus stays in the dialog: its two buttons.
      key.preventDefault();
      (document.activeElement === endConfirm ? endCancel : endConfirm).focus();
    }
  });

  // ---- moderation requests: answered by a broadcast, or refused by an error --

  // Sends a moderation request; refused(text) shows why it failed next to its control.
  function request(event, refused, offset) {
    if (!canSend()) {
      refused("not connected; try again once back in the chat");
      return false;
    }
    refused("");
    if (refusal !== null && statusLine.textContent === refusal) {
      showStatus("", false);
    }
    refusal = null;
    send(event);
    requests.push({ type: event.type, offset: offset === undefined ? null : offset, refused: refused });
    return true;
  }

  // A broadcast answered my oldest request of one of these types (answers keep the order of requests).
  function settleRequest(types, by, offset) {
    if (asText(by) !== myUserId) {
      return;
    }
    for (var i = 0; i < requests.length; i++) {
      if (types.indexOf(requests[i].type) >= 0 && (offset === undefined || requests[i].offset === offset)) {
        requests.splice(i, 1);
        return;
      }
    }
  }

  function onRequestRefused(type, text, offset) {
    showStatus(text, true);
    refusal = text;
    for (var i = 0; i < requests.length; i++) {
      if (requests[i].type === type && (!isOffset(offset) || requests[i].offset === offset)) {
        var refused = requests.splice(i, 1)[0].refused;
        keepingView(function () { refused(text); }, false);
        return;
      }
    }
    showControlsError(text);
  }

  // ---- talks ---------------------------------------------------------------

  function talkKey(event) {
    return asText(event.time) + "|" + asText(event.userId) + "|" + asText(event.payload);
  }

  function settleOutgoing(event) {
    if (!myUserIds.has(asText(event.userId))) {
      return;
    }
    for (var i = 0; i < outbox.length; i++) {
      // Without ids (a server without version 2), the first sent one with that text.
      var match = typeof event.id === "string"
        ? outbox[i].id === event.id
        : event.id === undefined && outbox[i].state === "sent" && outbox[i].payload === event.payload;
      if (match) {
        var entry = outbox[i];
        outbox.splice(i, 1);
        keepingView(function () { entry.element.remove(); }, false);
        showOutboxStatus();
        return;
      }
    }
  }

  // Shows one talk event (live, replayed or from a history reply) once.
  function addTalk(event, fromHistory) {
    var offset = event.offset;
    var hasOffset = isOffset(offset);
    settleOutgoing(event);
    if (hasOffset ? shown.has(offset) : seenKeys.has(talkKey(event))) {
      if (hasOffset) {
        updateTalk(offset, event);
      }
      return false; // a replay, or the answer to a resend
    }
    if (hasOffset && !fromHistory && lowestOffset !== null && offset < lowestOffset &&
        (event.deleted === true || (event.edited !== undefined && event.edited !== null))) {
      return false; // a replayed change of a talk this page never fetched: an older page brings it as it is now
    }
    var userId = asText(event.userId);
    var mine = myUserIds.has(userId);
    var element;
    if (hasOffset) {
      element = line(mine ? "message mine" : "message", []);
      element.dataset.offset = String(offset);
      talks.set(offset, talkState(event));
      fillTalk(element, offset);
    } else {
      element = messageLine(mine ? "message mine" : "message", displayName(userId, event.name),
        asText(event.payload), event.time, !mine);
    }
    element.dataset.userId = userId;
    if (typeof event.id === "string") {
      element.dataset.id = event.id;
    }
    var newest = false;
    var wasSeen = seen();
    if (hasOffset) {
      if (!fromHistory && highestOffset !== null && offset > highestOffset + 1) {
        gaps.push({ low: highestOffset, high: offset }); // missed while away: fetched after the replay
      }
      newest = highestOffset === null || offset > highestOffset;
      shown.set(offset, element);
      keepingView(function () { place(element, offset); }, mine && newest && !fromHistory);
      lowestOffset = lowestOffset === null ? offset : Math.min(lowestOffset, offset);
      highestOffset = highestOffset === null ? offset : Math.max(highestOffset, offset);
    } else {
      newest = true;
      seenKeys.add(talkKey(event));
      keepingView(function () { place(element, (highestOffset || 0) + 0.5); }, mine);
    }
    if (newest && !fromHistory && !mine && !firstReplay && !wasSeen) {
      unread += 1;
      showUnread();
    }
    if (newest && !fromHistory && !mine && !firstReplay && !isScrolledToBottom()) {
      newBelow += 1;
      showNewBelow();
    }
    if (newest && !fromHistory && !mine && replayDone && event.deleted !== true) {
      notify(displayName(userId, event.name), asText(event.payload)); // (live only: not a replay, not history)
    }
    return true;
  }

  // ---- stored talks: edited, deleted, and their menus -------------------------

  function talkState(event) {
    var deleted = event.deleted === true;
    return {
      userId: asText(event.userId),
      name: deleted || typeof event.name !== "string" ? null : event.name,
      payload: deleted ? "" : asText(event.payload),
      time: event.time,
      edited: !deleted && event.edited !== undefined && event.edited !== null && event.edited !== false
        ? event.edited
        : null,
      deleted: deleted,
    };
  }

  // (Re)builds a stored talk's line from its state: time, name, text and
  // "(edited)", or only "message deleted"; then its menu button.
  function fillTalk(element, offset) {
    var talk = talks.get(offset);
    element.textContent = "";
    element.classList.toggle("deleted", talk.deleted);
    element.classList.remove("editing");
    element.classList.remove("mentions-me");
    var time = timeElement(talk.time);
    if (talk.deleted) {
      element.appendChild(metaLine(null, time));
      element.appendChild(span("text", "message deleted"));
    } else {
      element.appendChild(metaLine(span("sender", displayName(talk.userId, talk.name)), time));
      element.appendChild(messageText(talk.payload, !myUserIds.has(talk.userId)));
      if (talk.edited !== null) {
        var mark = span("edited", " (edited)");
        var when = typeof talk.edited === "number" ? new Date(talk.edited * 1000) : null;
        if (when && !isNaN(when.getTime())) {
          mark.title = "edited " + when.toLocaleString();
        }
        element.appendChild(mark);
      }
    }
    var button = document.createElement("button");
    button.type = "button";
    button.className = "menu-button";
    button.textContent = "\u22ef";
    button.title = "Edit or delete";
    button.setAttribute("aria-label", "Message actions");
    button.setAttribute("aria-haspopup", "menu");
    button.setAttribute("aria-expanded", "false");
    button.hidden = menuActions(offset).length === 0;
    button.addEventListener("click", function () { toggleMenu(offset, button); });
    element.appendChild(button);
    markMention(element);
  }

  // Shows a stored talk's new state in place, keeping the keyboard's place on it.
  function redraw(offset) {
    var element = shown.get(offset);
    var focused = element.contains(document.activeElement) || element.querySelector(".edit-input:disabled") !== null;
    if (openMenu !== null && openMenu.offset === offset) {
      closeMenu(false);
    }
    keepingView(function () { fillTalk(element, offset); }, false);
    var button = element.querySelector(".menu-button");
    if (focused && !button.hidden) {
      button.focus();
    }
  }

  // A talk shown already comes again (a replay, a history reply): an edit or a deletion it carries wins.
  function updateTalk(offset, event) {
    var talk = talks.get(offset);
    var now = talkState(event);
    if (talk && !talk.deleted && (now.deleted || (now.edited !== null && now.edited !== talk.edited))) {
      talks.set(offset, now);
      redraw(offset);
    }
  }

  function refreshMenus() {
    talks.forEach(function (talk, offset) {
      var element = shown.get(offset);
      if (stopped !== null && element.querySelector(".edit-box")) {
        redraw(offset);
      }
      element.querySelector(".menu-button").hidden = menuActions(offset).length === 0;
    });
    if (openMenu !== null && menuActions(openMenu.offset).length === 0) {
      closeMenu(false);
    }
  }

  // What I may do with a stored talk: edit and delete my own; staff delete anyone's.
  function menuActions(offset) {
    var talk = talks.get(offset);
    if (!rolesSpoken || stopped !== null || !talk || talk.deleted) {
      return [];
    }
    var actions = [];
    var mine = talk.userId === myUserId;
    if (mine) {
      actions.push({ label: "Edit", className: "edit-item", run: function () { startEdit(offset); } });
    }
    if (mine || isStaff()) {
      actions.push({ label: "Delete", className: "delete-item", run: function () { deleteTalk(offset); } });
    }
    return actions;
  }

  function toggleMenu(offset, button) {
    if (openMenu !== null && openMenu.offset === offset) {
      closeMenu(true);
      return;
    }
    closeMenu(false);
    var actions = menuActions(offset);
    if (actions.length === 0) {
      return;
    }
    var menu = document.createElement("span");
    menu.className = "message-menu";
    menu.setAttribute("role", "menu");
    menu.setAttribute("aria-label", "Message actions");
    actions.forEach(function (action) {
      var item = document.createElement("button");
      item.type = "button";
      item.className = "menu-item " + action.className;
      item.setAttribute("role", "menuitem");
      item.tabIndex = -1;
      item.textContent = action.label;
      item.addEventListener("click", function () {
        closeMenu(false);
        action.run();
      });
      menu.appendChild(item);
    });
    menu.addEventListener("keydown", function (key) {
      var items = Array.from(menu.children);
      var at = items.indexOf(document.activeElement);
      if (key.key === "Escape") {
        key.preventDefault();
        closeMenu(true);
      } else if (key.key === "Tab") {
        closeMenu(true); // and Tab goes on from the menu's button
      } else if (key.key === "ArrowDown" || key.key === "ArrowUp") {
        key.preventDefault();
        items[(at + (key.key === "ArrowDown" ? 1 : items.length - 1)) % items.length].focus();
      } else if (key.key === "Home" || key.key === "End") {
        key.preventDefault();
        items[key.key === "Home" ? 0 : items.length - 1].focus();
      }
    });
    button.setAttribute("aria-expanded", "true");
    button.parentNode.insertBefore(menu, button.nextSibling);
    openMenu = { offset: offset, button: button, menu: menu };
    menu.scrollIntoView({ block: "nearest" }); // (the last line's menu reaches below the list)
    menu.firstChild.focus();
  }

  function closeMenu(focusButton) {
    if (openMenu === null) {
      return;
    }
    var closing = openMenu;
    openMenu = null;
    closing.menu.remove();
    closing.button.setAttribute("aria-expanded", "false");
    if (focusButton && closing.button.isConnected && !closing.button.hidden) {
      closing.button.focus();
    }
  }

  document.addEventListener("click", function (click) {
    if (openMenu !== null && !openMenu.menu.contains(click.target) && !openMenu.button.contains(click.target)) {
      closeMenu(false);
    }
  });

  // Edits my talk in place: Enter saves (once the server confirms it, the line shows the new text), Escape cancels.
  function startEdit(offset) {
    var element = shown.get(offset);
    var talk = talks.get(offset);
    var open = element.querySelector(".edit-input");
    if (open) {
      open.focus();
      return;
    }
    var area = document.createElement("textarea");
    area.className = "textarea edit-input";
    area.rows = 1;
    area.value = talk.payload;
    area.setAttribute("aria-label", "Edit the message");
    var hint = span("help edit-hint", "Enter saves; Escape cancels.");
    var problem = span("help is-danger edit-problem", "");
    problem.setAttribute("role", "alert");
    var box = document.createElement("span");
    box.className = "edit-box";
    box.appendChild(area);
    box.appendChild(hint);
    box.appendChild(problem);
    keepingView(function () {
      element.classList.add("editing");
      element.querySelector(".text").hidden = true;
      var edited = element.querySelector(".edited");
      if (edited) {
        edited.hidden = true;
      }
      element.insertBefore(box, element.querySelector(".menu-button"));
      fitTextarea(area);
    }, false);
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);

    function refused(reason) {
      area.disabled = false;
      hint.textContent = "Enter saves; Escape cancels.";
      problem.textContent = reason ? "not saved: " + reason : "";
      if (reason) {
        area.focus();
      }
    }

    area.addEventListener("keydown", function (key) {
      if (key.key === "Escape") {
        key.preventDefault();
        redraw(offset);
      } else if (key.key === "Enter" && !key.shiftKey && !key.isComposing && key.keyCode !== 229) {
        key.preventDefault();
        var text = area.value.trim();
        if (text === "") {
          problem.textContent = "a message cannot be empty (Delete removes it)";
        } else if (text === talks.get(offset).payload) {
          redraw(offset);
        } else if (request({ type: "edit", offset: offset, payload: text }, refused, offset)) {
          area.disabled = true;
          hint.textContent = "saving…";
        }
      }
    });
    area.addEventListener("input", function () { fitTextarea(area); });
  }

  function deleteTalk(offset) {
    request({ type: "delete", offset: offset }, function (reason) { showTalkProblem(offset, reason); }, offset);
  }

  // Why a request about a talk was refused, on its line (empty: nothing to say).
  function showTalkProblem(offset, reason) {
    var element = shown.get(offset);
    var problem = element.querySelector(".request-problem");
    if (!problem) {
      if (!reason) {
        return;
      }
      problem = span("request-problem has-text-danger", "");
      problem.setAttribute("role", "alert");
      element.insertBefore(problem, element.querySelector(".menu-button"));
    }
    problem.textContent = reason ? "not deleted: " + reason : "";
    problem.hidden = !reason;
  }

  // ---- my talks: pending until echoed ----------------------------------------

  function canSend() {
    return socket !== null && socket.readyState === WebSocket.OPEN && inRoom && replayDone;
  }

  function send(event) {
    socket.send(JSON.stringify(event));
  }

  function outgoingLabel(entry) {
    if (stopped !== null) {
      return "not sent";
    }
    if (entry.state === "sent") {
      return "sending…";
    }
    return canSend() ? "sending…" : "waiting for the connection…";
  }

  function renderOutgoing(entry) {
    var element = entry.element;
    element.classList.toggle("failed", entry.state === "failed");
    var state = element.querySelector(".state");
    var problem = element.querySelector(".problem");
    if (entry.state === "failed") {
      state.textContent = "";
      problem.hidden = false;
      problem.querySelector(".reason").textContent = entry.reason; // (a sentence: what happened, what to do)
      // Retry only where sending again may succeed (too fast, the server could not store it just now).
      problem.querySelector(".retry").hidden = !entry.retryable || stopped !== null;
    } else {
      state.textContent = outgoingLabel(entry);
      problem.hidden = true;
    }
  }

  function showOutboxStatus() {
    outbox.forEach(renderOutgoing);
  }

  function queueTalk(payload) {
    var entry = { id: nextTalkId(), payload: payload, state: "queued", reason: "", retryable: true };
    var element = messageLine("message mine pending", displayName(myUserId, myName), payload, null, false);
    element.dataset.id = entry.id;
    element.appendChild(span("state", ""));
    var problem = document.createElement("span");
    problem.className = "problem";
    problem.appendChild(span("reason has-text-danger", ""));
    var retry = document.createElement("button");
    retry.type = "button";
    retry.className = "button is-small is-danger is-light retry";
    retry.textContent = "Retry";
    retry.addEventListener("click", function () {
      entry.state = "queued";
      renderOutgoing(entry);
      flushOutbox();
    });
    var discard = document.createElement("button");
    discard.type = "button";
    discard.className = "button is-small is-light discard";
    discard.textContent = "Discard";
    discard.addEventListener("click", function () {
      var at = outbox.indexOf(entry);
      if (at >= 0) {
        outbox.splice(at, 1);
      }
      keepingView(function () { element.remove(); }, false);
    });
    problem.appendChild(retry);
    problem.appendChild(discard);
    element.appendChild(problem);
    entry.element = element;
    outbox.push(entry);
    renderOutgoing(entry);
    keepingView(function () { wrapper.appendChild(element); }, true);
    flushOutbox();
  }

  // Sends every queued talk, in order, once the replay after the init reply
  // is over: the replay shows which ones the server already has.
  function flushOutbox() {
    if (!canSend()) {
      showOutboxStatus();
      return;
    }
    outbox.forEach(function (entry) {
      if (entry.state === "queued") {
        send({ type: "talk", payload: entry.payload, id: entry.id });
        entry.state = "sent";
      }
    });
    showOutboxStatus();
  }

  // A refusal of my talk: its reason on its line; Retry only if its code says the same talk may succeed later
  // (a refusal without a code, from an older server, keeps Retry).
  function failOutgoing(id, reason, code) {
    for (var i = 0; i < outbox.length; i++) {
      if (outbox[i].id === id) {
        outbox[i].state = "failed";
        outbox[i].reason = reason;
        outbox[i].retryable = typeof code !== "string" || RETRYABLE.indexOf(code) >= 0;
        keepingView(renderOutgoing.bind(null, outbox[i]), false);
        return true;
      }
    }
    return false;
  }

  // ---- history: older talks, and gaps after a long disconnection -----------

  function showOlderLine() {
    olderLine.hidden = !olderAvailable;
    olderButton.disabled = historyInFlight !== null;
    olderButton.textContent = historyInFlight !== null && !historyInFlight.gap
      ? "Loading older messages…"
      : "Load older messages";
  }

  function requestHistory(before, limit, gap) {
    historyInFlight = { before: before, gap: gap };
    send({ type: "history", before: before, limit: limit });
    showOlderLine();
  }

  // Asks for what is missing, one request at a time: gaps first, then older
  // talks when the reader is at the top (or the list does not fill its box).
  function fetchHistory() {
    if (!canSend() || historyInFlight !== null) {
      return;
    }
    if (gaps.length > 0) {
      var gap = gaps[0];
      requestHistory(gap.high, Math.min(HISTORY_MAX, gap.high - gap.low - 1), gap);
      return;
    }
    var wantOlder = olderAvailable &&
      (wrapper.scrollTop < NEAR_TOP_PX || wrapper.scrollHeight <= wrapper.clientHeight);
    if (wantOlder) {
      requestHistory(olderBefore(), HISTORY_PAGE, null);
    }
  }

  function olderBefore() {
    return lowestOffset !== null ? lowestOffset : replayEnd + 1;
  }

  function onHistory(event) {
    var request = historyInFlight;
    if (request === null || event.before !== request.before) {
      return; // not the answer to the request in flight (one from before a reconnection)
    }
    historyInFlight = null;
    var list = Array.isArray(event.talks) ? event.talks : [];
    var talkOffsets = list.map(function (talk) { return talk && talk.offset; }).filter(isOffset);
    var first = talkOffsets.length > 0 ? Math.min.apply(null, talkOffsets) : null;
    keepingView(function () {
      list.forEach(function (talk) {
        if (talk && typeof talk === "object") {
          addTalk(talk, true);
        }
      });
      if (request.gap) {
        var gap = request.gap;
        if (first === null || event.older !== true || first <= gap.low + 1) {
          // Filled, or the log does not reach that far back any more.
          gaps = gaps.filter(function (other) { return other !== gap; });
        } else {
          gap.high = first;
        }
      } else if (first === null || event.older !== true) {
        olderAvailable = false;
      }
      showOlderLine();
    }, false);
    fetchHistory();
  }

  // A history request was refused: it may be asked again, after a pause, if the refusal says so (the server
  // could not read it just now, or too many requests); else nothing more is asked until the next connection.
  function onHistoryRefused(code) {
    historyInFlight = null;
    if (RETRYABLE.indexOf(code) >= 0) {
      window.setTimeout(fetchHistory, HISTORY_RETRY_MS);
    } else {
      gaps = [];
      olderAvailable = false;
    }
    showOlderLine();
  }

  wrapper.addEventListener("scroll", function () {
    clearUnreadIfSeen();
    if (wrapper.scrollTop < NEAR_TOP_PX) {
      fetchHistory();
    }
  });

  olderButton.addEventListener("click", function () {
    if (canSend() && historyInFlight === null && olderAvailable) {
      requestHistory(olderBefore(), HISTORY_PAGE, null);
    }
  });

  // ---- server events -----------------------------------------------------

  function linkLine(first) {
    var link = joinLink(joinKey);
    var a = document.createElement("a");
    a.href = link;
    a.className = "join-link";
    a.textContent = link;
    var text = first && startedRoom ? "chat started; join: " : "joined; invite others: ";
    var element = line("info", [text, a, " ", copyButton(link)]);
    keepingView(function () { place(element, replayEnd + 0.5); }, true);
  }

  // What changed while this page was away, told as the live events would have.
  function announceChanges(before, after) {
    after.forEach(function (name, userId) {
      if (myUserIds.has(userId)) {
        return;
      }
      if (!before.has(userId)) {
        addNotice("info notice joined", [displayName(userId, name) + " joined"]);
      } else if (before.get(userId) !== name) {
        addNotice("info notice renamed", [displayName(userId, before.get(userId)) + " is now " +
          displayName(userId, name)]);
      }
    });
    before.forEach(function (name, userId) {
      if (!after.has(userId) && !myUserIds.has(userId)) {
        addNotice("info notice left", [displayName(userId, name) + " left"]);
      }
    });
  }

  function onInit(event) {
    var first = !joined;
    joined = true;
    reconnectDelay = RECONNECT_FIRST_DELAY_MS; // (not on open: a socket whose init fails keeps backing off)
    awaitingInit = false;
    inRoom = true;
    replayDone = false;
    joinKey = asText(event.joinKey);
    if (typeof event.token === "string" && event.token !== "") {
      save(tokenKey(joinKey), event.token);
    }
    myUserId = asText(event.userId);
    myUserIds.add(myUserId);
    signedIn = authSent || event.verified === true; // (a resume token alone brings back a signed-in user too)
    authSent = false;
    if (signedIn) {
      save(SIGNED_IN_KEY_PREFIX + joinKey, "1"); // a reload without the token rejoins by the resume token, unasked
    }
    rolesSpoken = isRole(event.role);
    myRole = rolesSpoken ? event.role : "member";
    nameSpan.textContent = myUserId;
    var link = joinLink(joinKey);
    if (window.location.href !== link) {
      // Reloading the page rejoins this room instead of opening a new one.
      window.history.replaceState(null, "", link);
    }
    var fresh = membersFrom(event.members);
    showMyName(typeof event.name === "string" ? event.name : myName);
    if (rolesSpoken) {
      roles.set(myUserId, myRole);
    }
    if (!first) {
      announceChanges(members, fresh);
    }
    members = fresh;
    var state = event.room && typeof event.room === "object" ? event.room : {};
    setRoom(state.title, state.locked);
    maxPayloadChars = Number.isInteger(event.maxPayloadChars) && event.maxPayloadChars > 0 ? event.maxPayloadChars
      : null;
    showComposer();
    showPresenceStale(false); // (the members list is the server's again)
    if (event.v === 2) {
      renderMembers();
    }
    refreshMenus();
    replayEnd = isOffset(event.offset) ? event.offset : 0;
    if (lowestOffset === null) {
      olderAvailable = event.older === true;
    }
    if (first) {
      linkLine(true);
    }
    showStatus(first ? "" : "reconnected", false);
    if (!first) {
      setTimeout(function () {
        if (statusLine.textContent === "reconnected") {
          showStatus("", false);
        }
      }, 5000);
    }
    if (event.v !== 2 || replayEnd <= (highestOffset || 0)) {
      endReplay();
    } else {
      setState("replaying");
      replayTimer = setTimeout(endReplay, REPLAY_WAIT_MS);
    }
  }

  function endReplay() {
    if (replayDone || !inRoom) {
      return;
    }
    clearTimeout(replayTimer);
    replayTimer = null;
    replayDone = true;
    if (firstReplay) {
      firstReplay = false;
      scrollToBottom();
    }
    setState("live");
    flushOutbox();
    showOlderLine();
    fetchHistory();
  }

  function onTalk(event) {
    stopTyping(asText(event.userId)); // (its message came: no longer typing it)
    addTalk(event, false);
    if (!replayDone && inRoom && isOffset(event.offset) && event.offset >= replayEnd) {
      endReplay();
    }
  }

  function onJoined(event) {
    var userId = asText(event.userId);
    var name = typeof event.name === "string" ? event.name : null;
    var known = members.has(userId);
    members.set(userId, name);
    markVerified(userId, event.verified);
    if (userId === myUserId) {
      showMyName(name);
    }
    members = new Map(Array.from(members).sort(function (a, b) { return Number(a[0]) - Number(b[0]); }));
    renderMembers();
    if (!known) {
      addNotice("info notice joined", [displayName(userId, name) + " joined"]);
    }
  }

  function onLeft(event) {
    var userId = asText(event.userId);
    if (!members.has(userId)) {
      return;
    }
    var name = members.get(userId);
    members.delete(userId);
    stopTyping(userId);
    renderMembers();
    addNotice("info notice left", [displayName(userId, name) + " left"]);
  }

  function onRenamed(event) {
    var userId = asText(event.userId);
    var name = typeof event.name === "string" ? event.name : null;
    var before = members.has(userId) ? members.get(userId) : null;
    members.set(userId, name);
    renderMembers();
    if (userId === myUserId) {
      showMyName(name);
    }
    if (before !== name) {
      addNotice("info notice renamed", [displayName(userId, before) + " is now " + displayName(userId, name)]);
    }
  }

  // ---- who is typing -------------------------------------------------------

  // Another member is typing: said for TYPING_SHOWN_MS after its last "typing", until its message or its leaving.
  function onTyping(event) {
    var userId = asText(event.userId);
    if (myUserIds.has(userId) || event.userId === undefined || event.userId === null) {
      return;
    }
    clearTimeout(typers.get(userId));
    typers.set(userId, setTimeout(function () { stopTyping(userId); }, TYPING_SHOWN_MS));
    showTypers();
  }

  function stopTyping(userId) {
    if (typers.has(userId)) {
      clearTimeout(typers.get(userId));
      typers.delete(userId);
      showTypers();
    }
  }

  function clearTypers() {
    typers.forEach(function (timer) { clearTimeout(timer); });
    typers.clear();
    showTypers();
  }

  function showTypers() {
    var names = Array.from(typers.keys(), function (userId) {
      return displayName(userId, members.has(userId) ? members.get(userId) : null);
    });
    var text = names.length === 0 ? ""
      : names.length === 1 ? names[0] + " is typing\u2026"
      : names.length === 2 ? names[0] + " and " + names[1] + " are typing\u2026"
      : "Several people are typing\u2026";
    if (typingLine.textContent !== text) {
      typingLine.textContent = text; // (a polite live region: said when it changes)
    }
  }

  // While this page is not connected, the online list is what it was: greyed, and said to be out of date.
  function showPresenceStale(stale) {
    presence.classList.toggle("stale", stale);
    presenceNote.hidden = !stale;
  }

  function setRoom(title, locked) {
    room = { title: typeof title === "string" && title !== "" ? title : null, locked: locked === true };
    roomTitle.textContent = room.title !== null ? room.title : BASE_TITLE;
    lockedBadge.hidden = !room.locked;
    showUnread();
    renderControls();
  }

  function who(userId) {
    if (userId === undefined || userId === null) {
      return "Someone";
    }
    return asText(userId) === myUserId ? "You" : memberName(userId);
  }

  function onRoom(event) {
    var before = room;
    setRoom(event.title, event.locked);
    settleRequest(["room", "lock"], event.by);
    if (before.title !== room.title) {
      addNotice("info notice room", [room.title === null
        ? who(event.by) + " cleared the title"
        : who(event.by) + " set the title: " + room.title]);
    }
    if (before.locked !== room.locked) {
      addNotice("info notice room", [who(event.by) + (room.locked ? " locked the chat" : " unlocked the chat")]);
    }
  }

  function onEdited(event) {
    var talk = talks.get(event.offset);
    if (!talk) {
      return;
    }
    settleRequest(["edit"], talk.userId, event.offset); // (only its writer edits a talk)
    if (!talk.deleted) {
      talk.payload = asText(event.payload);
      talk.edited = event.edited !== undefined && event.edited !== null ? event.edited : true;
      redraw(event.offset);
    }
  }

  function onDeleted(event) {
    settleRequest(["delete"], event.by, event.offset);
    var talk = talks.get(event.offset);
    if (talk && !talk.deleted) {
      talks.set(event.offset, talkState({ userId: talk.userId, time: talk.time, deleted: true }));
      redraw(event.offset);
    }
  }

  function onRemoved(event) {
    var userId = asText(event.userId);
    var name = displayName(userId, members.has(userId) ? members.get(userId) : null);
    settleRequest(["remove"], event.by);
    if (roles.has(userId)) {
      roles.set(userId, "member"); // removal takes a moderator's role away
    }
    members.delete(userId); // (its "left", if one comes, is not told again)
    stopTyping(userId);
    renderMembers();
    addNotice("info notice removed", [name + (event.ban === true ? " was removed and banned" : " was removed")]);
  }

  function onRole(event) {
    var userId = asText(event.userId);
    if (!isRole(event.role) || event.role === "owner") {
      return;
    }
    settleRequest(["role"], event.by);
    var before = roleOf(userId);
    roles.set(userId, event.role);
    if (userId === myUserId) {
      myRole = event.role;
      refreshMenus();
    }
    renderMembers();
    if (before !== event.role) {
      var moderator = event.role === "moderator";
      addNotice("info notice role", [userId === myUserId
        ? (moderator ? "You are now a moderator" : "You are no longer a moderator")
        : memberName(userId) + (moderator ? " is now a moderator" : " is no longer a moderator")]);
    }
  }

  function onError(event) {
    var text = asText(event.payload !== undefined ? event.payload : event.message) || "error";
    if (typeof event.id === "string" && failOutgoing(event.id, text, event.code)) {
      return;
    }
    if (MODERATION.indexOf(event.request) >= 0) {
      onRequestRefused(event.request, text, event.offset);
      return;
    }
    if (event.request === "history") {
      onHistoryRefused(event.code);
      return;
    }
    var code = typeof event.code === "string" ? event.code : "";
    if (code === "not-found") {
      // The link's chat does not exist (or no longer): another init would be answered alike.
      awaitingInit = false;
      showError(text);
      stop("not-found", text);
      return;
    }
    showError(text);
    if (awaitingInit && (code === "sign-in-needed" || code === "sign-in-refused")) {
      // A bad token, or a server that needs one: another init would be refused again (until the site sends a token).
      awaitingInit = false;
      authSent = false;
      stop("refused", text);
    } else if (awaitingInit && (code === "bad-name" || code === "name-taken")) {
      // The init was refused for its name, and the socket is out of any room until a corrected one.
      askName(false, text);
    } else if (awaitingInit && (code === "unavailable" || code === "rate-limited")) {
      socket.close(1000, "init refused; trying again"); // (the server could not save it): a new socket, later
    } else if (awaitingInit) {
      // Refused for good (a locked room, a ban): another init would be refused again.
      awaitingInit = false;
      stop("refused", text);
    }
  }

  // The page leaves the room for good: it says why, and neither sends nor reconnects any more.
  function stop(state, text) {
    stopped = { state: state, text: text };
    closeMenu(false);
    closeEndModal(false);
    var hadFocus = document.activeElement === input || document.activeElement === sendButton ||
      document.activeElement === body || document.activeElement === null;
    input.disabled = true;
    showComposer();
    startOver.hidden = false;
    if (hadFocus) {
      newChatButton.focus(); // (the composer's focus is gone with it: the keyboard lands on what can be done)
    }
    clearTypers();
    presence.hidden = true; // who is online is no longer known
    renderControls();
    refreshMenus();
    showOutboxStatus();
    var a = document.createElement("a");
    a.href = window.location.pathname;
    a.textContent = "start a new chat";
    addNotice("info stopped", state === "refused" ? ["you cannot join this chat: ", a]
      : state === "not-found" ? ["this join link is not valid: ", a]
      : [text + " ", a]);
    setState(state);
    showStatus(text, true);
  }

  var handlers = {
    init: onInit,
    talk: onTalk,
    error: onError,
    joined: onJoined,
    left: onLeft,
    renamed: onRenamed,
    history: onHistory,
    edited: onEdited,
    deleted: onDeleted,
    room: onRoom,
    removed: onRemoved,
    role: onRole,
    typing: onTyping,
  };

  function handleMessage(data) {
    var event;
    try {
      event = JSON.parse(data);
    } catch (err) {
      console.warn("ignoring a message that is not JSON:", data);
      return;
    }
    var handler = event && Object.prototype.hasOwnProperty.call(handlers, event.type)
      ? handlers[event.type]
      : null;
    if (!handler) {
      console.warn("ignoring an event of unknown type:", event && event.type);
      return;
    }
    handler(event);
  }

  // ---- connection --------------------------------------------------------

  function sendInit(ws) {
    var init = { type: "init", v: 2, render: "text" };
    if (joinKey !== null) {
      init.joinKey = joinKey;
      var token = load(tokenKey(joinKey));
      if (token) {
        init.token = token;
      }
    }
    if (myName !== null) {
      init.name = myName; // (with a token, the token's name wins)
    }
    authSent = authToken !== null;
    if (authSent) {
      init.auth = authToken;
    }
    if (highestOffset !== null) {
      init.after = highestOffset;
    }
    awaitingInit = true;
    ws.send(JSON.stringify(init));
  }

  function connect() {
    inRoom = false;
    replayDone = false;
    setState("connecting");
    var ws = new WebSocket(socketUrl());
    socket = ws;

    ws.addEventListener("open", function () {
      if (ws !== socket) {
        return;
      }
      sendInit(ws);
    });

    ws.addEventListener("message", function (message) {
      if (ws === socket) {
        handleMessage(message.data);
      }
    });

    ws.addEventListener("close", function (close) {
      if (ws !== socket) {
        return;
      }
      socket = null;
      inRoom = false;
      replayDone = false;
      awaitingInit = false;
      clearTimeout(replayTimer);
      replayTimer = null;
      historyInFlight = null;
      outbox.forEach(function (entry) {
        if (entry.state === "sent") {
          entry.state = "queued"; // resent (same id) unless the next replay shows it arrived
        }
      });
      var unanswered = requests;
      requests = [];
      if (close.code === CLOSE_REMOVED) {
        stop("removed", "You were removed from this chat.");
      } else if (close.code === CLOSE_ENDED) {
        forget(tokenKey(joinKey)); // the room and its users are erased
        stop("ended", "This chat was ended.");
      } else {
        unanswered.forEach(function (pending) { pending.refused("the connection was lost"); });
      }
      clearTypers(); // (their ends would not reach this page)
      showPresenceStale(stopped === null);
      showOutboxStatus();
      showOlderLine();
      setState(stopped !== null ? stopped.state : "offline");
      scheduleReconnect(close);
    });
  }

  function scheduleReconnect(close) {
    if (rejoining) {
      rejoining = false;
      if (stopped === null) {
        connect(); // a new sign-in token: joined again at once
        return;
      }
    }
    var why = close.code === 1006 ? "connection lost" : "connection closed (" + close.code +
      (close.reason ? ": " + close.reason : "") + ")";
    if (stopped !== null) {
      showStatus(stopped.text, true);
      return;
    }
    // Jitter keeps a crowd of pages from reconnecting in lockstep.
    var delay = Math.round(reconnectDelay / 2 + Math.random() * reconnectDelay / 2);
    reconnectDelay = Math.min(reconnectDelay * 2, RECONNECT_MAX_DELAY_MS);
    showStatus(why + "; reconnecting in " + (delay / 1000).toFixed(1) + " s…", true);
    setTimeout(connect, delay);
  }

  // ---- sending -----------------------------------------------------------

  function sendFromInput() {
    if (stopped !== null || charsOver() > 0) {
      return; // (too long: the counter says by how much, and nothing is sent)
    }
    var text = input.value.trim();
    input.focus();
    if (!text) {
      return;
    }
    input.value = "";
    fitInput();
    showComposer();
    queueTalk(text);
  }

  // What the server counts: code points (an emoji is one, though two UTF-16 units), of the trimmed text sent.
  function charCount(text) {
    return Array.from(text.trim()).length;
  }

  // How far the input is above the server's limit (0: within it, or the limit is not known).
  function charsOver() {
    return maxPayloadChars === null ? 0 : Math.max(0, charCount(input.value) - maxPayloadChars);
  }

  // The counter (shown near the limit: in its last tenth, or last 10 characters) and the Send button.
  function showComposer() {
    var over = charsOver();
    sendButton.disabled = stopped !== null || over > 0;
    if (over > 0) {
      input.setAttribute("aria-invalid", "true");
    } else {
      input.removeAttribute("aria-invalid");
    }
    var left = maxPayloadChars === null ? null : maxPayloadChars - charCount(input.value);
    charCounter.hidden = left === null || stopped !== null || left > Math.max(10, Math.floor(maxPayloadChars / 10));
    charCounter.classList.toggle("is-danger", over > 0);
    charCounter.textContent = left === null ? ""
      : over > 0 ? over + (over === 1 ? " character" : " characters") + " too long: the limit is " +
        maxPayloadChars + "; shorten it to send"
      : left + (left === 1 ? " character left" : " characters left");
  }

  // Others see "… is typing": one "typing" when the text changes, at most every TYPING_EVERY_MS.
  function sendTyping() {
    if (input.value.trim() === "" || !canSend() || Date.now() - typingSentAt < TYPING_EVERY_MS) {
      return;
    }
    typingSentAt = Date.now();
    send({ type: "typing" });
  }

  // A textarea grows with its lines, up to a limit; empty, it is one line high.
  function fitTextarea(area) {
    area.style.height = "";
    if (area.value.indexOf("\n") >= 0 || area.scrollHeight > area.clientHeight) {
      area.style.height = "auto";
      area.style.height = Math.min(area.scrollHeight + 2, INPUT_MAX_HEIGHT_PX) + "px";
    }
  }

  function fitInput() {
    fitTextarea(input);
  }

  form.addEventListener("submit", function (submit) {
    submit.preventDefault();
    sendFromInput();
  });

  input.addEventListener("keydown", function (key) {
    // Enter sends; Shift+Enter (and Enter while an input method composes) inserts a newline.
    if (key.key === "Enter" && !key.shiftKey && !key.isComposing && key.keyCode !== 229) {
      key.preventDefault();
      sendFromInput();
    }
  });

  input.addEventListener("input", function () {
    fitInput();
    showComposer();
    sendTyping();
  });

  newChatButton.addEventListener("click", function () {
    window.location.assign(window.location.pathname); // no join key: a new chat
  });

  function start() {
    started = true;
    showMyName(myName);
    connect();
  }

  // Whether the page may join without a name of its own: signed in (the token's name), or back in a room its
  // user signed in to (the resume token brings the user back, with its name).
  function needsNoName() {
    return authToken !== null ||
      (joinKey !== null && load(SIGNED_IN_KEY_PREFIX + joinKey) === "1" && load(tokenKey(joinKey)) !== null);
  }

  // Framed by a site listed in data-auth-origins: "chat-ready" asks the parent for a sign-in token, and the page
  // waits a moment for it before joining under its own name (or asking one).
  var embedded = window.parent !== window && authOrigins.length > 0;
  if (embedded) {
    authOrigins.forEach(function (origin) {
      window.parent.postMessage({ type: "chat-ready" }, origin);
    });
  }
  if (needsNoName()) {
    start();
  } else if (embedded) {
    setTimeout(function () {
      if (!started) {
        if (myName !== null) {
          start();
        } else {
          askName(false, "");
        }
      }
    }, AUTH_WAIT_MS);
  } else if (myName !== null) {
    start();
  } else {
    askName(false, "");
  }
})();
