// mailhost admin: a little progressive enhancement over server-rendered
// forms. Every page works without this file; it adds live status updates
// and confirmations. No framework, no build step.
"use strict";

(function () {
  // Live connection status: poll the JSON the status page is rendered from.
  var table = document.getElementById("account-status");
  if (table) {
    var live = document.getElementById("status-live");
    var refresh = function () {
      fetch("/admin/status.json", { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (s) {
          s.accounts.forEach(function (a) {
            var row = table.querySelector('tr[data-account="' + CSS.escape(a.account) + '"]');
            if (!row) { return; }
            var state = row.querySelector(".state");
            state.textContent = a.state;
            state.className = "state state-" + a.state.replace(/ /g, "-");
            row.querySelector(".reason").textContent = a.reason;
            row.querySelector(".since").textContent = a.since;
          });
          var k = document.getElementById("kill-state");
          if (k) { k.textContent = s.sending_enabled ? "on" : "off (kill switch)"; }
          if (live) { live.textContent = "updated " + new Date().toLocaleTimeString(); }
        })
        .catch(function (e) { if (live) { live.textContent = "live update failed: " + e.message; } });
    };
    setInterval(refresh, 2000);
  }

  // Forms that need a confirmation (the kill switch, cancel).
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (ev) {
      var box = f.querySelector("input[name=confirm]");
      if (box && box.checked) { return; }
      if (!window.confirm(f.getAttribute("data-confirm"))) { ev.preventDefault(); }
      else if (box) { box.checked = true; }
    });
  });
})();
