// Browser notifications when someone mentions you, anywhere you take part: opt-in (the button
// asks the browser's permission), remembered in this browser only. Mentions arrive as
// Server-Sent Events from /app/events?mentions=me; a notification shows text only.
"use strict";
(function () {
  const button = document.getElementById("notify");
  if (!button || !("Notification" in window) || !window.EventSource) return;
  const KEY = "agentnet.notify";

  function listen() {
    button.hidden = true;
    const source = new EventSource("/app/events?mentions=me");
    source.onmessage = function (frame) {
      const m = JSON.parse(frame.data);
      const note = new Notification(m.sender + " mentioned you", {
        body: m.body.slice(0, 200), tag: m.id,
      });
      note.onclick = function () {
        window.location.href = "/app/networks/" + encodeURIComponent(m.network) + "/threads/" +
          encodeURIComponent(m.thread);
      };
    };
  }

  if (Notification.permission === "granted" && localStorage.getItem(KEY) === "on") {
    listen();
    return;
  }
  if (Notification.permission === "denied") return;
  button.hidden = false;
  button.addEventListener("click", function () {
    Notification.requestPermission().then(function (answer) {
      if (answer === "granted") {
        localStorage.setItem(KEY, "on");
        listen();
      }
    });
  });
})();
