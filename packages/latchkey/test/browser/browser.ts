/**
 * Browser-test scaffolding: Debian's Chromium driven by playwright-core, and
 * screenshots saved as test artifacts (test-artifacts/ is not committed).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env.LATCHKEY_CHROMIUM ?? '/usr/bin/chromium';

/** The flags this machine needs: no sandbox as root, and no background calls to Google's hosts. */
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
}

const root = (p: string) => fileURLToPath(new URL(`../../../../${p}`, import.meta.url));
export const SCREENSHOT_DIR = root('test-artifacts/screenshots');
/** The README's picture of the account page: rewritten only when asked, so tests do not churn it. */
export const DOCS_SCREENSHOT = root('docs/account-page.png');
export const UPDATE_DOCS_SCREENSHOT = process.env.LATCHKEY_UPDATE_SCREENSHOT === '1';

/** Save a full-page screenshot as a test artifact. */
export async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
}

/** User agents of the two "devices", so the account page tells them apart. */
export const LAPTOP_UA =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
export const PHONE_UA =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';
