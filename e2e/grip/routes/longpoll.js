// Long-poll: GET /lp/CHANNEL[?prev=ID&timeout=S&status=CODE] holds the
// request (Grip-Hold: response) until an http-response is published to
// CHANNEL; the body here is the answer on timeout, with the status CODE
// (Grip-Status) when one is given.
export default function (app) {
  app.get('/lp/:channel', (req, res) => {
    if (!req.grip.isSigned) {
      res.status(501).type('text/plain').send('not behind a GRIP proxy\n');
      return;
    }
    const instruct = res.grip.startInstruct();
    instruct.addChannel(req.query.prev ? { name: req.params.channel, prevId: req.query.prev } : req.params.channel);
    instruct.setHoldLongPoll(Number(req.query.timeout || 20));
    if (req.query.status) {
      instruct.setStatus(Number(req.query.status));
    }
    res.type('text/plain').send('timeout\n');
  });
  // The same hold given the older way, as an application/grip-instruct
  // body (written by hand: the libraries send headers).
  app.get('/instruct/:channel', (req, res) => {
    if (!req.grip.isSigned) {
      res.status(501).type('text/plain').send('not behind a GRIP proxy\n');
      return;
    }
    res.type('application/grip-instruct').send(JSON.stringify({
      hold: { mode: 'response', channels: [{ name: req.params.channel }], timeout: Number(req.query.timeout || 20) },
      response: { code: 202, headers: { 'Content-Type': 'text/plain', 'X-Example': 'instruct' }, body: 'instructed timeout\n' },
    }));
  });
}
