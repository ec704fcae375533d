// Type-checked by `tsc -p test/types`: a page's script (not a module) that
// uses the global `hubbub` that <script src="/client.js"> defines.
/// <reference path="../../index.d.ts" />
const s = hubbub.subscribe("", {topics: "chat/room-1", onEvent: (e) => console.log(e.data)});
s.close();
const mine: hubbub.PendingItem = hubbub.publish("", {topic: "chat/room-1", data: {text: "hi"}}, {optimistic: true});
mine.done.then((it) => console.log(it.seq), (err: hubbub.HubError) => console.log(err.status));
