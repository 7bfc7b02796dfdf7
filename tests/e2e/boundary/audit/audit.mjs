// Runs every graphql-http server audit (GraphQL over HTTP spec conformance) against the
// URL given as the first argument, prints one line per audit and a closing summary as a
// JSON line, and exits 1 when any audit warns or errors.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs http://127.0.0.1:8000/graphql');
  process.exit(2);
}

const results = await auditServer({ url });
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const result of results) {
  counts[result.status] += 1;
  const reason = result.status === 'ok' ? '' : ` (${result.reason})`;
  console.log(`${result.status} ${result.id} ${result.name}${reason}`);
}
console.log(JSON.stringify({ total: results.length, ...counts }));
process.exit(counts.warn + counts.error > 0 ? 1 : 0);
