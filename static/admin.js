// Admin job console: start scrapers with fetch, then follow the job live.
// Polls job_status every 500 ms with a chained setTimeout that stops at a
// final status. Scraped text only ever goes in through textContent.
(function () {
  "use strict";

  var POLL_MS = 500;
  var RELOAD_MS = 2000;
  var RETRY_MS = 2000;
  var FINAL = { completed: true, failed: true };

  var box = document.getElementById("job-box");
  var jobIdLabel = document.getElementById("job-id");
  var badge = document.getElementById("job-status");
  var bar = document.getElementById("job-bar");
  var percent = document.getElementById("job-percent");
  var errorLine = document.getElementById("job-error");
  var messageList = document.getElementById("job-messages");
  var runError = document.getElementById("run-error");
  var followedJobId = null;

  function statusUrl(jobId) {
    return box.dataset.statusUrl.replace("__JOB_ID__", encodeURIComponent(jobId));
  }

  function clockTime(timestamp) {
    var moment = new Date(timestamp);
    return isNaN(moment) ? timestamp : moment.toLocaleTimeString("de-DE");
  }

  function appendMessage(entry) {
    var item = document.createElement("li");
    var time = document.createElement("time");
    time.dateTime = entry.timestamp;
    time.textContent = clockTime(entry.timestamp);
    var text = document.createElement("span");
    text.textContent = entry.message;
    item.append(time, " ", text);
    messageList.appendChild(item);
  }

  function render(job) {
    badge.textContent = job.status.toUpperCase();
    badge.className = "badge status-" + job.status;
    bar.value = job.progress_percent;
    percent.textContent = job.progress_percent + " %";
    var atBottom = messageList.scrollTop + messageList.clientHeight >= messageList.scrollHeight - 4;
    for (var i = messageList.children.length; i < job.messages.length; i++) {
      appendMessage(job.messages[i]);
    }
    if (atBottom) messageList.scrollTop = messageList.scrollHeight;
    errorLine.textContent = job.error || "";
    errorLine.hidden = !job.error;
  }

  function follow(jobId) {
    followedJobId = jobId;
    box.dataset.jobId = jobId;
    jobIdLabel.textContent = jobId;
    messageList.replaceChildren();
    errorLine.hidden = true;
    box.hidden = false;
    poll(jobId);
  }

  function poll(jobId) {
    if (jobId !== followedJobId) return; // a newer job took over the box
    fetch(statusUrl(jobId), { headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
          return body;
        });
      })
      .then(function (job) {
        if (jobId !== followedJobId) return;
        render(job);
        if (job.status === "completed") {
          window.setTimeout(function () { window.location.reload(); }, RELOAD_MS);
        } else if (!FINAL[job.status]) {
          window.setTimeout(function () { poll(jobId); }, POLL_MS);
        }
      })
      .catch(function (error) {
        if (error instanceof TypeError) {
          // Network hiccup (server restarting): keep following, a little slower.
          window.setTimeout(function () { poll(jobId); }, RETRY_MS);
          return;
        }
        errorLine.textContent = "Status nicht abrufbar: " + error.message;
        errorLine.hidden = false;
      });
  }

  function startScraper(event) {
    event.preventDefault();
    var form = event.currentTarget;
    runError.hidden = true;
    var csrfToken = document.querySelector('meta[name="csrf-token"]').content;
    fetch(form.action, {
      method: "POST",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken },
      credentials: "same-origin"
    })
      .then(function (response) {
        return response.json().then(function (body) {
          if (response.status !== 202) throw new Error(body.error || "HTTP " + response.status);
          follow(body.job_id);
        });
      })
      .catch(function (error) {
        runError.textContent = "Start fehlgeschlagen: " + error.message;
        runError.hidden = false;
      });
  }

  document.querySelectorAll("form.run-form").forEach(function (form) {
    form.addEventListener("submit", startScraper);
  });

  // A job that was running when the page (re)loaded is picked up again.
  if (box.dataset.jobId) {
    followedJobId = box.dataset.jobId;
    poll(followedJobId);
  }
})();
