// Drives the real Web Chat UI in headless Debian chromium (playwright-core; no browser download).
// Usage: node drive.mjs '<json config>'; prints one JSON result line.
//   config.url or config.html (+ config.origin): the page to open
//   config.message: what the user types; config.welcomeBubbles: bot bubbles to wait for first
//   config.expectText: the reply is complete when a bot bubble shows it; otherwise when the Direct
//   Line delivers the stream's final activity (window.botloomDirectLine, set by the page)
//   config.stopText: sent while the reply grows (to stop it)
//   config.clickSuggestion: instead of typing config.message, click the suggested action so named
//   config.attach: a file to attach with the paperclip (upload button) before sending the message;
//   config.finals: how many final activities complete the reply (default 1)
//   config.screenshots: {dir, prefix}; config.timeoutMs
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const config = JSON.parse(process.argv[2]);
const FLAGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage'
];

function shot(page, name) {
  if (!config.screenshots) return Promise.resolve(null);
  const file = path.join(config.screenshots.dir, `${config.screenshots.prefix}-${name}.png`);
  return page.screenshot({ path: file }).then(() => file);
}

const browser = await chromium.launch({
  executablePath: config.chromium || '/usr/bin/chromium',
  headless: true,
  args: FLAGS // playwright starts chromium with a new, empty profile (user data dir)
});
const result = { screenshots: [], console: [] };
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 640 } });
  page.on('console', message => {
    if (message.type() === 'error') result.console.push(message.text().slice(0, 300));
  });
  if (config.html) {
    await page.goto(config.origin + '/healthz');
    await page.setContent(config.html, { waitUntil: 'load' });
  } else {
    await page.goto(config.url, { waitUntil: 'load' });
  }
  const input = page.locator('[data-id="webchat-sendbox-input"]');
  await input.waitFor({ timeout: config.timeoutMs });

  // In the page: sample the bot's bubbles every 20 ms, note when Enter is pressed, and (where the
  // page exposes it) when the Direct Line delivers the stream's final activity.
  await page.evaluate(finals => {
    const state = (window.__probe = { samples: [], sentAt: null, finalAt: null, finalText: null, finals: 0 });
    const botTexts = () =>
      [...document.querySelectorAll('.webchat__bubble:not(.webchat__bubble--from-user)')].map(b => b.innerText.trim());
    let last = '';
    setInterval(() => {
      const texts = botTexts();
      const key = JSON.stringify(texts);
      if (key !== last) {
        last = key;
        state.samples.push({ t: performance.now(), texts });
      }
    }, 20);
    document.querySelector('[data-id="webchat-sendbox-input"]').addEventListener(
      'keydown', event => { if (event.key === 'Enter' && state.sentAt === null) state.sentAt = performance.now(); }, true);
    state.arrivals = [];
    window.botloomDirectLine?.activity$.subscribe(activity => {
      const streamType = activity.channelData?.streamType;
      if (state.sentAt !== null && state.arrivals.length < 12) {
        state.arrivals.push({ t: performance.now(), type: activity.type, streamType: streamType ?? null });
      }
      if (activity.type === 'message' && streamType === 'final' && state.sentAt !== null && state.finalAt === null) {
        if (++state.finals < finals) return;
        state.finalAt = performance.now();
        state.finalText = activity.text;
      }
    });
  }, config.finals || 1);
  const bubbles = config.welcomeBubbles || 0;
  if (bubbles) {
    await page.waitForFunction(
      n => document.querySelectorAll('.webchat__bubble:not(.webchat__bubble--from-user)').length >= n,
      bubbles, { timeout: config.timeoutMs });
  }
  await page.waitForTimeout(300);
  result.baseline = await page.evaluate(() => window.__probe.samples.at(-1)?.texts.length ?? 0);
  result.screenshots.push(await shot(page, '1-before'));

  if (config.clickSuggestion) {
    const button = page.getByRole('toolbar', { name: 'Suggested actions' })
      .getByRole('button', { name: config.clickSuggestion, exact: true });
    await button.waitFor({ timeout: config.timeoutMs });
    await page.evaluate(() => { window.__probe.sentAt = performance.now(); });
    await button.click();
  } else {
    if (config.attach) {
      await page.locator('input.webchat__upload-button--file-input').setInputFiles(config.attach);
      result.screenshots.push(await shot(page, '1-attached'));
    }
    await input.fill(config.message);
    await input.press('Enter');
  }

  // A screenshot while the reply grows (new text shown, reply not complete), if it ever does.
  const moment = await page.waitForFunction(
    ({ baseline, expectText }) => {
      const probe = window.__probe;
      const reply = (probe.samples.at(-1)?.texts ?? [])[baseline];
      const complete = expectText ? reply === expectText : probe.finalAt !== null;
      return complete ? 'complete' : reply ? 'growing' : false;
    },
    { baseline: result.baseline, expectText: config.expectText || null },
    { timeout: config.timeoutMs, polling: 20 }
  );
  result.midShot = (await moment.jsonValue()) === 'growing' ? await shot(page, '2-streaming') : null;
  if (config.stopText && result.midShot) {
    // The user stops the reply while it grows, by sending config.stopText.
    await input.fill(config.stopText);
    result.stopAt = await page.evaluate(() => performance.now());
    await input.press('Enter');
  }

  await page.waitForFunction(
    ({ baseline, expectText }) => {
      const probe = window.__probe;
      const reply = (probe.samples.at(-1)?.texts ?? [])[baseline];
      // Web Chat renders Markdown, so a model's final text need not equal the bubble's text.
      return expectText ? reply === expectText : probe.finalAt !== null;
    },
    { baseline: result.baseline, expectText: config.expectText || null },
    { timeout: config.timeoutMs, polling: 20 }
  );
  await page.waitForTimeout(500);
  result.screenshots.push(await shot(page, '3-final'));
  Object.assign(result, await page.evaluate(() => window.__probe));
  result.userTexts = await page.evaluate(() =>
    [...document.querySelectorAll('.webchat__bubble--from-user')].map(b => b.innerText.trim()));
} catch (error) {
  result.error = String(error && error.stack || error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
