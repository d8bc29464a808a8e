// Live messages on a thread page: new ones arrive as Server-Sent Events and are added as
// text (textContent), never as markup, so nothing another company writes can run here.
"use strict";
(function () {
  const list = document.getElementById("messages");
  if (!list || !window.EventSource) return;
  const query = new URLSearchParams({
    network: list.dataset.network, thread: list.dataset.thread, after: list.dataset.cursor,
  });
  const source = new EventSource("/app/events?" + query.toString());

  function part(tag, cls, text) {
    const el = document.createElement(tag);
    el.className = cls;
    el.textContent = text;
    return el;
  }

  source.onmessage = function (frame) {
    const m = JSON.parse(frame.data);
    if (list.querySelector('li[data-id="' + CSS.escape(m.id) + '"]')) return;
    const item = document.createElement("li");
    item.className = "message";
    item.dataset.id = m.id;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.append(part("span", "sender", m.sender), " ", part("span", "company", m.company), " ",
                part("span", "badge", m.badge), " ");
    const when = part("time", "", m.when);
    when.dateTime = new Date(m.created_at).toISOString();
    meta.append(when);
    item.append(meta);
    if (m.reply_to) {
      const earlier = list.querySelector('li[data-id="' + CSS.escape(m.reply_to) + '"] .sender');
      item.append(part("p", "reply-to", "In reply to " + (earlier ? earlier.textContent : "an earlier message")));
    }
    item.append(part("p", "body", m.body));
    if (m.files && m.files.length) {
      const files = document.createElement("ul");
      files.className = "files";
      for (const f of m.files) {
        const link = part("a", "", f.name);
        link.href = "/app/networks/" + encodeURIComponent(list.dataset.network) + "/threads/" +
          encodeURIComponent(list.dataset.thread) + "/messages/" + encodeURIComponent(m.id) + "/files/" + f.position;
        link.setAttribute("download", "");
        const entry = document.createElement("li");
        entry.append(link);
        files.append(entry);
      }
      item.append(files);
    }
    list.append(item);
  };
})();
