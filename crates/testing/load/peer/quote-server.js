// The benchmark peer for the live-quote socket: what a small Node service on the `ws` package does
// with the same job. It follows the fake exchange's ticker stream (Upbit's DEFAULT format) and
// pushes each trade to the sockets subscribed to its market, in the /ws/stocks protocol:
// {"type":"subscribe"|"unsubscribe","symbol":"KRW-BTC"} -> {"status":"success","message":...}
// then {"type":"price_update",...} per trade. Each update is serialized once per trade and the same
// string goes to every subscriber, as such a service would be written.
//
// Usage: node quote-server.js FEED_WS_URL CODE[,CODE...]
// Prints "listening PORT" once it accepts sockets (on 127.0.0.1, a port of the OS's choosing).
'use strict';

const http = require('http');
const { WebSocket, WebSocketServer } = require('ws');

const [feedUrl, codeList] = process.argv.slice(2);
if (!feedUrl || !codeList) {
  console.error('usage: node quote-server.js FEED_WS_URL CODE[,CODE...]');
  process.exit(2);
}
const codes = codeList.split(',');

/** Subscribed sockets per market code. */
const subscribers = new Map(codes.map((code) => [code, new Set()]));

function marketOf(symbol) {
  const code = String(symbol).replace(/^UPBIT:/, '');
  return subscribers.has(code) ? code : null;
}

const server = http.createServer((_, response) => {
  response.writeHead(404);
  response.end();
});
const sockets = new WebSocketServer({ server, path: '/ws/stocks' });

sockets.on('connection', (socket) => {
  const mine = new Set();
  socket.on('message', (data) => {
    let message;
    try {
      message = JSON.parse(data);
    } catch (error) {
      socket.send(JSON.stringify({ status: 'error', message: String(error) }));
      return;
    }
    const code = marketOf(message.symbol);
    if (code === null) {
      socket.send(JSON.stringify({ status: 'error', message: `unknown symbol ${message.symbol}` }));
      return;
    }
    if (message.type === 'subscribe') {
      subscribers.get(code).add(socket);
      mine.add(code);
      socket.send(JSON.stringify({ status: 'success', message: `subscribed to UPBIT:${code}` }));
    } else if (message.type === 'unsubscribe') {
      subscribers.get(code).delete(socket);
      mine.delete(code);
      socket.send(JSON.stringify({ status: 'success', message: `unsubscribed from UPBIT:${code}` }));
    } else {
      socket.send(JSON.stringify({ status: 'error', message: `unknown type ${message.type}` }));
    }
  });
  socket.on('close', () => {
    for (const code of mine) subscribers.get(code).delete(socket);
  });
  socket.on('error', () => {});
});

function follow() {
  const feed = new WebSocket(feedUrl);
  feed.on('open', () => {
    feed.send(JSON.stringify([
      { ticket: 'quote-peer' },
      { type: 'ticker', codes },
      { format: 'DEFAULT' },
    ]));
  });
  feed.on('message', (data) => {
    const ticker = JSON.parse(data);
    const listeners = subscribers.get(ticker.code);
    if (!listeners || listeners.size === 0) return;
    const update = JSON.stringify({
      type: 'price_update',
      symbol: ticker.code,
      instrument: `UPBIT:${ticker.code}`,
      price: ticker.trade_price,
      priceExact: String(ticker.trade_price),
      changeRate: ticker.signed_change_rate * 100,
      timestamp: ticker.trade_timestamp,
      simulated: false,
    });
    for (const socket of listeners) socket.send(update);
  });
  feed.on('close', () => setTimeout(follow, 200));
  feed.on('error', () => {});
}

server.listen(0, '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
  follow();
});
