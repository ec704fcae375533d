// The ES module entry of hubbub-client: client.js (a classic script that
// is also a CommonJS module) as a default export and named exports.
import hubbub from "./client.js";

export const subscribe = hubbub.subscribe;
export const publish = hubbub.publish;
export default hubbub;
