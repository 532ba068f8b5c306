/**
 * config.trustProxy as Fastify's option. Fastify 5 answers a bare number by
 * trusting nothing (a hop count cannot tell a proxy from a direct client), so
 * the configured hop count becomes proxy-addr's (address, hop) function: the n
 * addresses nearest latchkey (the TCP peer first) are proxies. That is right
 * only when latchkey cannot be reached except through those proxies; otherwise
 * configure their addresses or CIDRs.
 */
import type { Config } from '../config.js';

export type TrustProxyOption = false | string[] | ((address: string, hop: number) => boolean);

export function trustProxyOption(trust: Config['trustProxy']): TrustProxyOption {
  if (typeof trust === 'number') return (_address, hop) => hop < trust;
  return trust;
}
