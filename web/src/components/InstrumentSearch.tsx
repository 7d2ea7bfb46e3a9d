// Search as you type, by symbol or name, Korean or English: asked once typing pauses, and an
// older answer never replaces a newer one. Each result has its live price and a watchlist star.

import { useEffect, useRef, useState } from 'preact/hooks';
import { enc, get, type Instrument } from '../api';
import { remember } from '../format';
import { t } from '../i18n';
import { seed } from '../quotes';
import { InstrumentTable } from './InstrumentTable';
import { WatchButton } from './WatchButton';

const DEBOUNCE_MS = 250;

/** Keeps what a REST answer says of instruments: their names and latest quotes. */
export function received(instruments: Instrument[]) {
  remember(instruments);
  instruments.forEach(seed);
  return instruments;
}

/** Results for what is typed, asked for once typing pauses; an older answer never replaces a newer. */
function useSearch(query: string) {
  const [results, setResults] = useState<Instrument[] | undefined>(undefined);
  const latest = useRef(0);
  useEffect(() => {
    const q = query.trim();
    if (!q) {
      setResults(undefined);
      return;
    }
    const ask = ++latest.current;
    const timer = setTimeout(async () => {
      try {
        const found = received(await get<Instrument[]>(`/api/v1/instruments?q=${enc(q)}&limit=20`));
        if (ask === latest.current) setResults(found);
      } catch {
        if (ask === latest.current) setResults([]);
      }
    }, DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [query]);
  return results;
}

export function InstrumentSearch({ label = t('search.label') }: { label?: string }) {
  const [query, setQuery] = useState('');
  const results = useSearch(query);
  const q = query.trim();
  return (
    <div class="search">
      <label for="search">{label}</label>
      <input
        id="search"
        type="search"
        autoComplete="off"
        placeholder={t('search.placeholder')}
        value={query}
        onInput={(e) => setQuery(e.currentTarget.value)}
      />
      {q && (
        <section class="card results" aria-labelledby="results-title">
          <h2 id="results-title">{t('search.results', { q })}</h2>
          {results === undefined ? (
            <p class="muted">{t('loading')}</p>
          ) : results.length === 0 ? (
            <p class="muted">{t('search.none', { q })}</p>
          ) : (
            <InstrumentTable
              caption={t('search.results', { q })}
              instruments={results}
              actions={(instrument) => <WatchButton instrument={instrument} />}
            />
          )}
        </section>
      )}
    </div>
  );
}
