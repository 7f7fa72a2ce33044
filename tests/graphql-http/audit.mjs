// Runs the official GraphQL-over-HTTP audit suite (`auditServer` from the
// `graphql-http` package) against a running server and prints one line per
// audit:
//
//   PASS <id> <name>   the audit passed
//   NOTE <id> <name>   a MAY audit did not pass (optional; does not fail the run)
//   WARN <id> <name>   a SHOULD audit did not pass
//   FAIL <id> <name>   a MUST audit did not pass
//
// Every non-passing line is followed by indented details: the audit's reason
// and what the server answered (status, content type, body excerpt).
//
// Usage: node audit.mjs <url of the GraphQL endpoint>
//   e.g. node audit.mjs http://127.0.0.1:8000/graphql
//
// Exit code: 0 only when no audit failed (MUST) and none warned (SHOULD);
// 1 otherwise, including usage errors and fatal errors (server unreachable).

import { auditServer } from 'graphql-http';

const REQUEST_TIMEOUT_MS = 30_000;
const BODY_EXCERPT_CHARS = 300;

const url = process.argv[2];
if (!url || process.argv.length > 3) {
  console.error('usage: node audit.mjs <url of the GraphQL endpoint, e.g. http://127.0.0.1:8000/graphql>');
  process.exit(1);
}
try {
  new URL(url);
} catch {
  console.error(`audit.mjs: not a valid URL: ${url}`);
  process.exit(1);
}

// The server applies Apollo's CSRF-prevention rule: a GET request, or a POST
// whose content type is text/plain, application/x-www-form-urlencoded or
// multipart/form-data, is refused with 400 unless it carries a non-empty
// `Apollo-Require-Preflight` or `X-Apollo-Operation-Name` header. That is by
// design, and a real client of this server sends such a header, so every
// request the audit sends gets `Apollo-Require-Preflight: true`. Nothing else
// about the audit's requests is changed. Each request also gets a timeout so
// that a hanging server fails the run instead of blocking it.
function fetchFn(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('Apollo-Require-Preflight', 'true');
  return fetch(input, {
    ...init,
    headers,
    signal: init.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
}

const LABELS = { ok: 'PASS', notice: 'NOTE', warn: 'WARN', error: 'FAIL' };

async function bodyExcerpt(response) {
  if (!response) return '(no response)';
  if (response.bodyUsed) return '(body already consumed by the audit)';
  try {
    const text = await response.text();
    const oneLine = JSON.stringify(text);
    return oneLine.length > BODY_EXCERPT_CHARS
      ? `${oneLine.slice(0, BODY_EXCERPT_CHARS)}... (${text.length} chars)`
      : oneLine;
  } catch (err) {
    return `(could not read body: ${err})`;
  }
}

let results;
try {
  results = await auditServer({ url, fetchFn });
} catch (err) {
  // auditServer throws only on fatal errors (e.g. the server is unreachable).
  console.error(`audit.mjs: fatal error while auditing ${url}:`);
  console.error(err?.cause ? `${err}\n  cause: ${err.cause}` : String(err));
  process.exit(1);
}

const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const result of results) {
  counts[result.status] = (counts[result.status] ?? 0) + 1;
  const label = LABELS[result.status] ?? result.status.toUpperCase();
  console.log(`${label} ${result.id} ${result.name}`);
  if (result.status !== 'ok') {
    const res = result.response;
    console.log(`    reason: ${result.reason}`);
    if (res) {
      console.log(`    status: ${res.status}`);
      console.log(`    content-type: ${res.headers.get('content-type') ?? '(none)'}`);
    }
    console.log(`    body: ${await bodyExcerpt(res)}`);
  }
}

console.log(
  `\n${results.length} audits: ${counts.ok} passed, ${counts.error} failed (MUST), ` +
    `${counts.warn} warned (SHOULD), ${counts.notice} noted (MAY)`,
);
process.exit(counts.error === 0 && counts.warn === 0 ? 0 : 1);
