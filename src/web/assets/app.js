// agent-vault web UI: a little progressive enhancement. Every page works without it.
// Served from /static/app.js (the CSP allows scripts from this origin only, none inline).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Confirmation before destructive forms: <form data-confirm="Delete X?">.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  // Copy buttons: <button data-copy="id-of-element">.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent);
        announce(button, "Copied");
      } catch (_) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        announce(button, "Selected: press Ctrl+C to copy");
      }
    });
  }

  // The service form shows only the fields of the chosen authentication type.
  const authType = document.getElementById("auth_type");
  if (authType) {
    const sync = () => {
      for (const group of document.querySelectorAll(".auth-fields")) {
        group.hidden = group.dataset.auth !== authType.value;
      }
    };
    authType.addEventListener("change", sync);
    sync();
  }

  // Live tail of the request log: polls for rows newer than the newest shown.
  const tail = document.getElementById("live-tail");
  if (tail) setupTail(tail);
});

function announce(button, text) {
  let note = button.nextElementSibling;
  if (!note || !note.classList.contains("copied")) {
    note = document.createElement("span");
    note.className = "copied";
    note.setAttribute("role", "status");
    button.after(note);
  }
  note.textContent = " " + text;
}

function setupTail(toggle) {
  const body = document.getElementById("log-rows");
  const status = document.getElementById("tail-status");
  let timer = null;
  let newest = Number(toggle.dataset.newest || 0);

  const cell = (row, text, className) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
  };

  const poll = async () => {
    const url = new URL(toggle.dataset.source, window.location.href);
    url.searchParams.set("after", String(newest));
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) throw new Error(String(response.status));
      const data = await response.json();
      const rows = data.requests || [];
      for (const r of rows.slice().reverse()) {
        const tr = document.createElement("tr");
        cell(tr, r.time, "nowrap");
        cell(tr, r.actor, "nowrap");
        const request = document.createElement("td");
        request.append(r.method + " ");
        const target = document.createElement("span");
        target.className = "mono";
        target.textContent = r.host + r.path;
        request.appendChild(target);
        tr.appendChild(request);
        cell(tr, r.service || "");
        cell(tr, String(r.status), "num status-" + String(r.status).charAt(0));
        cell(tr, r.duration_ms + " ms", "num");
        cell(tr, r.note || "");
        body.prepend(tr);
        newest = Math.max(newest, r.id);
      }
      status.textContent = "Live: " + (rows.length ? rows.length + " new" : "no new requests") +
        " at " + new Date().toLocaleTimeString();
    } catch (error) {
      status.textContent = "Live tail paused: " + error.message;
    }
  };

  toggle.addEventListener("click", () => {
    if (timer) {
      clearInterval(timer);
      timer = null;
      toggle.textContent = "Start live tail";
      toggle.setAttribute("aria-pressed", "false");
      status.textContent = "Live tail stopped.";
    } else {
      poll();
      timer = setInterval(poll, 2000);
      toggle.textContent = "Stop live tail";
      toggle.setAttribute("aria-pressed", "true");
    }
  });
  toggle.hidden = false;
}
