// Type-checked by `tsc -p test/types` (client_test.go): the ES module entry
// as a TypeScript user imports it.
import hubbub, {subscribe, publish, type HubEvent, type SubscribeOptions, type Status, type PendingItem, type OrderEntry} from "hubbub-client";
import WebSocket from "ws";

const opts: SubscribeOptions = {
  topics: ["photos/**"],
  transport: "ws",
  WebSocket,
  headers: {Authorization: "Bearer k"},
  filter: {tag: ["kitten"], near: "51.5,-0.12,500", "where.user.id": 42},
  onEvent: (e: HubEvent) => console.log(e.topic, e.seq, e.data),
  onReset: (r) => console.log(r.reason, r.cursor),
  onStatus: (s: Status, info) => console.log(s, info.transport, info.error?.message, info.delay),
};
const sub = subscribe("http://127.0.0.1:8080", opts);
const cursor: string = sub.cursor();
sub.close();
hubbub.subscribe("http://127.0.0.1:8080", {topics: "a", after: cursor, filter: (e) => e.type === "create"});

const answer = await publish("http://127.0.0.1:8080", {topic: "a", data: {n: 1}}, {key: "k", idempotencyKey: "i"});
const seq: number = answer.events[0].seq;
await hubbub.publish("http://127.0.0.1:8080", [{topics: ["a", "b"], type: "create", key: "doc"}]);
console.log(seq);

// @ts-expect-error: topics are required
subscribe("http://127.0.0.1:8080", {});
// @ts-expect-error: no such transport
subscribe("http://127.0.0.1:8080", {topics: "a", transport: "carrier-pigeon"});

// Optimistic publishing returns an item at once, not a promise.
const item: PendingItem = publish("http://127.0.0.1:8080", {topic: "chat/a", data: {text: "hi"}}, {
  optimistic: true, key: "token", retries: 3, timeout: 5000,
  onChange: (it) => console.log(it.state, it.seq, it.error?.message),
  onReorder: (order: OrderEntry[]) => console.log(order.map((e) => ("client_id" in e && e.client_id) || e.seq)),
});
const id: string = item.client_id;
const confirmed: PendingItem = await item.done;
console.log(id, confirmed.id, confirmed.time, item.confirmedBy);
item.retry();
subscribe("http://127.0.0.1:8080", {topics: "chat/a", token: "t", onEvent: (e) => console.log(e.client_id)});
// @ts-expect-error: an optimistic publish is one event
publish("http://127.0.0.1:8080", [{topic: "a"}], {optimistic: true});
