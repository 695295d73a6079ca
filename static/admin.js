// Admin job console: start scrapers with fetch, then follow every unfinished job live.
// Each job has its own progress box and its own chained setTimeout (500 ms) that
// stops at a final status. Scraped text only ever goes in through textContent.
(function () {
  "use strict";

  var POLL_MS = 500;
  var RELOAD_MS = 2000;
  var RETRY_MS = 2000;
  var FINAL = { completed: true, failed: true, cancelled: true };
  // The badges keep the seed's English names; their tooltips are German (as views/labels.py renders them).
  var STATUS_TITLES = {
    queued: "wartet", running: "läuft", completed: "abgeschlossen", failed: "fehlgeschlagen", cancelled: "abgebrochen"
  };
  // Times in the site's zone (DISPLAY_TIMEZONE, on <html>), as the server renders them: the same after a reload.
  var CLOCK = new Intl.DateTimeFormat("de-DE", {
    timeZone: document.documentElement.dataset.timezone || "Europe/Berlin",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"
  });

  var boxes = document.getElementById("job-boxes");
  var template = document.getElementById("job-box-template");
  var runError = document.getElementById("run-error"); // only on the console, not on a job's page
  var followed = {}; // job id -> {box, final}

  function csrfToken() {
    return document.querySelector('meta[name="csrf-token"]').content;
  }

  function statusUrl(jobId) {
    return boxes.dataset.statusUrl.replace("__JOB_ID__", encodeURIComponent(jobId));
  }

  function part(box, name) {
    return box.querySelector("." + name);
  }

  function clockTime(timestamp) {
    var moment = new Date(timestamp);
    return isNaN(moment) ? timestamp : CLOCK.format(moment);
  }

  function appendMessage(list, entry) {
    var item = document.createElement("li");
    var time = document.createElement("time");
    time.dateTime = entry.timestamp;
    time.textContent = clockTime(entry.timestamp);
    var text = document.createElement("span");
    text.textContent = entry.message;
    item.append(time, " ", text);
    list.appendChild(item);
  }

  function render(box, job) {
    part(box, "job-name").textContent = job.label || job.name || "";
    var badge = part(box, "job-status");
    badge.textContent = job.status.toUpperCase();
    badge.className = "job-status badge status-" + job.status;
    badge.title = STATUS_TITLES[job.status] || job.status;
    var bar = part(box, "job-bar");
    bar.value = job.progress_percent;
    bar.setAttribute("aria-valuenow", job.progress_percent);
    part(box, "job-percent").textContent = job.progress_percent + " %";
    var retry = part(box, "job-retry");
    retry.hidden = !job.retry_at || job.status !== "queued";
    retry.textContent = job.retry_at ? "nächster Versuch: " + clockTime(job.retry_at) : "";
    part(box, "cancel-form").hidden = !!FINAL[job.status];
    var list = part(box, "job-messages");
    var atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    for (var i = list.children.length; i < job.messages.length; i++) {
      appendMessage(list, job.messages[i]);
    }
    if (atBottom) list.scrollTop = list.scrollHeight;
    var error = part(box, "job-error");
    error.textContent = job.error || "";
    error.hidden = !job.error;
  }

  function showError(box, message) {
    var error = part(box, "job-error");
    error.textContent = message;
    error.hidden = false;
  }

  function boxFor(jobId) {
    var box = boxes.querySelector('.job-box[data-job-id="' + CSS.escape(jobId) + '"]');
    if (!box) {
      box = template.content.firstElementChild.cloneNode(true);
      box.dataset.jobId = jobId;
      part(box, "job-id").textContent = jobId;
      var link = part(box, "job-link");
      link.href = link.getAttribute("href").replace("__JOB_ID__", encodeURIComponent(jobId));
      var form = part(box, "cancel-form");
      form.action = form.getAttribute("action").replace("__JOB_ID__", encodeURIComponent(jobId));
      boxes.appendChild(box);
    }
    if (!box.dataset.wired) {
      part(box, "cancel-form").addEventListener("submit", cancelJob);
      box.dataset.wired = "1";
    }
    return box;
  }

  function follow(jobId, startedHere) {
    if (followed[jobId] && !followed[jobId].final) return; // already polled
    followed[jobId] = { box: boxFor(jobId), final: false, seenRunning: !!startedHere };
    poll(jobId);
  }

  function othersActive(jobId) {
    return Object.keys(followed).some(function (id) { return id !== jobId && !followed[id].final; });
  }

  function poll(jobId) {
    var entry = followed[jobId];
    var headers = { Accept: "application/json" };
    if (entry.etag) headers["If-None-Match"] = entry.etag; // unchanged job: 304, no body to send or read
    fetch(statusUrl(jobId), { headers: headers, cache: "no-store" })
      .then(function (response) {
        if (response.status === 304) return null;
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
          entry.etag = response.headers.get("ETag");
          return body;
        });
      })
      .then(function (job) {
        if (job === null) { // nothing changed since the last answer, which was not final
          window.setTimeout(function () { poll(jobId); }, POLL_MS);
          return;
        }
        render(entry.box, job);
        if (!FINAL[job.status]) {
          entry.seenRunning = true;
          window.setTimeout(function () { poll(jobId); }, POLL_MS);
          return;
        }
        entry.final = true;
        // The seed reloads after a run completed while watched; with others still running, their
        // boxes stay live. A job that had ended before the page was opened never reloads it.
        if (job.status === "completed" && entry.seenRunning && !othersActive(jobId)) {
          window.setTimeout(function () { window.location.reload(); }, RELOAD_MS);
        }
      })
      .catch(function (error) {
        if (error instanceof TypeError) {
          // Network hiccup (server restarting): keep following, a little slower.
          window.setTimeout(function () { poll(jobId); }, RETRY_MS);
          return;
        }
        showError(entry.box, "Status nicht abrufbar: " + error.message);
      });
  }

  function post(url) {
    return fetch(url, {
      method: "POST",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
      credentials: "same-origin"
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
        return body;
      });
    });
  }

  function startScraper(event) {
    event.preventDefault();
    runError.hidden = true;
    post(event.currentTarget.action)
      .then(function (body) { follow(body.job_id, true); })
      .catch(function (error) {
        runError.textContent = "Start fehlgeschlagen: " + error.message;
        runError.hidden = false;
      });
  }

  function cancelJob(event) {
    event.preventDefault();
    var box = event.currentTarget.closest(".job-box");
    post(event.currentTarget.action).catch(function (error) {
      showError(box, "Abbrechen fehlgeschlagen: " + error.message);
    });
  }

  document.querySelectorAll("form.run-form").forEach(function (form) {
    form.addEventListener("submit", startScraper);
  });

  // Jobs that were unfinished when the page (re)loaded are picked up again.
  boxes.querySelectorAll(".job-box[data-job-id]").forEach(function (box) {
    follow(box.dataset.jobId);
  });
})();
