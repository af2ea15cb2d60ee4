// entity-sync console: progress of a running replay, live "Now", select-all. No inline
// script anywhere (the CSP allows only this file); text is set with textContent, never HTML.
"use strict";

function poll(url, every, apply) {
  let stopped = false;
  async function tick() {
    if (stopped) return;
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (response.ok && apply(await response.json()) === false) stopped = true;
    } catch (err) {
      // a restart of the console or a network blip: try again at the next tick
    }
    if (!stopped) setTimeout(tick, every);
  }
  setTimeout(tick, every);
}

function followEntry(box) {
  if (box.dataset.status !== "running") return;
  poll(box.dataset.poll, 700, (e) => {
    document.getElementById("done").textContent = e.done;
    document.getElementById("selected").textContent = e.selected;
    document.getElementById("entry-status").textContent = e.status;
    document.getElementById("note").textContent = e.note || "";
    const bar = document.getElementById("progress");
    bar.max = Math.max(e.selected, 1);
    bar.value = e.done;
    if (e.status !== "running") { window.location.reload(); return false; }
    return true;
  });
}

function followSession(el) {
  poll(el.dataset.poll, 1000, (s) => {
    if (s.done) { window.location.reload(); return false; }
    return true;
  });
}

function followNow(el) {
  poll(el.dataset.poll, 2000, (r) => {
    document.getElementById("outbox").textContent = r.outbox_backlog ?? "?";
    document.getElementById("bulk").textContent = r.bulk_fan_outs;
    for (const q of r.queues) {
      const row = document.querySelector(`tr[data-queue="${CSS.escape(q.queue)}"]`);
      if (!row) continue;
      row.querySelector(".messages").textContent = q.messages ?? "missing";
      row.querySelector(".consumers").textContent = q.consumers ?? "";
      row.classList.toggle("alert", q.kind === "dlq" && q.messages > 0);
    }
    return true;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const box = document.getElementById("progress-box");
  if (box) followEntry(box);
  const pending = document.getElementById("pending");
  if (pending) followSession(pending);
  const now = document.getElementById("now");
  if (now) followNow(now);
  const all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", () => {
      for (const pick of document.querySelectorAll("input.pick")) pick.checked = all.checked;
    });
  }
});
