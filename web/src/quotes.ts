// Live prices over ONE quote socket for the whole app: every component that shows an
// instrument's price holds a subscription while it is on screen; the socket subscribes each
// instrument once, resubscribes all of them after a reconnect, and keeps a short price history
// per instrument for sparklines.

import { signal, type Signal } from '@preact/signals';
import { useEffect } from 'preact/hooks';
import type { Instrument } from './api';
import { LiveSocket } from './socket';

export interface LiveQuote {
  price: string;
  /** Change against the previous close, in percent. */
  changePercent: number | null;
  simulated: boolean;
  /** Epoch milliseconds of the trade. */
  at: number;
}

const HISTORY_POINTS = 120;

const quotes = new Map<string, Signal<LiveQuote | undefined>>();
const histories = new Map<string, Signal<number[]>>();
const holders = new Map<string, number>();

export const quoteSocket = new LiveSocket('/api/v1/quotes/stream', {
  opened(send) {
    for (const id of holders.keys()) send({ type: 'subscribe', symbol: id });
  },
  message(data) {
    if (data?.type !== 'price_update' || typeof data.instrument !== 'string') return;
    update(data.instrument, {
      price: String(data.priceExact ?? data.price),
      changePercent: typeof data.changeRate === 'number' ? data.changeRate : null,
      simulated: Boolean(data.simulated),
      at: Number(data.timestamp) || Date.now(),
    });
  },
});

/** A quote from the socket: each instrument's come in order, so the last one is the newest. */
function update(id: string, quote: LiveQuote) {
  const current = quoteOf(id);
  fromSocket.add(id);
  current.value = quote;
  const history = historyOf(id);
  const price = Number(quote.price);
  if (Number.isFinite(price)) history.value = [...history.value.slice(1 - HISTORY_POINTS), price];
}

export function quoteOf(id: string): Signal<LiveQuote | undefined> {
  let quote = quotes.get(id);
  if (!quote) {
    quote = signal(undefined);
    quotes.set(id, quote);
  }
  return quote;
}

export function historyOf(id: string): Signal<number[]> {
  let history = histories.get(id);
  if (!history) {
    history = signal([]);
    histories.set(id, history);
  }
  return history;
}

/** Instruments whose price the socket has delivered: fresher than any REST answer. */
const fromSocket = new Set<string>();

/** Seeds the live store from a REST answer, unless the socket is already delivering prices. */
export function seed(instrument: Instrument) {
  const q = instrument.quote;
  if (!q || (fromSocket.has(instrument.id) && holders.has(instrument.id))) return;
  const at = Date.parse(q.exchangeTime) || Date.now();
  quoteOf(instrument.id).value = {
    price: q.price,
    changePercent: q.changePercent == null ? null : Number(q.changePercent),
    simulated: q.simulated,
    at,
  };
}

/** Seeds a sparkline with earlier closes (from candles) when it has none of its own yet. */
export function seedHistory(id: string, closes: number[]) {
  const history = historyOf(id);
  if (history.value.length < closes.length) history.value = closes.slice(-HISTORY_POINTS);
}

function hold(id: string) {
  const count = holders.get(id) ?? 0;
  holders.set(id, count + 1);
  if (count === 0) quoteSocket.send({ type: 'subscribe', symbol: id });
}

function release(id: string) {
  const count = (holders.get(id) ?? 1) - 1;
  if (count > 0) {
    holders.set(id, count);
    return;
  }
  holders.delete(id);
  quoteSocket.send({ type: 'unsubscribe', symbol: id });
}

/** Live prices of `ids` while the calling component is mounted. */
export function useLiveQuotes(ids: string[]) {
  const key = ids.join(',');
  useEffect(() => {
    const held = key ? key.split(',') : [];
    held.forEach(hold);
    return () => held.forEach(release);
  }, [key]);
}
