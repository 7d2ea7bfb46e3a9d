// One instrument: its live price, a candlestick chart with the person's rule levels, rules made
// by clicking a level or through the full form, and editing or deleting a rule from its line.

import lazy from 'preact-iso/lazy';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, enc, get, post, type Instrument, type Rule } from '../api';
import { alertsArrived } from '../alerts';
import type { Interval } from '../chart';
import { announce } from '../components/Announcer';
import { Dialog } from '../components/Dialog';
import { Icon } from '../components/Icon';
import { Price } from '../components/Price';
import { RuleForm, type RuleDraft } from '../components/RuleForm';
import { RuleList } from '../components/RuleList';
import { WatchButton } from '../components/WatchButton';
import { formatPrice, nameOf, remember } from '../format';
import { t } from '../i18n';
import { quoteOf, seed, useLiveQuotes } from '../quotes';
import { loadRules } from '../rules';
import { onGrid } from '../ticks';

const Chart = lazy(() => import('../chart'));
const INTERVALS: Interval[] = ['1m', '5m', '15m', '1h', '1d'];

type Panel =
  | { kind: 'level'; level: string }
  | { kind: 'form'; draft?: RuleDraft; rule?: Rule }
  | { kind: 'line'; rule: Rule };

export function InstrumentPage({ id }: { id: string }) {
  const instrumentId = decodeURIComponent(id);
  const [instrument, setInstrument] = useState<Instrument | null | undefined>(undefined);
  const [problem, setProblem] = useState<string>();
  const [rules, setRules] = useState<Rule[]>([]);
  const [interval, setChartInterval] = useState<Interval>('1m');
  const [panel, setPanel] = useState<Panel>();
  useLiveQuotes(instrument ? [instrument.id] : []);

  useEffect(() => {
    setInstrument(undefined);
    get<Instrument>(`/api/v1/instruments/${enc(instrumentId)}`)
      .then((found) => {
        remember([found]);
        seed(found);
        setInstrument(found);
      })
      .catch((e) => {
        setProblem(e instanceof ApiError ? e.message : String(e));
        setInstrument(null);
      });
  }, [instrumentId]);

  const refreshRules = useCallback(async () => {
    if (!instrument) return;
    try {
      setRules((await loadRules()).filter((r) => r.instrument === instrument.id));
    } catch (e) {
      announce(e instanceof Error ? e.message : String(e), 'error');
    }
  }, [instrument?.id]);

  useEffect(() => {
    void refreshRules();
  }, [refreshRules, alertsArrived.value]);

  if (instrument === undefined) return <p class="page muted">{t('loading')}</p>;
  if (instrument === null)
    return (
      <div class="page">
        <p class="problem">{problem}</p>
        <a href="/">{t('home')}</a>
      </div>
    );

  const name = nameOf(instrument);
  const current = Number(quoteOf(instrument.id).value?.price ?? instrument.quote?.price ?? NaN);
  const saved = (message: string) => (rule: Rule) => {
    setPanel(undefined);
    announce(message);
    setRules((list) => [rule, ...list.filter((r) => r.id !== rule.id)]);
  };
  const quickRule = async (condition: 'ABOVE' | 'BELOW', level: string) => {
    try {
      saved(t('form.created'))(
        await post<Rule>('/api/v1/rules', { instrument: instrument.id, condition, level, repeat: 'once' }),
      );
    } catch (e) {
      // The full form shows the server's word next to the field.
      setPanel({ kind: 'form', draft: { condition, level } });
      announce(e instanceof Error ? e.message : String(e), 'error');
    }
  };

  return (
    <div class="page instrument">
      <header class="instrument-header">
        <div>
          <h1>{name}</h1>
          <p class="sub">
            <span class="symbol">{instrument.symbol}</span> <span class="market">{instrument.market}</span>{' '}
            {instrument.koreanName !== name ? instrument.koreanName : instrument.englishName}
          </p>
        </div>
        <div class="instrument-price">
          <Price instrument={instrument} large />
          <WatchButton instrument={instrument} />
        </div>
      </header>
      <section class="card chart-card" aria-labelledby="chart-title">
        <div class="chart-toolbar">
          <h2 id="chart-title" class="visually-hidden">
            {t('chart.label', { name, interval: t(`interval.${interval}`) })}
          </h2>
          <div class="segmented" role="radiogroup" aria-label={t('chart.intervals')}>
            {INTERVALS.map((value) => (
              <label key={value} class={interval === value ? 'on' : ''}>
                <input
                  type="radio"
                  name="interval"
                  value={value}
                  checked={interval === value}
                  onChange={() => setChartInterval(value)}
                />
                {t(`interval.${value}`)}
              </label>
            ))}
          </div>
          <button type="button" class="primary" onClick={() => setPanel({ kind: 'form' })}>
            <Icon name="plus" /> {t('rules.new')}
          </button>
        </div>
        <Chart
          instrument={instrument}
          interval={interval}
          rules={rules}
          onLevel={(price) => setPanel({ kind: 'level', level: onGrid(instrument.market, price) })}
          onRule={(rule) => setPanel({ kind: 'line', rule })}
        />
        <p class="hint">{t('chart.hint')}</p>
      </section>
      <section class="card" aria-labelledby="rules-title">
        <h2 id="rules-title">{t('rules.on', { name })}</h2>
        <RuleList
          rules={rules}
          empty={t('rules.none')}
          onChanged={refreshRules}
          onEdit={(rule) => setPanel({ kind: 'form', rule })}
        />
      </section>
      {panel?.kind === 'level' && (
        <Dialog title={t('level.title', { price: formatPrice(panel.level) })} onClose={() => setPanel(undefined)}>
          <div class="level-choices">
            {(Number(panel.level) >= current || !Number.isFinite(current) ? (['ABOVE', 'BELOW'] as const) : (['BELOW', 'ABOVE'] as const)).map(
              (condition, index) => (
                <button
                  type="button"
                  key={condition}
                  class={index === 0 ? 'primary wide' : 'wide'}
                  onClick={() => quickRule(condition, panel.level)}
                >
                  {t(condition === 'ABOVE' ? 'level.above' : 'level.below', { price: formatPrice(panel.level) })}
                </button>
              ),
            )}
            <button
              type="button"
              class="link-button"
              onClick={() =>
                setPanel({ kind: 'form', draft: { condition: Number(panel.level) >= current ? 'ABOVE' : 'BELOW', level: panel.level } })
              }
            >
              {t('level.more')}
            </button>
          </div>
        </Dialog>
      )}
      {panel?.kind === 'line' && (
        <Dialog title={t('line.title', { price: formatPrice(panel.rule.level ?? '') })} onClose={() => setPanel(undefined)}>
          <RuleList
            rules={[panel.rule]}
            empty=""
            onChanged={async () => {
              setPanel(undefined);
              await refreshRules();
            }}
            onEdit={(rule) => setPanel({ kind: 'form', rule })}
          />
        </Dialog>
      )}
      {panel?.kind === 'form' && (
        <Dialog
          title={t(panel.rule ? 'form.title.edit' : 'form.title.new', { name })}
          onClose={() => setPanel(undefined)}
        >
          <RuleForm
            instrument={instrument}
            rule={panel.rule}
            draft={panel.draft}
            onSaved={saved(t(panel.rule ? 'form.saved' : 'form.created'))}
          />
        </Dialog>
      )}
    </div>
  );
}
