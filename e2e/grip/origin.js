// An example GRIP origin: Express with @fanoutio/serve-grip, publishing
// with @fanoutio/grip's Publisher. It mounts every module in routes/
// (each exports `default function (app, ctx)`), so the HTTP and the
// WebSocket-over-HTTP examples live side by side.
//
// Environment:
//   PORT              port to listen on (0: any; the chosen one is printed
//                     as "origin listening PORT")
//   GRIP_CONTROL_URI  the GRIP proxy's control URI: hubbub's main listener
//                     (publishes go to POST /publish/), or Pushpin's
//                     http://127.0.0.1:5561
//   GRIP_PUBLISH_KEY  (optional) sent as Authorization: Bearer KEY when
//                     publishing: a hubbub --publish-key
//   GRIP_SIG_KEY      the key Grip-Sig is checked with: hubbub's
//                     --grip-sig-key, Pushpin's sig_key
import express from 'express';
import { ServeGrip } from '@fanoutio/serve-grip';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const grip = { control_uri: process.env.GRIP_CONTROL_URI, verify_key: process.env.GRIP_SIG_KEY };
if (process.env.GRIP_PUBLISH_KEY) {
  grip.key = process.env.GRIP_PUBLISH_KEY; // Bearer auth (no control_iss)
}
const serveGrip = new ServeGrip({ grip });
const app = express();
app.use(serveGrip);
const ctx = { serveGrip, publisher: serveGrip.getPublisher() };

const routes = join(dirname(fileURLToPath(import.meta.url)), 'routes');
for (const file of readdirSync(routes).filter((f) => f.endsWith('.js')).sort()) {
  const mod = await import(pathToFileURL(join(routes, file)).href);
  mod.default(app, ctx);
}

const server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`origin listening ${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
