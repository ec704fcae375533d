// Plain answers, without hold instructions: GET /hello passes through as
// is; GET /accepted is a 200 whose Grip-Status makes it a 202; GET /chunks answers its first part with a Grip-Link to the next,
// which the proxy fetches and appends (GET /chunks/2, the last).
export default function (app) {
  app.get('/hello', (req, res) => {
    res.set('X-Example', 'plain');
    res.status(203).type('text/plain').send('hello\n');
  });
  app.get('/chunks', (req, res) => {
    if (req.grip.isSigned) {
      res.grip.startInstruct().setNextLink('/chunks/2');
    }
    res.type('text/plain').send('part 1\n');
  });
  app.get('/accepted', (req, res) => { // Grip-Status overrides the status
    if (req.grip.isSigned) {
      res.grip.startInstruct().setStatus(202);
    }
    res.type('text/plain').send('accepted\n');
  });
  app.get('/chunks/2', (req, res) => {
    res.type('text/plain').send('part 2\n');
  });
}
