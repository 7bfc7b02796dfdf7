#!/usr/bin/env node
// Place an order with ordergraph, then follow that order's events live.
//
//   export ORDERGRAPH_TOKEN=og_...
//   node place_and_follow.mjs --url http://127.0.0.1:8000/graphql --store-id <Store.id> --sku MUG
//
// Queries and mutations go over HTTP with the built-in fetch; the subscription uses the
// graphql-ws client (graphql-transport-ws) over the `ws` package, since Node 20 has no
// global WebSocket. Each event is printed with its cursor. When the connection drops
// (a server restart, a network failure, a load balancer moving us to another process),
// the client subscribes again with `after: <last cursor>`: the server replays what was
// missed, then goes on live, so each event is printed once, in order.
//
// It exits 0 when the order is SHIPPED or CANCELLED (or after --max-events events),
// and 1 with a one-line reason when retrying cannot help (bad token, unknown store...).

import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";

import { createClient } from "graphql-ws";
import WebSocket from "ws";

const PLACE_ORDER = `
mutation PlaceOrder($input: PlaceOrderInput!) {
  placeOrder(input: $input) {
    order {
      id
      number
      events(first: 250) { nodes { cursor type occurredAt status stockStatus } }
    }
    userErrors { field message code }
  }
}`;

const ORDER_EVENTS = `
subscription FollowOrder($storeId: ID!, $orderId: ID!, $after: String) {
  orderEvents(storeId: $storeId, orderId: $orderId, after: $after) {
    cursor type occurredAt status stockStatus order { number }
  }
}`;

const CLOSED = new Set(["SHIPPED", "CANCELLED"]); // an order in these states has no more events
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;
const PLACE_ATTEMPTS = 5;

const USAGE = `usage: node place_and_follow.mjs --store-id ID (--sku SKU [--quantity N] | --order-id ID [--after CURSOR])
  --url URL            GraphQL endpoint, http(s):// or ws(s):// (default http://127.0.0.1:8000/graphql)
  --token TOKEN        API token with the ORDERS and READ scopes (default $ORDERGRAPH_TOKEN)
  --store-id ID        the store's global ID (Store.id)
  --sku SKU            place a one-line order of this product ...
  --quantity N         ... for N units (default 1)
  --idempotency-key K  key for placeOrder retries (default: a new UUID)
  --order-id ID        instead of placing an order, follow this one (Order.id) ...
  --after CURSOR       ... from after this event cursor (default: from now on)
  --max-events N       exit after N events
  --quiet              print events only, no status lines on stderr`;

class Fatal extends Error {} // retrying cannot fix it: report and exit 1

function note(options, text) {
  if (!options.quiet) process.stderr.write(`place_and_follow: ${text}\n`);
}

function errorText(errors) {
  return errors
    .map((e) => {
      const code = e?.extensions?.code;
      return `${e?.message ?? String(e)}${code ? ` (${code})` : ""}`;
    })
    .join("; ");
}

