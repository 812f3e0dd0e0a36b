// What both dashboard pages share: API calls with the bearer token, the token prompt, messages,
// the refresh loop and the formats the CLI uses. Data only ever reaches the page as textContent.
"use strict";

const TOKEN_KEY = "celery-orchestra-token";
const REFRESH_MS = 2000;
const NONE = "-";

let pendingToken = null;

// Ask for the token once (every caller waiting at the same time shares the one prompt); it is
// kept in sessionStorage (gone with the tab) and sent in a header, never in a URL.
function askToken(why) {
  if (pendingToken) return pendingToken;
  const dialog = document.getElementById("token-dialog");
  const form = dialog.querySelector("form");
  const input = dialog.querySelector("input");
  dialog.querySelector(".why").textContent = why;
  input.value = "";
  pendingToken = new Promise((resolve) => {
    const submitted = (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      input.value = "";
      form.removeEventListener("submit", submitted);
      dialog.close();
      pendingToken = null;
      resolve(token);
    };
    form.addEventListener("submit", submitted);
  });
  dialog.showModal();
  return pendingToken;
}

// The API's JSON answer; an error's problem+json `detail` (the CLI's message) as the Error's message.
async function api(path, method = "GET") {
  for (;;) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(path, { method, headers, cache: "no-store" });
    if (response.status === 401) {
      // Unless another request got a new token meanwhile, this one is wrong (or missing).
      if (sessionStorage.getItem(TOKEN_KEY) === token) {
        sessionStorage.removeItem(TOKEN_KEY);
        await askToken(token ? "The token was refused; enter another." : "This API needs a token.");
      }
      continue;
    }
    const payload = await response.json().catch(() => null);
    if (!response.ok) {
      throw new Error(payload && payload.detail ? String(payload.detail) : `${response.status} ${response.statusText}`);
    }
    return payload;
  }
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  say("The token is forgotten: the page asks for it again if the API needs one.");
}

function say(text, isError = false) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.classList.toggle("error", isError);
}

// Run `step` now and then REFRESH_MS after each run ends, while the tab is visible. The function
// returned runs it at once (after the one under way, never two at the same time).
function everyFewSeconds(step) {
  let timer = null;
  let running = null;
  let again = false;
  let failed = false;
  const run = async () => {
    if (running) {
      again = true;
      return running;
    }
    clearTimeout(timer);
    running = step().then(
      () => {
        if (failed) say(""); // the error is over
        failed = false;
      },
      (error) => {
        failed = true;
        say(error.message, true);
      },
    );
    await running;
    running = null;
    if (again) {
      again = false;
      return run();
    }
    if (!document.hidden) timer = setTimeout(run, REFRESH_MS);
  };
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) run();
  });
  run();
  return run;
}

// An element with text content and attributes: the only way data enters the page.
function el(tag, text = null, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== null) node.textContent = text;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

// The wall time an ISO 8601 string carries, in its own zone (the job's), as the CLI prints it.
function wallTime(iso) {
  return iso ? iso.slice(0, 19).replace("T", " ") : NONE;
}

function twoUnits(seconds) {
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const secs = seconds % 60;
  const pad = (value) => String(value).padStart(2, "0");
  if (days) return `${days}d ${pad(hours)}h`;
  if (hours) return `${hours}h ${pad(minutes)}m`;
  if (minutes) return `${minutes}m ${pad(secs)}s`;
  return `${secs}s`;
}

// "Due in": `4m 05s`, `now` within a second, `overdue 12s` (ops/status.py humanize_delta).
function dueIn(iso, nowMs) {
  if (!iso) return NONE;
  const seconds = (Date.parse(iso) - nowMs) / 1000;
  if (Math.abs(seconds) < 1) return "now";
  const text = twoUnits(Math.floor(Math.abs(seconds)));
  return seconds < 0 ? "overdue " + text : text;
}

// "Late by" and "Took": milliseconds under a minute, two units above (ops/status.py _late_by).
function lateBy(seconds) {
  return seconds < 60 ? seconds.toFixed(3) + "s" : twoUnits(Math.floor(seconds));
}

// Celery's state when the result backend knows it, else the ledger's (RunInfo.result).
function runResult(run) {
  const outcome = run.outcome;
  if (!outcome || outcome.state === "sent" || (outcome.state === "PENDING" && !run.confirmed)) return run.state;
  return outcome.state;
}

// "outcomes unavailable: <backend>: <why>" when the result backend could not be read, else ""
// (ops/status.py outcomes_notice).
function outcomesNotice(runs) {
  const down = runs.find((run) => run && run.outcome && run.outcome.state === "unknown" && run.outcome.unavailable);
  return down ? "outcomes unavailable: " + down.outcome.unavailable : "";
}

// "SUCCESS 4.000s", "FAILURE 2.100s: ValueError: boom", "sent", or "-" (the status table's Last result).
function lastResult(run) {
  if (!run) return NONE;
  const outcome = run.outcome;
  let text = runResult(run);
  if (outcome && outcome.took_seconds !== null && outcome.took_seconds !== undefined) {
    text += " " + lateBy(outcome.took_seconds);
  }
  if (outcome && outcome.error) text += ": " + outcome.error;
  return text;
}

function jobPath(name) {
  return "/jobs/" + encodeURIComponent(name);
}

function apiJobPath(name) {
  return "/api/jobs/" + encodeURIComponent(name);
}

// Pause/Resume, Enable/Disable and Run for one job; `after` runs once the API has answered.
function actionButtons(after) {
  const make = (label) => el("button", label, { type: "button" });
  const buttons = { pause: make("Pause"), enable: make("Disable"), run: make("Run") };
  const act = async (name, action) => {
    try {
      const reply = await api(apiJobPath(name) + "/" + action, "POST");
      say(action === "run" ? `run of ${name} requested: task id ${reply.task_id}` : reply.description);
    } catch (error) {
      say(error.message, true);
    }
    await after();
  };
  buttons.pause.addEventListener("click", () => act(buttons.pause.dataset.job, buttons.pause.dataset.action));
  buttons.enable.addEventListener("click", () => act(buttons.enable.dataset.job, buttons.enable.dataset.action));
  buttons.run.addEventListener("click", () => act(buttons.run.dataset.job, "run"));
  return buttons;
}

// Point the buttons at `job` as it is now: Resume for a paused job, Enable for a disabled one.
function updateButtons(buttons, job) {
  const pause = job.paused ? "resume" : "pause";
  const enable = job.enabled ? "disable" : "enable";
  const label = (action) => action[0].toUpperCase() + action.slice(1);
  buttons.pause.dataset.job = buttons.enable.dataset.job = buttons.run.dataset.job = job.name;
  buttons.pause.dataset.action = pause;
  buttons.enable.dataset.action = enable;
  setText(buttons.pause, label(pause));
  setText(buttons.enable, label(enable));
  buttons.pause.setAttribute("aria-label", `${label(pause)} ${job.name}`);
  buttons.enable.setAttribute("aria-label", `${label(enable)} ${job.name}`);
  buttons.run.setAttribute("aria-label", `Run ${job.name} now`);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("forget-token").addEventListener("click", forgetToken);
  // Escape would close the token prompt with nothing to send: the page keeps asking instead.
  document.getElementById("token-dialog").addEventListener("cancel", (event) => event.preventDefault());
});
