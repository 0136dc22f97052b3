// Berth's only script: copy buttons and keeping logs scrolled to their end.
// Everything else is HTMX attributes; every form and link also works without it.
"use strict";

// The elements matching `selector` in `root`, root included.
function berthWithin(root, selector) {
  const found = Array.from(root.querySelectorAll(selector));
  if (root.matches && root.matches(selector)) found.push(root);
  return found;
}

// Copy buttons stay hidden without JavaScript (they could not work); show them
// on load and in every piece HTMX swaps in.
function berthShowCopyButtons(root) {
  berthWithin(root, "button[data-copy][hidden]").forEach((button) => { button.hidden = false; });
}

// A log reads from the bottom: the newest lines are what a person looks for.
function berthScrollLogs(root) {
  berthWithin(root, "pre.log").forEach((pre) => { pre.scrollTop = pre.scrollHeight; });
}

// Tell screen readers (base.html's #announce is a polite live region).
function berthSay(text) {
  const live = document.getElementById("announce");
  if (live) live.textContent = text;
}

// Say it on the button too (its aria-label would hide the text from screen readers).
function berthAnnounce(button, text) {
  button.textContent = text;
  berthSay(text);
}

async function berthCopy(text) {
  // navigator.clipboard exists only in a secure context (https or localhost);
  // a self-hosted Berth on plain http over the LAN needs the old way.
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  const copied = document.execCommand("copy");
  area.remove();
  if (!copied) {
    throw new Error("copy refused");
  }
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const text = "value" in source ? source.value : source.textContent;
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  try {
    await berthCopy(text);
    berthAnnounce(button, "Copied");
  } catch (error) {
    // Leave the text selected so the keyboard shortcut still works.
    if ("select" in source) source.select();
    berthAnnounce(button, "Select and copy");
  }
  setTimeout(() => { button.textContent = label; }, 2000);
});

// The project panel is replaced whole while it polls, so a live region inside
// it would be a new element each time and go unannounced: say the status here.
let berthLastStatus = null;
document.addEventListener("htmx:afterSettle", () => {
  const badge = document.querySelector("#panel .badge.status");
  if (!badge) return;
  const status = badge.textContent.trim();
  if (berthLastStatus !== null && status !== berthLastStatus) berthSay(`Status: ${status}`);
  berthLastStatus = status;
});
document.addEventListener("DOMContentLoaded", () => {
  const badge = document.querySelector("#panel .badge.status");
  if (badge) berthLastStatus = badge.textContent.trim();
});

// htmx:load fires for the page once and for each piece HTMX swaps in; only
// that piece is touched, so a poll elsewhere never scrolls a log being read.
function berthPrepare(root) {
  berthShowCopyButtons(root);
  berthScrollLogs(root);
}
document.addEventListener("DOMContentLoaded", () => berthPrepare(document));
document.addEventListener("htmx:load", (event) => berthPrepare(event.target));
