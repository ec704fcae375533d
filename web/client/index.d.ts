// Type declarations of hubbub-client (client.js), for require() and for
// the browser global. The ES module entry has the same in index.d.mts.

declare namespace hubbub {
  /** A hubbub event, as the hub shows it in JSON everywhere. */
  interface HubEvent {
    /** The cursor just after this event in its topic: EPOCH:SEQ. */
    id: string;
    topic: string;
    /** Per topic, from 1, strictly increasing, without gaps. */
    seq: number;
    /** "message" unless the publisher gave one. */
    type: string;
    /** Server time, RFC 3339 with microseconds. */
    time: string;
    /** Document id. */
    key?: string;
    tags?: string[];
    geo?: { lat: number; lon: number };
    /** The publisher's idempotency key (an optimistic publish's client_id). */
    client_id?: string;
    /** The media type of a raw (non-JSON) publish. */
    content_type?: string;
    /** The JSON value for JSON payloads, a string for text. */
    data?: unknown;
    /** Binary payloads, base64-encoded, instead of data. */
    data_base64?: string;
  }

  /** History a cursor asked for is gone; delivery goes on from cursor. */
  interface Reset {
    topic: string;
    reason: "epoch" | "trimmed" | "unknown-position" | (string & {});
    cursor: string;
  }

  type Transport = "sse" | "ws" | "poll";

  type Status = "connecting" | "live" | "reconnecting" | "closed" | "error";

  interface StatusInfo {
    /** The transport in use (SSE may fall back to "poll"). */
    transport: Transport;
    /** Why: set with "reconnecting" and "error". */
    error?: Error;
    /** Milliseconds until the next attempt, with "reconnecting". */
    delay?: number;
  }

  /** The hub's filter and projection query parameters. */
  interface FilterParams {
    /** Events with any of these tags. */
    tag?: string | string[];
    /** Events with all of these tags. */
    tags_all?: string | string[];
    /** "LAT,LON,RADIUS_M": events whose geo is within the radius. */
    near?: string;
    /** Events containing this text, case-insensitively. */
    q?: string;
    /** Comma-separated paths of data to keep (a projection). */
    fields?: string;
    /** Events whose JSON data has this value at this dotted path. */
    [where: `where.${string}`]: string | number | boolean | null;
  }

  /** A WebSocket class, such as the ws package's (Node before 22). */
  type WebSocketClass = new (url: string, ...rest: any[]) => unknown;

  interface SubscribeOptions {
    /** A topic or pattern, or several. */
    topics: string | string[];
    /** A cursor to resume after (an event's id, or an m.… cursor). */
    after?: string;
    /** "sse" (default), "ws" or "poll". */
    transport?: Transport;
    /** Filter parameters applied by the hub, or a predicate applied here. */
    filter?: FilterParams | ((event: HubEvent) => boolean);
    /** Extra request headers: SSE and long-poll; WebSocket with options.WebSocket. */
    headers?: Record<string, string>;
    /** A token (or key) for private topics: a Bearer header on SSE and long-poll, an auth op over WebSocket. */
    token?: string;
    /** The WebSocket class for transport "ws" (default: the global one). */
    WebSocket?: WebSocketClass;
    onEvent?: (event: HubEvent) => void;
    onReset?: (reset: Reset) => void;
    onStatus?: (status: Status, info: StatusInfo) => void;
  }

  interface Subscription {
    /** Ends the subscription; status "closed". */
    close(): void;
    /** The cursor to resume after what was delivered ("" before any). */
    cursor(): string;
  }

  /** One event to publish (POST /publish). */
  interface Draft {
    topic?: string;
    topics?: string[];
    type?: string;
    key?: string;
    data?: unknown;
    tags?: string[];
    geo?: { lat: number; lon: number };
    idempotency_key?: string;
    coalesce_ms?: number;
  }

  interface PublishOptions {
    /** A publish key or token, sent as "Authorization: Bearer KEY". */
    key?: string;
    /** Sent as the Idempotency-Key header. */
    idempotencyKey?: string;
    optimistic?: false;
  }

  /** What onReorder lists: the page's own items and the events it was given. */
  type OrderEntry = PendingItem | HubEvent;

  interface OptimisticOptions {
    /** Return a PendingItem at once instead of a promise. */
    optimistic: true;
    /** A publish key or token, sent as "Authorization: Bearer KEY". */
    key?: string;
    /** Sends after a failure that may pass (no answer, timeout, 408, 429, 5xx); default 5. */
    retries?: number;
    /** Milliseconds to wait for each answer before sending again; default 10000. */
    timeout?: number;
    /** Each change of the item's state: "confirmed", "failed", "pending" again after retry(). */
    onChange?: (item: PendingItem) => void;
    /**
     * The hub's order differs from the order the page was told of things
     * (its own items when published, others' events when delivered): here
     * they are in the hub's order, pending items last.
     */
    onReorder?: (order: OrderEntry[]) => void;
  }

  /** An optimistic publish: shown at once, confirmed or failed later. */
  interface PendingItem {
    /** The event's idempotency_key; its echo carries it too. */
    readonly client_id: string;
    readonly topic: string;
    /** The event as sent. */
    readonly event: Draft;
    readonly state: "pending" | "confirmed" | "failed";
    /** Where the hub stored it, once confirmed. */
    readonly id: string | null;
    readonly seq: number | null;
    readonly time: string | null;
    /** What confirmed it first. */
    readonly confirmedBy?: "answer" | "echo";
    /** Why it failed. */
    readonly error: Error | HubError | null;
    /** Requests sent so far. */
    readonly attempts: number;
    /** Resolves when confirmed; rejects when failed (retry() makes a new one). */
    readonly done: Promise<PendingItem>;
    /** Sends a failed item again, with the same client_id: "pending" again. */
    retry(): void;
  }

  interface Stored {
    topic: string;
    id: string;
    seq: number;
    epoch: string;
    time: string;
    /** The idempotency key was seen before: nothing new was stored. */
    duplicate?: boolean;
  }

  interface PublishAnswer {
    events: Stored[];
  }

  /** What publish rejects with when the hub refuses. */
  interface HubError extends Error {
    status: number;
    body: string;
  }

  /**
   * Subscribes to topics or patterns: history after options.after, then
   * live events, resuming from its cursor after any drop, with backoff,
   * never delivering an event twice.
   */
  function subscribe(baseUrl: string, options: SubscribeOptions): Subscription;

  /** Publishes one event optimistically: returns at once. */
  function publish(baseUrl: string, event: Draft, options: OptimisticOptions): PendingItem;
  /** Publishes one event or several; resolves to the hub's answer. */
  function publish(baseUrl: string, event: Draft | Draft[], options?: PublishOptions): Promise<PublishAnswer>;
}

export = hubbub;
export as namespace hubbub;
