// privfin node dashboard: live refresh of a job page. Written for privfin (Apache-2.0).
// The page names its state URL in <body data-refresh>; every 2 s the job's status, progress
// and step states are fetched and written into the page; when the job ends the page reloads
// once to show its results. The overview ("/") reloads itself every 10 s.
(function () {
  "use strict";
  var url = document.body.getAttribute("data-refresh");
  if (!url) { return; }
  if (url === "/") {
    window.setTimeout(function () { window.location.reload(); }, 10000);
    return;
  }
  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) { el.textContent = text; }
  }
  function apply(state) {
    var status = String(state.status || "");
    var holder = document.getElementById("job-status");
    if (holder) {
      holder.setAttribute("data-status", status);
      var badge = holder.querySelector(".badge");
      if (badge) {
        badge.textContent = status;
        badge.className = "badge b-" + status.split(" ")[0];
      }
    }
    var prog = state.progress || {};
    var pct = typeof prog.percent === "number" ? prog.percent : (status === "done" ? 100 : 0);
    var bar = document.getElementById("job-progress");
    if (bar) { bar.value = pct; bar.textContent = pct + "%"; }
    setText("job-percent", pct + "%");
    setText("job-step", prog.step ? "step " + prog.step : "");
    var steps = state.steps || {};
    Object.keys(steps).forEach(function (name) {
      var st = String(steps[name].status);
      document.querySelectorAll('[data-step="' + CSS.escape(name) + '"]').forEach(function (el) {
        if (el.classList.contains("dag-step")) {
          el.setAttribute("class", "dag-step st-" + st);
          var t = el.querySelector(".dag-status");
          if (t) { t.textContent = (el.getAttribute("data-component") || "") + " · " + st; }
        } else {
          el.textContent = st;
        }
      });
    });
    if (state.error) {
      var err = document.getElementById("job-error");
      if (err) { err.hidden = false; err.textContent = state.error; }
    }
    return status === "done" || status === "failed";
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); throw new Error("logged out"); }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (state) {
        if (apply(state)) { window.location.reload(); } else { window.setTimeout(poll, 2000); }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1000);
}());
