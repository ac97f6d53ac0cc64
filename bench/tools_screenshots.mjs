// Screenshots of tools in the real Web Chat UI (headless Debian chromium, playwright-core from
// tests/browser): node bench/tools_screenshots.mjs '<json config>'. config.url: the /chat page;
// config.steps: [{say: text, waitFor: text} | {click: button title, waitFor: text}, …], a
// screenshot after each (config.dir/tools-N.png); prints one JSON result line.
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.resolve('tests/browser/package.json'));
const { chromium } = require('playwright-core');

const config = JSON.parse(process.argv[2]);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage']
});
const result = { screenshots: [] };
const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
try {
  await page.goto(config.url, { waitUntil: 'load' });
  const input = page.locator('[data-id="webchat-sendbox-input"]');
  await input.waitFor({ timeout: 60000 });
  let n = 0;
  for (const step of config.steps) {
    if (step.say) {
      await input.fill(step.say);
      await input.press('Enter');
    } else {
      await page.getByRole('button', { name: step.click, exact: true }).last().click();
    }
    await page.getByText(step.waitFor).last().waitFor({ timeout: 150000 });
    await page.waitForTimeout(800);
    const file = path.join(config.dir, `tools-${++n}.png`);
    await page.screenshot({ path: file });
    result.screenshots.push(file);
  }
} catch (error) {
  result.error = String(error);
  await page.screenshot({ path: path.join(config.dir, 'tools-error.png') });
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
