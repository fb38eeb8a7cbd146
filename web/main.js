// Browser client for the chat server.
//
// Speaks the seed's wire protocol (see shared/seed-protocol.md) with its
// client-side bugs fixed:
//  - the socket URL comes from the page's own host, not a hard-coded
//    ws://localhost:8001/ (bug 6);
//  - everything a peer sends is rendered as text, never as markup (bug 7).
// Plain ES2017, no build step, no dependencies.
(function () {
  "use strict";

  var DEFAULT_WS_PORT = 8001;

  var wrapper = document.getElementById("message-wrapper");
  var nameSpan = document.getElementById("name-span");
  var form = document.getElementById("form");
  var input = document.getElementById("message-input");

  // The socket in use; handlers of an older socket ignore their events.
  var socket = null;

  // ---- configuration -----------------------------------------------------

  function wsPort() {
    var config = window.CHAT_CONFIG;
    if (config && config.wsPort !== undefined && config.wsPort !== null) {
      var port = Number(config.wsPort);
      if (Number.isInteger(port) && port > 0 && port < 65536) {
        return port;
      }
      console.warn("CHAT_CONFIG.wsPort is not a valid port:", config.wsPort);
    }
    return DEFAULT_WS_PORT;
  }

  function socketUrl() {
    var scheme = window.location.protocol === "https:" ? "wss" : "ws";
    // hostname keeps the brackets of an IPv6 literal, e.g. "[::1]".
    var host = window.location.hostname || "localhost";
    return scheme + "://" + host + ":" + wsPort() + "/";
  }

  function joinKeyFromUrl() {
    var key = new URLSearchParams(window.location.search).get("join");
    return key ? key : null;
  }

  function joinLink(joinKey) {
    return window.location.origin + window.location.pathname +
      "?join=" + encodeURIComponent(joinKey);
  }

  // ---- rendering (text nodes only, never parsed as markup) ---------------

  function appendLine(className, parts) {
    var p = document.createElement("p");
    p.className = className;
    parts.forEach(function (part) {
      p.appendChild(typeof part === "string" ? document.createTextNode(part) : part);
    });
    wrapper.appendChild(p);
    scrollToNewest(p);
    return p;
  }

  function scrollToNewest(element) {
    wrapper.scrollTop = wrapper.scrollHeight;
    if (typeof element.scrollIntoView === "function") {
      try {
        element.scrollIntoView({ block: "nearest" });
      } catch (err) {
        // Old engines or DOM emulations: the wrapper scroll above suffices.
      }
    }
  }

  function showInfo(text) {
    return appendLine("info", [text]);
  }

  function showError(text) {
    return appendLine("error has-text-danger", [text]);
  }

  function asText(value) {
    if (typeof value === "string") {
      return value;
    }
    if (value === undefined || value === null) {
      return "";
    }
    if (typeof value === "object") {
      try {
        return JSON.stringify(value);
      } catch (err) {
        return String(value);
      }
    }
    return String(value);
  }

  // ---- server events -----------------------------------------------------

  function onInit(event) {
    nameSpan.textContent = asText(event.userId);
    var link = joinLink(asText(event.joinKey));
    var a = document.createElement("a");
    a.href = link;
    a.textContent = link;
    appendLine("info", ["chat started; join: ", a]);
  }

  function onTalk(event) {
    appendLine("message", [
      "User " + asText(event.userId) + ": " + asText(event.payload),
    ]);
  }

  function onError(event) {
    var text = event.payload !== undefined && event.payload !== null
      ? event.payload
      : event.message;
    showError(text !== undefined && text !== null ? asText(text) : "error");
  }

  var handlers = {
    init: onInit,
    talk: onTalk,
    error: onError,
  };

  function handleMessage(data) {
    var event;
    try {
      event = JSON.parse(data);
    } catch (err) {
      console.warn("ignoring a message that is not JSON:", data);
      return;
    }
    if (event === null || typeof event !== "object" || Array.isArray(event)) {
      console.warn("ignoring a message that is not a JSON object:", data);
      return;
    }
    var handler = Object.prototype.hasOwnProperty.call(handlers, event.type)
      ? handlers[event.type]
      : null;
    if (!handler) {
      console.warn("ignoring an event of unknown type:", event.type);
      return;
    }
    try {
      handler(event);
    } catch (err) {
      console.warn("failed to handle an event:", event, err);
    }
  }

  // ---- connection --------------------------------------------------------

  function connect() {
    var ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (err) {
      showError("cannot connect: " + asText(err && err.message));
      return null;
    }
    socket = ws;

    ws.addEventListener("open", function () {
      if (ws !== socket) {
        return;
      }
      var init = { type: "init" };
      var joinKey = joinKeyFromUrl();
      if (joinKey !== null) {
        init.joinKey = joinKey;
      }
      init.render = "text";
      ws.send(JSON.stringify(init));
    });

    ws.addEventListener("message", function (message) {
      if (ws !== socket) {
        return;
      }
      handleMessage(message.data);
    });

    ws.addEventListener("close", function (close) {
      if (ws !== socket) {
        return;
      }
      var text = "connection closed";
      if (close.code) {
        text += " (code " + close.code + (close.reason ? ": " + close.reason : "") + ")";
      } else if (close.reason) {
        text += " (" + close.reason + ")";
      }
      showInfo(text);
    });

    ws.addEventListener("error", function () {
      // A close event always follows; it is the one reported on the page.
      console.warn("websocket error on", ws.url);
    });

    return ws;
  }

  // ---- sending -----------------------------------------------------------

  form.addEventListener("submit", function (submit) {
    submit.preventDefault();
    var text = input.value.trim();
    if (!text) {
      input.focus();
      return;
    }
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showError("not connected: message not sent");
      input.focus();
      return;
    }
    socket.send(JSON.stringify({ type: "talk", payload: text }));
    input.value = "";
    input.focus();
  });

  connect();
})();
