// The watchlist: live prices over the one quote socket, a sparkline per row, and add, remove and
// reorder.

import { useEffect } from 'preact/hooks';
import { candleSeries, enc, get, type Candle, type CandleSeries, type Instrument } from '../api';
import { announce } from '../components/Announcer';
import { Icon } from '../components/Icon';
import { InstrumentSearch } from '../components/InstrumentSearch';
import { InstrumentTable } from '../components/InstrumentTable';
import { WatchButton } from '../components/WatchButton';
import { nameOf } from '../format';
import { t } from '../i18n';
import { seedHistory } from '../quotes';
import { loadWatchlist, move, watchlist } from '../watchlist';

const sparklinesSeeded = new Set<string>();

/** The last hour of minute closes, so a sparkline has a shape before live prices come in. */
async function seedSparkline(instrument: Instrument) {
  if (sparklinesSeeded.has(instrument.id)) return;
  sparklinesSeeded.add(instrument.id);
  try {
    const { candles } = candleSeries(
      await get<Candle[] | CandleSeries>(`/api/v1/instruments/${enc(instrument.id)}/candles?interval=1m&limit=60`),
    );
    seedHistory(instrument.id, candles.map((c) => Number(c.close)).filter(Number.isFinite));
  } catch {
    sparklinesSeeded.delete(instrument.id);
  }
}

export function Watchlist() {
  useEffect(() => {
    loadWatchlist().catch((e) => announce(e.message, 'error'));
  }, []);
  const items = watchlist.value;
  useEffect(() => {
    items?.forEach(seedSparkline);
  }, [items]);

  const reorder = async (instrument: Instrument, offset: number) => {
    try {
      await move(instrument, offset);
    } catch (e) {
      announce(e instanceof Error ? e.message : String(e), 'error');
    }
  };

  return (
    <div class="page watchlist">
      <h1>{t('watchlist.title')}</h1>
      <InstrumentSearch label={t('watchlist.add')} />
      <section class="card" aria-labelledby="watchlist-title">
        <h2 id="watchlist-title" class="visually-hidden">
          {t('watchlist.title')}
        </h2>
        {items === undefined ? (
          <p class="muted">{t('loading')}</p>
        ) : items.length === 0 ? (
          <p class="muted">{t('watchlist.empty')}</p>
        ) : (
          <InstrumentTable
            caption={t('watchlist.title')}
            instruments={items}
            trend
            actions={(instrument, index) => (
              <div class="row-actions">
                <button
                  type="button"
                  class="icon-button"
                  aria-label={t('move.up', { name: nameOf(instrument) })}
                  disabled={index === 0}
                  onClick={() => reorder(instrument, -1)}
                >
                  <Icon name="up" />
                </button>
                <button
                  type="button"
                  class="icon-button"
                  aria-label={t('move.down', { name: nameOf(instrument) })}
                  disabled={index === items.length - 1}
                  onClick={() => reorder(instrument, 1)}
                >
                  <Icon name="down" />
                </button>
                <WatchButton instrument={instrument} />
              </div>
            )}
          />
        )}
      </section>
    </div>
  );
}
