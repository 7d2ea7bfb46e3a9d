// What both browser scripts share: failing with a message, waiting for what the page shows,
// and axe-core's verdict on a page.

'use strict';

const fs = require('node:fs');
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** Long enough for anything that is coming to arrive on a loaded machine; not a speed bound. */
const ARRIVES = 30_000;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function step(name) {
  console.log(`-- ${name}`);
}

/** Waits until `read()` gives a value `accept` takes, and returns it. */
async function until(what, read, accept = Boolean, timeout = ARRIVES) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await read();
    if (accept(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: still ${JSON.stringify(last)} after ${timeout} ms`);
}

/** axe-core on the page as it is: no serious or critical violation. */
async function accessible(page, what) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    window.axe.run(document, { resultTypes: ['violations'] }).then((r) =>
      r.violations
        .filter((v) => v.impact === 'serious' || v.impact === 'critical')
        .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`),
    ),
  );
  check(result.length === 0, `axe on ${what}:\n  ${result.join('\n  ')}`);
}

module.exports = { ARRIVES, check, step, until, accessible };
