// Renders a window of an irqlab Chrome trace in the Performance panel of
// Chromium's bundled DevTools and saves a PNG.
//
// Usage: node trace-screenshot.js TRACE.json OUT.png [WORK]
//
// The window spans one queue_work arrow and 60 us on either side: of the
// arrows of at most 60 us to runs whose slice name contains WORK (default:
// any), the one with the most slices around it. That run is selected, so DevTools draws
// its arrow. Environment: CHROMIUM (default /usr/bin/chromium).

'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

function usage(message) {
  console.error(`error: ${message}\nusage: trace-screenshot.js TRACE.json OUT.png [WORK]`);
  process.exit(2);
}

// Time shown on either side of the chosen arrow, in microseconds.
const PAD_US = Number(process.env.TRACE_PAD_US || 60);

// Picks the arrow to show and cuts the trace down to the time around it.
function cutTrace(trace, workFilter) {
  const events = trace.traceEvents;
  const isExecution = (e) => e.ph === 'X' && e.cat === 'workqueue' && e.name !== 'queue_work';
  const executionAt = new Map();
  for (const e of events) {
    if (isExecution(e)) executionAt.set(`${e.pid}/${e.tid}/${e.ts}`, e);
  }
  const starts = new Map(events.filter((e) => e.ph === 's').map((e) => [e.id, e]));
  const flows = [];
  for (const end of events.filter((e) => e.ph === 'f')) {
    const execution = executionAt.get(`${end.pid}/${end.tid}/${end.ts}`);
    const start = starts.get(end.id);
    if (execution && start) flows.push({ start, end, execution });
  }
  if (flows.length === 0) usage('the trace has no queue_work arrows');

  // Arrows longer than the padding (delayed work) would stretch the window.
  const candidates = flows.filter(
    (flow) => flow.end.ts - flow.start.ts <= PAD_US && (!workFilter || flow.execution.name.includes(workFilter)),
  );
  if (candidates.length === 0) usage(`no arrow of at most ${PAD_US} us ends at a run named like ${JSON.stringify(workFilter || '')}`);

  // The busiest arrow: the one with the most slices within PAD_US of it.
  const sliceStarts = events
    .filter((e) => e.ph === 'X' && e.name !== 'queue_work')
    .map((e) => e.ts)
    .sort((a, b) => a - b);
  const countBefore = (ts) => {
    let low = 0;
    let high = sliceStarts.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (sliceStarts[middle] < ts) low = middle + 1;
      else high = middle;
    }
    return low;
  };
  const busyness = (flow) => countBefore(flow.end.ts + PAD_US) - countBefore(flow.start.ts - PAD_US);
  let chosen = candidates[0];
  for (const flow of candidates) {
    if (busyness(flow) > busyness(chosen)) chosen = flow;
  }

  // The window: the arrow with room on both sides, but starting after the
  // previous run of the same name, so that the chosen run is the first
  // search match.
  const end = chosen.execution.ts + chosen.execution.dur;
  const pad = PAD_US;
  let from = chosen.start.ts - pad;
  for (const e of events) {
    if (isExecution(e) && e.name === chosen.execution.name && e.ts < chosen.execution.ts) {
      from = Math.max(from, e.ts + e.dur + 0.001);
    }
  }
  const to = end + pad;

  const overlaps = (e) => e.ts <= to && e.ts + (e.dur || 0) >= from;
  const flowEnds = new Map();
  for (const e of events) {
    if ((e.ph === 's' || e.ph === 'f') && overlaps(e)) flowEnds.set(e.id, (flowEnds.get(e.id) || 0) + 1);
  }
  const kept = events.filter((e) => {
    if (e.ph === 'M') return true;
    if (e.ph === 's' || e.ph === 'f') return flowEnds.get(e.id) === 2;
    return overlaps(e);
  });
  const threads = new Set(kept.filter((e) => e.ph === 'X').map((e) => `${e.pid}/${e.tid}`));
  const tracks = kept.filter((e) => e.ph === 'M' && e.name === 'thread_name' && threads.has(`${e.pid}/${e.tid}`));
  const processes = new Set(tracks.map((e) => e.pid));
  return {
    trace: { ...trace, traceEvents: kept.filter((e) => e.ph !== 'M' || e.tid === undefined || threads.has(`${e.pid}/${e.tid}`)) },
    searchFor: chosen.execution.name,
    latency: chosen.end.ts - chosen.start.ts,
    // Track groups: one per process, then one per thread inside it.
    groups: [...processes].sort().map((pid) => tracks.filter((e) => e.pid === pid).length),
    window: [from, to],
  };
}

async function main() {
  const [input, output, workFilter] = process.argv.slice(2);
  if (!input || !output) usage('missing arguments');
  let trace;
  try {
    trace = JSON.parse(fs.readFileSync(input, 'utf8'));
  } catch (error) {
    usage(`cannot read trace ${input}: ${error.message}`);
  }
  if (!Array.isArray(trace.traceEvents)) usage(`${input} has no traceEvents array`);
  const cut = cutTrace(trace, workFilter);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'trace-screenshot-'));
  const cutPath = path.join(scratch, 'window.json');
  fs.writeFileSync(cutPath, JSON.stringify(cut.trace));
  console.log(
    `window ${cut.window.map((t) => (t / 1000).toFixed(3)).join(' to ')} ms; ` +
      `selected ${cut.searchFor}, queued ${cut.latency.toFixed(3)} us before it started`,
  );

  // A fresh profile; the DevTools front end is served by the browser's
  // own debugging server, on a loopback port the browser picks.
  const profile = path.join(scratch, 'profile');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 640 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0'],
  });
  try {
    const port = fs.readFileSync(path.join(profile, 'DevToolsActivePort'), 'utf8').split('\n')[0];
    const page = context.pages()[0] || (await context.newPage());
    await page.goto(`http://127.0.0.1:${port}/devtools/trace_app.html`);

    // The front end has no page to debug and shows a dialog about it.
    const dialogClose = page.locator('[data-devtools-glass-pane] [aria-label="Close"]').first();
    await dialogClose.click({ timeout: 5000 }).catch(() => {});
    await page.getByText('Performance', { exact: true }).first().click();
    const chooser = page.waitForEvent('filechooser');
    await page.locator('[aria-label^="Load trace"]').first().click();
    await (await chooser).setFiles(cutPath);
    await page.getByText('irqlab (1)').first().waitFor({ timeout: 2000 }).catch(() => {});
    await page.waitForTimeout(3000);

    // Close the shortcut pop-up and the sidebar, then expand the tracks:
    // first the process group, then each thread, from the bottom up so
    // that rows above keep their place.
    await page.locator('[aria-label="Close"]').filter({ visible: true }).last().click({ timeout: 2000 }).catch(() => {});
    await page.locator('[aria-label="Hide sidebar"]').first().click({ timeout: 2000 }).catch(() => {});
    await page.waitForTimeout(500);
    const rowHeight = 21;
    const firstRow = 129;
    await page.mouse.click(10, firstRow);
    await page.waitForTimeout(300);
    for (let k = cut.groups[0]; k >= 1; k--) {
      await page.mouse.click(20, firstRow + rowHeight * k);
      await page.waitForTimeout(200);
    }

    // Select the chosen run through the search box; DevTools then draws
    // the arrow from the queue_work that caused it.
    await page.mouse.move(700, 300);
    await page.keyboard.press('Control+f');
    await page.keyboard.type(cut.searchFor);
    await page.keyboard.press('Enter');
    await page.waitForTimeout(1000);
    await page.screenshot({ path: output });
  } finally {
    await context.close();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(`error: ${error.message}`);
  process.exit(1);
});
