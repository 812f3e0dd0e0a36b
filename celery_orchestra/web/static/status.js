// The status page: the beat liveness line and one page of the status table, refreshed every 2 s.
"use strict";

// The status table's cells after State and Job name, in the CLI's order; `cls` hides a column at
// narrow widths (dashboard.css), least useful first, as `celery orchestra status` does.
const CELLS = [
  ["schedule", "c-schedule", (job) => job.kind.toUpperCase()],
  ["task", "c-task", (job) => job.task],
  ["dueAt", "c-due-at", (job) => wallTime(job.due_at)],
  ["timezone", "", (job) => job.timezone],
  ["dueIn", "num", (job, now) => dueIn(job.due_at, now)],
  ["attempts", "num c-attempts", (job) => job.attempts],
  ["tags", "c-tags", (job) => job.tags.join(", ")],
  ["owner", "c-owner", (job) => job.owner],
  ["result", "c-result", (job) => lastResult(job.last_run)],
];

const FIRST_PAGE = "orchestra:first-page";
const page = { offset: 0, limit: 100, q: "", tag: "", state: "", total: 0, nextOffset: null };
// Rows by job name, reused across refreshes so that a focused button keeps its focus.
const rows = new Map();
// Database time minus this browser's clock, from the beats' `checked_at`: "Due in" as the CLI sees it.
let clockSkewMs = 0;
let refreshNow = null;

function jobsQuery() {
  const query = new URLSearchParams({ offset: page.offset, limit: page.limit });
  if (page.q) query.set("q", page.q);
  if (page.state) query.set("state", page.state);
  for (const tag of page.tag.split(",")) if (tag.trim()) query.append("tag", tag.trim());
  return "/api/jobs?" + query;
}

function newRow() {
  const cells = { state: el("td"), name: el("td", null, { class: "name" }) };
  const link = el("a");
  cells.name.append(link);
  for (const [key, cls] of CELLS) cells[key] = el("td", null, cls ? { class: cls } : {});
  const buttons = actionButtons(() => refreshNow());
  const actions = el("td", null, { class: "actions" });
  actions.append(buttons.pause, buttons.enable, buttons.run);
  const tr = el("tr");
  tr.append(cells.state, cells.schedule, cells.name, ...CELLS.slice(1).map(([key]) => cells[key]), actions);
  return { tr, cells, link, buttons };
}

function renderJobs(listing) {
  const now = Date.now() + clockSkewMs;
  const tbody = document.querySelector("#jobs tbody");
  const seen = new Set();
  listing.jobs.forEach((job, index) => {
    let row = rows.get(job.name);
    if (!row) {
      row = newRow();
      rows.set(job.name, row);
    }
    seen.add(job.name);
    setText(row.cells.state, job.state);
    row.cells.state.className = "state state-" + job.state.toLowerCase();
    setText(row.link, job.name);
    row.link.href = jobPath(job.name);
    for (const [key, , value] of CELLS) setText(row.cells[key], value(job, now));
    updateButtons(row.buttons, job);
    // Move a row only when it is out of place: moving a row would take the focus from its button.
    if (tbody.children[index] !== row.tr) tbody.insertBefore(row.tr, tbody.children[index] || null);
  });
  for (const [name, row] of rows) {
    if (!seen.has(name)) {
      row.tr.remove();
      rows.delete(name);
    }
  }
  page.total = listing.total;
  page.nextOffset = listing.next_offset;
  const first = listing.jobs.length ? listing.offset + 1 : 0;
  const last = listing.offset + listing.jobs.length;
  setText(document.getElementById("range"), `${first}-${last} of ${listing.total} jobs`);
  setText(document.getElementById("caption"), `${listing.total} jobs, times in each job's zone`);
  setText(document.getElementById("notice"), outcomesNotice(listing.jobs.map((job) => job.last_run)));
  document.getElementById("previous").disabled = listing.offset === 0;
  document.getElementById("next").disabled = listing.next_offset === null;
}

function renderBeats(liveness) {
  clockSkewMs = Date.parse(liveness.checked_at) - Date.now();
  const line = document.getElementById("beat");
  setText(line, liveness.summary);
  line.classList.toggle("warning", liveness.active === null);
}

async function refresh() {
  const [liveness, listing] = await Promise.all([api("/api/beats"), api(jobsQuery())]);
  renderBeats(liveness);
  renderJobs(listing);
  // When the first page was on screen: after the frame that drew it (benchmarks/bench_dashboard.py reads it).
  if (!performance.getEntriesByName(FIRST_PAGE).length) {
    requestAnimationFrame(() => setTimeout(() => performance.mark(FIRST_PAGE)));
  }
}

async function loadTags() {
  const tags = await api("/api/tags");
  document.getElementById("tags").replaceChildren(...tags.map((tag) => el("option", null, { value: tag.tag })));
}

document.addEventListener("DOMContentLoaded", () => {
  refreshNow = everyFewSeconds(refresh);
  const form = document.getElementById("filters");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    page.q = fields.get("q").trim();
    page.tag = fields.get("tag").trim();
    page.state = fields.get("state");
    page.limit = Number(fields.get("limit"));
    page.offset = 0;
    refreshNow();
  });
  document.getElementById("previous").addEventListener("click", () => {
    page.offset = Math.max(0, page.offset - page.limit);
    refreshNow();
  });
  document.getElementById("next").addEventListener("click", () => {
    if (page.nextOffset !== null) page.offset = page.nextOffset;
    refreshNow();
  });
  // The tags are listed when the Tag field is first used: the first page waits for two requests only.
  form.elements.tag.addEventListener("focus", () => loadTags().catch((error) => say(error.message, true)), {
    once: true,
  });
});
