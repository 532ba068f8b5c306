import { UAParser } from 'ua-parser-js';

/*
 * The User-Agent is chosen by the client, and the parser passes through names it
 * captures from it (an Android device model is any word). Labels are stored once
 * each (the store's `devices` table), so only names from these lists make it into
 * a label: the set of labels is finite whatever clients send.
 */
const BROWSERS = new Set([
  'Android Browser', 'Arc', 'Brave', 'Chrome', 'Chrome Headless', 'Chrome WebView', 'Chromium', 'DuckDuckGo', 'Edge',
  'Electron', 'Facebook', 'Firefox', 'Firefox Focus', 'Huawei Browser', 'IE', 'Instagram', 'Konqueror', 'MIUI Browser',
  'Mobile Chrome', 'Mobile Firefox', 'Mobile Safari', 'Opera', 'Opera Mini', 'Opera Mobi', 'Opera Touch', 'Safari',
  'Samsung Browser', 'Silk', 'UCBrowser', 'Vivaldi', 'WebKit', 'Whale', 'Yandex',
]);
const SYSTEMS = new Set([
  'Android', 'Chrome OS', 'Chromium OS', 'Debian', 'Fedora', 'FreeBSD', 'HarmonyOS', 'iOS', 'KaiOS', 'Linux', 'Mac OS',
  'macOS', 'OpenBSD', 'Tizen', 'Ubuntu', 'Windows', 'Windows Phone',
]);
const MODELS = new Set(['iPad', 'iPhone', 'iPod']);

const known = (set: Set<string>, name: string | undefined) => (name !== undefined && set.has(name) ? name : undefined);

/** "Firefox on Linux", "Safari on iPhone", or "Unknown device": one of a bounded set of labels. */
export function deviceLabel(userAgent: string | undefined): string {
  if (!userAgent) return 'Unknown device';
  const ua = new UAParser(userAgent.slice(0, 512)).getResult();
  const browser = known(BROWSERS, ua.browser.name);
  const model = ua.device.type === 'mobile' || ua.device.type === 'tablet' ? known(MODELS, ua.device.model) : undefined;
  const os = model ?? known(SYSTEMS, ua.os.name);
  return browser && os ? `${browser} on ${os}` : (browser ?? os ?? 'Unknown device');
}
