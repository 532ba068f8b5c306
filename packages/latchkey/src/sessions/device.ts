import { UAParser } from 'ua-parser-js';

/** "Firefox on Linux", "Safari on iPhone", or "Unknown device". Bounded length. */
export function deviceLabel(userAgent: string | undefined): string {
  if (!userAgent) return 'Unknown device';
  const ua = new UAParser(userAgent.slice(0, 512)).getResult();
  const browser = ua.browser.name;
  const os = ua.device.model && ua.device.type === 'mobile' ? ua.device.model : ua.os.name;
  const label = browser && os ? `${browser} on ${os}` : (browser ?? os ?? 'Unknown device');
  return label.slice(0, 64);
}
