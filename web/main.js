// Browser client for the chat server, speaking protocol version 2 (the README's "Version 2" protocol reference).
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
// Plain ES2017, no build step, no dependencies.
(function () {
  "use strict";

  var DEFAULT_WS_PATH = "/ws";
  var RECONNECT_FIRST_DELAY_MS = 500;
  var RECONNECT_MAX_DELAY_MS = 10000;
  var REPLAY_WAIT_MS = 3000; // longest wait for the end of a replay before sending the outbox anyway
  var HISTORY_PAGE = 50;
  var HISTORY_MAX = 200;
  var NAME_MAX_CHARS = 32;
  var NEAR_TOP_PX = 40;
  var NEAR_BOTTOM_PX = 40;
  var INPUT_MAX_HEIGHT_PX = 160;
  var BASE_TITLE = document.title || "Chat";
  var NAME_KEY = "chat.name";
  var TOKEN_KEY_PREFIX = "chat.token:"; // + the room's joinKey

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
  var deadLink = false; // the join key is unknown: reconnecting cannot help
  var reconnectDelay = RECONNECT_FIRST_DELAY_MS;

  var myName = validName(load(NAME_KEY)) === null ? load(NAME_KEY).trim() : null;
  var myUserId = null; // a string, as shown in #name-span
  var myUserIds = new Set(); // every user id this page had in this room: its talks are "mine"
  var members = new Map(); // userId (string) -> name (string or null), in the server's order

  var shown = new Map(); // offset -> element of every talk shown
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

  function tokenKey(key) {
    return TOKEN_KEY_PREFIX + key;
  }

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

  function displayName(userId, name) {
    return typeof name === "string" && name !== "" ? name : "user " + asText(userId);
  }

  function showMyName(name) {
    myNameButton.textContent = displayName(myUserId, name);
    myNameButton.hidden = false;
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
    askName(true, "");
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
        if (child !== olderLine && child.offsetTop + child.offsetHeight > wrapper.scrollTop) {
          anchor = child;
          anchorTop = child.offsetTop - wrapper.scrollTop;
          break;
        }
      }
    }
    var result = change();
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
    while (after && (isOutgoing(after) || positionOf(after) > pos)) {
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

  function messageLine(className, senderText, payload, seconds) {
    var time = timeElement(seconds);
    return line(className, [
      time, time ? " " : null,
      span("sender", senderText), ": ",
      span("text", payload),
    ]);
  }

  // ---- unread count in the title ------------------------------------------

  function showUnread() {
    document.title = unread > 0 ? "(" + unread + ") " + BASE_TITLE : BASE_TITLE;
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

  // ---- members -------------------------------------------------------------

  function renderMembers() {
    membersList.textContent = "";
    members.forEach(function (name, userId) {
      var li = document.createElement("li");
      li.className = "member tag is-rounded";
      li.dataset.userId = userId;
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
  }

  function membersFrom(list) {
    var result = new Map();
    if (Array.isArray(list)) {
      list.forEach(function (member) {
        if (member && member.userId !== undefined && member.userId !== null) {
          result.set(asText(member.userId), typeof member.name === "string" ? member.name : null);
        }
      });
    }
    return result;
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
      return false; // a replay, or the answer to a resend
    }
    var userId = asText(event.userId);
    var mine = myUserIds.has(userId);
    var element = messageLine(mine ? "message mine" : "message", displayName(userId, event.name),
      asText(event.payload), event.time);
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
      element.dataset.offset = String(offset);
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
    return true;
  }

  // ---- my talks: pending until echoed ----------------------------------------

  function canSend() {
    return socket !== null && socket.readyState === WebSocket.OPEN && inRoom && replayDone;
  }

  function send(event) {
    socket.send(JSON.stringify(event));
  }

  function outgoingLabel(entry) {
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
      problem.querySelector(".reason").textContent = "not sent: " + entry.reason;
    } else {
      state.textContent = outgoingLabel(entry);
      problem.hidden = true;
    }
  }

  function showOutboxStatus() {
    outbox.forEach(renderOutgoing);
  }

  function queueTalk(payload) {
    var entry = { id: nextTalkId(), payload: payload, state: "queued", reason: "" };
    var element = messageLine("message mine pending", displayName(myUserId, myName), payload, null);
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
      element.remove();
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

  function failOutgoing(id, reason) {
    for (var i = 0; i < outbox.length; i++) {
      if (outbox[i].id === id) {
        outbox[i].state = "failed";
        outbox[i].reason = reason;
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
    awaitingInit = false;
    inRoom = true;
    replayDone = false;
    joinKey = asText(event.joinKey);
    if (typeof event.token === "string" && event.token !== "") {
      save(tokenKey(joinKey), event.token);
    }
    myUserId = asText(event.userId);
    myUserIds.add(myUserId);
    nameSpan.textContent = myUserId;
    showMyName(typeof event.name === "string" ? event.name : myName);
    var link = joinLink(joinKey);
    if (window.location.href !== link) {
      // Reloading the page rejoins this room instead of opening a new one.
      window.history.replaceState(null, "", link);
    }
    var fresh = membersFrom(event.members);
    if (!first) {
      announceChanges(members, fresh);
    }
    members = fresh;
    if (event.v === 2) {
      renderMembers();
    }
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

  function onError(event) {
    var text = asText(event.payload !== undefined ? event.payload : event.message) || "error";
    if (typeof event.id === "string" && failOutgoing(event.id, text)) {
      return;
    }
    if (text === "chat not found.") {
      deadLink = true;
      awaitingInit = false;
      showError(text);
      var a = document.createElement("a");
      a.href = window.location.pathname;
      a.textContent = "start a new chat";
      addNotice("info", ["this join link is not valid: ", a]);
      return;
    }
    showError(text);
    if (awaitingInit && /name/i.test(text)) {
      // The init was refused for its name, and the socket is out of any room until a corrected one.
      askName(false, text);
    }
  }

  var handlers = {
    init: onInit,
    talk: onTalk,
    error: onError,
    joined: onJoined,
    left: onLeft,
    renamed: onRenamed,
    history: onHistory,
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
      init.name = myName;
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
      reconnectDelay = RECONNECT_FIRST_DELAY_MS;
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
      showOutboxStatus();
      showOlderLine();
      setState("offline");
      scheduleReconnect(close);
    });
  }

  function scheduleReconnect(close) {
    var why = close.code === 1006 ? "connection lost" : "connection closed (" + close.code +
      (close.reason ? ": " + close.reason : "") + ")";
    if (deadLink) {
      showStatus(why, true);
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
    var text = input.value.trim();
    input.focus();
    if (!text) {
      return;
    }
    input.value = "";
    fitInput();
    queueTalk(text);
  }

  // The textarea grows with its lines, up to a limit; empty, it is one line high.
  function fitInput() {
    input.style.height = "";
    if (input.value.indexOf("\n") >= 0 || input.scrollHeight > input.clientHeight) {
      input.style.height = "auto";
      input.style.height = Math.min(input.scrollHeight + 2, INPUT_MAX_HEIGHT_PX) + "px";
    }
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

  input.addEventListener("input", fitInput);

  function start() {
    started = true;
    showMyName(myName);
    connect();
  }

  if (myName === null) {
    askName(false, "");
  } else {
    start();
  }
})();
