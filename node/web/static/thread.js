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

  const postForm = document.getElementById("post-form");
  const csrf = postForm ? postForm.querySelector('input[name="csrf"]').value : null;
  const base = "/app/networks/" + encodeURIComponent(list.dataset.network) + "/threads/" +
    encodeURIComponent(list.dataset.thread);
  let forms = 0;

  function hidden(name, value) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    return input;
  }

  function form(action, button, fields) {
    const el = document.createElement("form");
    el.method = "post";
    el.action = action;
    el.append(hidden("csrf", csrf), ...fields);
    const submit = part("button", "", button);
    submit.type = "submit";
    el.append(submit);
    return el;
  }

  function written(summary, action, label, button, extra, text) {
    forms += 1;
    const id = "live-" + forms;
    const area = document.createElement("textarea");
    area.id = id;
    area.name = "body";
    area.rows = 2;
    area.maxLength = 16384;
    area.required = true;
    area.value = text || "";
    const tag = part("label", "", label);
    tag.htmlFor = id;
    const details = document.createElement("details");
    details.append(part("summary", "", summary), form(action, button, [...extra, tag, area]));
    return details;
  }

  // The same actions a served message has (the page's own form token), built as DOM nodes.
  function actions(m) {
    const box = document.createElement("div");
    box.className = "actions";
    const messageUrl = base + "/messages/" + encodeURIComponent(m.id);
    box.append(written("Reply", base, "Reply to " + m.sender, "Send reply", [hidden("reply_to", m.id)]));
    const react = form(messageUrl + "/react", "Mark seen", [hidden("reaction", "seen")]);
    react.className = "inline";
    box.append(react);
    if (m.mine) {
      box.append(written("Edit", messageUrl + "/edit", "New text", "Save edit", [], m.body));
      const remove = form(messageUrl + "/delete", "Delete", []);
      remove.className = "inline";
      box.append(remove);
    }
    return box;
  }

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
    if (csrf) item.append(actions(m));
    list.append(item);
  };
})();
