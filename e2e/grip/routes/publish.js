// Publishing through @fanoutio/grip's Publisher (pointed at the GRIP
// proxy's control URI): POST /send/CHANNEL with a JSON body
//   {"kind": "response" | "stream" | "sse" | "close", "text": "...", "id": "...", "prevId": "..."}
// publishes one item (kind sse: an SSE event of data text, with the item's
// id as its id when there is one) and answers 200 "sent" once the proxy accepted it.
import { HttpResponseFormat, HttpStreamFormat } from '@fanoutio/grip';

export default function (app, { publisher }) {
  app.post('/send/:channel', express_json(), async (req, res) => {
    const { kind, text = '', id, prevId } = req.body || {};
    const channel = req.params.channel;
    try {
      switch (kind) {
        case 'response':
          await publisher.publishFormats(channel, new HttpResponseFormat({ headers: { 'Content-Type': 'text/plain' }, body: text }), id, prevId);
          break;
        case 'stream':
          await publisher.publishHttpStream(channel, text, id, prevId);
          break;
        case 'sse':
          await publisher.publishHttpStream(channel, `${id ? `id: ${id}\n` : ''}event: message\ndata: ${text}\n\n`, id, prevId);
          break;
        case 'close':
          await publisher.publishFormats(channel, new HttpStreamFormat(null, true), id, prevId);
          break;
        default:
          res.status(400).type('text/plain').send('kind must be response, stream, sse or close\n');
          return;
      }
      res.type('text/plain').send('sent\n');
    } catch (err) {
      res.status(502).type('text/plain').send(`publish failed: ${err.message} ${JSON.stringify(err.context ?? {})}\n`);
    }
  });
}

// express.json without importing express in every route module.
function express_json() {
  return async (req, res, next) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    try {
      req.body = body ? JSON.parse(body) : {};
    } catch {
      res.status(400).type('text/plain').send('bad JSON\n');
      return;
    }
    next();
  };
}
