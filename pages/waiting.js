// anteroom's waiting-page script: listens to the event stream (data-events-url), else polls the
// status endpoint, backs off when the network fails,
// asks at once when a frozen or hidden tab comes back, and reloads the page when the visitor's
// turn comes (a form post is never sent again: the URL is opened instead).
//
// A custom page includes it with one line: <script src="{{ waiting_js_url }}" defer></script>
// Its settings come from the data attributes of the element with id "room" (the built-in page's
// <main>), else from the script tag's own: data-status-url, data-leave-url, data-poll,
// data-state, data-place ("1" when the visitor holds a place), data-form ("1" on a page that
// answers a form post), data-join-url, data-worker-url, and in a room with a join challenge
// data-challenge-nonce and data-challenge-difficulty (a status answer's "challenge" works too),
// data-text (the page's strings as JSON, English when absent; times follow <html lang>). Every element it fills is optional (ids: where-lead, where-num,
// where-tail, depth, wait, msg, bar, bar-fill, updated, ...). After each answer it dispatches
// "anteroom:status" on document with the status JSON as `detail`, for a page to show its own way.
(function () {
  "use strict";
  var script = document.currentScript;
  var root = document.getElementById("room");
  var d = (root && root.dataset) || (script && script.dataset) || {};
  if (!d.statusUrl) d = Object.assign({ statusUrl: "/__anteroom/status", leaveUrl: "/__anteroom/leave", place: "1" }, d);
  d = Object.assign({ joinUrl: "/__anteroom/join", workerUrl: "/__anteroom/pow-worker.js", eventsUrl: "/__anteroom/events" }, d);
  var none = { hidden: true, style: {}, dataset: {}, setAttribute: function () {}, getAttribute: function () { return null; },
    querySelector: function () { return null; }, addEventListener: function () {}, focus: function () {} };
  function $(id) { return document.getElementById(id) || none; }
  function num(v, dflt) { var n = Number(v); return v !== "" && v != null && isFinite(n) ? n : dflt; }
  var poll = Math.max(2, num(d.poll, 5));
  var pos = num(d.position, null), pct = num(d.progress, 0);
  var lang = document.documentElement.lang || undefined, words = {};
  try { words = JSON.parse(d.text || "{}") || {}; } catch (e) { words = {}; }
  // The page's string for `key`, with {n}/{time} filled in; English when the page has none.
  function say(key, dflt, fill) {
    var w = typeof words[key] === "string" ? words[key] : dflt;
    return fill == null ? w : w.replace(/\{(n|time)\}/g, String(fill));
  }
  // The visitor's first position in this tab, kept in sessionStorage (no cookie), so that a
  // reload does not reset the bar: progress = (first - now) / first.
  var firstKey = "anteroom-first:" + (d.room || "");
  function first(p) {
    var kept = null;
    try { kept = num(sessionStorage.getItem(firstKey), null); } catch (e) { kept = null; }
    if (kept == null || p > kept) {
      kept = p;
      try { sessionStorage.setItem(firstKey, String(p)); } catch (e) { /* private mode: this page only */ }
    }
    return kept;
  }
  function forget() { try { sessionStorage.removeItem(firstKey); } catch (e) { /* nothing kept */ } }
  var start = pos == null ? null : first(pos);
  var timer = null, busy = false, stopped = false, fails = 0, solving = false, tries = 0;

  function set(el, text) { if (el.textContent !== text) el.textContent = text; }
  function show(el, on) { el.hidden = !on; }
  var clockFormat = null;
  function clock(date) {
    if (isNaN(date)) return "";
    try {
      clockFormat = clockFormat || new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
      return clockFormat.format(date);
    } catch (e) { return date.toLocaleTimeString(); }
  }
  function waitText(s) {
    if (s == null) return say("wait_calculating", "calculating\u2026");
    if (s < 60) return say("wait_under_minute", "less than a minute");
    if (s < 7200) { var m = Math.ceil(s / 60); return m === 1 ? say("wait_minute", "about 1 minute") : say("wait_minutes", "about {n} minutes", m); }
    return say("wait_hours", "about {n} hours", Math.ceil(s / 3600));
  }
  function people(n) { return n === 1 ? say("people_waiting_one", "person waiting") : say("people_waiting", "people waiting"); }
  function setProgress(p) {
    p = Math.max(0, Math.min(100, Math.round(p)));
    $("bar").setAttribute("aria-valuenow", String(p));
    $("bar-fill").style.width = p + "%";
  }
  function setDraw(iso) {
    show($("draw"), !!iso);
    if (iso) { $("draw-time").setAttribute("datetime", iso); set($("draw-time"), clock(new Date(iso)) || iso); }
  }

  // An event's pre-queue: the start time and a countdown to it, ticking every second.
  var startsAt = null, ticking = null;
  function countdown() {
    if (startsAt == null) return;
    var left = Math.max(0, Math.round((startsAt - Date.now()) / 1000));
    var h = Math.floor(left / 3600), m = Math.floor(left % 3600 / 60), sec = left % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    set($("countdown"), left > 0 ? " " + say("countdown", "(in {time})", (h > 0 ? h + ":" + two(m) : m) + ":" + two(sec)) : "");
  }
  function setStart(iso) {
    show($("prequeue"), !!iso);
    startsAt = iso ? Date.parse(iso) : null;
    if (iso) { $("starts").setAttribute("datetime", iso); set($("starts"), clock(new Date(iso)) || iso); }
    if (startsAt != null && ticking == null) ticking = setInterval(countdown, 1000);
    if (startsAt == null && ticking != null) { clearInterval(ticking); ticking = null; set($("countdown"), ""); }
    countdown();
  }
  // Until the start, ask again by then (spread over a few seconds, so a crowd does not ask at once).
  function untilStart(sec) {
    if (startsAt == null) return sec;
    var left = (startsAt - Date.now()) / 1000;
    return left > 0 ? Math.min(sec, left + 1 + Math.random() * 3) : sec;
  }

  function render(j) {
    var depth = typeof j.queue_depth === "number" ? j.queue_depth : 0;
    if (typeof j.position === "number") {
      set($("where-lead"), say("position_lead", "You are number") + " "); set($("where-num"), String(j.position)); set($("where-tail"), say("position_tail", "in line"));
      start = first(j.position);
      if (start > 0) setProgress(Math.min(99, (start - j.position) / start * 100));
    } else {
      set($("where-lead"), ""); set($("where-num"), String(depth)); set($("where-tail"), people(depth));
    }
    show($("depth-line"), typeof j.position === "number");
    set($("depth"), String(depth));
    set($("wait"), waitText(typeof j.estimated_wait_seconds === "number" ? j.estimated_wait_seconds : null));
    var msg = typeof j.message === "string" ? j.message : "";
    set($("msg"), msg); show($("msg"), msg !== "");
    setDraw(typeof j.next_draw_at === "string" ? j.next_draw_at : null);
    show($("paused"), j.state === "paused");
    setStart(j.state === "prequeue" && typeof j.event_starts_at === "string" ? j.event_starts_at : null);
    show($("slowed"), j.state === "queued" && typeof j.admissions_slowed_at === "string");
    // Nobody is let in while paused: no time is promised, the paused line says why.
    show($("wait-line"), j.state !== "paused" && j.state !== "closed" && j.state !== "prequeue");
    show($("closed"), j.state === "closed");
    var now = new Date();
    $("updated").setAttribute("datetime", now.toISOString());
    set($("updated"), clock(now));
  }

  function schedule(sec) { clearTimeout(timer); if (!stopped && !stream) timer = setTimeout(check, sec * 1000); }
  // A form post is never sent again by a reload: the site is opened at the same URL instead.
  function reload() { stopped = true; clearTimeout(timer); if (d.form) location.replace(location.href); else location.reload(); }
  function expired() {
    stopped = true; clearTimeout(timer); forget();
    show($("queue"), false); show($("expired"), true);
    var h = $("expired").querySelector("h1"); if (h) h.focus();
  }
  function fail() {
    fails += 1;
    show($("reconnect"), true);
    schedule(Math.min(30, Math.max(2, poll) * Math.pow(2, fails - 1)));
  }
  // The join challenge: solved in a worker (the page stays responsive), then sent to the join
  // endpoint; its answer sets the cookie, and the page reloads with a place. A refused answer
  // comes with a new challenge, solved in turn (a few times, then the status poll takes over).
  function challengeFailed() {
    solving = false;
    show($("challenge-err"), true);
    schedule(Math.max(2, poll));
  }
  function solveChallenge(c) {
    if (solving || stopped || !c || typeof c.nonce !== "string") return;
    if (typeof Worker !== "function" || tries >= 5) return challengeFailed();
    solving = true; tries += 1; clearTimeout(timer);
    var worker = new Worker(d.workerUrl);
    worker.onerror = function () { worker.terminate(); challengeFailed(); };
    worker.onmessage = function (e) {
      worker.terminate();
      if (!e.data || typeof e.data.solution !== "string") return challengeFailed();
      fetch(d.joinUrl, {
        method: "POST", credentials: "same-origin", cache: "no-store",
        headers: { "Accept": "application/json", "Content-Type": "application/json" },
        body: JSON.stringify({ nonce: c.nonce, solution: e.data.solution })
      })
        .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); })
        .then(function (a) {
          solving = false;
          // A place: the page comes back with it. None (the join budget): ask again when told.
          if (a.ok && a.j.token) return reload();
          if (a.ok) { stopped = true; return setTimeout(reload, Math.max(2, a.j.poll_after_seconds || poll) * 1000); }
          if (a.j && a.j.challenge) return solveChallenge(a.j.challenge);
          challengeFailed();
        })
        .catch(challengeFailed);
    };
    worker.postMessage({ nonce: c.nonce, difficulty: c.difficulty });
  }
  function apply(j) {
    if (stopped) return;
    if (!j || typeof j !== "object") throw new Error("bad status");
    document.dispatchEvent(new CustomEvent("anteroom:status", { detail: j }));
    if (j.challenge && typeof j.position !== "number") { render(j); return solveChallenge(j.challenge); }
    if (j.state === "released" || j.state === "admitted") return reload();
    // The place is gone: say so and stop; joining again is the visitor's choice.
    if (j.state === "expired") return expired();
    fails = 0;
    show($("reconnect"), false);
    if (typeof j.poll_after_seconds === "number" && j.poll_after_seconds > 0) poll = j.poll_after_seconds;
    render(j);
    schedule(untilStart(Math.max(2, poll)));
  }
  function check() {
    if (stopped || busy || stream) return;
    busy = true;
    clearTimeout(timer);
    fetch(d.statusUrl, { headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (stopped) return;
        if (r.status === 404) return reload();
        // Asked too soon (the poll floor): the place is kept; ask again when told.
        if (r.status === 429) return schedule(Math.max(1, +r.headers.get("Retry-After") || poll));
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json().then(apply);
      })
      .catch(fail)
      .then(function () { busy = false; });
  }

  // Push: the event stream brings each change as it happens (the status JSON as `status`
  // events), so the page learns its turn within a second. When it errors or closes before the
  // turn came (too many streams, a proxy that cuts it, a restart), the page polls as before,
  // with its back-off; it does not try the stream again.
  var stream = null;
  function listen() {
    if (!window.EventSource || !d.place || d.noPush) return false;
    try { stream = new EventSource(d.eventsUrl); } catch (e) { stream = null; return false; }
    stream.addEventListener("status", function (e) {
      var j;
      try { j = JSON.parse(e.data); } catch (err) { return unlisten(); }
      apply(j);
    });
    stream.onerror = unlisten;
    return true;
  }
  function unlisten() {
    if (!stream) return;
    stream.close(); stream = null; d.noPush = "1";
    if (!stopped) schedule(Math.max(2, poll));
  }

  $("leave").addEventListener("submit", function (e) {
    e.preventDefault();
    if (!window.confirm(say("leave_confirm", "Leave the line? You will lose your place."))) return;
    var btn = this.querySelector("button");
    btn.disabled = true; stopped = true; clearTimeout(timer);
    show($("leave-err"), false);
    fetch(d.leaveUrl, { method: "POST", headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (!r.ok && r.status !== 404) throw new Error("HTTP " + r.status);
        forget(); show($("queue"), false); show($("msg"), false); show($("left"), true);
        var h = $("left").querySelector("h1"); if (h) h.focus();
      })
      .catch(function () { btn.disabled = false; stopped = false; show($("leave-err"), true); schedule(poll); });
  });
  // A phone that hid or froze the page (resume), or lost the network, asks at once when back,
  // instead of waiting out a poll interval while its turn may already have come.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") check();
  });
  window.addEventListener("pageshow", function (e) { if (e.persisted) check(); });
  document.addEventListener("resume", function () { check(); });
  window.addEventListener("online", function () { check(); });

  // The bar's width is set here, not by a style attribute, which the page's policy blocks.
  setProgress(start > 0 ? Math.min(99, (start - pos) / start * 100) : pct);
  set($("updated"), clock(new Date(d.updated)) || $("updated").textContent);
  if (d.state === "prequeue") setStart($("starts").getAttribute("datetime"));
  var dt = $("draw-time").getAttribute("datetime");
  if (dt) set($("draw-time"), clock(new Date(dt)) || dt);
  // With a place, ask once right after the page loads: the line knows the visitor is here (a
  // ticket that never comes back is skipped when its turn comes), then at the pace the answers
  // set. Without one (a join over budget) wait as told before asking to join again.
  if (d.state === "expired") stopped = true;
  else if (d.challengeNonce) solveChallenge({ nonce: d.challengeNonce, difficulty: num(d.challengeDifficulty, 0) });
  else if (!listen()) schedule(d.place ? Math.min(1, poll) : poll);
})();
