// Keeps the rescore progress bars of a scoring model's page current: while a job is
// queued or running, its row is refreshed every two seconds from rescores.json.
(function () {
  "use strict";
  var script = document.currentScript;
  var url = script && script.dataset.url;
  var WAITING = { queued: true, running: true };

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-rescore-job]"));
  }

  function waiting() {
    return rows().some(function (row) { return WAITING[row.dataset.status]; });
  }

  function update(jobs) {
    var byId = {};
    jobs.forEach(function (job) { byId[job.id] = job; });
    rows().forEach(function (row) {
      var job = byId[row.dataset.rescoreJob];
      if (!job) { return; }
      row.dataset.status = job.status;
      var bar = row.querySelector("progress");
      bar.value = job.percent;
      bar.textContent = job.percent + "%";
      row.querySelector("[data-rescore-text]").textContent = job.text;
    });
  }

  function poll() {
    if (!url || !waiting()) { return; }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (data) { update(data.jobs); }
        window.setTimeout(poll, 2000);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }

  document.addEventListener("DOMContentLoaded", function () { window.setTimeout(poll, 2000); });
})();
