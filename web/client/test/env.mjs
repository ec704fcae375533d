// Shared by the Node tests: the environment web/client_test.go passes, and
// unique topic names.

// need returns the environment variable name, or throws: these tests run
// only through go test ./web -run TestClientPackage, which sets them.
export function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these tests through go test ./web -run TestClientPackage`);
  return v;
}

// unique returns a topic under prefix that no other run uses.
export function unique(prefix) {
  return `${prefix}/${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
