// Markets: search as you type (by symbol or name, Korean or English), and the top movers of
// each market with live prices.

import { useEffect, useRef, useState } from 'preact/hooks';
import { get, type Instrument } from '../api';
import { InstrumentSearch, received } from '../components/InstrumentSearch';
import { InstrumentTable } from '../components/InstrumentTable';
import { unavailableReason } from '../components/Price';
import { WatchButton } from '../components/WatchButton';
import { t } from '../i18n';

const MOVERS_REFRESH_MS = 30_000;
const MOVERS_SHOWN = 10;
const TABS = ['KRX', 'US', 'CRYPTO'] as const;
type Tab = (typeof TABS)[number];

/** The movers of each tab, as the server splits them. */
type Movers = Record<Tab, Instrument[]>;

function useMovers() {
  const [movers, setMovers] = useState<Movers | undefined>(undefined);
  useEffect(() => {
    let stopped = false;
    const load = async () => {
      try {
        const answer = await get<{ krx: Instrument[]; us: Instrument[]; crypto: Instrument[] }>(
          `/api/v1/movers?limit=${MOVERS_SHOWN}`,
        );
        if (!stopped) setMovers({ KRX: received(answer.krx), US: received(answer.us), CRYPTO: received(answer.crypto) });
      } catch {
        if (!stopped) setMovers((m) => m ?? { KRX: [], US: [], CRYPTO: [] });
      }
    };
    void load();
    const timer = setInterval(load, MOVERS_REFRESH_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);
  return movers;
}

/** An instrument of each market whose missing quote says why the market has no prices. */
const FLAGSHIP: Record<Tab, string> = { KRX: 'KRX:005930', US: 'NASDAQ:AAPL', CRYPTO: 'UPBIT:KRW-BTC' };

/** Why a market shows no movers, in the server's words ("KIS is not configured"). */
function NoPrices({ tab }: { tab: Tab }) {
  const [reason, setReason] = useState<string>();
  useEffect(() => {
    setReason(undefined);
    get<Instrument>(`/api/v1/instruments/${encodeURIComponent(FLAGSHIP[tab])}`)
      .then((i) => setReason(unavailableReason(i)))
      .catch(() => undefined);
  }, [tab]);
  return (
    <div class="no-prices">
      <p class="muted">{t('movers.none')}</p>
      {reason && <p class="reason">{reason}</p>}
    </div>
  );
}

function Tabs({ tab, setTab }: { tab: Tab; setTab: (tab: Tab) => void }) {
  const refs = useRef<(HTMLButtonElement | null)[]>([]);
  const onKey = (e: KeyboardEvent, index: number) => {
    const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    const next = (index + step + TABS.length) % TABS.length;
    setTab(TABS[next]);
    refs.current[next]?.focus();
  };
  return (
    <div class="tabs" role="tablist" aria-label={t('tabs.label')}>
      {TABS.map((name, index) => (
        <button
          type="button"
          role="tab"
          id={`tab-${name}`}
          key={name}
          ref={(el) => {
            refs.current[index] = el;
          }}
          aria-selected={tab === name}
          aria-controls={`panel-${name}`}
          tabIndex={tab === name ? 0 : -1}
          onClick={() => setTab(name)}
          onKeyDown={(e) => onKey(e, index)}
        >
          {t(`tab.${name}`)}
        </button>
      ))}
    </div>
  );
}

export function Markets() {
  const [tab, setTab] = useState<Tab>('KRX');
  const movers = useMovers();
  const inTab = movers?.[tab];
  const actions = (instrument: Instrument) => <WatchButton instrument={instrument} />;

  return (
    <div class="page markets">
      <h1>{t('markets.title')}</h1>
      <InstrumentSearch />
      <section class="card" aria-labelledby="movers-title">
        <h2 id="movers-title">{t('movers.title')}</h2>
        <Tabs tab={tab} setTab={setTab} />
        <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} tabIndex={0}>
          {inTab === undefined ? (
            <p class="muted">{t('loading')}</p>
          ) : inTab.length === 0 ? (
            <NoPrices tab={tab} />
          ) : (
            <InstrumentTable caption={`${t('movers.title')}: ${t(`tab.${tab}`)}`} instruments={inTab} actions={actions} />
          )}
        </div>
      </section>
    </div>
  );
}
