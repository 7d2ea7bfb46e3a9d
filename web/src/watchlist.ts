// The person's watchlist, shared by every page that shows a star or the list itself.

import { signal } from '@preact/signals';
import { del, enc, get, put, type Instrument } from './api';
import { remember } from './format';
import { seed } from './quotes';

/** The watched instruments in the person's order; undefined until loaded. */
export const watchlist = signal<Instrument[] | undefined>(undefined);

export async function loadWatchlist() {
  const items = await get<Instrument[]>('/api/v1/watchlist');
  remember(items);
  items.forEach(seed);
  watchlist.value = items;
}

export function isWatched(id: string): boolean {
  return Boolean(watchlist.value?.some((i) => i.id === id));
}

export async function watch(instrument: Instrument) {
  await put(`/api/v1/watchlist/${enc(instrument.id)}`);
  await loadWatchlist();
}

export async function unwatch(instrument: Instrument) {
  await del(`/api/v1/watchlist/${enc(instrument.id)}`);
  watchlist.value = watchlist.value?.filter((i) => i.id !== instrument.id);
}

/** Moves one instrument by `offset` places and stores the new order. */
export async function move(instrument: Instrument, offset: number) {
  const items = [...(watchlist.value ?? [])];
  const from = items.findIndex((i) => i.id === instrument.id);
  const to = from + offset;
  if (from < 0 || to < 0 || to >= items.length) return;
  items.splice(to, 0, ...items.splice(from, 1));
  watchlist.value = items;
  try {
    await put('/api/v1/watchlist', { order: items.map((i) => i.id) });
  } catch (e) {
    await loadWatchlist();
    throw e;
  }
}
