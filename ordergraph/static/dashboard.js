// The ordergraph dashboard: plain browser JavaScript, no build step, no dependencies.
//
// GraphQL queries go over fetch to /graphql; live updates come over a websocket that
// speaks graphql-transport-ws (the small client is below). The token stays in
// sessionStorage and travels only in the Authorization header and in connection_init.
"use strict";

(() => {
  const TOKEN_KEY = "ordergraph.dashboard.token";
  const STORE_KEY = "ordergraph.dashboard.store";
  const PERIOD_KEY = "ordergraph.dashboard.period";
  // The last event cursor seen per store: a reload resumes after it, showing what
  // happened while the page was closed (each event once).
  const CURSOR_KEY = "ordergraph.dashboard.cursor.";
  const FEED_MAX = 100;
  const TREND_DAYS = 30;
  const PRODUCTS_SHOWN = 10;
  const LEADERS_SHOWN = 5;
  const PERIODS = [7, 30, 90]; // days, for "What waiting costs"
  const DECLINED = "CUSTOMER_DECLINED_BACKORDER";
  const SVG_NS = "http://www.w3.org/2000/svg";

  const STORES_QUERY = `query DashboardStores {
    stores(first: 100) { nodes { id handle name currencyCode timezone } }
  }`;

  const TALLY = "orders units value { amount currencyCode }";
  const SUMMARY = `asOf backlog { ${TALLY} } backorders { ${TALLY} } overdue { ${TALLY} }
    overdueBackorders { ${TALLY} } oldestBackorderPlacedAt`;
  const PRODUCTS = `backorderedProducts(first: ${PRODUCTS_SHOWN}) {
    sku title backordered onHand available restockDate backorderPolicy unitsToReorder
    incoming { quantity expectedAt } }`;

  const STORE_QUERY = `query DashboardStore($handle: String!, $from: DateTime!, $to: DateTime!) {
    store(handle: $handle) {
      id name handle currencyCode timezone
      backlog { ${SUMMARY} }
      backlogTrend(from: $from, to: $to, interval: DAY) {
        at backlog { orders units } backorders { orders units }
      }
      ${PRODUCTS}
    }
  }`;

  const PRODUCTS_QUERY = `query DashboardProducts($handle: String!) {
    store(handle: $handle) { ${PRODUCTS} }
  }`;

  // What waiting costs over the chosen period, ending now: the store's backorder outcomes
  // and the products that lost the most revenue to customers who would not wait.
  const MONEY = "{ amount currencyCode }";
  const OUTCOMES_QUERY = `query DashboardOutcomes($handle: String!, $from: DateTime!, $to: DateTime!) {
    store(handle: $handle) {
      backorderOutcomes(from: $from, to: $to) {
        from to lostRevenue ${MONEY} wait { p50 p90 }
        ordersPlaced backorderRate overdueShare
        cancelledWhileWaiting { reason tally { orders units } }
        stillWaiting { label minDays maxDays tally { ${TALLY} } }
      }
      backorderLeaders(by: LOST_REVENUE, from: $from, to: $to, first: ${LEADERS_SHOWN}) {
        product { sku title backordered }
        unitsToReorder
        outcomes { lostRevenue ${MONEY} wait { p90 } }
      }
    }
  }`;

  const EVENTS_SUBSCRIPTION = `subscription DashboardEvents($storeId: ID!, $after: String) {
    orderEvents(storeId: $storeId, after: $after) {
      cursor type occurredAt status stockStatus
      order { number customerRef total { amount currencyCode } isBackordered expectedShipDate }
    }
  }`;

  const BACKLOG_SUBSCRIPTION = `subscription DashboardBacklog($storeId: ID!) {
    backlogChanged(storeId: $storeId) { ${SUMMARY} }
  }`;

  const $ = (id) => document.getElementById(id);

  const state = {
    token: null,
    stores: [],
    store: null,
    trend: [],
    summary: null,
    metric: "orders",
    live: null,
    productsTimer: null,
    eventCount: 0,
    periodDays: 30,
    outcomesTimer: null,
    outcomesAsked: 0, // the latest outcomes request: an older answer is dropped
  };

  // -- errors ------------------------------------------------------------------

  class DashboardError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }

  function explain(err) {
    const said = err && err.message ? err.message : String(err);
    switch (err && err.code) {
      case "UNAUTHENTICATED":
        return "This token was not accepted: it is unknown, mistyped or revoked. " +
          "Check it and try again.";
      case "FORBIDDEN":
        if (/admin token/i.test(said)) {
          return "That is the admin token, which only creates stores and keys. " +
            "Use a store's API token (createStore or `ordergraph create-key` prints one).";
        }
        return "This token may not read stores (" + said + "). It needs the READ scope.";
      case "network":
        return "Cannot reach the server. Is it running? (" + said + ")";
      default:
        return said;
    }
  }

  function showError(element, message) {
    element.textContent = message || "";
    element.hidden = !message;
  }

  // -- GraphQL over HTTP -------------------------------------------------------

  async function gql(query, variables) {
    let response;
    try {
      response = await fetch("/graphql", {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          Authorization: "Bearer " + state.token,
        },
        body: JSON.stringify({ query, variables: variables || {} }),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (err) {
      throw new DashboardError("network", err.message);
    }
    let body;
    try {
      body = await response.json();
    } catch (err) {
      throw new DashboardError("http", "The server answered " + response.status + " without JSON.");
    }
    if (body.errors && body.errors.length) {
      const first = body.errors[0];
      throw new DashboardError((first.extensions && first.extensions.code) || "error", first.message);
    }
    return body.data;
  }

  // -- graphql-transport-ws client ---------------------------------------------
  //
  // One connection per opened store. connection_init carries the token; after the
  // ack, two subscriptions: orderEvents (resumed with the last cursor seen, so a
  // reconnect misses nothing) and backlogChanged (the tallies, pushed on change).
  // Pings are answered with pongs. A closed connection is reopened with backoff,
  // except when the server refused the token (4403) or the store was left.

  class LiveFeed {
    constructor(store, handlers) {
      this.store = store;
      this.handlers = handlers;
      this.cursor = sessionStorage.getItem(CURSOR_KEY + store.id);
      this.socket = null;
      this.stopped = false;
      this.attempt = 0;
      this.timer = null;
      this.nextId = 1;
      this.ops = {};
    }

    start() {
      this.open();
    }

    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      if (this.socket) {
        const socket = this.socket;
        this.socket = null;
        try {
          socket.close(1000, "dashboard left the store");
        } catch (err) {
          /* already closed */
        }
      }
    }

    url() {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      return scheme + "//" + location.host + "/graphql";
    }

    open() {
      if (this.stopped) return;
      this.handlers.status(this.attempt ? "reconnecting" : "connecting");
      let socket;
      try {
        socket = new WebSocket(this.url(), "graphql-transport-ws");
      } catch (err) {
        this.handlers.error("Cannot open the live connection: " + err.message);
        this.retry();
        return;
      }
      this.socket = socket;
      this.ops = {};
      socket.addEventListener("open", () => {
        this.send({ type: "connection_init", payload: { authorization: "Bearer " + state.token } });
      });
      socket.addEventListener("message", (message) => this.receive(message.data));
      socket.addEventListener("close", (event) => this.closed(socket, event));
    }

    send(message) {
      if (this.socket && this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify(message));
      }
    }

    subscribe(kind, query, variables) {
      const id = String(this.nextId++);
      this.ops[id] = kind;
      this.send({ id, type: "subscribe", payload: { query, variables } });
    }

    receive(raw) {
      let message;
      try {
        message = JSON.parse(raw);
      } catch (err) {
        return;
      }
      switch (message.type) {
        case "connection_ack":
          this.attempt = 0;
          this.subscribe("events", EVENTS_SUBSCRIPTION, { storeId: this.store.id, after: this.cursor });
          this.subscribe("backlog", BACKLOG_SUBSCRIPTION, { storeId: this.store.id });
          break;
        case "ping":
          this.send({ type: "pong", payload: message.payload });
          break;
        case "pong":
          break;
        case "next":
          this.next(this.ops[message.id], message.payload || {});
          break;
        case "error": {
          const errors = Array.isArray(message.payload) ? message.payload : [];
          const said = errors.map((e) => e.message).join("; ") || "subscription refused";
          this.handlers.error("Live updates stopped: " + said);
          break;
        }
        case "complete":
          // The server ended a subscription: start over on a fresh connection.
          if (this.socket) this.socket.close(1000, "resubscribe");
          break;
        default:
          break;
      }
    }

    next(kind, payload) {
      if (payload.errors && payload.errors.length) {
        const codes = payload.errors.map((e) => e.extensions && e.extensions.code);
        if (kind === "events" && this.cursor && codes.includes("INVALID")) {
          // A cursor this server does not know (another database?): start from now.
          this.forgetCursor();
          if (this.socket) this.socket.close(1000, "resubscribe");
          return;
        }
        this.handlers.error("Live updates: " + payload.errors.map((e) => e.message).join("; "));
        return;
      }
      const data = payload.data || {};
      if (kind === "events" && data.orderEvents) {
        this.cursor = data.orderEvents.cursor;
        sessionStorage.setItem(CURSOR_KEY + this.store.id, this.cursor);
        this.handlers.event(data.orderEvents);
      } else if (kind === "backlog" && data.backlogChanged) {
        this.handlers.status("live");
        this.handlers.summary(data.backlogChanged);
      }
    }

    forgetCursor() {
      this.cursor = null;
      sessionStorage.removeItem(CURSOR_KEY + this.store.id);
    }

    closed(socket, event) {
      if (socket !== this.socket) return; // a connection we already left
      this.socket = null;
      if (this.stopped) return;
      if (event.code === 4403) {
        this.handlers.status("refused");
        this.handlers.tokenRefused();
        return;
      }
      this.retry();
    }

    retry() {
      if (this.stopped) return;
      this.attempt += 1;
      const delay = Math.min(15000, 500 * 2 ** Math.min(this.attempt, 5));
      this.handlers.status("reconnecting");
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.open(), delay);
    }
  }

  // -- formatting --------------------------------------------------------------

  const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });

  // A wait given in hours, as a person would say it: minutes, hours, or days past two days.
  function waitText(hours) {
    if (hours === null || hours === undefined) return "—";
    if (hours < 1) return integer.format(Math.max(1, Math.round(hours * 60))) + " min";
    if (hours < 48) return decimal.format(hours) + " h";
    return decimal.format(hours / 24) + " days";
  }

  function plural(count, one, many) {
    return integer.format(count) + " " + (count === 1 ? one : many);
  }

  function moneyText(money) {
    if (!money) return "–";
    const amount = Number(money.amount);
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency: money.currencyCode })
        .format(amount);
    } catch (err) {
      return money.amount + " " + money.currencyCode;
    }
  }

  function timeText(iso) {
    const at = new Date(iso);
    return isNaN(at) ? iso : at.toLocaleTimeString(undefined, { hour12: false });
  }

  function dayText(iso, timeZone) {
    const at = new Date(iso);
    try {
      return at.toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone });
    } catch (err) {
      return at.toLocaleDateString(undefined, { month: "short", day: "numeric" });
    }
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // -- status ------------------------------------------------------------------

  const STATUS = {
    live: ["live", "pill-live"],
    connecting: ["connecting…", "pill-wait"],
    reconnecting: ["reconnecting…", "pill-wait"],
    refused: ["token refused", "pill-bad"],
    off: ["not connected", "pill-off"],
  };

  function setStatus(name) {
    const [text, className] = STATUS[name] || STATUS.off;
    const pill = $("live-status");
    pill.textContent = text;
    pill.className = "pill " + className;
    pill.dataset.state = name;
  }

  // -- tallies -----------------------------------------------------------------

  function renderSummary(summary) {
    const before = state.summary;
    state.summary = summary;
    for (const name of ["backlog", "backorders", "overdue", "overdueBackorders"]) {
      const card = $("tally-" + name);
      const tally = summary[name];
      card.querySelector(".orders").textContent = integer.format(tally.orders);
      card.querySelector(".unit").textContent = tally.orders === 1 ? "order" : "orders";
      card.querySelector(".units").textContent = integer.format(tally.units);
      card.querySelector(".value").textContent = moneyText(tally.value);
      card.dataset.orders = String(tally.orders);
      if (before && before[name].orders !== tally.orders) {
        card.classList.remove("changed");
        void card.offsetWidth; // restart the highlight animation
        card.classList.add("changed");
      }
    }
    const meta = [state.store.handle, state.store.currencyCode, state.store.timezone];
    if (summary.oldestBackorderPlacedAt) {
      meta.push("oldest backorder placed " + new Date(summary.oldestBackorderPlacedAt).toLocaleString());
    }
    $("store-meta").textContent = meta.join(" · ");
    renderChart();
  }

  // -- chart -------------------------------------------------------------------

  function svg(tag, attributes, parent) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, String(value));
    if (parent) parent.appendChild(node);
    return node;
  }

  function niceMax(value) {
    if (value <= 4) return 4;
    const magnitude = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * magnitude >= value) return step * magnitude;
    }
    return 10 * magnitude;
  }

  function chartPoints() {
    const points = state.trend.map((p) => ({
      at: new Date(p.at),
      backlog: p.backlog[state.metric],
      backorders: p.backorders[state.metric],
      now: false,
    }));
    if (state.summary) {
      const at = new Date(state.summary.asOf);
      const last = points[points.length - 1];
      if (!last || at > last.at) {
        points.push({
          at,
          backlog: state.summary.backlog[state.metric],
          backorders: state.summary.backorders[state.metric],
          now: true,
        });
      }
    }
    return points;
  }

  function renderChart() {
    const box = $("chart");
    box.textContent = "";
    const points = chartPoints();
    const width = Math.max(280, Math.round(box.clientWidth || 720));
    const height = 240;
    const pad = { left: 44, right: 16, top: 12, bottom: 28 };
    const root = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      class: "chart-svg",
      "aria-hidden": "true",
    }, box);
    if (!points.length) {
      const note = svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "axis" }, root);
      note.textContent = "No figures yet";
      return;
    }
    const top = niceMax(Math.max(1, ...points.map((p) => Math.max(p.backlog, p.backorders))));
    const start = points[0].at.getTime();
    const end = Math.max(points[points.length - 1].at.getTime(), start + 1);
    const x = (at) => pad.left + ((at.getTime() - start) / (end - start)) * (width - pad.left - pad.right);
    const y = (v) => pad.top + (1 - v / top) * (height - pad.top - pad.bottom);

    for (let i = 0; i <= 4; i += 1) {
      const value = (top / 4) * i;
      svg("line", { x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value), class: "grid" }, root);
      const label = svg("text", { x: pad.left - 8, y: y(value) + 4, "text-anchor": "end", class: "axis" }, root);
      label.textContent = integer.format(value);
    }
    const nowPoint = points[points.length - 1];
    const every = Math.max(1, Math.ceil(points.length / Math.max(2, Math.floor(width / 110))));
    points.forEach((p, i) => {
      if (p.now || i % every !== 0) return;
      if (nowPoint.now && x(nowPoint.at) - x(p.at) < 48) return; // leave room for "now"
      const label = svg("text", { x: x(p.at), y: height - 8, "text-anchor": "middle", class: "axis" }, root);
      label.textContent = dayText(p.at.toISOString(), state.store.timezone);
    });
    if (nowPoint.now) {
      const label = svg("text", { x: x(nowPoint.at), y: height - 8, "text-anchor": "end", class: "axis" }, root);
      label.textContent = "now";
    }

    for (const series of ["backlog", "backorders"]) {
      const path = points.map((p, i) => `${i ? "L" : "M"}${x(p.at).toFixed(1)},${y(p[series]).toFixed(1)}`);
      const area = `${path.join(" ")} L${x(nowPoint.at).toFixed(1)},${y(0)} L${x(points[0].at).toFixed(1)},${y(0)} Z`;
      svg("path", { d: area, class: "area area-" + series }, root);
      svg("path", { d: path.join(" "), class: "line line-" + series }, root);
      for (const p of points) {
        const dot = svg("circle", { cx: x(p.at), cy: y(p[series]), r: p.now ? 4 : 2.5, class: "dot dot-" + series }, root);
        const tip = svg("title", {}, dot);
        tip.textContent = `${series} ${p.now ? "now" : dayText(p.at.toISOString(), state.store.timezone)}: ` +
          `${integer.format(p[series])} ${state.metric}`;
      }
    }
  }

  // -- products ----------------------------------------------------------------

  // The first open receipt (units and date), else the restock date (quantity unknown).
  function nextReceiptCell(product) {
    const cell = element("td", "muted next-receipt");
    const next = product.incoming.reduce(
      (first, r) => (first === null || r.expectedAt < first.expectedAt ? r : first), null);
    const date = next ? next.expectedAt : product.restockDate;
    cell.dataset.date = date || "";
    if (!date) {
      cell.textContent = "—";
      return cell;
    }
    const when = element("time", null, shipDayText(date));
    when.setAttribute("datetime", date);
    cell.appendChild(when);
    if (next) cell.appendChild(document.createTextNode(" · " + integer.format(next.quantity) + " units"));
    return cell;
  }

  function renderProducts(products) {
    const body = $("products").querySelector("tbody");
    body.textContent = "";
    const most = Math.max(1, ...products.map((p) => p.backordered));
    for (const product of products) {
      const row = element("tr");
      row.appendChild(element("td", "sku", product.sku));
      row.appendChild(element("td", "title", product.title));
      const cell = element("td", "num");
      const bar = element("span", "bar");
      bar.style.width = Math.round((product.backordered / most) * 100) + "%";
      cell.appendChild(bar);
      cell.appendChild(element("span", "bar-value", integer.format(product.backordered)));
      row.appendChild(cell);
      row.appendChild(element("td", "num", integer.format(product.onHand)));
      row.appendChild(element("td", "num to-reorder", integer.format(product.unitsToReorder)));
      row.appendChild(nextReceiptCell(product));
      body.appendChild(row);
    }
    $("products").hidden = products.length === 0;
    $("products-empty").hidden = products.length !== 0;
  }

  function refreshProductsSoon() {
    clearTimeout(state.productsTimer);
    const store = state.store;
    state.productsTimer = setTimeout(async () => {
      try {
        const data = await gql(PRODUCTS_QUERY, { handle: store.handle });
        if (state.store === store && data.store) renderProducts(data.store.backorderedProducts);
      } catch (err) {
        showError($("board-error"), explain(err));
      }
    }, 400);
  }

  // -- what waiting costs ------------------------------------------------------

  function setPeriodButtons() {
    for (const button of document.querySelectorAll(".period-button")) {
      const active = Number(button.dataset.days) === state.periodDays;
      button.classList.toggle("active", active);
      button.setAttribute("aria-pressed", String(active));
    }
  }

  async function loadOutcomes() {
    const store = state.store;
    if (!store) return;
    clearTimeout(state.outcomesTimer);
    state.outcomesTimer = null;
    const asked = ++state.outcomesAsked;
    const days = state.periodDays;
    const to = new Date();
    const from = new Date(to.getTime() - days * 24 * 3600 * 1000);
    $("outcomes").setAttribute("aria-busy", "true");
    let data;
    try {
      data = await gql(OUTCOMES_QUERY, { handle: store.handle, from: from.toISOString(), to: to.toISOString() });
    } catch (err) {
      if (state.store === store && asked === state.outcomesAsked) {
        $("outcomes").removeAttribute("aria-busy");
        showError($("outcomes-error"), "What waiting costs: " + explain(err));
      }
      return;
    }
    if (state.store !== store || asked !== state.outcomesAsked) return;
    $("outcomes").removeAttribute("aria-busy");
    if (!data.store) return; // the board says why
    showError($("outcomes-error"), "");
    renderOutcomes(data.store.backorderOutcomes, data.store.backorderLeaders, days);
  }

  // After order events: at most one refresh every two seconds, however busy the store.
  function refreshOutcomesSoon() {
    if (state.outcomesTimer) return;
    state.outcomesTimer = setTimeout(loadOutcomes, 2000);
  }

  function renderOutcomes(outcomes, leaders, days) {
    const zone = state.store.timezone;
    $("outcomes-period").textContent =
      `Last ${days} days (${dayText(outcomes.from, zone)} – ${dayText(outcomes.to, zone)})`;
    const card = $("outcomes");
    card.dataset.days = String(days);

    const lost = card.querySelector(".lost-revenue");
    lost.textContent = moneyText(outcomes.lostRevenue);
    lost.dataset.amount = outcomes.lostRevenue.amount;
    const declined = outcomes.cancelledWhileWaiting.find((c) => c.reason === DECLINED);
    const others = outcomes.cancelledWhileWaiting
      .filter((c) => c.reason !== DECLINED)
      .reduce((sum, c) => sum + c.tally.orders, 0);
    const said = [declined && declined.tally.orders
      ? `${plural(declined.tally.orders, "order", "orders")} declined (${plural(declined.tally.units, "unit", "units")})`
      : "No customer declined to wait"];
    if (others) said.push(`${plural(others, "order", "orders")} cancelled for other reasons while waiting`);
    card.querySelector(".declined").textContent = said.join(" · ");

    const wait = card.querySelector("#outcome-wait");
    wait.querySelector(".wait-p50").textContent = waitText(outcomes.wait.p50);
    wait.querySelector(".wait-p90").textContent = waitText(outcomes.wait.p90);
    wait.querySelector(".unit").textContent = outcomes.wait.p50 === null ? "nothing filled" : "median";

    card.querySelector(".backorder-rate").textContent = percent.format(outcomes.backorderRate);
    card.querySelector(".placed").textContent = "of " + plural(outcomes.ordersPlaced, "order", "orders") + " placed";
    card.querySelector(".overdue-share").textContent =
      percent.format(outcomes.overdueShare) + " of backorders went overdue";

    const aged = $("still-waiting").querySelector("tbody");
    aged.textContent = "";
    for (const bucket of outcomes.stillWaiting) {
      const row = element("tr");
      row.dataset.minDays = String(bucket.minDays);
      row.appendChild(element("td", "age", bucket.label));
      row.appendChild(element("td", "num orders", integer.format(bucket.tally.orders)));
      row.appendChild(element("td", "num units", integer.format(bucket.tally.units)));
      row.appendChild(element("td", "num value", moneyText(bucket.tally.value)));
      aged.appendChild(row);
    }

    const body = $("leaders").querySelector("tbody");
    body.textContent = "";
    for (const leader of leaders) {
      const row = element("tr");
      row.dataset.sku = leader.product.sku;
      const sku = element("td", "sku", leader.product.sku);
      sku.title = leader.product.title;
      row.appendChild(sku);
      const lostCell = element("td", "num lost", moneyText(leader.outcomes.lostRevenue));
      lostCell.dataset.amount = leader.outcomes.lostRevenue.amount;
      row.appendChild(lostCell);
      row.appendChild(element("td", "num wait-p90", waitText(leader.outcomes.wait.p90)));
      row.appendChild(element("td", "num waiting", integer.format(leader.product.backordered)));
      row.appendChild(element("td", "num to-reorder", integer.format(leader.unitsToReorder)));
      body.appendChild(row);
    }
    $("leaders").hidden = leaders.length === 0;
    $("leaders-empty").hidden = leaders.length !== 0;
  }

  function clearOutcomes() {
    clearTimeout(state.outcomesTimer);
    state.outcomesTimer = null;
    state.outcomesAsked += 1; // an answer on its way is for a store no longer shown
    const card = $("outcomes");
    card.removeAttribute("aria-busy");
    delete card.dataset.days;
    for (const name of [".lost-revenue", ".declined", ".wait-p50", ".wait-p90", ".backorder-rate", ".placed", ".overdue-share"]) {
      card.querySelector(name).textContent = "–";
    }
    delete card.querySelector(".lost-revenue").dataset.amount;
    $("outcomes-period").textContent = "";
    $("still-waiting").querySelector("tbody").textContent = "";
    $("leaders").querySelector("tbody").textContent = "";
    $("leaders").hidden = false;
    $("leaders-empty").hidden = true;
    showError($("outcomes-error"), "");
  }

  // -- feed --------------------------------------------------------------------

  const EVENT_WORDS = {
    PLACED: "placed",
    BACKORDERED: "backordered",
    BACKORDER_FILLED: "backorder filled",
    PARTIALLY_SHIPPED: "partly shipped",
    SHIPPED: "shipped",
    CANCELLED: "cancelled",
    OVERDUE: "overdue",
    EXPECTED_SHIP_DATE_CHANGED: "ship date moved",
  };

  // The order's expected ship date, as the order is when the event is read, while it waits
  // for stock: "unknown" while a waiting line has no receipt to cover it. For
  // EXPECTED_SHIP_DATE_CHANGED it is the new date. Nothing for orders not waiting.
  function shipsElement(event) {
    if (!event.order.isBackordered) return null;
    const date = event.order.expectedShipDate;
    const moved = event.type === "EXPECTED_SHIP_DATE_CHANGED";
    const ships = element("span", "event-ships", moved ? " · new ship date " : " · ships ");
    ships.dataset.shipDate = date || "";
    const when = element(date ? "time" : "span", "ship-date", date ? shipDayText(date) : "unknown");
    if (date) when.setAttribute("datetime", date);
    ships.appendChild(when);
    return ships;
  }

  function shipDayText(date) {
    // A calendar date (YYYY-MM-DD): shown as that day, whatever the browser's time zone.
    const at = new Date(date + "T00:00:00Z");
    if (isNaN(at)) return date;
    return at.toLocaleDateString(undefined, { month: "short", day: "numeric", year: "numeric", timeZone: "UTC" });
  }

  function addEvent(event) {
    const feed = $("feed");
    const item = element("li", "event event-" + event.type.toLowerCase());
    item.dataset.type = event.type;
    item.dataset.order = String(event.order.number);
    item.appendChild(element("time", "event-time", timeText(event.occurredAt)));
    item.appendChild(element("span", "badge", EVENT_WORDS[event.type] || event.type));
    const what = element("span", "event-what");
    what.appendChild(element("strong", null, "Order #" + event.order.number));
    const details = [moneyText(event.order.total)];
    if (event.stockStatus) details.push(event.stockStatus.toLowerCase().replace(/_/g, " "));
    if (event.order.customerRef) details.push(event.order.customerRef);
    what.appendChild(element("span", "muted", " " + details.join(" · ")));
    const ships = shipsElement(event);
    if (ships) what.appendChild(ships);
    item.appendChild(what);
    feed.insertBefore(item, feed.firstChild);
    while (feed.children.length > FEED_MAX) feed.removeChild(feed.lastChild);
    state.eventCount += 1;
    $("feed-empty").hidden = true;
    $("feed-count").textContent = integer.format(state.eventCount) + " since opened";
    refreshProductsSoon();
    refreshOutcomesSoon();
  }

  // -- flow --------------------------------------------------------------------

  function show(view) {
    $("login").hidden = view !== "login";
    $("picker").hidden = view === "login";
    $("pick-hint").hidden = view !== "picker";
    $("board").hidden = view !== "board";
    $("sign-out").hidden = view === "login";
  }

  function leaveStore() {
    if (state.live) state.live.stop();
    state.live = null;
    state.store = null;
    state.summary = null;
    state.trend = [];
    state.eventCount = 0;
    clearTimeout(state.productsTimer);
    clearOutcomes();
    $("feed").textContent = "";
    $("feed-empty").hidden = false;
    $("feed-count").textContent = "";
    showError($("board-error"), "");
    setStatus("off");
  }

  function signOut(message) {
    leaveStore();
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(STORE_KEY);
    for (const key of Object.keys(sessionStorage)) {
      if (key.startsWith(CURSOR_KEY)) sessionStorage.removeItem(key);
    }
    $("token").value = "";
    show("login");
    showError($("login-error"), message || "");
    $("token").focus();
  }

  async function connect(token) {
    state.token = token;
    showError($("login-error"), "");
    $("connect").disabled = true;
    let data;
    try {
      data = await gql(STORES_QUERY);
    } catch (err) {
      signOut(explain(err));
      return;
    } finally {
      $("connect").disabled = false;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    state.stores = data.stores.nodes;
    if (!state.stores.length) {
      signOut("This token is valid but may see no store.");
      return;
    }
    const select = $("store");
    select.length = 1;
    for (const store of state.stores) {
      const option = element("option", null, `${store.name} (${store.handle})`);
      option.value = store.id;
      select.appendChild(option);
    }
    show("picker");
    const remembered = sessionStorage.getItem(STORE_KEY);
    const initial = state.stores.find((s) => s.id === remembered) ||
      (state.stores.length === 1 ? state.stores[0] : null);
    if (initial) {
      select.value = initial.id;
      await openStore(initial.id);
    } else {
      select.focus();
    }
  }

  async function openStore(storeId) {
    if (state.store && state.store.id === storeId) return;
    leaveStore();
    const store = state.stores.find((s) => s.id === storeId);
    if (!store) {
      show("picker");
      return;
    }
    state.store = store;
    sessionStorage.setItem(STORE_KEY, store.id);
    $("export-csv").href = "/export/orders.csv?store=" + encodeURIComponent(store.handle);
    $("store-name").textContent = store.name;
    $("store-meta").textContent = [store.handle, store.currencyCode, store.timezone].join(" · ");
    show("board");
    // Live first, so the feed starts no later than the snapshot below.
    state.live = new LiveFeed(store, {
      status: (name) => state.store === store && setStatus(name),
      event: (event) => state.store === store && addEvent(event),
      summary: (summary) => state.store === store && renderSummary(summary),
      error: (message) => state.store === store && showError($("board-error"), message),
      tokenRefused: () => signOut("The live connection refused this token (it may have been revoked)."),
    });
    state.live.start();
    loadOutcomes(); // its own query: the board shows even where it fails
    const to = new Date();
    const from = new Date(to.getTime() - TREND_DAYS * 24 * 3600 * 1000);
    let data;
    try {
      data = await gql(STORE_QUERY, { handle: store.handle, from: from.toISOString(), to: to.toISOString() });
    } catch (err) {
      if (err.code === "UNAUTHENTICATED") {
        signOut(explain(err));
      } else if (state.store === store) {
        showError($("board-error"), explain(err));
      }
      return;
    }
    if (state.store !== store) return;
    if (!data.store) {
      showError($("board-error"), "This store is no longer visible to this token.");
      return;
    }
    state.trend = data.store.backlogTrend;
    const live = state.summary;
    if (!live || new Date(live.asOf) < new Date(data.store.backlog.asOf)) {
      renderSummary(data.store.backlog);
    } else {
      renderChart();
    }
    renderProducts(data.store.backorderedProducts);
  }

  // -- export ------------------------------------------------------------------

  // A plain link cannot carry the token (it stays out of URLs, which end up in logs and
  // history), so the click fetches the export with the Authorization header and hands the
  // file to the browser. The whole file passes through the page's memory: for very large
  // stores, GET /export/orders.csv with curl (docs/integrations.md).
  async function exportCsv(event) {
    event.preventDefault();
    const store = state.store;
    if (!store) return;
    const link = $("export-csv");
    if (link.getAttribute("aria-busy") === "true") return;
    link.setAttribute("aria-busy", "true");
    link.textContent = "Exporting…";
    try {
      const response = await fetch(link.href, {
        headers: { Authorization: "Bearer " + state.token },
        cache: "no-store",
      });
      if (!response.ok) {
        let said = "the export failed (HTTP " + response.status + ")";
        try {
          const body = await response.json();
          if (body.errors && body.errors[0]) said = body.errors[0].message;
        } catch (ignored) { /* not JSON */ }
        throw new Error(said);
      }
      const blob = await response.blob();
      const named = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
      const url = URL.createObjectURL(blob);
      const save = document.createElement("a");
      save.href = url;
      save.download = named ? named[1] : store.handle + "-orders.csv";
      document.body.appendChild(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (err) {
      if (state.store === store) showError($("board-error"), "Export: " + err.message);
    } finally {
      link.removeAttribute("aria-busy");
      link.textContent = "Export CSV";
    }
  }

  function init() {
    $("export-csv").addEventListener("click", exportCsv);
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (!token) {
        showError($("login-error"), "Paste a token first.");
        return;
      }
      connect(token);
    });
    $("store").addEventListener("change", (event) => {
      if (event.target.value) openStore(event.target.value);
      else {
        leaveStore();
        show("picker");
      }
    });
    $("sign-out").addEventListener("click", () => signOut(""));
    for (const button of document.querySelectorAll(".toggle-button[data-metric]")) {
      button.addEventListener("click", () => {
        state.metric = button.dataset.metric;
        for (const other of document.querySelectorAll(".toggle-button[data-metric]")) {
          other.classList.toggle("active", other === button);
        }
        renderChart();
      });
    }
    const period = Number(sessionStorage.getItem(PERIOD_KEY));
    if (PERIODS.includes(period)) state.periodDays = period;
    setPeriodButtons();
    for (const button of document.querySelectorAll(".period-button")) {
      button.addEventListener("click", () => {
        state.periodDays = Number(button.dataset.days);
        sessionStorage.setItem(PERIOD_KEY, String(state.periodDays));
        setPeriodButtons();
        loadOutcomes();
      });
    }
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => state.store && renderChart(), 150);
    });
    setStatus("off");
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) {
      connect(saved);
    } else {
      show("login");
      $("token").focus();
    }
  }

  init();
})();
