// A list of instruments with live prices: the markets' movers and search results, and the
// watchlist (with sparklines and ordering).

import type { ComponentChildren } from 'preact';
import type { Instrument } from '../api';
import { nameOf } from '../format';
import { t } from '../i18n';
import { historyOf, useLiveQuotes } from '../quotes';
import { Price } from './Price';
import { Sparkline } from './Sparkline';

export function instrumentHref(id: string) {
  return `/i/${encodeURIComponent(id)}`;
}

export function InstrumentName({ instrument }: { instrument: Instrument }) {
  const name = nameOf(instrument);
  const other = name === instrument.koreanName ? instrument.englishName : instrument.koreanName;
  return (
    <a class="instrument-name" href={instrumentHref(instrument.id)}>
      <span class="name">{name}</span>
      <span class="sub">
        <span class="symbol">{instrument.symbol}</span>
        <span class="market">{instrument.market}</span>
        {other && other !== name && <span class="other-name">{other}</span>}
      </span>
    </a>
  );
}

export function InstrumentTable({
  caption,
  instruments,
  trend = false,
  actions,
}: {
  caption: string;
  instruments: Instrument[];
  trend?: boolean;
  actions: (instrument: Instrument, index: number) => ComponentChildren;
}) {
  useLiveQuotes(instruments.map((i) => i.id));
  return (
    <table class="instruments">
      <caption class="visually-hidden">{caption}</caption>
      <thead>
        <tr>
          <th scope="col">{t('col.name')}</th>
          <th scope="col" class="num">
            {t('col.price')}
          </th>
          {trend && (
            <th scope="col" class="trend">
              {t('col.trend')}
            </th>
          )}
          <th scope="col" class="actions">
            <span class="visually-hidden">{t('col.actions')}</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {instruments.map((instrument, index) => (
          <tr key={instrument.id} data-instrument={instrument.id}>
            <th scope="row">
              <InstrumentName instrument={instrument} />
            </th>
            <td class="num">
              <Price instrument={instrument} />
            </td>
            {trend && (
              <td class="trend">
                <Sparkline points={historyOf(instrument.id).value} label={t('sparkline', { name: nameOf(instrument) })} />
              </td>
            )}
            <td class="actions">{actions(instrument, index)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
