// Main thread, cold path. The web dashboard: GET / answers one HTML page and
// GET /dashboard/<file> its ES modules and CSS, read once from
// src/api/dashboard/ when the API starts (a few small files: a static-file
// plugin would add a dependency for five routes). The page is a client of the
// JSON routes, so it goes through the same allowlist; it has no login of its
// own and asks for the token only when a write is refused.
//
// Every answer carries a strict Content-Security-Policy: scripts and styles
// only from files of this origin (no inline code, no eval, no CDN), requests
// only to this origin, never framed.

import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** The folder the page's files are read from (src/api/dashboard in a clone, dist/src/api/dashboard in the package). */
export const DASHBOARD_DIR = join(import.meta.dirname, 'dashboard');

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The paths the dashboard answers; they answer while the overwatch starts (the page then says so). */
export const DASHBOARD_PATHS: ReadonlySet<string> = new Set(['/', ...listAssets().map((f) => `/dashboard/${f}`)]);

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

/**
 * What every other answer of the API carries (JSON, errors and 404s
 * included; server.ts adds them to each reply that has not set its own): it
 * is data, never a document, so no browser sniffs it as HTML, runs or loads
 * anything from it, frames it, or keeps it in a cache (overrides, agents and
 * backends are not for a shared disk or a proxy).
 */
export const API_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
});

/** The asset files (not index.html), sorted. */
function listAssets(): string[] {
  return readdirSync(DASHBOARD_DIR)
    .filter((f) => f !== 'index.html' && TYPES[extname(f)] !== undefined)
    .sort();
}

/** The page's own policy and caching; the rest of API_HEADERS (nosniff, no framing, no referrer) is added to every answer. */
function securityHeaders(reply: FastifyReply, type: string): FastifyReply {
  return reply
    .header('content-type', type)
    .header('content-security-policy', CONTENT_SECURITY_POLICY)
    // The files change only with the package: revalidate cheaply rather than cache stale code after an upgrade.
    .header('cache-control', 'no-cache');
}

/** Registers GET / and GET /dashboard/<file>; the files are read now, once. */
export function registerDashboardRoutes(app: FastifyInstance): void {
  const page = readFileSync(join(DASHBOARD_DIR, 'index.html'));
  app.get('/', { schema: { hide: true } }, (_request, reply) => securityHeaders(reply, TYPES['.html']).send(page));
  for (const file of listAssets()) {
    const body = readFileSync(join(DASHBOARD_DIR, file));
    const type = TYPES[extname(file)];
    app.get(`/dashboard/${file}`, { schema: { hide: true } }, (_request, reply) => securityHeaders(reply, type).send(body));
  }
}