function options() {
  const { values } = parseArgs({
    options: {
      url: { type: "string", default: "http://127.0.0.1:8000/graphql" },
      token: { type: "string", default: process.env.ORDERGRAPH_TOKEN },
      "store-id": { type: "string" },
      sku: { type: "string" },
      quantity: { type: "string", default: "1" },
      "idempotency-key": { type: "string" },
      "order-id": { type: "string" },
      after: { type: "string" },
      "max-events": { type: "string" },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const problem =
    (!values.token && "a token is needed: --token or ORDERGRAPH_TOKEN") ||
    (!values["store-id"] && "--store-id is required") ||
    (!values.sku === !values["order-id"] && "give either --sku (place an order) or --order-id") ||
    (values.after && !values["order-id"] && "--after goes with --order-id") ||
    null;
  if (problem) throw new Fatal(`${problem}\n${USAGE}`);
  const url = new URL(values.url);
  const secure = url.protocol === "https:" || url.protocol === "wss:";
  const httpUrl = new URL(url);
  httpUrl.protocol = secure ? "https:" : "http:";
  const wsUrl = new URL(url);
  wsUrl.protocol = secure ? "wss:" : "ws:";
  return {
    httpUrl: httpUrl.href,
    wsUrl: wsUrl.href,
    token: values.token,
    storeId: values["store-id"],
    sku: values.sku,
    quantity: Number.parseInt(values.quantity, 10),
    idempotencyKey: values["idempotency-key"] ?? randomUUID(),
    orderId: values["order-id"],
    after: values.after ?? null,
    maxEvents: values["max-events"] ? Number.parseInt(values["max-events"], 10) : Infinity,
    quiet: values.quiet,
  };
}

// -- placing the order (HTTP) --------------------------------------------------------

async function graphql(options, query, variables) {
  const response = await fetch(options.httpUrl, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${options.token}` },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(30_000),
  });
  if (response.status >= 500) throw new Error(`HTTP ${response.status}`); // worth a retry
  const body = await response.json().catch(() => null);
  if (!body) throw new Fatal(`no GraphQL answer from ${options.httpUrl} (HTTP ${response.status})`);
  if (body.errors?.length) throw new Fatal(errorText(body.errors));
  return body.data;
}

async function placeOrder(options) {
  const input = {
    storeId: options.storeId,
    lines: [{ sku: options.sku, quantity: options.quantity }],
    idempotencyKey: options.idempotencyKey, // a retry with the same key places nothing twice
  };
  let delay = FIRST_DELAY_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      const { placeOrder: payload } = await graphql(options, PLACE_ORDER, { input });
      if (payload.userErrors.length) {
        const [first] = payload.userErrors;
        throw new Fatal(`order refused: ${first.code}: ${first.message}`);
      }
      return payload.order;
    } catch (error) {
      if (error instanceof Fatal || attempt === PLACE_ATTEMPTS) throw error;
      note(options, `placeOrder failed (${error.cause?.code ?? error.message}); retrying`);
      await sleep(delay);
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  }
}

// -- following its events (websocket) -------------------------------------------------

class Follower {
  constructor(options) {
    this.options = options;
    this.after = options.after;
    this.printed = 0;
    this.done = false;
    this.client = null;
  }

  // Print one event and remember its cursor; true when there is nothing more to follow.
  handle(event, number) {
    console.log(
      `${event.occurredAt}  #${number}  ${event.type}  status=${event.status}` +
        `  stockStatus=${event.stockStatus ?? "-"}  cursor=${event.cursor}`,
    );
    this.after = event.cursor;
    this.printed += 1;
    if (CLOSED.has(event.status)) note(this.options, `order #${number} is ${event.status}; done`);
    this.done = CLOSED.has(event.status) || this.printed >= this.options.maxEvents;
    return this.done;
  }

  // Subscribe until the order is closed, reconnecting with the last cursor after each drop.
  async run(orderId) {
    let delay = FIRST_DELAY_MS;
    while (!this.done) {
      const outcome = await this.session(orderId, () => (delay = FIRST_DELAY_MS));
      if (this.done) break;
      const pause = delay * (0.8 + Math.random() * 0.4); // jitter: clients don't move in step
      note(this.options, `${outcome}; reconnecting in ${(pause / 1000).toFixed(1)}s`);
      await sleep(pause);
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  }

  // One connection and one subscription. Resolves with why it ended, unless it is fatal.
  session(orderId, connected) {
    const { options } = this;
    this.client = createClient({
      url: options.wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${options.token}` },
      retryAttempts: 0, // reconnecting is done here, so that it resumes from the last cursor
      on: { connected },
    });
    const variables = { storeId: options.storeId, orderId, after: this.after };
    note(options, `subscribing ${this.after ? `after cursor ${this.after}` : "from now on"}`);
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (settle, value) => {
        if (settled) return;
        settled = true;
        unsubscribe();
        this.client.dispose();
        settle(value);
      };
      const unsubscribe = this.client.subscribe(
        { query: ORDER_EVENTS, variables },
        {
          next: ({ data, errors }) => {
            if (errors?.length) {
              const codes = errors.map((e) => e.extensions?.code);
              if (codes.includes("SLOW_CONSUMER")) {
                finish(resolve, "the server dropped this slow subscriber");
              } else {
                finish(reject, new Fatal(`subscription refused: ${errorText(errors)}`));
              }
              return;
            }
            const event = data.orderEvents;
            if (this.handle(event, event.order.number)) finish(resolve, "done");
          },
          error: (problem) => {
            if (Array.isArray(problem)) {
              finish(reject, new Fatal(`subscription refused: ${errorText(problem)}`));
            } else if (problem?.code === 4403) {
              finish(reject, new Fatal("the server refused the token (4403): check --token"));
            } else if (problem?.code >= 4400 && problem?.code < 4500) {
              const why = `${problem.code} ${problem.reason ?? ""}`.trim();
              finish(reject, new Fatal(`the server closed the connection: ${why}`));
            } else if (typeof problem?.code === "number") {
              finish(resolve, `connection closed (${problem.code})`);
            } else {
              finish(resolve, problem?.message || "connection failed");
            }
          },
          complete: () => finish(resolve, "the server ended the subscription"),
        },
      );
    });
  }

  stop() {
    this.done = true;
    this.client?.dispose();
  }
}

async function main() {
  let follower = null;
  const stop = () => {
    follower?.stop();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  try {
    const opts = options();
    follower = new Follower(opts);
    let orderId = opts.orderId;
    if (!orderId) {
      const order = await placeOrder(opts);
      orderId = order.id;
      note(opts, `placed order #${order.number} (${order.id})`);
      // The events committed with the order come back in the answer; the subscription
      // goes on after the last of them, so nothing falls between the two.
      for (const event of order.events.nodes) {
        if (follower.handle(event, order.number)) return 0;
      }
    }
    await follower.run(orderId);
    return 0;
  } catch (error) {
    const text = error instanceof Fatal ? error.message : `${error.cause?.code ?? error.message}`;
    process.stderr.write(`place_and_follow: error: ${text}\n`);
    return 1;
  }
}

process.exitCode = await main();
