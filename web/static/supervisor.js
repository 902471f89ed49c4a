// The supervisor page: re-fetch the live parts when the box says queues, agents or alerts changed.
"use strict";
(function () {
  const box = document.getElementById("supervisor-live");
  const live = document.getElementById("live");
  if (!box) return;
  let pending = null;
  function refresh() {
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      fetch("/supervisor/live", {credentials: "same-origin"}).then((r) => r.ok ? r.text() : null)
        .then((html) => { if (html !== null) box.innerHTML = html; });
    }, 300);  // many events in a burst make one fetch
  }
  const source = new EventSource("/events");
  source.onopen = () => { live.textContent = "live"; live.dataset.live = "1"; };
  source.onerror = () => { live.textContent = "reconnecting…"; live.dataset.live = ""; };
  source.addEventListener("alert", refresh);
  source.addEventListener("queue", refresh);
})();
