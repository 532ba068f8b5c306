/**
 * The JSON routes that take no body (`POST /v1/logout`, `/v1/sessions/revoke-others`).
 * Fetch and axios clients often send `content-type: application/json` with an empty
 * body; Fastify's JSON parser refuses that as invalid JSON (400). Routes registered in
 * a scope prepared here accept it. Anything else is parsed as on every JSON route (the
 * same secure parser, proto and constructor poisoning refused), and other content types
 * stay 415: only `application/json` is a type a cross-site form cannot send.
 */
import type { FastifyInstance } from 'fastify';

/** In an encapsulated scope (`app.register`): an empty `application/json` body is no body. */
export function acceptEmptyJson(scope: FastifyInstance): void {
  const parse = scope.getDefaultJsonParser('error', 'error');
  scope.removeContentTypeParser('application/json');
  scope.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body.length === 0) {
      done(null, undefined);
      return;
    }
    parse(request, body as string, done);
  });
}
