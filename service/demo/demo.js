// slotlock's reference booking page: list, then watch (no build step, no dependencies).
"use strict";

const DAYS_AHEAD = 7;
const state = {
  base: window.location.origin,
  key: "",
  resourceId: "",
  holdSeconds: 120,
  slots: new Map(),   // slot id -> slot as the API shows it
  mine: new Map(),    // slot id -> {lockKey, lockUntil} of this page's picks
  events: null,
};

function randomLockKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + state.key };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(state.base + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const envelope = await response.json();
  if (!response.ok) throw new Error(envelope.error ? envelope.error.code + ": " + envelope.error.message : response.status);
  return envelope;
}

function setStatus(text) { document.getElementById("status").textContent = text; }

// List every coming slot (all pages), then watch from the list's event id.
async function listThenWatch() {
  if (state.events) state.events.close();
  const from = new Date();
  const to = new Date(from.getTime() + DAYS_AHEAD * 86400000);
  state.slots.clear();
  let page = 1, eventId = null;
  for (;;) {
    const query = new URLSearchParams({
      resource_id: state.resourceId, start_date: from.toISOString(), end_date: to.toISOString(),
      limit: "50", page: String(page),
    });
    const envelope = await api("GET", "/slots?" + query);
    if (eventId === null) eventId = envelope.meta.event_id;  // the first page's position
    envelope.data.forEach((slot) => state.slots.set(slot.id, slot));
    if (page * envelope.meta.limit >= envelope.meta.total) break;
    page += 1;
  }
  render();
  watch(eventId);
}

function watch(eventId) {
  const query = new URLSearchParams({ key: state.key, last_event_id: eventId });
  const source = new EventSource(state.base + "/resources/" + encodeURIComponent(state.resourceId) + "/events?" + query);
  state.events = source;
  const onSlot = (message) => {
    const slot = JSON.parse(message.data).slot;
    state.slots.set(slot.id, slot);
    render();
  };
  ["slot.created", "slot.updated", "slot.locked", "slot.unlocked", "slot.booked", "slot.released"]
    .forEach((type) => source.addEventListener(type, onSlot));
  source.addEventListener("slot.deleted", (message) => {
    state.slots.delete(JSON.parse(message.data).slot_id);
    render();
  });
  source.addEventListener("reset", () => { listThenWatch().catch((e) => setStatus(String(e))); });
  source.addEventListener("resource.deleted", () => {
    source.close();
    state.slots.clear();
    render();
    setStatus("This resource was deleted.");
  });
  source.onopen = () => setStatus("Live: changes show as they happen.");
  source.onerror = () => setStatus("Reconnecting…");
}

function slotState(slot, nowMs) {
  const mine = state.mine.get(slot.id);
  if (mine && mine.lockUntil > nowMs) return "mine";
  if (slot.num_active_bookings >= slot.capacity) return "booked";
  // Taken until the stream says otherwise: a lock's end arrives as slot.unlocked.
  if (slot.locked_until) return "taken";
  return slot.available ? "free" : "unavailable";
}

const LABELS = { free: "Free", taken: "Taken by someone", booked: "Booked", unavailable: "Unavailable" };

function render() {
  const nowMs = Date.now();
  const days = document.getElementById("days");
  days.textContent = "";
  const ordered = Array.from(state.slots.values())
    .filter((slot) => Date.parse(slot.end_date) > nowMs)
    .sort((a, b) => Date.parse(a.start_date) - Date.parse(b.start_date));
  let currentDay = null;
  for (const slot of ordered) {
    const start = new Date(slot.start_date);
    const day = start.toLocaleDateString(undefined, { weekday: "long", month: "short", day: "numeric" });
    if (day !== currentDay) {
      const heading = document.createElement("h2");
      heading.textContent = day;
      days.appendChild(heading);
      currentDay = day;
    }
    days.appendChild(slotRow(slot, start, nowMs));
  }
  if (ordered.length === 0 && state.resourceId) {
    days.textContent = "No slots in the coming " + DAYS_AHEAD + " days.";
  }
}

function slotRow(slot, start, nowMs) {
  const row = document.createElement("div");
  const current = slotState(slot, nowMs);
  row.className = "slot";
  row.dataset.slotId = slot.id;
  row.dataset.state = current;
  const when = document.createElement("span");
  when.className = "when";
  const end = new Date(slot.end_date);
  when.textContent = start.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + "–" +
    end.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const label = document.createElement("span");
  label.className = "state";
  row.append(when, label);
  if (current === "mine") {
    const left = Math.max(0, Math.ceil((state.mine.get(slot.id).lockUntil - nowMs) / 1000));
    label.textContent = "Yours for " + Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
    row.append(button("Book", () => book(slot.id)), button("Let go", () => letGo(slot.id)));
  } else {
    label.textContent = LABELS[current];
    if (current === "free") row.append(button("Pick", () => pick(slot.id)));
  }
  return row;
}

function button(text, action) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = text;
  element.addEventListener("click", () => action().catch((e) => setStatus(String(e.message || e))));
  return element;
}

async function pick(slotId) {
  const lockKey = randomLockKey();
  const lockUntil = new Date(Date.now() + state.holdSeconds * 1000);
  const envelope = await api("POST", "/slots/" + slotId + "/lock", { lock_key: lockKey, lock_until: lockUntil.toISOString() });
  state.mine.set(slotId, { lockKey, lockUntil: Date.parse(envelope.data.locked_until) });
  state.slots.set(slotId, envelope.data);
  setStatus("Picked: it is held for you until " + new Date(envelope.data.locked_until).toLocaleTimeString() + ".");
  render();
}

async function book(slotId) {
  const mine = state.mine.get(slotId);
  await api("POST", "/bookings", { slot_id: slotId, lock_key: mine.lockKey });
  state.mine.delete(slotId);
  setStatus("Booked.");
  render();
}

async function letGo(slotId) {
  const mine = state.mine.get(slotId);
  const envelope = await api("POST", "/slots/" + slotId + "/unlock", { lock_key: mine.lockKey });
  state.mine.delete(slotId);
  state.slots.set(slotId, envelope.data);
  setStatus("Let go.");
  render();
}

document.getElementById("setup").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = document.getElementById("key").value.trim();
  state.resourceId = document.getElementById("resource").value.trim();
  state.holdSeconds = Number(document.getElementById("hold").value) || 120;
  state.mine.clear();
  listThenWatch().catch((e) => setStatus(String(e.message || e)));
});

// Countdowns, and picks that ran out, change with the clock, not only with events.
setInterval(() => {
  const nowMs = Date.now();
  for (const [slotId, mine] of state.mine) if (mine.lockUntil <= nowMs) state.mine.delete(slotId);
  if (state.slots.size) render();
}, 1000);
