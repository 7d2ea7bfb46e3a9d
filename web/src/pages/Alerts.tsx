// Alert history: newest first, filtered by instrument and read state, loading more as the
// person scrolls; mark read, delete one or all.

import { useEffect, useRef, useState } from 'preact/hooks';
import { del, get, post, type Alert, type AlertPage } from '../api';
import { alertsArrived, askNotificationPermission, notificationPermission, refreshUnread } from '../alerts';
import { announce } from '../components/Announcer';
import { Icon } from '../components/Icon';
import { instrumentHref } from '../components/InstrumentTable';
import { SimulatedTag } from '../components/Price';
import { describeAlert, formatTime, learnNames, nameOf } from '../format';
import { t } from '../i18n';

const PAGE = 30;
type ReadFilter = 'all' | 'unread' | 'read';

function query(symbol: string, read: ReadFilter, before?: number | null) {
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (symbol) params.set('symbol', symbol);
  if (read !== 'all') params.set('read', String(read === 'read'));
  if (before) params.set('before', String(before));
  return `/api/v1/alerts?${params}`;
}

export function NotificationPrompt() {
  const permission = notificationPermission.value;
  if (permission === 'granted' || permission === 'unsupported') return null;
  return (
    <div class="notice">
      {permission === 'denied' ? (
        <p>{t('alerts.notifyDenied')}</p>
      ) : (
        <>
          <p>{t('alerts.notifyAsk')}</p>
          <button type="button" onClick={askNotificationPermission}>
            {t('alerts.notifyOn')}
          </button>
        </>
      )}
    </div>
  );
}

export function Alerts() {
  const [symbol, setSymbol] = useState('');
  const [read, setRead] = useState<ReadFilter>('all');
  const [items, setItems] = useState<Alert[]>();
  const [next, setNext] = useState<number | null>(null);
  const [loading, setLoading] = useState(false);
  const [instruments, setInstruments] = useState<string[]>([]);
  const sentinel = useRef<HTMLDivElement>(null);
  const generation = useRef(0);

  const load = async (before: number | null) => {
    const mine = generation.current;
    setLoading(true);
    try {
      const page = await get<AlertPage>(query(symbol, read, before));
      if (mine !== generation.current) return;
      setItems((current) => (before ? [...(current ?? []), ...page.items] : page.items));
      setNext(page.nextBefore ?? null);
      setInstruments((known) => [...new Set([...known, ...page.items.map((a) => a.instrument)])]);
      void learnNames(page.items.map((a) => a.instrument));
    } catch (e) {
      announce(e instanceof Error ? e.message : String(e), 'error');
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  };

  // Filters changed, or a new alert arrived: from the top again.
  useEffect(() => {
    generation.current += 1;
    setItems(undefined);
    void load(null);
  }, [symbol, read, alertsArrived.value]);

  // Endless scrolling: the next page loads when the end of the list comes into view.
  useEffect(() => {
    const end = sentinel.current;
    if (!end || !next) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && !loading) void load(next);
    });
    observer.observe(end);
    return () => observer.disconnect();
  }, [next, loading]);

  const change = async (action: () => Promise<unknown>) => {
    try {
      await action();
      refreshUnread();
    } catch (e) {
      announce(e instanceof Error ? e.message : String(e), 'error');
    }
  };
  const markRead = (alert: Alert) =>
    change(async () => {
      await post(`/api/v1/alerts/${alert.id}/read`);
      setItems((list) =>
        read === 'unread' ? list?.filter((a) => a.id !== alert.id) : list?.map((a) => (a.id === alert.id ? { ...a, read: true } : a)),
      );
    });
  const remove = (alert: Alert) =>
    change(async () => {
      await del(`/api/v1/alerts/${alert.id}`);
      setItems((list) => list?.filter((a) => a.id !== alert.id));
    });
  const markAllRead = () =>
    change(async () => {
      await post('/api/v1/alerts/read');
      generation.current += 1;
      await load(null);
    });
  const removeAll = () => {
    if (!confirm(t('alerts.confirmDeleteAll'))) return;
    void change(async () => {
      await del('/api/v1/alerts');
      setItems([]);
      setNext(null);
    });
  };

  return (
    <div class="page alerts-page">
      <h1>{t('alerts.title')}</h1>
      <NotificationPrompt />
      <section class="card">
        <div class="toolbar">
          <fieldset class="filters">
            <legend class="visually-hidden">{t('alerts.filters')}</legend>
            <label>
              {t('filter.symbol')}
              <select value={symbol} onChange={(e) => setSymbol(e.currentTarget.value)}>
                <option value="">{t('filter.anySymbol')}</option>
                {instruments.map((id) => (
                  <option value={id} key={id}>
                    {nameOf(id)} ({id.split(':').pop()})
                  </option>
                ))}
              </select>
            </label>
            <label>
              {t('filter.read')}
              <select value={read} onChange={(e) => setRead(e.currentTarget.value as ReadFilter)}>
                <option value="all">{t('filter.all')}</option>
                <option value="unread">{t('filter.unread')}</option>
                <option value="read">{t('filter.readOnly')}</option>
              </select>
            </label>
          </fieldset>
          <div class="toolbar-actions">
            <button type="button" onClick={markAllRead}>
              <Icon name="check" /> {t('alerts.markAllRead')}
            </button>
            <button type="button" class="danger" onClick={removeAll}>
              <Icon name="trash" /> {t('alerts.deleteAll')}
            </button>
          </div>
        </div>
        {items === undefined ? (
          <p class="muted">{t('loading')}</p>
        ) : items.length === 0 ? (
          <p class="muted">{t('alerts.empty')}</p>
        ) : (
          <ul class="alert-list">
            {items.map((alert) => {
              const { body } = describeAlert(alert);
              const name = nameOf(alert.instrument);
              return (
                <li key={alert.id} class={`alert-item ${alert.read ? 'read' : 'unread'}`} data-alert={alert.id} data-read={String(alert.read)}>
                  <span class="unread-dot" aria-hidden="true" />
                  <div class="alert-main">
                    <a href={instrumentHref(alert.instrument)} onClick={() => !alert.read && void markRead(alert)}>
                      {body}
                    </a>
                    <p class="muted">
                      <time dateTime={alert.triggeredAt}>{formatTime(alert.triggeredAt)}</time>
                      {!alert.read && <span class="tag tag-unread">{t('alerts.unread')}</span>}
                      {alert.simulated && <SimulatedTag />}
                      {alert.note && <span class="alert-note"> · {alert.note}</span>}
                    </p>
                  </div>
                  <div class="row-actions">
                    {!alert.read && (
                      <button type="button" class="icon-button" aria-label={t('alerts.markReadOne', { name })} onClick={() => markRead(alert)}>
                        <Icon name="check" />
                      </button>
                    )}
                    <button type="button" class="icon-button danger" aria-label={t('alerts.deleteOne', { name })} onClick={() => remove(alert)}>
                      <Icon name="trash" />
                    </button>
                  </div>
                </li>
              );
            })}
          </ul>
        )}
        <div ref={sentinel} class="list-end">
          {next ? (
            <button type="button" onClick={() => load(next)} disabled={loading}>
              {t('alerts.loadMore')}
            </button>
          ) : (
            items && items.length > 0 && <p class="muted">{t('alerts.end')}</p>
          )}
        </div>
      </section>
    </div>
  );
}

