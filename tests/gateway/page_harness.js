// Runs the waiting-room page's script in node against a live gateway, with a tiny fake DOM
// (no EventSource, so the page polls), and walks a visitor through join, booking and
// confirmation, then a reload. Usage: node page_harness.js <page script file> <base URL> <room>
// Prints one JSON line with what the page showed; exits non-zero on a timeout.
"use strict";

const fs = require("fs");
const vm = require("vm");
const [scriptFile, baseUrl, room] = process.argv.slice(2);

class FakeElement {
  constructor(id) {
    this.id = id; this.textContent = ""; this.hidden = false; this.value = "";
    this.className = ""; this.disabled = false; this.children = []; this.listeners = {};
    this.dataset = {}; this.attributes = {};
  }
  setAttribute(name, value) { this.attributes[name] = String(value); }
  addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); }
  set onerror(fn) { this.listeners.error = [fn]; }
  fire(type) {
    for (const fn of this.listeners[type] || []) fn({ preventDefault() {} });
  }
  focus() {}
  replaceChildren(...nodes) { this.children = nodes; }
  append(...nodes) { this.children.push(...nodes); }
  add(option) { this.children.push(option); }
  get options() { return this.children; }
}

const elements = new Map();
globalThis.document = {
  title: "",
  getElementById(id) {
    if (!elements.has(id)) elements.set(id, new FakeElement(id));
    return elements.get(id);
  },
  createElement(tag) { return new FakeElement(tag); },
  querySelectorAll() { return []; }, // no static texts in this fake DOM
  documentElement: { lang: "" },
};
globalThis.Option = function Option(text, value) { return { text, value }; };
globalThis.window = globalThis;
globalThis.confirm = () => true;
globalThis.location = { pathname: "/rooms/" + room };
const storage = new Map([["fairq.language", "en"]]); // the visitor chose English
globalThis.localStorage = {
  getItem: (k) => (storage.has(k) ? storage.get(k) : null),
  setItem: (k, v) => storage.set(k, String(v)),
  removeItem: (k) => storage.delete(k),
};
const realFetch = globalThis.fetch;
globalThis.fetch = (path, init) => realFetch(new URL(path, baseUrl), init);

const el = (id) => document.getElementById(id);
const moveSection = () => !el("book-section").hidden;
async function until(check, what) {
  const deadline = Date.now() + 60000;
  while (!check()) {
    if (Date.now() > deadline) {
      console.error("timed out waiting for: " + what + "; message: " + el("message").textContent
        + "; alert: " + el("alert").textContent);
      process.exit(2);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

(async () => {
  vm.runInThisContext(fs.readFileSync(scriptFile, "utf8")); // fairqPow, fairqPage; runs it
  const seen = {};
  await until(() => !el("join-section").hidden, "the join form");
  seen.title = el("title").textContent;
  el("join-form").fire("submit");
  await until(() => storage.has("fairq." + room + ".ticket"), "a ticket");
  await until(() => !el("book-section").hidden, "admission");
  seen.admitted = el("queue-state").textContent;
  seen.counties = el("county").options.map((o) => o.value);
  el("county").value = seen.counties[1];
  el("county").fire("change");
  seen.centers = el("center").options.map((o) => o.value);
  el("book-form").fire("submit");
  await until(() => el("booking-state").textContent.startsWith("Held"), "a held pair");
  seen.held = el("booking-state").textContent;
  seen.appointments = el("appointments").children.length;
  seen.countdown = el("hold-countdown").textContent;
  seen.buttons = [el("confirm-button").hidden, el("cancel-button").hidden];
  seen.identityKeyField = el("identity-key-field").hidden;
  el("identity-key").value = "A123 456-789";
  el("confirm-button").fire("click");
  await until(() => el("booking-state").textContent === "Booked", "the confirmation");
  seen.confirmed = el("booking-state").textContent;
  seen.reference = el("booking-reference").textContent;
  el("booking-state").textContent = "";
  fairqPage(); // a reload: the stored place and booking come back
  await until(() => el("booking-state").textContent === "Booked", "the booking after a reload");
  seen.reloaded = el("booking-state").textContent;
  // change to the other county's center: a move that crosses partitions
  seen.moveButton = el("move-button").hidden;
  el("move-button").fire("click");
  seen.moveHeading = el("book-heading").textContent;
  el("county").value = seen.counties[2];
  el("county").fire("change");
  el("book-form").fire("submit");
  await until(() => !moveSection(), "the move's answer");
  seen.movedState = el("booking-state").textContent;
  const id = storage.get("fairq." + room + ".booking_id");
  const token = storage.get("fairq." + room + ".booking_token");
  const r = await fetch("/api/bookings/" + id, { headers: { Authorization: "Bearer " + token } });
  const view = await r.json();
  seen.movedTo = [...new Set(view.appointments.map((a) => a.center))];
  seen.moves = view.moves;
  console.log(JSON.stringify(seen));
  process.exit(0);
})();
