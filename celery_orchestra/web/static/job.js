// A job's page: its details, the action buttons and its runs with their outcomes, refreshed every 2 s.
"use strict";

const RUNS_PER_PAGE = 50;
// The job's name is the rest of the path, as the status page's links encode it.
const jobName = decodeURIComponent(location.pathname.slice("/jobs/".length));
// `cursors[i]` opens page i of the runs (null: the newest); the last one is the page shown.
const cursors = [null];
let nextCursor = null;
let buttons = null;

function detail(list, term, value) {
  list.append(el("dt", term), el("dd", value));
}

function renderJob(job, nowMs) {
  const list = document.getElementById("details");
  const items = [
    ["State", job.state],
    ["Schedule", `${job.kind.toUpperCase()}: ${job.schedule}`],
    ["Module and task", job.task],
    ["Due at", wallTime(job.due_at)],
    ["Timezone", job.timezone],
    ["Due in", dueIn(job.due_at, nowMs)],
    ["Attempts", job.attempts],
    ["Tags", job.tags.join(", ") || NONE],
    ["Owner", job.owner],
    ["Last result", lastResult(job.last_run)],
  ];
  if (job.broken) items.push(["Broken", job.broken]);
  const fresh = document.createDocumentFragment();
  for (const [term, value] of items) detail(fresh, term, value);
  list.replaceChildren(fresh);
  updateButtons(buttons, job);
  document.getElementById("actions").hidden = false;
}

function runCells(run) {
  const outcome = run.outcome || {};
  const late = (Date.parse(run.sent_at) - Date.parse(run.fire_time)) / 1000;
  const took = outcome.took_seconds;
  return [
    [wallTime(run.fire_time) + (run.manual ? " manual" : ""), ""],
    [wallTime(run.sent_at), "c-sent"],
    [lateBy(late), "num c-late"],
    [run.task_id, "c-task-id"],
    [runResult(run), "result result-" + runResult(run).toLowerCase().split(/[^a-z]/)[0]],
    [wallTime(outcome.finished_at), ""],
    [took === null || took === undefined ? NONE : lateBy(took), "num"],
    [outcome.error || NONE, "error"],
  ];
}

function renderRuns(listing) {
  const rows = listing.runs.map((run) => {
    const tr = el("tr");
    tr.append(...runCells(run).map(([text, cls]) => el("td", text, cls ? { class: cls } : {})));
    return tr;
  });
  if (!rows.length) {
    const empty = el("tr");
    empty.append(el("td", "No runs recorded.", { colspan: "8" }));
    rows.push(empty);
  }
  document.querySelector("#runs tbody").replaceChildren(...rows);
  setText(document.getElementById("notice"), outcomesNotice(listing.runs));
  nextCursor = listing.next_cursor;
  document.getElementById("older").disabled = nextCursor === null;
  document.getElementById("newer").disabled = cursors.length === 1;
}

async function refresh() {
  const cursor = cursors[cursors.length - 1];
  const query = new URLSearchParams({ limit: RUNS_PER_PAGE });
  if (cursor) query.set("cursor", cursor);
  const [job, runs] = await Promise.all([api(apiJobPath(jobName)), api(apiJobPath(jobName) + "/runs?" + query)]);
  renderJob(job, Date.now());
  renderRuns(runs);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("name").textContent = jobName;
  document.title = jobName + " – celery-orchestra";
  let refreshNow = null;
  buttons = actionButtons(() => refreshNow());
  document.getElementById("actions").append(buttons.pause, buttons.enable, buttons.run);
  refreshNow = everyFewSeconds(refresh);
  document.getElementById("older").addEventListener("click", () => {
    if (nextCursor !== null) cursors.push(nextCursor);
    refreshNow();
  });
  document.getElementById("newer").addEventListener("click", () => {
    if (cursors.length > 1) cursors.pop();
    refreshNow();
  });
});
