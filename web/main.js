// Browser client for the chat server.
//
// Speaks the seed's wire protocol (init / talk / error) with the seed page's
// bugs fixed: the socket goes to the page's own host on the port the server
// announces in config.js; everything a peer sends is rendered as text, never
// parsed as markup; Bulma is served by our own server.
//
// On top of the seed: a copyable join link, message times, auto-scroll, no
// empty messages, and reconnection with backoff to the same room, where the
// replayed history is merged without duplicates.
// Plain ES2017, no build step, no dependencies.
(function () {
  "use strict";

  var DEFAULT_WS_PORT = 8001;
  var RECONNECT_FIRST_DELAY_MS = 500;
  var RECONNECT_MAX_DELAY_MS = 10000;

  var wrapper = document.getElementById("message-wrapper");
  var nameSpan = document.getElementById("name-span");
  var statusLine = document.getElementById("status");
  var form = document.getElementById("form");
  var input = document.getElementById("message-input");

  var socket = null; // the socket in use; events of older sockets are ignored
  var joinKey = new URLSearchParams(window.location.search).get("join") || null;
  var joined = false; // true once the first init succeeded
  var inRoom = false; // true while the current socket is in the room
  var deadLink = false; // the join key is unknown: reconnecting cannot help
  var reconnectDelay = RECONNECT_FIRST_DELAY_MS;
  var seen = new Set(); // keys of rendered talk events, so replays never duplicate

  // ---- configuration -----------------------------------------------------

  function wsPort() {
    var config = window.CHAT_CONFIG;
    var port = config ? Number(config.wsPort) : NaN;
    return Number.isInteger(port) && port > 0 && port < 65536 ? port : DEFAULT_WS_PORT;
  }

  function socketUrl() {
    var scheme = window.location.protocol === "https:" ? "wss" : "ws";
    // hostname keeps the brackets of an IPv6 literal, e.g. "[::1]".
    return scheme + "://" + (window.location.hostname || "localhost") + ":" + wsPort() + "/";
  }

  function joinLink(key) {
    return window.location.origin + window.location.pathname + "?join=" + encodeURIComponent(key);
  }

  // ---- rendering: text nodes only ----------------------------------------

  function isScrolledToBottom() {
    return wrapper.scrollHeight - wrapper.scrollTop - wrapper.clientHeight < 40;
  }

  function appendLine(className, parts, forceScroll) {
    var stick = forceScroll || isScrolledToBottom();
    var p = document.createElement("p");
    p.className = className;
    parts.forEach(function (part) {
      p.appendChild(typeof part === "string" ? document.createTextNode(part) : part);
    });
    wrapper.appendChild(p);
    if (stick) {
      wrapper.scrollTop = wrapper.scrollHeight;
    }
    return p;
  }

  function asText(value) {
    if (typeof value === "string") {
      return value;
    }
    return value === undefined || value === null ? "" : JSON.stringify(value);
  }

  function showStatus(text, isProblem) {
    statusLine.textContent = text;
    statusLine.classList.toggle("is-danger", Boolean(isProblem));
  }

  function showError(text) {
    appendLine("error has-text-danger", [text]);
  }

  function timeElement(seconds) {
    var element = document.createElement("time");
    var date = new Date(seconds * 1000);
    if (typeof seconds !== "number" || isNaN(date.getTime())) {
      return null;
    }
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

  // ---- server events -----------------------------------------------------

  function onInit(event) {
    var first = !joined;
    joined = true;
    inRoom = true;
    joinKey = asText(event.joinKey);
    nameSpan.textContent = asText(event.userId);
    var link = joinLink(joinKey);
    if (window.location.href !== link) {
      // Reloading the page rejoins this room instead of opening a new one.
      window.history.replaceState(null, "", link);
    }
    if (first) {
      var a = document.createElement("a");
      a.href = link;
      a.className = "join-link";
      a.textContent = link;
      appendLine("info", ["chat started; join: ", a, " ", copyButton(link)]);
    }
    showStatus(first ? "" : "reconnected", false);
    if (!first) {
      setTimeout(function () {
        if (statusLine.textContent === "reconnected") {
          showStatus("", false);
        }
      }, 5000);
    }
  }

  function onTalk(event) {
    var key = asText(event.time) + "|" + asText(event.userId) + "|" + asText(event.payload);
    if (seen.has(key)) {
      return;
    }
    seen.add(key);
    var mine = asText(event.userId) === nameSpan.textContent;
    var parts = [];
    var time = timeElement(event.time);
    if (time) {
      parts.push(time, " ");
    }
    parts.push("User " + asText(event.userId) + ": " + asText(event.payload));
    appendLine(mine ? "message mine" : "message", parts, mine);
  }

  function onError(event) {
    var text = asText(event.payload !== undefined ? event.payload : event.message);
    showError(text || "error");
    if (!joined && text === "chat not found.") {
      deadLink = true;
      var a = document.createElement("a");
      a.href = window.location.pathname;
      a.textContent = "start a new chat";
      appendLine("info", ["this join link is not valid: ", a]);
    }
  }

  var handlers = { init: onInit, talk: onTalk, error: onError };

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

  function connect() {
    inRoom = false;
    var ws = new WebSocket(socketUrl());
    socket = ws;

    ws.addEventListener("open", function () {
      if (ws !== socket) {
        return;
      }
      reconnectDelay = RECONNECT_FIRST_DELAY_MS;
      var init = { type: "init", render: "text" };
      if (joinKey !== null) {
        init.joinKey = joinKey;
      }
      ws.send(JSON.stringify(init));
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
    // Full jitter keeps a crowd of pages from reconnecting in lockstep.
    var delay = Math.round(reconnectDelay / 2 + Math.random() * reconnectDelay / 2);
    reconnectDelay = Math.min(reconnectDelay * 2, RECONNECT_MAX_DELAY_MS);
    showStatus(why + "; reconnecting in " + (delay / 1000).toFixed(1) + " s…", true);
    setTimeout(connect, delay);
  }

  // ---- sending -----------------------------------------------------------

  form.addEventListener("submit", function (submit) {
    submit.preventDefault();
    var text = input.value.trim();
    input.focus();
    if (!text) {
      return;
    }
    if (!socket || socket.readyState !== WebSocket.OPEN || !inRoom) {
      showError("not connected: message not sent");
      return;
    }
    socket.send(JSON.stringify({ type: "talk", payload: text }));
    input.value = "";
  });

  connect();
})();
