// A chat over WebSocket-over-HTTP, written as any app for Pushpin is:
// @fanoutio/serve-grip gives each request's WebSocket context
// (req.grip.wsContext), @fanoutio/grip's Publisher sends the chat lines to
// the channel every connection is subscribed to.
//
// Protocol (what a client sees): connect to /wschat?name=NAME; the first
// message is {"type":"welcome","user":NAME}; every text message a client
// sends reaches every connected client as
// {"type":"chat","from":NAME,"text":TEXT}. The name is kept in the
// connection's meta (Set-Meta-User), so later requests know who speaks.
// The message "/bye" makes the origin close the connection (code 4000).
import { WebSocketMessageFormat } from '@fanoutio/grip';

const CHANNEL = 'wschat';

export default function (app, { publisher }) {
  // serve-grip (app.use in origin.js) has read the events into
  // req.grip.wsContext.
  app.post('/wschat', async (req, res) => {
    const ws = req.grip?.wsContext;
    if (ws == null) {
      res.statusCode = 400;
      res.end('This endpoint speaks WebSocket-over-HTTP only: connect through the GRIP proxy.\n');
      return;
    }
    if (ws.isOpening()) {
      const name = new URL(req.url, 'http://origin').searchParams.get('name') || 'anonymous';
      ws.accept();
      ws.meta.user = name;
      ws.subscribe(CHANNEL);
      ws.send(JSON.stringify({ type: 'welcome', user: name }));
    }
    while (ws.canRecv()) {
      let text;
      try {
        text = ws.recv();
      } catch {
        break; // DISCONNECT: the client is gone, nothing to answer
      }
      if (text == null) { // the client closed: close too
        ws.close(1000);
        break;
      }
      if (text === '/bye') {
        ws.send(JSON.stringify({ type: 'bye', user: ws.meta.user }));
        ws.close(4000);
        break;
      }
      // Publish before answering: when the sender hears back, every
      // subscriber has been sent the line. A failed publish fails the
      // request (500), and the GRIP proxy closes the connection.
      const line = JSON.stringify({ type: 'chat', from: ws.meta.user, text });
      await publisher.publishFormats(CHANNEL, new WebSocketMessageFormat(line));
    }
    res.end();
  });
}
