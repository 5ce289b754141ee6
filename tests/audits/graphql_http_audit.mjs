// Runs graphql-http's server audits (GraphQL over HTTP conformance) against a
// live server and prints one JSON array of results on stdout.
//
//   node graphql_http_audit.mjs http://127.0.0.1:8000/graphql [bearer-token]
//
// With a token, every request carries `Authorization: Bearer <token>`, as a
// signed-in client's would; without one, the audits run anonymously.
import { serverAudits } from 'graphql-http';

const [url, token] = process.argv.slice(2);
if (!url) {
  console.error('usage: node graphql_http_audit.mjs URL [TOKEN]');
  process.exit(2);
}

function fetchFn(input, init = {}) {
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

const results = [];
for (const audit of serverAudits({ url, fetchFn })) {
  const result = await audit.fn();
  const entry = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') {
    entry.reason = result.reason;
    entry.httpStatus = result.response.status;
    entry.body = await result.response.text().catch(() => '');
  }
  results.push(entry);
}
console.log(JSON.stringify(results, null, 2));
