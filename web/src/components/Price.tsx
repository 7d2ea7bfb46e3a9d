// An instrument's live price and change, coloured by the reader's convention, marked when the
// price is simulated, and saying why when there is none.

import type { Instrument } from '../api';
import { direction, formatPercent, formatPrice } from '../format';
import { t } from '../i18n';
import { quoteOf } from '../quotes';

export function SimulatedTag() {
  return (
    <span class="tag tag-simulated" title={t('simulatedTitle')}>
      {t('simulated')}
    </span>
  );
}

export function Price({ instrument, large = false }: { instrument: Instrument; large?: boolean }) {
  const quote = quoteOf(instrument.id).value;
  if (!quote) {
    return (
      <span class="price price-missing">
        <span class="muted">{t('noPrice')}</span>
        {instrument.quoteUnavailable && <span class="reason">{instrument.quoteUnavailable}</span>}
      </span>
    );
  }
  const trend = direction(quote.changePercent);
  return (
    <span class={`price ${large ? 'price-large' : ''}`}>
      <span class={`value ${trend}`} data-price={quote.price}>
        {formatPrice(quote.price)}
      </span>
      <span class={`change ${trend}`}>
        <span class="arrow" aria-hidden="true">
          {trend === 'up' ? '▲' : trend === 'down' ? '▼' : ''}
        </span>
        {formatPercent(quote.changePercent)}
      </span>
      {quote.simulated && <SimulatedTag />}
    </span>
  );
}
