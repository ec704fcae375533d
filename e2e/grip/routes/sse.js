// Server-Sent Events: GET /sse/CHANNEL answers an opening event and holds
// the stream (Grip-Hold: stream); http-stream publishes to CHANNEL are
// appended, with a keep-alive comment after 20 s of silence (?ka=S: S). The id of the
// last event the client had (?prev=ID, or EventSource's Last-Event-ID on
// reconnection) is passed on as the channel's prev-id.
export default function (app) {
  app.get('/sse/:channel', (req, res) => {
    if (!req.grip.isSigned) {
      res.status(501).type('text/plain').send('not behind a GRIP proxy\n');
      return;
    }
    const instruct = res.grip.startInstruct();
    const prev = req.query.prev || req.get('Last-Event-ID');
    instruct.addChannel(prev ? { name: req.params.channel, prevId: prev } : req.params.channel);
    instruct.setHoldStream();
    instruct.setKeepAlive(':\n\n', Number(req.query.ka || 20));
    res.set('Content-Type', 'text/event-stream');
    res.set('Cache-Control', 'no-cache');
    res.send('event: open\ndata: {}\n\n');
  });
}
