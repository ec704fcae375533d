// Type-checked by `tsc -p test/types`: the CommonJS entry, as require()
// gives it.
import hubbub = require("hubbub-client");

const sub: hubbub.Subscription = hubbub.subscribe("http://127.0.0.1:8080", {topics: "a"});
sub.close();
hubbub.publish("http://127.0.0.1:8080", {topic: "a", data: 1}).then((a: hubbub.PublishAnswer) => a.events.length,
  (err: hubbub.HubError) => err.status);
