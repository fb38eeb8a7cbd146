// Reconstruction of the seed demo's client (see shared/seed-protocol.md).
// Its bugs are kept ON PURPOSE: tests use this page to prove that our server
// still serves clients written against the seed protocol. Do not fix.

window.addEventListener("DOMContentLoaded", () => {
  // Hard-coded host and port (seed bug 6).
  const websocket = new WebSocket("ws://localhost:8001/");
  initChat(websocket);
  receiveMessages(websocket);
  sendMessages(websocket);
});

function initChat(websocket) {
  websocket.addEventListener("open", () => {
    // Send an "init" event, with the join key when the URL has one.
    const params = new URLSearchParams(window.location.search);
    let event = { type: "init" };
    if (params.has("join")) {
      event.joinKey = params.get("join");
    }
    websocket.send(JSON.stringify(event));
  });
}

function receiveMessages(websocket) {
  const wrapper = document.getElementById("message-wrapper");
  websocket.addEventListener("message", ({ data }) => {
    const event = JSON.parse(data);
    switch (event.type) {
      case "init": {
        document.getElementById("name-span").innerHTML = event.userId;
        const params = new URLSearchParams(window.location.search);
        let link;
        if (params.has("join")) {
          link = document.location.href;
        } else {
          link = document.location + "?join=" + event.joinKey;
        }
        wrapper.innerHTML +=
          `<p>chat started; join: <a href="${link}">${link}</a></p>`;
        break;
      }
      case "talk":
        // Rendered as markup (seed bug 7).
        wrapper.innerHTML += `<p>User ${event.userId}: ${event.payload}</p>`;
        break;
      case "error":
        // The server sends "message", not "payload" (seed bug 4).
        wrapper.innerHTML += `<p>${event.payload}</p>`;
        break;
      default:
        throw new Error(`Unsupported event type: ${event.type}.`);
    }
  });
}

function sendMessages(websocket) {
  const form = document.getElementById("form");
  const input = document.getElementById("message-input");
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const event = {
      type: "talk",
      payload: input.value,
      // The client picks its own id, as a string (seed bug 2).
      userId: document.getElementById("name-span").textContent,
    };
    websocket.send(JSON.stringify(event));
    input.value = "";
  });
}
