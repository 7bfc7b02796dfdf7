#!/usr/bin/env node
// Follow a store's order events over Server-Sent Events (no websocket needed).
//
//   export ORDERGRAPH_TOKEN=og_...
//   node follow_sse.mjs --url http://127.0.0.1:8000/graphql/stream --store-id <Store.id>
//
// For clients behind proxies that do not pass websockets: the graphql-sse client (the
// protocol's distinct connections mode) POSTs the subscription to /graphql/stream with
// the usual Authorization header and reads the results as an event stream. Each event is
// printed with its cursor; when the stream drops, the client subscribes again with
// `after: <last cursor>`, so each event is printed once, in order.
//
// It exits 0 after --max-events events, and 1 with a one-line reason when retrying
// cannot help (bad token, unknown store...).

import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";

import { createClient } from "graphql-sse";

const ORDER_EVENTS = `
subscription Follow($storeId: ID!, $after: String) {
  orderEvents(storeId: $storeId, after: $after) {
    cursor type occurredAt status order { number }
  }
}`;

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;
// Errors that a retry cannot fix.
const FATAL = new Set(["UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "INVALID", "GRAPHQL_VALIDATION_FAILED"]);

const USAGE = `usage: node follow_sse.mjs --store-id ID [--after CURSOR]
  --url URL         the SSE endpoint (default http://127.0.0.1:8000/graphql/stream)
  --token TOKEN     API token with the READ scope (default $ORDERGRAPH_TOKEN)
  --store-id ID     the store's global ID (Store.id)
  --after CURSOR    start after this event cursor (default: from now on)
  --max-events N    exit after N events
  --quiet           print events only, no status lines`;

class Fatal extends Error {}

function options() {
  const { values } = parseArgs({
    options: {
      url: { type: "string", default: "http://127.0.0.1:8000/graphql/stream" },
      token: { type: "string", default: process.env.ORDERGRAPH_TOKEN ?? "" },
      "store-id": { type: "string" },
      after: { type: "string" },
      "max-events": { type: "string" },
      quiet: { type: "boolean", default: false },
    },
  });
  if (!values["store-id"] || !values.token) throw new Fatal(USAGE);
  const max = values["max-events"] === undefined ? Infinity : Number(values["max-events"]);
  if (!(max > 0)) throw new Fatal("--max-events must be a positive number");
  return { ...values, max };
}

async function follow(opts) {
  const say = opts.quiet ? () => {} : (line) => console.error(`follow_sse: ${line}`);
  const client = createClient({
    url: opts.url,
    headers: { Authorization: `Bearer ${opts.token}` },
    retryAttempts: 0, // this loop retries, resuming after the last cursor
  });
  let after = opts.after ?? null;
  let printed = 0;
  let delay = FIRST_DELAY_MS;
  while (printed < opts.max) {
    try {
      say(after ? `subscribing after cursor ${after}` : "subscribing from now on");
      const results = client.iterate({ query: ORDER_EVENTS, variables: { storeId: opts["store-id"], after } });
      for await (const result of results) {
        if (result.errors?.length) {
          const [error] = result.errors;
          const code = error.extensions?.code ?? "ERROR";
          if (FATAL.has(code)) throw new Fatal(`${code}: ${error.message}`);
          throw new Error(`${code}: ${error.message}`);
        }
        const event = result.data.orderEvents;
        console.log(`${event.occurredAt}  #${event.order.number}  ${event.type}  status=${event.status}  cursor=${event.cursor}`);
        after = event.cursor;
        delay = FIRST_DELAY_MS;
        printed += 1;
        if (printed >= opts.max) break;
      }
      if (printed >= opts.max) break;
      say("the stream ended; reconnecting");
    } catch (error) {
      if (error instanceof Fatal) throw error;
      say(`stream lost (${error.message ?? error}); reconnecting in ${delay / 1000}s`);
      await sleep(delay);
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  }
  client.dispose();
}

try {
  await follow(options());
  process.exit(0);
} catch (error) {
  console.error(`follow_sse: ${error instanceof Fatal ? error.message : error.stack ?? error}`);
  process.exit(1);
}
