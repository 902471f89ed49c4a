// The agent console: screen pop over server-sent events, call timer, wrap-up, state and click-to-call.
"use strict";
(function () {
  const root = document.getElementById("console");
  if (!root) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  const cardBox = $("card"), wrapBox = $("wrapup"), wrapForm = $("wrapup-form");
  const calls = {};        // call_id -> {card, answered, mine}
  const KEEP_CALLS = 20;
  let current = null;      // the call on the card
  const saved = new Set(); // calls whose wrap-up is saved: the page's answer and the live event say it once
  let timer = null;
  window.switchboardPops = [];  // [{call_id, at}] when each card reached the page (read by bench/screen_pop.py)

  function post(url, body) {
    return fetch(url, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json"},
      body: JSON.stringify(body)})
      .then((r) => r.json().catch(() => ({error: "the box answered " + r.status}))
        .then((data) => { if (!r.ok && !data.error) data.error = "the box answered " + r.status; return data; }));
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function minutes(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const s = Math.round(seconds);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function when(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleDateString(undefined, {day: "numeric", month: "short"}) + " " +
      d.toLocaleTimeString(undefined, {hour: "2-digit", minute: "2-digit"});
  }

  function fact(dl, term, value) {
    if (value === null || value === undefined || value === "") return;
    dl.append(el("dt", term), el("dd", value));
  }

  function render(card) {
    const view = $("card-template").content.cloneNode(true);
    const customer = card.customer;
    const who = customer && customer.name ? customer.name : (card.internal ? (card.caller_name || "Colleague") :
      "Unknown caller");
    view.querySelector(".who").textContent = who + (customer && customer.company ? " · " + customer.company : "");
    view.querySelector(".number").textContent = card.number_display || card.number || "";
    const badges = view.querySelector(".badges");
    if (card.segment) badges.append(el("span", card.segment, "badge badge-" + card.segment));
    if (card.direction && card.direction !== "inbound") badges.append(" ", el("span", card.direction, "badge"));
    ((customer && customer.tags) || []).forEach((t) => badges.append(" ", el("span", t, "badge tag")));
    const alerts = view.querySelector(".alerts");
    (card.alerts || []).forEach((a) => {
      const item = el("li", a.message, "alert alert-" + a.kind);
      item.setAttribute("role", "alert");
      alerts.append(item);
    });
    const dl = view.querySelector(".facts");
    if (card.expected_handling_s) fact(dl, "Expected length", "about " + minutes(card.expected_handling_s) + " min");
    fact(dl, "Menu choices", card.ivr_text);
    if (card.queue) fact(dl, "Waited in " + card.queue, minutes(card.queue_wait_s || 0));
    fact(dl, "Line", card.line && card.line !== "internal" ? card.line : "");
    if (customer && customer.notes) view.querySelector(".notes").textContent = customer.notes;
    const tbody = view.querySelector(".history tbody");
    (card.history || []).forEach((h) => {
      const row = el("tr");
      row.append(el("td", when(h.started_at)), el("td", h.agent || "—"), el("td", minutes(h.duration) || "—"),
        el("td", h.outcome || h.disposition || ""), el("td", (h.moods || []).join(", ")));
      tbody.append(row);
    });
    if (!(card.history || []).length) {
      const row = el("tr"); const cell = el("td", "First call", "muted"); cell.colSpan = 5;
      row.append(cell); tbody.append(row);
    }
    const quick = view.querySelector(".quick-create");
    if (customer && !customer.name && !card.internal) quick.hidden = false;
    quick.addEventListener("submit", (e) => { e.preventDefault(); quickCreate(card, quick); });
    const link = view.querySelector(".open-customer");
    if (customer) { link.href = "/customers/" + customer.id; link.hidden = false; }
    cardBox.replaceChildren(view);
    cardBox.dataset.callId = card.call_id;
    cardBox.dataset.state = "ringing";
  }

  function quickCreate(card, form) {
    const data = {number: card.number, name: form.name.value, company: form.company.value, call_id: card.call_id};
    post("/api/customers", data).then((res) => {
      if (res.error) { form.append(el("p", res.error, "flash flash-error")); return; }
      fetch("/api/card/" + encodeURIComponent(card.call_id), {credentials: "same-origin"})
        .then((r) => r.json()).then((fresh) => { calls[card.call_id].card = fresh; showCard(card.call_id); });
    });
  }

  function showCard(callId) {
    const call = calls[callId];
    current = callId;
    render(call.card);
    if (call.answered) markAnswered(callId);
  }

  function tick(since) {
    const line = cardBox.querySelector(".timer");
    if (!line) return;
    line.hidden = false;
    line.textContent = "On call " + minutes(Date.now() / 1000 - since);
  }

  function markAnswered(callId) {
    const call = calls[callId];
    if (current !== callId) return;
    if (call.mine) {
      cardBox.dataset.state = "talking";
      clearInterval(timer);
      tick(call.answeredAt);
      timer = setInterval(() => tick(call.answeredAt), 1000);
    } else {
      cardBox.dataset.state = "elsewhere";
      const line = cardBox.querySelector(".timer");
      line.hidden = false;
      line.textContent = "Answered by " + (call.answeredBy || "a colleague");
    }
  }

  function openWrapup(callId) {
    if (saved.has(callId)) return;
    wrapForm.reset();
    wrapForm.call_id.value = callId;
    const card = (calls[callId] || {}).card || {};
    const who = card.customer && card.customer.name ? card.customer.name : (card.caller_name || card.number_display ||
      card.number || "the caller");
    $("wrapup-for").textContent = "For the call with " + who + (card.started_at ? " at " + when(card.started_at) : "");
    $("wrapup-error").hidden = true;
    wrapBox.hidden = false;
    const first = wrapForm.querySelector('input[name="outcome"]');
    if (first) first.focus();
  }

  function closeWrapup(callId, message) {
    if (saved.has(callId)) return;
    saved.add(callId);
    if (wrapForm.call_id.value === callId) wrapBox.hidden = true;
    if (message && current === callId) cardBox.append(el("p", message, "flash flash-info"));
  }

  const handlers = {
    card(data) {
      calls[data.call_id] = {card: data, answered: false, mine: false};
      const ids = Object.keys(calls);  // a tab open all day keeps only the recent calls
      ids.slice(0, Math.max(0, ids.length - KEEP_CALLS)).forEach((id) => { if (id !== current) delete calls[id]; });
      showCard(data.call_id);
      window.switchboardPops.push({call_id: data.call_id, at: performance.timeOrigin + performance.now()});
    },
    answered(data) {
      const call = calls[data.call_id];
      if (!call) return;
      Object.assign(call, {answered: true, mine: data.mine, answeredBy: data.answered_by, answeredAt: data.at});
      markAnswered(data.call_id);
    },
    ended(data) {
      const call = calls[data.call_id];
      if (!call) return;
      call.ended = true;
      if (call.mine && current !== data.call_id) showCard(data.call_id);
      if (current !== data.call_id) return;
      clearInterval(timer);
      cardBox.dataset.state = "ended";
      const line = cardBox.querySelector(".timer");
      line.hidden = false;
      if (!call.answered) line.textContent = "Missed: the caller hung up or went elsewhere";
      else if (call.mine) line.textContent = "Call ended after " + minutes(data.at - call.answeredAt);
      if (!call.mine) return;
      if (!call.card.internal) { openWrapup(data.call_id); return; }
      const ask = el("button", "Wrap up this call", "secondary");  // a colleague's call needs none unless asked
      ask.type = "button";
      ask.addEventListener("click", () => { ask.remove(); openWrapup(data.call_id); });
      cardBox.append(ask);
    },
    agent(data) { showState(data); },
    wrapup_saved(data) { closeWrapup(data.call_id, "Wrap-up saved: " + data.outcome); },
    customer(data) {  // a customer was named from a card, maybe in another tab: show it here too
      if (!calls[data.call_id]) return;
      fetch("/api/card/" + encodeURIComponent(data.call_id), {credentials: "same-origin"}).then((r) => r.json())
        .then((fresh) => {
          if (fresh.error || !calls[data.call_id]) return;
          calls[data.call_id].card = fresh;
          if (current === data.call_id) showCard(data.call_id);
        });
    },
  };

  function showState(data) {
    const state = $("state");
    state.dataset.state = data.state;
    state.textContent = data.state.replace("_", " ");
    $("state-reason").textContent = data.reason ? "(" + data.reason + ")" : "";
    $("go-available").dataset.action = data.state === "paused" ? "unpause" : "login";
    const active = {available: "go-available", paused: "go-pause", logged_out: "go-logout"}[data.state];
    ["go-available", "go-pause", "go-logout"].forEach((id) => {
      const button = $(id);
      button.classList.toggle("secondary", id !== active);
      button.setAttribute("aria-pressed", id === active ? "true" : "false");
    });
  }

  function connect() {
    const source = new EventSource("/events");
    source.onopen = () => { $("live").textContent = "live"; $("live").dataset.live = "1"; };
    source.onerror = () => { $("live").textContent = "reconnecting…"; $("live").dataset.live = ""; };
    Object.keys(handlers).forEach((name) => source.addEventListener(name, (e) => handlers[name](JSON.parse(e.data))));
  }

  wrapForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const form = new FormData(wrapForm);
    const local = form.get("callback_at");
    const body = {call_id: form.get("call_id"), outcome: form.get("outcome"), moods: form.getAll("moods"),
      note: form.get("note"), callback_at: local ? new Date(local).toISOString() : null};
    $("wrapup-save").disabled = true;
    post("/api/wrapup", body).then((res) => {
      $("wrapup-save").disabled = false;
      if (res.error) { $("wrapup-error").textContent = res.error; $("wrapup-error").hidden = false; return; }
      closeWrapup(body.call_id, "Wrap-up saved: " + res.wrapup.outcome +
        (res.callback_error ? " (no callback: " + res.callback_error + ")" : ""));
      if (current === body.call_id) cardBox.dataset.state = "saved";
    });
  });

  root.querySelectorAll("[data-action]").forEach((button) => button.addEventListener("click", () => {
    const action = button.dataset.action;
    post("/api/agent/state", {action, reason: action === "pause" ? $("pause-reason").value : ""}).then((res) => {
      const error = $("state-error");
      error.hidden = !res.error;
      if (res.error) error.textContent = res.error; else showState(res);
    });
  }));

  $("dial-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const number = $("dial-number").value;
    post("/calls/dial", {number}).then((res) => {
      $("dial-result").textContent = res.error ? "Cannot call: " + res.error : "Calling " + number + ": pick up your phone.";
    });
  });

  // Calls that ended while no console was open still want their wrap-up.
  const pending = (root.dataset.pending || "").split(" ").filter(Boolean);
  if (pending.length) {
    fetch("/api/card/" + encodeURIComponent(pending[0]), {credentials: "same-origin"}).then((r) => r.json())
      .then((card) => {
        if (card.error || calls[card.call_id]) return;
        calls[card.call_id] = {card, answered: false, mine: true, ended: true};
        showCard(card.call_id);
        cardBox.dataset.state = "ended";
        openWrapup(card.call_id);
      });
  }
  showState({state: $("state").dataset.state, reason: ($("state-reason").textContent || "").replace(/[()]/g, "")});
  connect();
})();
